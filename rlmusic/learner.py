"""The learning half of a fine-tuning iteration: shape the rewards of the collected tunes, then update the agent.

Shaping: task reward (the env's end-of-tune score, plus the dense credit if asked, re-centred per header value if
`neutral_headers`) minus beta x (log pi - log p_prior) per character, the prior scored in one batched pass. Update: tf-agents PPO (its clipped loss, value loss
and return/advantage computation) or REINFORCE, plus the supervised PPO-ptx term.

A collection is a batch of rows of unequal length (one tune each, padded to the longest), and the networks cost
rows x columns whatever the padding. So PPO's update runs on *length buckets*: rows sorted by tune length and
split into `update_buckets` groups, each cut to its own longest tune. The loss summed over the buckets, each
weighted by its share of the batch's rows x columns, is the loss of the whole batch (tested): a bucket is a
cheaper way to compute the same update, not a different update.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rlmusic._tf import quiet_import, tf
from rlmusic.errors import UserError
from rlmusic.neutral import length_slopes, neutral_offsets
from rlmusic.policy import kl_shaped_rewards, nucleus_log_probs, sequence_log_probs
from rlmusic.rollouts import tune_steps

quiet_import("tf_agents")
from tf_agents.agents.ppo import ppo_clip_agent, ppo_utils  # noqa: E402
from tf_agents.agents.reinforce import reinforce_agent  # noqa: E402
from tf_agents.networks import value_rnn_network  # noqa: E402
from tf_agents.trajectories import time_step as ts  # noqa: E402
from tf_agents.utils import common  # noqa: E402

PTX_LENGTH = 128


class Ptx:
    """coef x the mean cross-entropy of the policy model on a batch of real windows. The batch lives in
    variables that the loop refills before each update, so the compiled train step reads the new one."""

    def __init__(self, model, coef: float, batch: int):
        self.model, self.coef = model, coef
        self.x = tf.Variable(tf.zeros([batch, PTX_LENGTH], tf.int32), trainable=False)
        self.y = tf.Variable(tf.zeros([batch, PTX_LENGTH], tf.int32), trainable=False)

    def nll(self):
        logits, _ = self.model(self.x, training=True)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(self.y, logits))

    def __call__(self):
        return self.coef * self.nll()


class PtxReinforceAgent(reinforce_agent.ReinforceAgent):
    """REINFORCE whose loss also holds the supervised term when `ptx` is set."""

    ptx: Ptx | None = None

    def total_loss(self, *args, **kwargs):
        info = super().total_loss(*args, **kwargs)
        return info if self.ptx is None else info._replace(loss=info.loss + self.ptx())


def make_agent(cfg, env, actor):
    """The tf-agents agent for `cfg.agent`, its value network and optimizer. PPO's collect policy records its
    value predictions and `preprocess_sequence` computes returns and advantages (tf-agents' path for training
    on experience prepared outside `train`), which lets the update run bucket by bucket."""
    masked = isinstance(env.observation_spec(), dict)  # the value of a state does not depend on the mask
    value_net = value_rnn_network.ValueRnnNetwork(
        env.observation_spec(),
        preprocessing_layers=None if masked else tf.keras.layers.Embedding(actor.model.vocab_size, 32),
        preprocessing_combiner=CharEmbedding(actor.model.vocab_size, 32) if masked else None,
        input_fc_layer_params=None, lstm_size=(cfg.value_units,), output_fc_layer_params=None)
    optimizer = tf.keras.optimizers.Adam(cfg.learning_rate)
    counter = tf.Variable(0, dtype=tf.int64)
    if cfg.agent == "ppo":
        agent = ppo_clip_agent.PPOClipAgent(
            env.time_step_spec(), env.action_spec(), optimizer=optimizer, actor_net=actor, value_net=value_net,
            num_epochs=cfg.num_epochs, importance_ratio_clipping=cfg.clip, entropy_regularization=cfg.entropy,
            discount_factor=cfg.discount, lambda_value=cfg.gae_lambda,
            use_gae=True, normalize_observations=False,  # token ids are not to be normalised
            normalize_rewards=False, compute_value_and_advantage_in_train=False, train_step_counter=counter)
    else:  # "reinforce" (the config allows nothing else)
        agent = PtxReinforceAgent(
            env.time_step_spec(), env.action_spec(), actor_network=actor, optimizer=optimizer,
            value_network=value_net, normalize_returns=True, entropy_regularization=cfg.entropy, gamma=cfg.discount,
            train_step_counter=counter)
    agent.initialize()
    # Adam's slots made here, not in the first compiled update: a tf.function that creates variables is traced
    # twice on its first call
    optimizer.build(trainable_variables((actor, value_net)))
    return agent, value_net, optimizer


class CharEmbedding(tf.keras.layers.Layer):
    """The value network's input with masked observations: the embedding of the character alone."""

    def __init__(self, vocab_size: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.dim = vocab_size, dim
        self.embedding = tf.keras.layers.Embedding(vocab_size, dim)

    def call(self, observation):
        return self.embedding(observation["char"])

    def get_config(self):  # tf-agents copies networks from their layers' configs
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim}


