"""Training data as batches: the corpus' tunes -> encoded windows for pretraining and for fine-tuning's ptx term.

Two ways to cut the training text into windows of `seq_length` characters (`data.windows`):

- `tunes` (the default): every row of the batch reads whole tunes, one window after another, with the model's
  state carried from one window to the next (char-rnn's truncated backpropagation through time). A tune starts
  at the first window of a row's new tune, from a zero state, as sampling starts from the primer; so every
  character is learned with its tune's header (K:, M:, L:) in the state. Positions after a tune's end in its
  last window are padding, masked out of the loss.
- `random`: windows at random offsets of the joined text, each from a zero state. Faster per useful character
  (no padding) but a window of 128 characters holds its tune's whole header in a minority of cases, and
  header-body consistency is what breaks most in sampled tunes (docs/pretraining.md).

Both are deterministic in (seed, step), so a resumed run sees exactly the batches it would have seen.
Validation is always whole held-out tunes from a zero state (`val_batches`), so the two are compared fairly.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Iterator, Literal, Union

import numpy as np

from rlmusic._tf import tf
from rlmusic.config import Checked, FieldError, Range
from rlmusic.corpus import DEFAULT_SOURCES, TUNE_SEPARATOR, join_tunes, load_corpus, split_train_val
from rlmusic.errors import UserError
from rlmusic.vocab import Vocab


@dataclass
class DataConfig(Checked):
    sources: list[str] = field(default_factory=lambda: list(DEFAULT_SOURCES))
    """music21 collection names, .abc files, folders or globs (`--data` replaces this list)."""
    val_fraction: Annotated[float, Range(0, 1, min_open=True, max_open=True)] = 0.05
    """Share of tunes held out for validation (split by tune, never inside one)."""
    max_chars: Annotated[int, Range(1)] = 4000
    """Tunes longer than this (after cleaning) are dropped: they are medleys or transcription debris."""
    seed: int = 0
    """Seed of the train/validation split."""
    valid_only: bool = True
    """Train only on tunes that pass the validity check (abc2midi when installed, else the scanner): the few
    invalid tunes of the corpus teach exactly the errors sampled tunes make. Validation tunes are never filtered,
    so validation figures compare across this setting."""
    midi_channel: Annotated[int, Range(0, 16)] = 0
    """MIDI files in `sources`: the MIDI channel whose voice becomes the tune (0: the voice with the most notes;
    percussion, channel 10, never)."""
    windows: Literal["tunes", "random"] = "tunes"
    """"tunes": rows read whole tunes with the state carried across windows; "random": windows at random offsets
    from a zero state (see the module docstring)."""
    transpose: Union[list[int], Literal["all"]] = field(default_factory=list)
    """Also read each training tune moved by these intervals in semitones (`[-2, 2]`), or `all` (-5..+6, every
    key), mode kept (rlmusic/transpose.py); a move that would leave the corpus' compass is skipped. Validation
    tunes are never transposed, so validation figures compare across this setting."""

    def __post_init__(self):
        super().__post_init__()
        if self.transpose != "all":
            for i in self.transpose:
                if not -11 <= i <= 11 or i == 0:
                    raise FieldError("transpose", f"intervals are -11..11 semitones and not 0, got {i}")
            if len(set(self.transpose)) != len(self.transpose):
                raise FieldError("transpose", f"an interval appears twice in {self.transpose}")

    def intervals(self) -> tuple[int, ...]:
        """The transposition intervals, `all` spelled out."""
        from rlmusic.transpose import INTERVALS

        return INTERVALS if self.transpose == "all" else tuple(self.transpose)


@dataclass
class TrainingData:
    vocab: Vocab
    train: list[str]
    val: list[str]
    set_aside: Counter
    """Training tunes left out by `valid_only`, by the check's first complaint."""
    corpus: object
    transposed: int = 0
    """How many of `train` are other tunes moved to other keys (`transpose`), after the originals."""

    def train_stream(self) -> np.ndarray:
        """The training tunes joined and encoded (what `windows: random` cuts windows from)."""
        return self.vocab.encode(join_tunes(self.train))


