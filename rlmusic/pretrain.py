"""`python -m rlmusic pretrain`: train the character LSTM on ABC tunes.

The loop reads as: batch of random windows -> train step -> log -> (eval) -> (checkpoint). Windows are drawn
with stateless random ops keyed on (seed, step), so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rlmusic._tf import tf

from rlmusic import config as config_lib
from rlmusic.corpus import DEFAULT_SOURCES, join_tunes, load_corpus, split_train_val
from rlmusic.errors import UserError
from rlmusic.model import ModelConfig, build_model, flops_per_char
from rlmusic.rundir import RunDir
from rlmusic.vocab import Vocab


@dataclass
class DataConfig:
    sources: list[str] = field(default_factory=lambda: list(DEFAULT_SOURCES))
    """music21 collection names, .abc files, folders or globs (`--data` replaces this list)."""
    val_fraction: float = 0.05
    """Share of tunes held out for validation (split by tune, never inside one)."""
    max_chars: int = 4000
    """Tunes longer than this (after cleaning) are dropped: they are medleys or transcription debris."""
    seed: int = 0
    """Seed of the train/validation split."""


@dataclass
class TrainConfig:
    steps: int = 1500
    """Optimizer steps in total (a re-run with a higher value continues training)."""
    batch_size: int = 64
    """Windows per batch."""
    seq_length: int = 128
    """Characters per window (backpropagation through time length)."""
    learning_rate: float = 3e-3
    """Peak Adam learning rate."""
    warmup_steps: int = 100
    """Linear warm-up to the peak learning rate."""
    min_lr_fraction: float = 0.1
    """Cosine decay ends at this fraction of the peak, at `steps`."""
    clip_norm: float = 1.0
    """Global gradient-norm clipping (0 = off)."""
    log_every: int = 50
    """Steps between rows in metrics.jsonl and TensorBoard."""
    eval_every: int = 250
    """Steps between validation passes (and checkpoints). The last step is always evaluated."""
    eval_chars: int = 200_000
    """Validation characters per pass (the first ones of the held-out stream; 0 = all)."""
    seed: int = 0
    """Seed of weight initialisation and window sampling."""
    precision: str = "float32"
    """"float32" or "mixed_bfloat16" (faster only on CPUs with AVX512-BF16/AMX or on GPUs)."""


@dataclass
class PretrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    wandb_project: str = "rlmusic"
    """Weights & Biases project used with --wandb."""


class WarmupCosine(tf.keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, peak: float, warmup: int, total: int, floor: float):
        self.peak, self.warmup, self.total, self.floor = peak, max(1, warmup), max(1, total), floor

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = self.peak * (step + 1) / self.warmup
        progress = tf.clip_by_value((step - self.warmup) / max(1, self.total - self.warmup), 0.0, 1.0)
        cosine = self.peak * (self.floor + (1 - self.floor) * 0.5 * (1 + tf.cos(math.pi * progress)))
        return tf.where(step < self.warmup, warm, cosine)

    def get_config(self):
        return {"peak": self.peak, "warmup": self.warmup, "total": self.total, "floor": self.floor}


def make_optimizer(cfg: TrainConfig) -> tf.keras.optimizers.Optimizer:
    lr = WarmupCosine(cfg.learning_rate, cfg.warmup_steps, cfg.steps, cfg.min_lr_fraction)
    return tf.keras.optimizers.Adam(lr, global_clipnorm=cfg.clip_norm or None)


def windows_dataset(stream: np.ndarray, batch: int, length: int, seed: int, first_step: int) -> tf.data.Dataset:
    """Batches of (input, target) windows at offsets drawn from (seed, step): the same batches on resume."""
    data = tf.constant(stream)
    high = len(stream) - length - 1
    if high <= 0:
        raise UserError(f"train.seq_length={length} is longer than the training text ({len(stream)} chars)")
    offsets_in_window = tf.range(length + 1)

    def make(step):
        starts = tf.random.stateless_uniform([batch], seed=tf.stack([tf.constant(seed, tf.int64), step]),
                                             maxval=high, dtype=tf.int64)
        idx = tf.cast(starts[:, None], tf.int32) + offsets_in_window[None, :]
        w = tf.gather(data, idx)
        return w[:, :-1], w[:, 1:]

    return tf.data.Dataset.range(first_step, 2**62).map(make).prefetch(2)


def eval_windows(stream: np.ndarray, length: int, max_chars: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping validation windows covering the first `max_chars` of the held-out stream."""
    if max_chars:
        stream = stream[: max_chars + 1]
    n = (len(stream) - 1) // length
    if n == 0:
        raise UserError(f"validation text ({len(stream)} chars) is shorter than train.seq_length={length}; "
                        "raise data.val_fraction or lower train.seq_length")
    x = stream[: n * length].reshape(n, length)
    y = stream[1: n * length + 1].reshape(n, length)
    return x, y


