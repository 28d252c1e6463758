"""Direct Preference Optimisation (Rafailov et al. 2023): fine-tune on a listener's choices, no reward model.

    python -m rlmusic finetune --set agent=dpo --set preferences=taste/preferences.jsonl [--set dpo_beta=0.1]

For a chosen tune w and a rejected tune l of one pair, with pi the policy and ref the pretrained model (frozen),

    loss = -log sigmoid(dpo_beta x [(log pi(w) - log ref(w)) - (log pi(l) - log ref(l))])

log p(tune) summed over the tune's characters after its first, each read from the zero state as sampling does.
Pairs with no preference are left out. One iteration is one batch of `tunes_per_iteration` // 2 pairs, drawn
from the shuffled pairs in turn (the order fixed by `seed`, so a resumed run reads the batches it would have
read). The run folder, its checkpoints and metrics.jsonl are those of PPO (`loss`, `margin`: the mean of the
bracket above, `accuracy`: the share of pairs whose chosen tune the policy now favours more than ref does).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from rlmusic._tf import tf
from rlmusic.errors import UserError


def decided_pairs(choices: list[dict]) -> list[tuple[str, str]]:
    """(chosen, rejected) of every choice with a winner."""
    return [(c["a"], c["b"]) if c["choice"] == "a" else (c["b"], c["a"]) for c in choices if c["choice"] != "none"]


def encode_batch(vocab, tunes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(ids [B, T], mask [B, T - 1]) of the tunes, padded: the mask marks the characters predicted."""
    ids, lengths = vocab.encode_padded(tunes, what="a tune of the preferences", width=2)
    mask = (np.arange(ids.shape[1] - 1)[None, :] < (lengths[:, None] - 1)).astype(np.float32)
    return ids, mask


def sequence_logp(model, ids, mask):
    """log p of each tune: the sum over its characters after the first, from the zero state."""
    logits, _ = model(ids[:, :-1], training=False)
    logp = -tf.nn.sparse_softmax_cross_entropy_with_logits(ids[:, 1:], logits)
    return tf.reduce_sum(logp * mask, axis=1)


def dpo_loss(pi_w, pi_l, ref_w, ref_l, beta: float):
    """(mean loss, mean margin, share of pairs with a positive margin) of DPO over a batch of pairs."""
    margin = (pi_w - ref_w) - (pi_l - ref_l)
    loss = -tf.reduce_mean(tf.math.log_sigmoid(beta * margin))
    return loss, tf.reduce_mean(margin), tf.reduce_mean(tf.cast(margin > 0, tf.float32))


class DpoLearner:
    """One DPO step per call on a batch of (chosen, rejected) pairs; the reference's log-probs are computed once
    per pair and cached (the reference never changes)."""

    def __init__(self, policy, reference, vocab, optimizer, beta: float):
        self.policy, self.reference, self.vocab = policy, reference, vocab
        self.optimizer, self.beta = optimizer, beta
        self._ref: dict[str, float] = {}

    def reference_logp(self, tunes: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(tunes) if t not in self._ref]
        if todo:
            ids, mask = encode_batch(self.vocab, todo)
            self._ref.update(zip(todo, sequence_logp(self.reference, ids, mask).numpy().tolist()))
        return np.array([self._ref[t] for t in tunes], np.float32)

    def step(self, pairs: list[tuple[str, str]]) -> dict:
        chosen, rejected = [w for w, _ in pairs], [lo for _, lo in pairs]
        ref_w, ref_l = self.reference_logp(chosen), self.reference_logp(rejected)
        ids_w, mask_w = encode_batch(self.vocab, chosen)
        ids_l, mask_l = encode_batch(self.vocab, rejected)
        with tf.GradientTape() as tape:
            pi_w = sequence_logp(self.policy, ids_w, mask_w)
            pi_l = sequence_logp(self.policy, ids_l, mask_l)
            loss, margin, acc = dpo_loss(pi_w, pi_l, ref_w, ref_l, self.beta)
        variables = self.policy.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return {"loss": float(loss), "margin": float(margin), "accuracy": float(acc)}


