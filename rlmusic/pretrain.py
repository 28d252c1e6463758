"""`python -m rlmusic pretrain`: train the character LSTM on ABC tunes.

The loop reads as: batch of random windows -> train step -> log -> (eval) -> (checkpoint). Windows are drawn
with stateless random ops keyed on (seed, step), so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from rlmusic import interrupts
from rlmusic._tf import tf

from rlmusic import config as config_lib
from rlmusic.config import Checked, Range
from rlmusic.corpus import join_tunes
from rlmusic.data import (DataConfig, TrainingData, TuneWindows, prepare, tune_sequences, val_batches,
                          windows_dataset)
from rlmusic.errors import UserError
from rlmusic.model import ModelConfig, build_model, flops_per_char
from rlmusic.rundir import WRITE_ERRORS, RunDir, write_failure
from rlmusic.vocab import Vocab


@dataclass
class TrainConfig(Checked):
    steps: Annotated[int, Range(1)] = 1500
    """Optimizer steps in total (a re-run with a higher value continues training)."""
    batch_size: Annotated[int, Range(1)] = 64
    """Windows per batch."""
    seq_length: Annotated[int, Range(1)] = 128
    """Characters per window (backpropagation through time length)."""
    learning_rate: Annotated[float, Range(0, min_open=True)] = 3e-3
    """Peak Adam learning rate."""
    warmup_steps: Annotated[int, Range(0)] = 100
    """Linear warm-up to the peak learning rate."""
    min_lr_fraction: Annotated[float, Range(0, 1)] = 0.1
    """Cosine decay ends at this fraction of the peak, at `steps`."""
    clip_norm: Annotated[float, Range(0)] = 1.0
    """Global gradient-norm clipping (0 = off)."""
    weight_decay: Annotated[float, Range(0, 1)] = 0.0
    """Decoupled weight decay (AdamW): each step shrinks the weights by this times the learning rate (0 = plain
    Adam). A regulariser against fitting the training tunes; its measured effect: benchmarks/pretrain_recipe.py."""
    log_every: Annotated[int, Range(1)] = 50
    """Steps between rows in metrics.jsonl and TensorBoard."""
    eval_every: Annotated[int, Range(1)] = 250
    """Steps between validation passes (and checkpoints). The last step is always evaluated."""
    eval_chars: Annotated[int, Range(0)] = 200_000
    """Validation characters per pass (the first ones of the held-out stream; 0 = all)."""
    seed: int = 0
    """Seed of weight initialisation and window sampling."""
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16", "auto"] = "float32"
    """Keras precision policy: "mixed_bfloat16" is faster only on CPUs with AVX512-BF16/AMX (and GPUs),
    "mixed_float16" on GPUs (with loss scaling); "auto" picks by device (rlmusic.devices). Its loss curve
    against float32's: docs/measurements.md, benchmarks/precision_curve.py."""
    device: Literal["auto", "cpu", "gpu"] = "auto"
    """"auto" uses a GPU when TensorFlow sees one (there the LSTM runs Keras' cuDNN kernel); "cpu" never does."""
    strategy: Literal["auto", "none", "mirrored", "multiworker"] = "auto"
    """tf.distribute: "mirrored" splits each batch over every visible GPU (or logical CPU device),
    "multiworker" over the machines in TF_CONFIG (docs/measurements.md); "auto": multiworker if TF_CONFIG is set, mirrored
    with several GPUs, else none. The global batch, its loss and the checkpoints are the same as with one device."""


@dataclass
class PretrainConfig(Checked):
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
    if cfg.weight_decay:
        return tf.keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay, global_clipnorm=cfg.clip_norm or None)
    return tf.keras.optimizers.Adam(lr, global_clipnorm=cfg.clip_norm or None)