class Trainer:
    """Holds the model, optimizer and compiled steps of one pretraining run."""

    def __init__(self, model, cfg: TrainConfig):
        self.model = model
        self.cfg = cfg
        self.optimizer = make_optimizer(cfg)
        self.optimizer.build(model.trainable_variables)  # so a checkpoint restores into real slots
        self.train_step = tf.function(self._train_step)
        self.eval_step = tf.function(self._eval_step)

    def _train_step(self, x, y):
        with tf.GradientTape() as tape:
            logits, _ = self.model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss

    def _eval_step(self, x, y):
        logits, _ = self.model(x, training=False)
        return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))

    def val_bits_per_char(self, x: np.ndarray, y: np.ndarray, batch: int = 64) -> float:
        total = 0.0
        for i in range(0, len(x), batch):
            total += float(self.eval_step(tf.constant(x[i:i + batch]), tf.constant(y[i:i + batch])))
        return total / y.size / math.log(2)


def prepare_data(cfg: PretrainConfig, log=print):
    corpus = load_corpus(cfg.data.sources, max_chars=cfg.data.max_chars)
    log(corpus.stats.summary())
    train_tunes, val_tunes = split_train_val(corpus.tunes, cfg.data.val_fraction, cfg.data.seed)
    train_text, val_text = join_tunes(train_tunes), join_tunes(val_tunes)
    vocab = Vocab.from_text(train_text + val_text)
    return corpus, vocab, vocab.encode(train_text), vocab.encode(val_text), (len(train_tunes), len(val_tunes))


def check_resumable(run: RunDir, cfg: PretrainConfig, vocab: Vocab) -> None:
    """A run dir can only be continued by the same model on the same vocabulary."""
    saved = run.read_config_dict()
    saved_model = saved.get("model", {})
    mine = dataclasses.asdict(cfg.model)
    for k, v in mine.items():
        if k in saved_model and saved_model[k] != v:
            raise UserError(f"--out {run.path} holds a run with model.{k}={saved_model[k]} (this config: {v}); "
                            f"use another --out, or delete {run.path} to start fresh")
    saved_vocab = run.read_vocab()
    if saved_vocab != vocab:
        raise UserError(f"--out {run.path} holds a run with a different vocabulary ({saved_vocab.diff(vocab)}); "
                        f"use another --out, or delete {run.path} to start fresh")


def _diverged(what: str, value: float, step: int, last_good: int | None, run: RunDir) -> UserError:
    kept = f"the last good checkpoint (step {last_good}) is kept" if last_good else "no checkpoint was written"
    return UserError(f"{what} became {value} at step {step}; {kept} in {run.path}; "
                     f"lower train.learning_rate or train.clip_norm")