def batches(pairs: list, size: int, seed: int, start: int):
    """The batch of each iteration from `start` on: the pairs shuffled by (seed, pass), taken in turn."""
    it = start
    while True:
        per_pass = max(1, len(pairs) // size)
        epoch, k = divmod(it, per_pass)
        order = random.Random(seed * 100_003 + epoch).sample(range(len(pairs)), len(pairs))
        yield [pairs[i] for i in order[k * size:(k + 1) * size]]
        it += 1


def load_pairs(path: str) -> list[tuple[str, str]]:
    from rlmusic.rate import read_preferences

    if not path:
        raise UserError("agent dpo needs preferences: --set preferences=FILE (the preferences.jsonl of `rate`)")
    if not Path(path).is_file():
        raise UserError(f"preferences {path}: no such file")
    pairs = decided_pairs(read_preferences(Path(path)))
    if not pairs:
        raise UserError(f"preferences {path}: no choice with a winner to learn from")
    return pairs


def run_dpo(cfg, checkpoint: str | Path, run, use_wandb: bool, log=print) -> Path:
    """`finetune` with agent=dpo: the preferences read, the policy and reference loaded, then one DPO step per
    iteration, checkpointed and logged as PPO's runs are (the caller holds the run folder's lock)."""
    import math

    from rlmusic import config as config_lib, interrupts
    from rlmusic.model import ModelConfig
    from rlmusic.rundir import kept_on_interrupt, load_model
    from rlmusic.runlog import RunLogger, progress

    pairs = load_pairs(cfg.preferences)
    policy, vocab, pre_cfg = load_model(checkpoint)
    reference, _, _ = load_model(checkpoint)  # frozen: never given to the optimizer
    cfg.model = config_lib.from_dict(ModelConfig, pre_cfg.get("model") or {}, prefix="model.")
    cfg.pretrained = str(checkpoint)
    log(f"dpo: {len(pairs)} pairs with a winner from {cfg.preferences}")
    run.clean_temporary()
    resuming = run.exists() and run.has_checkpoint()
    if resuming:
        saved = run.read_config_dict()
        if saved.get("agent") != "dpo" or Path(saved.get("pretrained", "")).resolve() != Path(checkpoint).resolve():
            raise UserError(f"--out {run.path} holds another experiment (agent {saved.get('agent')}, pretrained "
                            f"{saved.get('pretrained')}); use another --out")
        run.check_vocab(vocab)
    tf.keras.utils.set_random_seed(cfg.seed)
    optimizer = tf.keras.optimizers.Adam(cfg.learning_rate)
    optimizer.build(policy.trainable_variables)  # its slots exist before a checkpoint is restored into them
    iteration = tf.Variable(0, dtype=tf.int64)
    objects = dict(model=policy, optimizer=optimizer, iteration=iteration)
    if resuming:
        run.restore_newest(log=log, partial=True, **objects)
        log(f"resuming from iteration {int(iteration.numpy())} in {run.path}")
    run.truncate_metrics(int(iteration.numpy()))
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_run_files({"config.yaml": config_lib.dump_yaml(cfg), "vocab.json": vocab.to_json()}, now=not resuming)
    learner = DpoLearner(policy, reference, vocab, optimizer, cfg.dpo_beta)
    feed = batches(pairs, max(1, cfg.tunes_per_iteration // 2), cfg.seed, int(iteration.numpy()))
    logger = RunLogger(run, cfg, use_wandb=use_wandb, project=cfg.wandb_project, kind="finetune")
    try:
        bar = progress(total=cfg.iterations, initial=int(iteration.numpy()), desc="dpo", unit="it")
        while int(iteration.numpy()) < cfg.iterations:
            with interrupts.deferred():  # a step is done whole or not at all, so a Ctrl-C checkpoint is exact
                stats = learner.step(next(feed))
                iteration.assign_add(1)
            it = int(iteration.numpy())
            if not math.isfinite(stats["loss"]):
                raise UserError(f"loss became {stats['loss']} at iteration {it}; lower learning_rate")
            logger.log({"step": it, **stats, "pairs": len(pairs)})
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.3f}", accuracy=f"{stats['accuracy']:.2f}")
            if it % cfg.checkpoint_every == 0 or it == cfg.iterations:
                run.save_checkpoint(it, **objects)
        bar.close()
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the iterations done are kept
        raise kept_on_interrupt(run, int(iteration.numpy()), objects, exc) from None
    finally:
        logger.close()
    return run.path
