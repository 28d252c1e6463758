"""Pretraining throughput: the MIT 6.S191 lab's training loop vs `rlmusic pretrain`'s, in one process.

Both train Embedding 256 -> LSTM 1024 -> Dense on batches of 8 windows of 100 characters of the embedded corpus
(the lab's setup). The reference is the lab's code: a Keras Sequential with a stateful LSTM, a numpy batch of
random windows per step and a `tf.function` train step. Ours is `rlmusic.pretrain.Trainer` fed by its tf.data
pipeline. The two alternate in rounds so that machine noise hits both alike; the median step time of each is
reported, with chars/s, the ratio, and (with --curve N) the loss of both after N steps from the same seed.

    python benchmarks/pretrain_throughput.py [--steps 20] [--rounds 3] [--curve 0]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)

from rlmusic._tf import tf  # noqa: E402
from rlmusic.model import ModelConfig, build_model, flops_per_char  # noqa: E402
from rlmusic.data import DataConfig, prepare, windows_dataset  # noqa: E402
from rlmusic.pretrain import Trainer, TrainConfig  # noqa: E402

EMBED, UNITS, BATCH, SEQ, LR = 256, 1024, 8, 100, 5e-3


class MitReference:
    """The lab's training loop, as published (only names shortened)."""

    def __init__(self, vocab_size: int, stream: np.ndarray, seed: int = 0):
        tf.keras.utils.set_random_seed(seed)
        self.stream = stream
        self.model = tf.keras.Sequential([
            tf.keras.layers.Embedding(vocab_size, EMBED, batch_input_shape=[BATCH, None]),
            tf.keras.layers.LSTM(UNITS, return_sequences=True, recurrent_initializer="glorot_uniform",
                                 recurrent_activation="sigmoid", stateful=True),
            tf.keras.layers.Dense(vocab_size),
        ])
        self.optimizer = tf.keras.optimizers.Adam(LR)

        @tf.function
        def train_step(x, y):
            with tf.GradientTape() as tape:
                y_hat = self.model(x)
                loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, y_hat, from_logits=True))
            grads = tape.gradient(loss, self.model.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
            return loss

        self.train_step = train_step

    def get_batch(self):
        n = self.stream.shape[0] - 1
        idx = np.random.choice(n - SEQ, BATCH)
        x = np.array([self.stream[i: i + SEQ] for i in idx])
        y = np.array([self.stream[i + 1: i + SEQ + 1] for i in idx])
        return x, y

    def step(self) -> float:
        return float(self.train_step(*self.get_batch()))


class Ours:
    def __init__(self, vocab_size: int, stream: np.ndarray, seed: int = 0, precision: str = "float32"):
        tf.keras.mixed_precision.set_global_policy(precision)
        tf.keras.utils.set_random_seed(seed)
        cfg = TrainConfig(steps=10**6, batch_size=BATCH, seq_length=SEQ, learning_rate=LR, warmup_steps=1,
                          min_lr_fraction=1.0, clip_norm=0.0, precision=precision)
        self.model = build_model(vocab_size, ModelConfig(embedding_dim=EMBED, units=UNITS, layers=1))
        self.trainer = Trainer(self.model, cfg)
        self.batches = iter(windows_dataset(stream, BATCH, SEQ, seed, 0))
        tf.keras.mixed_precision.set_global_policy("float32")

    def step(self) -> float:
        return float(self.trainer.train_step(*next(self.batches)))


def time_steps(runner, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        runner.step()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per round and runner")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--curve", type=int, default=0, help="also train both this many steps and compare losses")
    ap.add_argument("--precision", default="float32", help="ours: float32 or mixed_bfloat16")
    args = ap.parse_args()

    data = prepare(DataConfig(valid_only=False), log=lambda m: None)  # the lab trains on every tune
    vocab, stream = data.vocab, data.train_stream()
    runners = {"MIT lab reference": MitReference(len(vocab), stream), "rlmusic": Ours(len(vocab), stream,
                                                                                       precision=args.precision)}
    for r in runners.values():  # compile and warm up
        time_steps(r, 3)
    times = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, r in runners.items():
            times[name] += time_steps(r, args.steps)
    chars = BATCH * SEQ
    gflop = flops_per_char(len(vocab), ModelConfig(embedding_dim=EMBED, units=UNITS)) * chars / 1e9
    print(f"config: Embedding {EMBED} -> LSTM {UNITS} -> Dense {len(vocab)}; batch {BATCH} x {SEQ} chars; "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'} intra-op threads")
    print("| loop | ms/step (median) | chars/s | GFLOP/s |")
    print("|---|---:|---:|---:|")
    med = {}
    for name, ts in times.items():
        med[name] = statistics.median(ts)
        print(f"| {name} | {med[name] * 1000:.0f} | {chars / med[name]:,.0f} | {gflop / med[name]:.1f} |")
    print(f"speed-up of rlmusic over the reference: {med['MIT lab reference'] / med['rlmusic']:.2f}x")

    if args.curve:
        fresh = {"MIT lab reference": MitReference(len(vocab), stream, seed=1),
                 "rlmusic": Ours(len(vocab), stream, seed=1, precision=args.precision)}
        np.random.seed(1)
        for name, r in fresh.items():
            losses = [r.step() for _ in range(args.curve)]
            tail = losses[-max(1, args.curve // 10):]
            print(f"{name}: mean loss over the last {len(tail)} of {args.curve} steps {np.mean(tail):.3f} nats/char")


if __name__ == "__main__":
    main()