class Trainer:
    """Holds the model, optimizer and compiled steps of one pretraining run, under a tf.distribute strategy.

    With several replicas (train.strategy) each replica runs its share of the global batch (batch_size /
    replicas rows) and the optimizer sums their gradients, each replica's loss being its part of the global
    batch's mean: the update equals one replica's on the whole batch. With `carry` (data.windows = tunes) the
    model's state at the end of each batch is kept in variables (the whole batch's rows; replica r reads and
    writes its own rows) and passed into the next, zeroed for rows that start a new tune; the variables are
    checkpointed with the model, so a resumed run continues its tunes where it stopped. The model must have been
    built under `strategy.scope()`."""

    def __init__(self, model, cfg: TrainConfig, carry: bool = False, strategy: tf.distribute.Strategy | None = None):
        self.model = model
        self.cfg = cfg
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        if cfg.batch_size % self.replicas:
            raise UserError(f"train.batch_size={cfg.batch_size} does not split evenly over {self.replicas} "
                            f"replicas; use a multiple of {self.replicas}")
        self.local_batch = cfg.batch_size // self.replicas
        with self.strategy.scope():
            self.optimizer = make_optimizer(cfg)
            if tf.keras.mixed_precision.global_policy().name == "mixed_float16":  # float16 needs loss scaling
                self.optimizer = tf.keras.mixed_precision.LossScaleOptimizer(self.optimizer)
            self.optimizer.build(model.trainable_variables)  # so a checkpoint restores into real slots
            self.carry = None
            if carry:
                self.carry = tf.nest.map_structure(lambda t: tf.Variable(t, trainable=False),
                                                   model.initial_state(cfg.batch_size))
        self.train_step = tf.function(self._train_step)
        self.train_step_carried = tf.function(self._train_step_carried)
        self.eval_step = tf.function(self._eval_step)

    def distribute(self, dataset: tf.data.Dataset):
        """The global batches of `dataset` as each replica's rows (replica r: rows r*b .. (r+1)*b - 1)."""
        if self.replicas == 1:
            return dataset
        b, n = self.local_batch, self.replicas

        def per_worker(ctx: tf.distribute.InputContext):
            local = n // ctx.num_input_pipelines
            first = ctx.input_pipeline_id * local

            def rows(*batch):  # this worker's replicas' rows, one element per replica in replica order
                return tf.data.Dataset.from_tensor_slices(tuple(
                    tf.stack([t[(first + k) * b:(first + k + 1) * b] for k in range(local)]) for t in batch))

            return dataset.flat_map(rows)

        options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
        return self.strategy.distribute_datasets_from_function(per_worker, options)

    def _apply(self, loss_fn):
        with tf.GradientTape() as tape:
            loss, out = loss_fn()
            scaled = loss if not hasattr(self.optimizer, "get_scaled_loss") else self.optimizer.get_scaled_loss(loss)
        grads = tape.gradient(scaled, self.model.trainable_variables)
        if hasattr(self.optimizer, "get_unscaled_gradients"):
            grads = self.optimizer.get_unscaled_gradients(grads)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss, out

    def _replica_step(self, x, y):
        def loss_fn():
            logits, _ = self.model(x, training=True)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
            return tf.reduce_mean(ce) / self.replicas, None  # this replica's part of the global mean

        return self._apply(loss_fn)[0]

    def _train_step(self, x, y):
        loss = self.strategy.run(self._replica_step, args=(x, y))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)

    def _replica_step_carried(self, x, y, mask, fresh):
        ctx = tf.distribute.get_replica_context()
        first = ctx.replica_id_in_sync_group * self.local_batch
        keep = 1.0 - fresh
        masked = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(mask))  # the global batch's characters

        def reset(v):
            k = tf.reshape(tf.cast(keep, v.dtype), [-1] + [1] * (v.shape.rank - 1))
            return v * k

        def loss_fn():
            states = tf.nest.map_structure(
                lambda v: reset(tf.convert_to_tensor(v)[first:first + self.local_batch]), self.carry)
            logits, new_states = self.model(x, states, training=True)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
            return tf.reduce_sum(ce * mask) / tf.maximum(masked, 1.0), new_states

        loss, new_states = self._apply(loss_fn)
        return loss, tf.nest.map_structure(lambda t: tf.cast(tf.stop_gradient(t), tf.float32), new_states)

    def _train_step_carried(self, x, y, mask, fresh):
        loss, new_states = self.strategy.run(self._replica_step_carried, args=(x, y, mask, fresh))
        if self.replicas > 1:  # every replica's rows, in replica order
            new_states = tf.nest.map_structure(lambda t: self.strategy.gather(t, axis=0), new_states)
        tf.nest.map_structure(lambda v, t: v.assign(t), self.carry, new_states)
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)

    def _eval_step(self, x, y, mask):
        logits, _ = self.model(x, training=False)
        return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits) * mask)

    def val_bits_per_char(self, batches) -> float:
        """Bits per character over whole held-out tunes (`rlmusic.data.val_batches`)."""
        total = count = 0.0
        for x, y, mask in batches:
            total += float(self.eval_step(tf.constant(x), tf.constant(y), tf.constant(mask)))
            count += float(mask.sum())
        return total / count / math.log(2)

    def checkpoint_objects(self) -> dict:
        objects = {"model": self.model, "optimizer": self.optimizer}
        if self.carry is not None:
            objects["carry"] = tf.nest.flatten(self.carry)
        return objects