def prepare(cfg: DataConfig, log=print) -> TrainingData:
    """Read the corpus, split it by tune, and (with valid_only) set invalid training tunes aside."""
    from rlmusic import validity

    corpus = load_corpus(cfg.sources, max_chars=cfg.max_chars, midi_channel=cfg.midi_channel)
    log(corpus.stats.summary())
    if len(corpus.tunes) < 2:
        raise UserError(f"--data: {len(corpus.tunes)} usable tune found; at least 2 are needed (training and "
                        "validation are split by tune)")
    train, val = split_train_val(corpus.tunes, cfg.val_fraction, cfg.seed)
    vocab = Vocab.from_text(join_tunes(train) + join_tunes(val))  # before filtering: the split decides it
    set_aside: Counter = Counter()
    if cfg.valid_only:
        problems = validity.check_tunes(train)
        kept = [t for t, p in zip(train, problems) if not p]
        for p in problems:
            if p:
                set_aside[_reason(p[0])] += 1
        if not kept:
            raise UserError("data.valid_only: no training tune passes the validity check "
                            f"({validity.checker()}); set data.valid_only=false to train on them anyway")
        log(f"valid_only ({validity.checker()} check): {len(train) - len(kept)} of {len(train)} training tunes "
            f"set aside" + (f" ({', '.join(f'{n} {r}' for r, n in set_aside.most_common(4))})" if set_aside else ""))
        train = kept
    moved = transposed(train, cfg.intervals(), log)
    if moved:
        vocab = Vocab.from_text("".join(vocab.chars) + join_tunes(moved))  # a flat chord symbol may bring a new character
    return TrainingData(vocab, train + moved, val, set_aside, corpus, transposed=len(moved))


def transposed(tunes: list[str], intervals: tuple[int, ...], log=print) -> list[str]:
    """Every tune moved by each interval, in (interval, tune) order; moves that leave the compass skipped."""
    from rlmusic.transpose import transpose

    if not intervals:
        return []
    out = []
    for k in intervals:
        out += [u for u in (transpose(t, k) for t in tunes) if u is not None]
    log(f"transpose {','.join(f'{k:+d}' for k in intervals)}: {len(out)} more training tunes "
        f"({len(out) / (len(tunes) * len(intervals)):.0%} of the moves; the rest leave the compass or the key)")
    return out


def _reason(problem: str) -> str:
    """A complaint without its tune-specific details (`36 b is not a power of 2` -> `b is not a power of 2`)."""
    words = [w for w in problem.split() if not any(ch.isdigit() for ch in w)]
    return " ".join(words)[:60]


def tune_sequences(vocab: Vocab, tunes: list[str]) -> list[np.ndarray]:
    """Each tune encoded with its closing blank line: the model learns every character after the first."""
    return [vocab.encode(t + TUNE_SEPARATOR) for t in tunes]