def run_pretrain(cfg: PretrainConfig, out: str | Path, use_wandb: bool = False, log=print) -> Path:
    from rlmusic.runlog import RunLogger, progress

    tcfg = cfg.train
    if tcfg.precision not in ("float32", "mixed_bfloat16", "mixed_float16"):
        raise UserError(f"config key train.precision: expected float32, mixed_bfloat16 or mixed_float16, "
                        f"got {tcfg.precision!r}")
    tf.keras.mixed_precision.set_global_policy(tcfg.precision)
    run = RunDir(out)
    corpus, vocab, train_ids, val_ids, (n_train, n_val) = prepare_data(cfg, log)
    resuming = run.exists() and run.latest_step() is not None
    if run.exists():
        check_resumable(run, cfg, vocab)

    tf.keras.utils.set_random_seed(tcfg.seed)
    model = build_model(len(vocab), cfg.model)
    trainer = Trainer(model, tcfg)
    step = 0
    if resuming:
        step = run.restore_checkpoint(model=model, optimizer=trainer.optimizer)
        log(f"resuming from step {step} in {run.path}")
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config(config_lib.dump_yaml(cfg))
    run.write_vocab(vocab)
    run.write_json("corpus.json", {"files": [str(f) for f in corpus.files], "tunes_found": corpus.stats.tunes_found,
                                   "tunes_kept": corpus.stats.tunes_kept, "dropped": dict(corpus.stats.dropped),
                                   "train_tunes": n_train, "val_tunes": n_val,
                                   "train_chars": int(train_ids.size), "val_chars": int(val_ids.size)})
    log(f"vocab {len(vocab)} chars; {n_train} train tunes ({train_ids.size:,} chars), {n_val} validation tunes; "
        f"model {sum(int(np.prod(v.shape)) for v in model.trainable_variables):,} parameters")
    if step >= tcfg.steps:
        log(f"{run.path} is already at step {step} of train.steps={tcfg.steps}; raise train.steps to continue")
        return run.path

    val_x, val_y = eval_windows(val_ids, tcfg.seq_length, tcfg.eval_chars)
    batches = iter(windows_dataset(train_ids, tcfg.batch_size, tcfg.seq_length, tcfg.seed, step))
    chars_per_step = tcfg.batch_size * tcfg.seq_length
    flops = flops_per_char(len(vocab), cfg.model) * chars_per_step
    logger = RunLogger(run, cfg, use_wandb=use_wandb, project=cfg.wandb_project, kind="pretrain")
    last_good = run.latest_step()
    try:
        bar = progress(total=tcfg.steps, initial=step, desc="pretrain", unit="step")
        window_time, window_steps, losses = 0.0, 0, []
        started = time.perf_counter()  # wall time of this invocation, evaluation and checkpoints included
        while step < tcfg.steps:
            x, y = next(batches)
            t0 = time.perf_counter()
            loss = float(trainer.train_step(x, y))  # float() waits for the step: the timing is honest
            window_time += time.perf_counter() - t0
            step += 1
            if not math.isfinite(loss):
                raise _diverged("loss", loss, step, last_good, run)
            losses.append(loss)
            window_steps += 1
            bar.update(1)
            if step % tcfg.log_every == 0 or step == tcfg.steps:
                cps = window_steps * chars_per_step / window_time
                mean_loss = float(np.mean(losses))
                row = {"step": step, "elapsed_s": round(time.perf_counter() - started, 1), "loss": mean_loss,
                       "bits_per_char": mean_loss / math.log(2),
                       "lr": float(trainer.optimizer.learning_rate), "chars_per_sec": cps,
                       "gflops_per_sec": window_steps * flops / window_time / 1e9}
                logger.log(row)
                bar.set_postfix(loss=f"{mean_loss:.3f}", chars_s=f"{cps:,.0f}")
                window_time, window_steps, losses = 0.0, 0, []
            if step % tcfg.eval_every == 0 or step == tcfg.steps:
                bpc = trainer.val_bits_per_char(val_x, val_y)
                if not math.isfinite(bpc):
                    raise _diverged("validation loss", bpc, step, last_good, run)
                logger.log({"step": step, "elapsed_s": round(time.perf_counter() - started, 1),
                            "val_bits_per_char": bpc})
                run.save_checkpoint(step, model=model, optimizer=trainer.optimizer)
                last_good = step
                bar.write(f"step {step}: validation {bpc:.3f} bits/char (checkpoint saved)")
                logger.sample_table(model, vocab, step)
        bar.close()
    finally:
        logger.close()
    return run.path