def prepare_data(cfg: PretrainConfig, log=print) -> TrainingData:
    return prepare(cfg.data, log)


def check_resumable(run: RunDir, cfg: PretrainConfig, vocab: Vocab) -> None:
    """A run dir can only be continued by the same model on the same vocabulary."""
    saved = run.read_config_dict()
    saved_model = saved.get("model", {})
    mine = dataclasses.asdict(cfg.model)
    for k, v in mine.items():
        if k in saved_model and saved_model[k] != v:
            raise UserError(f"--out {run.path} holds a run with model.{k}={saved_model[k]} (this config: {v}); "
                            f"use another --out, or delete {run.path} to start fresh")
    run.check_vocab(vocab)


def _diverged(what: str, value: float, step: int, last_good: int | None, run: RunDir) -> UserError:
    kept = f"the last good checkpoint (step {last_good}) is kept" if last_good else "no checkpoint was written"
    return UserError(f"{what} became {value} at step {step}; {kept} in {run.path}; "
                     f"lower train.learning_rate or train.clip_norm")


def run_pretrain(cfg: PretrainConfig, out: str | Path, use_wandb: bool = False, log=print) -> Path:
    """Train (or resume) the run in `out`; returns its path. Keras' global precision policy is set for the run's
    model and put back as it was afterwards."""
    from rlmusic import devices

    device = devices.resolve_device(cfg.train.device)
    precision = devices.resolve_precision(cfg.train.precision, device)
    strategy = devices.resolve_strategy(cfg.train.strategy, device)
    log(devices.describe(strategy, device, precision))
    before = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(precision)
    run = RunDir(out)
    try:
        return _run_pretrain(cfg, run, use_wandb, log, device, strategy)
    except WRITE_ERRORS as exc:  # a full disk: named, and the last good checkpoint is kept
        raise write_failure(run, exc, config_keys=OOM_KEYS) from exc
    finally:
        run.unlock()
        tf.keras.mixed_precision.set_global_policy(before)


OOM_KEYS = "train.batch_size, train.seq_length or model.units"  # what to lower when memory runs out


def _run_pretrain(cfg: PretrainConfig, run: RunDir, use_wandb: bool, log, device: str,
                  strategy: tf.distribute.Strategy) -> Path:
    from rlmusic.devices import is_chief
    from rlmusic.runlog import NullLogger, RunLogger

    tcfg = cfg.train
    chief = is_chief(strategy)  # the one process that writes the run directory
    run.check_is_run_dir("--out")
    if chief:
        run.lock("--out")  # before anything is read or written: a second run into the folder stops here
    data = prepare_data(cfg, log)
    vocab, corpus = data.vocab, data.corpus
    if chief:
        run.clean_temporary()
    # A folder without a checkpoint (a run that failed before its first one) is replaced, not resumed.
    resuming = run.exists() and run.has_checkpoint()
    if resuming:
        check_resumable(run, cfg, vocab)

    tf.keras.utils.set_random_seed(tcfg.seed)
    by_tune = cfg.data.windows == "tunes"
    with strategy.scope():
        model = build_model(len(vocab), cfg.model, device)
    trainer = Trainer(model, tcfg, carry=by_tune, strategy=strategy)
    step = 0
    if resuming:
        step = run.restore_newest(log=log, **trainer.checkpoint_objects())
        log(f"resuming from step {step} in {run.path}")
    train_seqs, val_seqs = tune_sequences(vocab, data.train), tune_sequences(vocab, data.val)
    train_chars = sum(len(s) for s in train_seqs)
    if not chief:  # another worker of a multi-worker run: trains its share, writes checkpoints to a scratch dir
        return _train_loop(cfg, trainer, data, train_seqs, val_seqs, step, RunDir(tempfile.mkdtemp()), NullLogger(),
                           log, chief=False)
    run.truncate_metrics(step)  # rows logged after the checkpoint (or by a run without one) are logged again
    run.path.mkdir(parents=True, exist_ok=True)
    corpus_info = {"files": [str(f) for f in corpus.files], "tunes_found": corpus.stats.tunes_found,
                   "tunes_kept": corpus.stats.tunes_kept, "dropped": dict(corpus.stats.dropped),
                   "midi_files": corpus.stats.midi_files, "midi_converted": corpus.stats.midi_converted,
                   "midi_dropped": [list(d) for d in corpus.stats.midi_dropped],
                   "train_tunes": len(data.train), "transposed_tunes": data.transposed, "val_tunes": len(data.val),
                   "set_aside_invalid": dict(data.set_aside),
                   "train_chars": train_chars, "val_chars": sum(len(s) for s in val_seqs)}
    run.write_run_files({"config.yaml": config_lib.dump_yaml(cfg), "vocab.json": vocab.to_json(),
                         "corpus.json": json.dumps(corpus_info, indent=2, ensure_ascii=False)}, now=not resuming)
    log(f"vocab {len(vocab)} chars; {len(data.train)} train tunes ({train_chars:,} chars), {len(data.val)} "
        f"validation tunes; model {sum(int(np.prod(v.shape)) for v in model.trainable_variables):,} parameters")
    if step >= tcfg.steps:
        log(f"{run.path} is already at step {step} of train.steps={tcfg.steps}; raise train.steps to continue")
        return run.path
    logger = RunLogger(run, cfg, use_wandb=use_wandb, project=cfg.wandb_project, kind="pretrain")
    return _train_loop(cfg, trainer, data, train_seqs, val_seqs, step, run, logger, log, chief=True)