class TuneWindows:
    """Batches (x, y, mask, fresh) of windows that walk through whole tunes (see the module docstring).

    Row r reads its own endless stream: epoch after epoch, the tunes of a permutation keyed on (seed, epoch)
    that fall to it (every batch-th one, from r). A tune of n+1 characters gives n predictions, cut into
    ceil(n / length) windows; `fresh[r]` is 1 where row r starts a new tune (the caller zeroes that row's state).
    """

    def __init__(self, sequences: list[np.ndarray], batch: int, length: int, seed: int):
        if batch < 1 or length < 1:
            raise UserError(f"train.batch_size and train.seq_length must be at least 1 (got {batch}, {length})")
        self.sequences = [s for s in sequences if len(s) > 1]
        if not self.sequences:
            raise UserError("the training data holds no tune")
        self.batch, self.length, self.seed = batch, length, seed
        self.windows = np.array([-(-(len(s) - 1) // length) for s in self.sequences])

    def _row_tunes(self, row: int, epoch: int) -> np.ndarray:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.sequences))
        # fewer tunes than rows (a tiny corpus): each row reads one tune per epoch
        return order[row::self.batch] if len(order) >= self.batch else order[[row % len(order)]]

    def _row_stream(self, row: int, first_step: int) -> Iterator[tuple[int, int]]:
        """(tune index, window index) of row `row` from step `first_step` on."""
        epoch, skip = 0, first_step
        while True:
            tunes = self._row_tunes(row, epoch)
            counts = self.windows[tunes]
            total = int(counts.sum())
            if skip >= total:
                skip -= total
                epoch += 1
                continue
            ends = np.cumsum(counts)
            i = int(np.searchsorted(ends, skip, side="right"))
            w = skip - (int(ends[i - 1]) if i else 0)
            skip = 0
            for j in range(i, len(tunes)):
                for k in range(w, int(counts[j])):
                    yield int(tunes[j]), k
                w = 0
            epoch += 1

    def batches(self, first_step: int = 0) -> Iterator[tuple[np.ndarray, ...]]:
        rows = [self._row_stream(r, first_step) for r in range(self.batch)]
        L = self.length
        while True:
            x = np.zeros((self.batch, L), np.int32)
            y = np.zeros((self.batch, L), np.int32)
            mask = np.zeros((self.batch, L), np.float32)
            fresh = np.zeros((self.batch,), np.float32)
            for r, stream in enumerate(rows):
                tune, k = next(stream)
                seq = self.sequences[tune]
                chunk = seq[k * L: k * L + L + 1]
                n = len(chunk) - 1
                x[r, :n], y[r, :n], mask[r, :n] = chunk[:-1], chunk[1:], 1.0
                fresh[r] = k == 0
            yield x, y, mask, fresh

    def dataset(self, first_step: int = 0) -> tf.data.Dataset:
        L, B = self.length, self.batch
        spec = (tf.TensorSpec([B, L], tf.int32), tf.TensorSpec([B, L], tf.int32),
                tf.TensorSpec([B, L], tf.float32), tf.TensorSpec([B], tf.float32))
        return tf.data.Dataset.from_generator(lambda: self.batches(first_step), output_signature=spec).prefetch(2)

    def useful_share(self) -> float:
        """Share of window positions that hold a character to predict (the rest is end-of-tune padding)."""
        return float(sum(len(s) - 1 for s in self.sequences) / (self.windows.sum() * self.length))


def windows_dataset(stream: np.ndarray, batch: int, length: int, seed: int, first_step: int) -> tf.data.Dataset:
    """Batches of (input, target) windows at random offsets drawn from (seed, step): the same batches on resume."""
    data = tf.constant(stream)
    high = len(stream) - length - 1
    if high <= 0:
        raise UserError(f"the training text ({len(stream)} chars) is too short for windows of "
                        f"train.seq_length={length}; lower train.seq_length or add tunes")
    offsets_in_window = tf.range(length + 1)

    def make(step):
        starts = tf.random.stateless_uniform([batch], seed=tf.stack([tf.constant(seed, tf.int64), step]),
                                             maxval=high, dtype=tf.int64)
        idx = tf.cast(starts[:, None], tf.int32) + offsets_in_window[None, :]
        w = tf.gather(data, idx)
        return w[:, :-1], w[:, 1:]

    return tf.data.Dataset.range(first_step, 2**62).map(make).prefetch(2)


def val_batches(sequences: list[np.ndarray], max_chars: int = 0, batch: int = 32):
    """Whole held-out tunes as padded batches (x, y, mask), shortest first (little padding); the first tunes
    up to `max_chars` predicted characters (0 = all)."""
    chosen, total = [], 0
    for s in sequences:
        if len(s) < 2:
            continue
        chosen.append(s)
        total += len(s) - 1
        if max_chars and total >= max_chars:
            break
    if not chosen:
        raise UserError("the validation split holds no tune; raise data.val_fraction")
    chosen.sort(key=len)
    out = []
    for i in range(0, len(chosen), batch):
        part = chosen[i:i + batch]
        width = max(len(s) for s in part) - 1
        x = np.zeros((len(part), width), np.int32)
        y = np.zeros((len(part), width), np.int32)
        mask = np.zeros((len(part), width), np.float32)
        for r, s in enumerate(part):
            x[r, :len(s) - 1], y[r, :len(s) - 1], mask[r, :len(s) - 1] = s[:-1], s[1:], 1.0
        out.append((x, y, mask))
    return out