def trainable_variables(networks) -> list:
    """The networks' trainable variables, each once (the actor and value network may share none or some), in
    name order, the order tf-agents' PPO uses."""
    weights = {id(w): w for net in networks for w in net.trainable_weights}.values()
    return sorted(weights, key=lambda v: v.name)


class TracedOnce:
    """`common.function(fn)` traced once for batches of any rows and columns: its signature is the first call's
    with the first two dimensions of every tensor left open. (Left to reduce_retracing, which opens a dimension
    only after it has seen two sizes of it, every run traced the PPO epoch three or four times, each trace
    seconds on 2 cores.) `compiled` is the tf.function, once called."""

    def __init__(self, fn):
        self.fn, self.compiled = fn, None

    def __call__(self, *args):
        if self.compiled is None:
            def open_spec(x):
                x = tf.convert_to_tensor(x)
                return tf.TensorSpec([None] * min(x.shape.rank, 2) + x.shape[2:], x.dtype)
            self.compiled = common.function(self.fn, input_signature=tf.nest.map_structure(open_spec, args))
        return self.compiled(*args)


class Scored(NamedTuple):
    """A part's characters under the policy and the prior: log pi, the policy's logits, log p_prior, the live
    characters (1, padding 0), and per tune its summed log pi - log p_prior (`kl`)."""

    logp_pi: tf.Tensor
    logits: tf.Tensor
    logp_prior: tf.Tensor
    live: tf.Tensor
    kl: tf.Tensor


def length_buckets(steps: np.ndarray, n: int) -> list[np.ndarray]:
    """Row indices sorted by tune length (`steps` per row) and split into `n` groups of near-equal size."""
    order = np.argsort(steps, kind="stable")
    return [rows for rows in np.array_split(order, min(n, len(order))) if len(rows)]


def take(exp, rows: np.ndarray, columns: int):
    """The given rows of a batch-major trajectory, cut to its first `columns` steps."""
    return tf.nest.map_structure(lambda x: tf.gather(x, rows)[:, :columns], exp)


def dense_rewards(finished: list[dict], next_step_type: np.ndarray, primer_len: int) -> np.ndarray:
    """[B, T] rewards from each row's dense credit: the credit at character offset o of the tune goes to the step
    that wrote it (o - primer length; one in the primer or past the end goes to the tune's first or last step)."""
    out = np.zeros(next_step_type.shape, np.float32)
    for row, info in enumerate(finished):
        last = int(np.argmax(next_step_type[row] == ts.StepType.LAST))
        for offset, credit in info.get("dense", ()):
            out[row, min(max(offset - primer_len, 0), last)] += credit
    return out