def _train_loop(cfg: PretrainConfig, trainer: Trainer, data: TrainingData, train_seqs, val_seqs, step: int,
                run: RunDir, logger, log, chief: bool) -> Path:
    """Steps from `step` to train.steps: batch -> train step -> log -> (eval, checkpoint)."""
    from rlmusic.runlog import progress

    tcfg, vocab, model = cfg.train, data.vocab, trainer.model
    val = val_batches(val_seqs, tcfg.eval_chars)
    if cfg.data.windows == "tunes":
        windows = TuneWindows(train_seqs, tcfg.batch_size, tcfg.seq_length, tcfg.seed)
        log(f"windows: whole tunes, state carried ({windows.useful_share():.0%} of positions hold a character)")
        batches = iter(trainer.distribute(windows.dataset(step)))
        train_step = trainer.train_step_carried
    else:
        batches = iter(trainer.distribute(windows_dataset(vocab.encode(join_tunes(data.train)), tcfg.batch_size,
                                                          tcfg.seq_length, tcfg.seed, step)))
        train_step = trainer.train_step
    chars_per_step = tcfg.batch_size * tcfg.seq_length
    flops = flops_per_char(len(vocab), cfg.model) * chars_per_step
    elapsed_before = run.elapsed_at(step)
    last_good = run.latest_step()
    try:
        bar = progress(total=tcfg.steps, initial=step, desc="pretrain", unit="step", disable=not chief)
        window_time, window_steps, losses = 0.0, 0, []
        # wall time of the run (earlier invocations included), evaluation and checkpoints included
        started = time.perf_counter() - elapsed_before
        while step < tcfg.steps:
            batch = next(batches)
            t0 = time.perf_counter()
            with interrupts.deferred():  # a step is done whole or not at all, so a Ctrl-C checkpoint is exact
                loss = float(train_step(*batch))  # float() waits for the step: the timing is honest
                step += 1
            window_time += time.perf_counter() - t0
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
                       "lr": float(tf.convert_to_tensor(trainer.optimizer.learning_rate)), "chars_per_sec": cps,
                       "gflops_per_sec": window_steps * flops / window_time / 1e9}
                logger.log(row)
                bar.set_postfix(loss=f"{mean_loss:.3f}", chars_s=f"{cps:,.0f}")
                window_time, window_steps, losses = 0.0, 0, []
            if step % tcfg.eval_every == 0 or step == tcfg.steps:
                bpc = trainer.val_bits_per_char(val)
                if not math.isfinite(bpc):
                    raise _diverged("validation loss", bpc, step, last_good, run)
                logger.log({"step": step, "elapsed_s": round(time.perf_counter() - started, 1),
                            "val_bits_per_char": bpc})
                run.save_checkpoint(step, **trainer.checkpoint_objects())
                last_good = step
                bar.write(f"step {step}: validation {bpc:.3f} bits/char (checkpoint saved)")
                logger.sample_table(model, vocab, step)
        bar.close()
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the steps done are kept, and the error line says so
        if chief and step > (last_good or 0):
            run.save_checkpoint(step, **trainer.checkpoint_objects())
        raise type(exc)(f"at step {step}; the run resumes from its checkpoint (step {run.latest_step() or 0}) in "
                        f"{run.path}") from None
    finally:
        logger.close()
        if not chief:
            shutil.rmtree(run.path, ignore_errors=True)
    return run.path
