"""`python -m rlmusic finetune`: reinforcement learning on reward plugins, KL-controlled to the pretrained model.

Each iteration reads as: collect tunes with the policy (a compiled tf-agents driver over the Gymnasium env) ->
shape the rewards (task reward minus beta times log pi/p_prior, the prior scored in one batched pass) ->
update (tf-agents PPO or REINFORCE) -> log and checkpoint. The policy is the pretrained model itself (its layers,
shared, not copied); the prior is a second, frozen load of the same checkpoint.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np

from rlmusic import config as config_lib, validity
from rlmusic._tf import quiet_import, tf
from rlmusic.config import Checked, Range
from rlmusic.corpus import DEFAULT_PRIMER
from rlmusic.data import DataConfig, prepare, windows_dataset
from rlmusic.envs.composition import DEFAULT_REWARDS, AbcCompositionEnv
from rlmusic.envs.tfa_adapter import batched, drain_finished
from rlmusic.errors import UserError
from rlmusic.model import ModelConfig
from rlmusic.policy import CharPolicyNetwork, kl_shaped_rewards, sequence_log_probs
from rlmusic.rewards.mix import DEFAULT_TIME_LIMIT, RewardMix
from rlmusic.rundir import WRITE_ERRORS, RunDir, load_model, write_failure

quiet_import("tf_agents")
from tf_agents.agents.ppo import ppo_clip_agent  # noqa: E402
from tf_agents.agents.reinforce import reinforce_agent  # noqa: E402
from tf_agents.environments import tf_py_environment  # noqa: E402
from tf_agents.networks import value_rnn_network  # noqa: E402
from tf_agents.trajectories import time_step as ts  # noqa: E402
from tf_agents.trajectories import trajectory  # noqa: E402
from tf_agents.utils import common  # noqa: E402


@dataclass
class FinetuneConfig(Checked):
    rewards: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_REWARDS))
    """Reward name (built-in, entry point or module:function) -> weight."""
    gate: str = "valid,abc2midi,enough_bars,no_excessive_repeats"
    """Rewards (comma-separated) whose scores scale all the others (empty: plain weighted sum); see
    AbcCompositionEnv. Without enough_bars the policy learns to write 2-bar fragments (measured: README)."""
    dense_coef: Annotated[float, Range(0)] = 0.0
    """Weight of the dense credit (AbcCompositionEnv's `info["dense"]`): each reward's per-position credit (-1
    where the first syntax problem arises, where abc2midi's first error points, at each wrong bar, at each note
    out of key, times the reward's weight) added at the step that wrote that character, beside the end-of-tune
    reward. 0: end-of-tune reward only."""
    rewards_time_limit: Annotated[float, Range(0)] = DEFAULT_TIME_LIMIT
    """Seconds a reward may take on one batch of tunes before the run stops with an error naming it (0: none)."""
    beta: Annotated[float, Range(0)] = 0.1
    """Weight of the KL penalty to the pretrained model, per character (the start value with `kl_target`)."""
    kl_target: Annotated[float, Range(0)] = 0.1
    """Adaptive KL control (Ziegler et al. 2019): if > 0, beta is adjusted after every iteration to hold the KL to
    the pretrained model near this many nats per character. 0: beta stays fixed."""
    ptx_coef: Annotated[float, Range(0)] = 0.1
    """Weight of the supervised loss on real tunes (PPO-ptx, InstructGPT): the agent's loss gets ptx_coef x the
    cross-entropy of a batch of windows from real tunes, a fresh batch each iteration. 0: off."""
    ptx_data: list[str] = field(default_factory=list)
    """Sources of the real tunes for ptx_coef (as pretrain's data.sources); empty: the pretrained run's training
    split (its data.sources, val_fraction and seed), so the held-out tunes stay held out."""
    ptx_batch: Annotated[int, Range(1)] = 16
    """Windows of 128 characters per supervised step."""
    discount: Annotated[float, Range(0, 1)] = 1.0
    """Discount of future rewards. 1.0: a tune is one episode scored at its end; below 1 (PPOAgent's own default
    is 0.99) the end-of-tune reward fades over hundreds of characters and short tunes win."""
    gae_lambda: Annotated[float, Range(0, 1)] = 1.0
    """PPO: lambda of generalised advantage estimation. 1.0: each character's advantage is the tune's actual
    return minus the value estimate. Below 1 (PPO's default is 0.95) the end-of-tune reward reaches a character
    T steps earlier with weight lambda^T (0.95^200 ~ 0) and the rest rests on the young value network, which
    overrates the character that ends a tune: tunes shrank (measured: 255 -> 100 chars in 13 iterations)."""
    agent: Literal["ppo", "reinforce"] = "ppo"
    """"ppo" (tf-agents PPOClipAgent) or "reinforce" (ReinforceAgent with a value baseline)."""
    iterations: Annotated[int, Range(1)] = 120
    """Collect-and-update iterations in total (a re-run with a higher value continues)."""
    tunes_per_iteration: Annotated[int, Range(1)] = 16
    """Tunes collected per iteration (one environment each, stepped as a batch)."""
    max_length: Annotated[int, Range(2)] = 600
    """Characters per tune (after the primer) before the episode is truncated."""
    primer: str = DEFAULT_PRIMER
    """Every tune starts with this text (a header asks for a key or meter); must end with a newline."""
    learning_rate: Annotated[float, Range(0, min_open=True)] = 2e-4
    """Adam learning rate of the policy and value networks."""
    num_epochs: Annotated[int, Range(1)] = 4
    """PPO: passes over each batch of tunes."""
    clip: Annotated[float, Range(0, min_open=True)] = 0.2
    """PPO: importance-ratio clipping."""
    entropy: Annotated[float, Range(0)] = 0.0
    """Entropy bonus weight."""
    value_units: Annotated[int, Range(1)] = 128
    """LSTM units of the value network (it has its own embedding and LSTM)."""
    checkpoint_every: Annotated[int, Range(1)] = 10
    """Iterations between checkpoints (the last is always saved)."""
    seed: int = 0
    """Seed of weights of the value network and of the policy's sampling."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Filled from the pretrained run (saved so `sample` and `evaluate` can load this run)."""
    pretrained: str = ""
    """The pretrained run directory (filled from --checkpoint)."""
    wandb_project: str = "rlmusic"
    """Weights & Biases project used with --wandb."""


KL_ADAPT_RATE = 0.5  # beta changes by at most 10 % per iteration (error clipped to +-0.2, as Ziegler et al.)
PTX_LENGTH = 128


def adapt_beta(beta: float, kl: float, target: float) -> float:
    """Proportional control of the KL coefficient: raise beta when the KL is above target, lower it below."""
    error = min(max(kl / target - 1.0, -0.2), 0.2)
    return beta * (1.0 + KL_ADAPT_RATE * error)


def ptx_stream(cfg: FinetuneConfig, pre_cfg: dict, vocab, log=print) -> np.ndarray:
    """The encoded text of the real tunes for the supervised loss (see FinetuneConfig.ptx_data)."""
    from rlmusic.corpus import join_tunes, load_corpus

    data = config_lib.from_dict(DataConfig, pre_cfg.get("data") or {}, prefix="data.")
    if cfg.ptx_data:
        tunes = load_corpus(cfg.ptx_data, max_chars=data.max_chars, midi_channel=data.midi_channel).tunes
    else:  # the pretrained run's own training tunes, read by the same pipeline
        tunes = prepare(data, log=lambda m: None).train
    log(f"ptx: {len(tunes)} real tunes for the supervised loss")
    return vocab.encode(join_tunes(tunes), what="ptx_data")


class Rollouts:
    """Collects one iteration's tunes: `tunes_per_iteration` environments stepped as a batch, in one compiled
    loop, until each has written one whole tune.

    Each row of the batch is one tune from its FIRST step (where the policy's state is primed) to its end, then
    padding: boundary steps that the agents mask out of their losses, and one more such step at the end, which
    PPO uses only to bootstrap values. Stopping at a number of ended episodes instead (tf-agents'
    DynamicEpisodeDriver) keeps the tunes that end first: short ones get their reward and long ones are cut off
    unrewarded, which teaches the policy to stop early (measured: mean tune length fell from 176 to 87
    characters in 19 iterations)."""

    def __init__(self, cfg: FinetuneConfig, vocab, policy_model, mix: RewardMix):
        self.cfg = cfg
        self.mix = mix
        make_env = lambda: AbcCompositionEnv(  # noqa: E731
            vocab=vocab, rewards=mix, max_length=cfg.max_length, primer=cfg.primer, dense=cfg.dense_coef > 0)
        # one_episode: an environment whose tune has ended idles (its row is padding) instead of writing and
        # scoring tunes nobody reads
        self.py_env = batched(make_env, cfg.tunes_per_iteration, one_episode=True)
        self.env = tf_py_environment.TFPyEnvironment(self.py_env)
        self.primer_ids = vocab.encode(cfg.primer[:-1], what="primer")  # the last char is the first observation
        self.actor = CharPolicyNetwork(policy_model, self.primer_ids)

    def attach(self, agent) -> None:
        self.policy = agent.collect_policy
        self.spec = agent.collect_data_spec
        self._run = common.function(self._collect)

    def _collect(self):
        batch = self.env.batch_size
        arrays = tf.nest.map_structure(lambda s: tf.TensorArray(s.dtype, size=0, dynamic_size=True), self.spec)

        def body(t, time_step, state, ended, arrays, all_padding):
            was_ended = ended
            action_step = self.policy.action(time_step, state)
            next_step = self.env.step(action_step.action)
            traj = _pad(trajectory.from_transition(time_step, action_step, next_step), was_ended)
            arrays = tf.nest.map_structure(lambda a, x: a.write(t, x), arrays, traj)
            ended = tf.logical_or(ended, next_step.is_last())
            return t + 1, next_step, action_step.state, ended, arrays, tf.reduce_all(was_ended)

        def cond(t, time_step, state, ended, arrays, all_padding):
            return tf.logical_not(all_padding)

        _, _, _, _, arrays, _ = tf.while_loop(
            cond, body, [tf.constant(0), self.env.reset(), self.policy.get_initial_state(batch),
                         tf.zeros([batch], tf.bool), arrays, tf.constant(False)])
        return tf.nest.map_structure(lambda a: _batch_major(a.stack()), arrays)

    def collect(self):
        """(trajectories [B, T], the `info` of each row's tune: its text and scores, as its env scored them)."""
        self.mix.failure = None
        try:
            exp = self._run()
        except tf.errors.OpError:
            # A reward plugin that failed inside the env: report it by name, not as a graph error.
            if self.mix.failure is not None:
                raise self.mix.failure from None
            raise
        return exp, drain_finished(self.py_env)  # one tune per env, in row order


def _pad(traj, rows):
    """`traj` with the given rows turned into boundary steps (LAST -> FIRST, no reward): masked from the loss."""
    def where(pad, x):
        return tf.where(rows, tf.fill(tf.shape(x), tf.cast(pad, x.dtype)), x)

    return traj._replace(step_type=where(ts.StepType.LAST, traj.step_type),
                         next_step_type=where(ts.StepType.FIRST, traj.next_step_type),
                         reward=where(0, traj.reward), discount=where(1, traj.discount))


def _batch_major(x):
    return tf.transpose(x, [1, 0] + list(range(2, x.shape.rank)))


class _Ptx:
    """ptx_coef x the mean cross-entropy of the policy model on a batch of real windows. The batch lives in
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


class PtxPPOClipAgent(ppo_clip_agent.PPOClipAgent):
    """PPO whose loss also holds the supervised term (PPO-ptx) when `ptx` is set."""

    ptx: _Ptx | None = None

    def get_loss(self, *args, **kwargs):
        info = super().get_loss(*args, **kwargs)
        return info if self.ptx is None else info._replace(loss=info.loss + self.ptx())


class PtxReinforceAgent(reinforce_agent.ReinforceAgent):
    """REINFORCE whose loss also holds the supervised term when `ptx` is set."""

    ptx: _Ptx | None = None

    def total_loss(self, *args, **kwargs):
        info = super().total_loss(*args, **kwargs)
        return info if self.ptx is None else info._replace(loss=info.loss + self.ptx())


def make_agent(cfg: FinetuneConfig, env, actor):
    value_net = value_rnn_network.ValueRnnNetwork(
        env.observation_spec(), preprocessing_layers=tf.keras.layers.Embedding(actor.model.vocab_size, 32),
        input_fc_layer_params=None, lstm_size=(cfg.value_units,), output_fc_layer_params=None)
    optimizer = tf.keras.optimizers.Adam(cfg.learning_rate)
    counter = tf.Variable(0, dtype=tf.int64)
    if cfg.agent == "ppo":
        agent = PtxPPOClipAgent(
            env.time_step_spec(), env.action_spec(), optimizer=optimizer, actor_net=actor, value_net=value_net,
            num_epochs=cfg.num_epochs, importance_ratio_clipping=cfg.clip, entropy_regularization=cfg.entropy,
            discount_factor=cfg.discount, lambda_value=cfg.gae_lambda,
            use_gae=True, normalize_observations=False,  # token ids are not to be normalised
            normalize_rewards=False, train_step_counter=counter)
    else:  # "reinforce" (the config allows nothing else)
        agent = PtxReinforceAgent(
            env.time_step_spec(), env.action_spec(), actor_network=actor, optimizer=optimizer,
            value_network=value_net, normalize_returns=True, entropy_regularization=cfg.entropy, gamma=cfg.discount,
            train_step_counter=counter)
    agent.initialize()
    return agent, value_net, optimizer


# What a resumed run must share with the run it continues: otherwise it is another experiment.
SAME_EXPERIMENT = ("pretrained", "model", "agent", "value_units")


def check_resumable(run: RunDir, cfg: FinetuneConfig, vocab) -> None:
    saved = run.read_config_dict()
    for key in SAME_EXPERIMENT:
        mine, theirs = config_lib.to_dict(cfg)[key], saved.get(key)
        if key == "pretrained":
            same = theirs is not None and Path(theirs).resolve() == Path(mine).resolve()
        else:
            same = theirs == mine
        if not same:
            raise UserError(f"--out {run.path} holds a run with {key}={theirs} (this one: {mine}); resuming it would "
                            f"change the experiment; use another --out, or delete {run.path} to start fresh")
    run.check_vocab(vocab)


def run_finetune(cfg: FinetuneConfig, checkpoint: str | Path, out: str | Path, use_wandb: bool = False,
                 log=print) -> Path:
    """Fine-tune the pretrained run `checkpoint` into `out` (resuming it); returns its path."""
    try:
        return _run_finetune(cfg, checkpoint, out, use_wandb, log)
    except WRITE_ERRORS as exc:  # a full disk: named, and the last good checkpoint is kept
        raise write_failure(RunDir(out), exc, "iteration") from exc


def _run_finetune(cfg: FinetuneConfig, checkpoint: str | Path, out: str | Path, use_wandb: bool, log) -> Path:
    from rlmusic.runlog import RunLogger, plot_curves, progress

    mix = RewardMix(cfg.rewards, gates=cfg.gate, time_limit=cfg.rewards_time_limit)  # unknown names fail here
    if "abc2midi" in [*cfg.rewards, *cfg.gate.split(",")] and validity.abc2midi_path() is None:
        log("note: abc2midi is not installed (Debian package abcmidi): the abc2midi reward scores nothing and "
            "does not gate")
    policy_model, vocab, pre_cfg = load_model(checkpoint)
    prior_model, _, _ = load_model(checkpoint)  # frozen: never given to an optimizer
    cfg.model = config_lib.from_dict(ModelConfig, pre_cfg.get("model") or {}, prefix="model.")
    cfg.pretrained = str(checkpoint)
    log("config:\n" + config_lib.dump_yaml(cfg).rstrip())  # resolved: the model and pretrained run filled in
    run = RunDir(out)
    run.check_is_run_dir("--out")
    run.clean_temporary()
    resuming = run.exists() and run.has_checkpoint()  # a folder without a checkpoint is replaced
    if resuming:
        check_resumable(run, cfg, vocab)
    tf.keras.utils.set_random_seed(cfg.seed)
    rollouts = Rollouts(cfg, vocab, policy_model, mix)
    primer_ids = rollouts.primer_ids
    agent, value_net, optimizer = make_agent(cfg, rollouts.env, rollouts.actor)
    rollouts.attach(agent)
    iteration = tf.Variable(0, dtype=tf.int64)
    beta = tf.Variable(cfg.beta, dtype=tf.float64)  # adapted with kl_target; saved so a resume continues it
    objects = dict(model=policy_model, value_net=value_net, optimizer=optimizer, iteration=iteration,
                   kl_beta=beta)
    if resuming:
        run.restore_newest(log=log, partial=True, **objects)
        log(f"resuming from iteration {int(iteration.numpy())} in {run.path}")
    run.truncate_metrics(int(iteration.numpy()))
    ptx_batches = None
    if cfg.ptx_coef > 0:
        stream = ptx_stream(cfg, pre_cfg, vocab, log)
        ptx_batches = iter(windows_dataset(stream, cfg.ptx_batch, PTX_LENGTH, cfg.seed, int(iteration.numpy())))
        agent.ptx = _Ptx(policy_model, cfg.ptx_coef, cfg.ptx_batch)
        ptx_nll = tf.function(agent.ptx.nll)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config(config_lib.dump_yaml(cfg))
    run.write_vocab(vocab)

    train = common.function(agent.train)
    # log pi and log p_prior of the collected characters, each in one batched pass (the policy's weights are
    # still those that collected them, so this is the behaviour policy's log-probability).
    policy_logp = tf.function(lambda obs, act, st: sequence_log_probs(policy_model, obs, act, st, primer_ids))
    prior_logp = tf.function(lambda obs, act, st: sequence_log_probs(prior_model, obs, act, st, primer_ids))
    logger = RunLogger(run, cfg, use_wandb=use_wandb, project=cfg.wandb_project, kind="finetune")
    try:
        bar = progress(total=cfg.iterations, initial=int(iteration.numpy()), desc="finetune", unit="it")
        while int(iteration.numpy()) < cfg.iterations:
            start = time.perf_counter()
            # rollout
            exp, finished = rollouts.collect()
            # advantages come from the agent; the rewards it sees are shaped here
            logp_pi, logits = policy_logp(exp.observation, exp.action, exp.step_type)
            logp_prior, _ = prior_logp(exp.observation, exp.action, exp.step_type)
            live = 1.0 - tf.cast(exp.is_boundary(), tf.float32)
            task = exp.reward
            if cfg.dense_coef > 0:  # credit where the error is: at the characters the dense forms point to
                task = task + cfg.dense_coef * dense_rewards(finished, exp.next_step_type.numpy(), len(cfg.primer))
            shaped = kl_shaped_rewards(task, logp_pi, logp_prior, float(beta.numpy())) * live
            # update (with ptx_coef, the loss also holds the supervised term on a fresh batch of real tunes)
            ptx = None
            if ptx_batches is not None:
                x, y = next(ptx_batches)
                agent.ptx.x.assign(x)
                agent.ptx.y.assign(y)
                ptx = float(ptx_nll())  # before the update, as the loss sees it
            loss = float(train(exp._replace(reward=shaped)).loss)
            iteration.assign_add(1)
            # log
            it = int(iteration.numpy())
            kl = float(tf.reduce_sum((logp_pi - logp_prior) * live) / tf.reduce_sum(live))
            row = iteration_row(it, finished, mix, loss=loss, kl=kl, beta=float(beta.numpy()),
                                entropy=float(tf.reduce_sum(_entropy(logits) * live) / tf.reduce_sum(live)),
                                tunes_per_sec=len(finished) / (time.perf_counter() - start))
            if ptx is not None:
                row["ptx_nll_bits_per_char"] = ptx / math.log(2)
            if not math.isfinite(loss):
                raise UserError(f"loss became {loss} at iteration {it}; lower learning_rate")
            if cfg.kl_target > 0:
                beta.assign(adapt_beta(float(beta.numpy()), kl, cfg.kl_target))
            logger.log(row)
            bar.update(1)
            bar.set_postfix(reward=f"{row['reward']:.3f}", kl=f"{kl:.3f}")
            if it % cfg.checkpoint_every == 0 or it == cfg.iterations:
                run.save_checkpoint(it, **objects)
                logger.tune_table(it, finished, mix)
                plot_curves(run)
        bar.close()
    except (UserError, KeyboardInterrupt):  # a failing or hung plugin, a NaN, Ctrl-C
        if int(iteration.numpy()) > (run.latest_step() or 0):
            run.save_checkpoint(int(iteration.numpy()), **objects)  # keep what was learned before the failure
        raise
    finally:
        logger.close()
    return run.path


def iteration_row(it: int, finished: list[dict], mix: RewardMix, **numbers) -> dict:
    """One metrics row: the numbers given, the tunes ended this iteration, and each reward's mean over them."""
    scores = [info["rewards"] for info in finished]
    row = {"step": it, **numbers, "tunes": len(finished),
           "reward": float(np.mean([mix.total(s) for s in scores])) if scores else 0.0,
           "chars_per_tune": float(np.mean([len(info["tune"]) for info in finished])) if finished else 0.0}
    row.update({f"rewards/{name}": mean for name, mean in mix.means(scores).items()})
    if "valid" in mix.weights:  # weighted, or scored as the gate
        row["valid_rate"] = row["rewards/valid"]
    if any("dense" in info for info in finished):  # the dense credit per tune, before dense_coef
        row["dense_credit"] = float(np.mean([sum(c for _, c in info.get("dense", ())) for info in finished]))
    return row


def dense_rewards(finished: list[dict], next_step_type: np.ndarray, primer_len: int) -> np.ndarray:
    """[B, T] rewards from each row's dense credit: the credit at character offset o of the tune goes to the step
    that wrote it (o - primer length; one in the primer or past the end goes to the tune's first or last step)."""
    out = np.zeros(next_step_type.shape, np.float32)
    for row, info in enumerate(finished):
        last = int(np.argmax(next_step_type[row] == ts.StepType.LAST))
        for offset, credit in info.get("dense", ()):
            out[row, min(max(offset - primer_len, 0), last)] += credit
    return out


def _entropy(logits):
    logp = tf.nn.log_softmax(logits, -1)
    return -tf.reduce_sum(tf.exp(logp) * logp, -1)