def entropy_of(logits):
    logp = tf.nn.log_softmax(logits, -1)
    return -tf.reduce_sum(tf.exp(logp) * logp, -1)


class Learner:
    """Shapes and learns from one collection. `update(exp, finished, beta)` -> loss, KL and entropy per
    character (the KL and entropy of the policy that collected the tunes)."""

    def __init__(self, cfg, agent, optimizer, networks, policy_model, prior_model, primer_ids,
                 ptx: Ptx | None = None, strategy: tf.distribute.Strategy | None = None):
        self.agent, self.optimizer, self.ptx = agent, optimizer, ptx
        self.strategy = strategy or tf.distribute.get_strategy()
        self.variables = trainable_variables(networks)
        self.num_epochs, self.dense_coef, self.primer_len = cfg.num_epochs, cfg.dense_coef, len(cfg.primer)
        self.neutral_headers = cfg.neutral_fields
        self.neutral_return = cfg.neutral_return
        self.ppo = cfg.agent == "ppo"
        self.buckets = cfg.update_buckets if self.ppo else 1
        self.check_split(cfg, self.strategy.num_replicas_in_sync)
        # log pi and log p_prior of the collected characters, each in one batched pass (the policy's weights are
        # still those that collected them: this is the behaviour policy's log-probability). Shapes change every
        # iteration, so each compiled function is traced once for any shape.
        self.policy_logp = TracedOnce(lambda o, a, s: sequence_log_probs(policy_model, o, a, s, primer_ids))
        self.prior_logp = TracedOnce(lambda o, a, s: self.prior_log_probs(prior_model, o, a, s, primer_ids))
        self.prior_top_p, self.prior_tail = cfg.prior_top_p, cfg.prior_tail
        if ptx is not None and not self.ppo:
            agent.ptx = ptx
        # compiled per part (advantages; one epoch) rather than as one unrolled update: a smaller graph traces
        # in a fraction of the time
        self._prepare = TracedOnce(self.prepare)
        self._epoch = TracedOnce(self.ppo_epoch)
        self._train = common.function(agent.train)

    def prior_log_probs(self, prior_model, observations, actions, step_type, primer_ids):
        """log p_prior of the collected characters: the pretrained model's, or its nucleus' (cfg.prior_top_p)."""
        logp, logits = sequence_log_probs(prior_model, observations, actions, step_type, primer_ids)
        if self.prior_top_p >= 1.0:
            return logp
        return nucleus_log_probs(logits, actions, self.prior_top_p, self.prior_tail)

    @staticmethod
    def check_split(cfg, replicas: int) -> None:
        """Several replicas need PPO and buckets whose tunes split evenly over them."""
        if replicas > 1 and (cfg.agent != "ppo" or cfg.tunes_per_iteration % (cfg.update_buckets * replicas)):
            raise UserError(f"strategy: {replicas} replicas need agent=ppo and tunes_per_iteration (now "
                            f"{cfg.tunes_per_iteration}) a multiple of update_buckets x replicas "
                            f"({cfg.update_buckets} x {replicas}), so every bucket splits evenly")

    def split(self, exp, finished: list[dict]) -> list[tuple]:
        """(trajectory, infos) per length bucket; each keeps one padding column past its longest tune, which
        PPO uses only to bootstrap values."""
        steps = tune_steps(exp.next_step_type.numpy())
        return [(take(exp, rows, int(steps[rows].max()) + 1), [finished[r] for r in rows])
                for rows in length_buckets(steps, self.buckets)]

    def score(self, part) -> Scored:
        """A part's characters scored once, for the shaping and the re-centring alike."""
        logp_pi, logits = self.policy_logp(part.observation, part.action, part.step_type)
        logp_prior = self.prior_logp(part.observation, part.action, part.step_type)
        live = 1.0 - tf.cast(part.is_boundary(), tf.float32)
        return Scored(logp_pi, logits, logp_prior, live, tf.reduce_sum((logp_pi - logp_prior) * live, axis=1))

    def shape(self, part, infos: list[dict], beta: float, scored: Scored | None = None):
        """`part` with its rewards KL-shaped (and dense credit added), its KL and entropy sums, and per tune its
        characters, task return and KL charge. `scored`: the part's `score`, if already computed."""
        logp_pi, logits, logp_prior, live, kl_rows = scored or self.score(part)
        task = part.reward
        if self.dense_coef > 0:  # credit where the error is: at the characters the dense forms point to
            task = task + self.dense_coef * dense_rewards(infos, part.next_step_type.numpy(), self.primer_len)
        if self.neutral_headers:  # at each tune's last step, beside its reward
            last = part.next_step_type.numpy() == ts.StepType.LAST
            task = task + last * np.array([[info.get("neutral_offset", 0.0)] for info in infos], np.float32)
        shaped = kl_shaped_rewards(task, logp_pi, logp_prior, beta) * live
        sums = (float(tf.reduce_sum(kl_rows)), float(tf.reduce_sum(entropy_of(logits) * live)),
                float(tf.reduce_sum(live)))
        # per tune: its characters, its task return and its KL charge, for what length earns (length_slopes)
        rows = np.stack([tf.reduce_sum(live, axis=1).numpy(), tf.reduce_sum(task * live, axis=1).numpy(),
                         -beta * kl_rows.numpy()], axis=1)
        return part._replace(reward=shaped), sums, rows

    def update(self, exp, finished: list[dict], beta: float) -> dict:
        split = self.split(exp, finished)
        scored = [self.score(part) for part, _ in split]
        spread = self.neutralize(exp, finished, split, scored, beta) if self.neutral_headers else {}
        parts, kl, ent, live, rows = [], 0.0, 0.0, 0.0, []
        for (part, infos), s in zip(split, scored):
            shaped, (k, e, n), r = self.shape(part, infos, beta, s)
            parts.append(shaped)
            rows.append(r)
            kl, ent, live = kl + k, ent + e, live + n
        loss = self.ppo_update(parts) if self.ppo else self._train(parts[0]).loss
        return {"loss": float(loss), "kl": kl / live, "entropy": ent / live, **spread,
                **length_slopes(np.concatenate(rows))}

    def neutralize(self, exp, finished: list[dict], split, scored, beta: float) -> dict:
        """Each tune's neutral offset into its info (`shape` adds it): of its task return, or with neutral_return
        "shaped" of its task return plus its KL charge, with length's trend taken out too."""
        # what re-centring moves: the task return without the exempt rewards' part (neutral_exempt), which the
        # loop puts in each info
        totals = exp.reward.numpy().sum(axis=1).astype(np.float64)
        totals -= np.array([info.get("neutral_exempt", 0.0) for info in finished])
        shaped = self.neutral_return == "shaped"
        if shaped:
            for (_, infos), s in zip(split, scored):
                for info, kl in zip(infos, s.kl.numpy()):
                    info["kl_charge"] = -beta * float(kl)
            totals = totals + np.array([info["kl_charge"] for info in finished])
        offsets = neutral_offsets([f.get("tune", "") for f in finished], totals, self.neutral_headers, shaped)
        for info, offset in zip(finished, offsets):
            info["neutral_offset"] = float(offset)
        return {"neutral_offset": float(np.abs(offsets).mean())}

    @staticmethod
    def bucket_weights(parts) -> list:
        """tf-agents' loss averages over a bucket's rows and columns, so each bucket weighs its rows x columns
        over the batch's (all rows x the longest bucket's columns): the weighted sum is the whole batch's loss."""
        rows = [tf.cast(tf.shape(p.step_type)[0], tf.float32) for p in parts]
        cols = [tf.cast(tf.shape(p.step_type)[1], tf.float32) for p in parts]
        whole = tf.add_n(rows) * tf.reduce_max(tf.stack(cols))
        return [r * c / whole for r, c in zip(rows, cols)]

    def ppo_loss(self, parts, normalized, old_logp, weights=None):
        """The PPO loss of the whole batch from its buckets (see bucket_weights). Under a strategy with R
        replicas each replica passes its 1/R of every bucket's rows and the bucket weights of the whole batch:
        tf-agents' loss divides by R in a replica context (common.aggregate_losses), and so does the ptx term
        here, so the replicas' losses (and gradients, which the optimizer sums) add up to the batch's."""
        weights = self.bucket_weights(parts) if weights is None else weights
        total = tf.add_n([
            w * self.agent.get_loss(
                ts.TimeStep(p.step_type, p.reward, p.discount, p.observation), p.action, lp, p.policy_info["return"],
                adv, p.policy_info["dist_params"], ppo_utils.make_trajectory_mask(p), self.agent.train_step_counter,
                False, old_value_predictions=p.policy_info["value_prediction"], training=True).loss
            for p, adv, lp, w in zip(parts, normalized, old_logp, weights)])
        if self.ptx is None:
            return total
        return total + self.ptx() / tf.distribute.get_replica_context().num_replicas_in_sync

    def prepare(self, parts):
        """Returns and advantages per bucket (tf-agents' `preprocess_sequence`), the advantages normalised over
        the real characters of the whole batch (tf-agents normalises within one `train` call and counts the
        padding too), and the behaviour policy's log-probabilities."""
        parts = [self.agent.preprocess_sequence(p) for p in parts]
        masks = [ppo_utils.make_trajectory_mask(p) for p in parts]
        count = tf.add_n([tf.reduce_sum(m) for m in masks])
        adv = [p.policy_info["advantage"] for p in parts]
        mean = tf.add_n([tf.reduce_sum(a * m) for a, m in zip(adv, masks)]) / count
        var = tf.add_n([tf.reduce_sum(tf.square(a - mean) * m) for a, m in zip(adv, masks)]) / count
        normalized = [(a - mean) * tf.math.rsqrt(var + 1e-8) for a in adv]
        old_logp = [-tf.nn.sparse_softmax_cross_entropy_with_logits(p.action, p.policy_info["dist_params"]["logits"])
                    for p in parts]
        return parts, normalized, old_logp

    def _replica_step(self, parts, normalized, old_logp, weights):
        ctx = tf.distribute.get_replica_context()
        if ctx.num_replicas_in_sync > 1:  # this replica's rows of every bucket
            n, first = ctx.num_replicas_in_sync, ctx.replica_id_in_sync_group

            def mine(x):
                rows = tf.shape(x)[0] // n
                return x[first * rows:(first + 1) * rows]

            parts, normalized, old_logp = tf.nest.map_structure(mine, (parts, normalized, old_logp))
        with tf.GradientTape() as tape:
            loss = self.ppo_loss(parts, normalized, old_logp, weights)
        grads = tape.gradient(loss, self.variables)
        self.optimizer.apply_gradients(zip(grads, self.variables))  # summed over the replicas
        return loss

    def ppo_epoch(self, parts, normalized, old_logp):
        """One gradient step on the whole batch (its buckets), split over the strategy's replicas."""
        weights = self.bucket_weights(parts)
        if self.strategy.num_replicas_in_sync == 1:
            loss = self._replica_step(parts, normalized, old_logp, weights)
        else:
            loss = self.strategy.reduce(tf.distribute.ReduceOp.SUM, self.strategy.run(
                self._replica_step, args=(parts, normalized, old_logp, weights)), axis=None)
        self.agent.train_step_counter.assign_add(1)
        return loss

    def ppo_update(self, parts):
        """num_epochs gradient steps on the whole batch, as tf-agents' PPO `train` takes them; the last loss."""
        prepared = self._prepare(parts)
        return [self._epoch(*prepared) for _ in range(self.num_epochs)][-1]
