"""Batched, compiled generation of tunes from a character model.

Many tunes at once; the recurrent state is carried from step to step (the prefix is never re-run); the whole
loop runs inside one `tf.function`. A tune ends at a blank line (the ABC end of tune) or at `max_length` chars.
The same sampler serves the `sample` command, evaluation, W&B tables during training, and the RL code.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlmusic._tf import tf

import numpy as np

from rlmusic.constrain import check_constrain, compiled
from rlmusic.corpus import DEFAULT_PRIMER, TUNE_SEPARATOR
from rlmusic.errors import UserError
from rlmusic.vocab import Vocab


@dataclass
class Tune:
    text: str
    """The tune, primer included, without the closing blank line."""
    hit_limit: bool
    """True when generation stopped at max_length instead of at the end of the tune."""


def filter_logits(logits, temperature, top_k, top_p):
    """Temperature, then top-k (0 = off), then nucleus top-p (1 = off) on logits [B, V]."""
    logits = logits / tf.maximum(temperature, 1e-6)
    vocab = tf.shape(logits)[-1]
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
    kth = tf.math.top_k(logits, k=k).values[:, -1:]
    logits = tf.where(logits < kth, -1e9, logits)
    # Nucleus: keep the smallest set of most likely characters whose probability reaches top_p.
    sorted_logits = tf.sort(logits, direction="DESCENDING", axis=-1)
    probs = tf.nn.softmax(sorted_logits, axis=-1)
    before = tf.cumsum(probs, axis=-1, exclusive=True)
    kept = tf.where(before < top_p, sorted_logits, 1e9)  # the first character always has before == 0
    threshold = tf.reduce_min(kept, axis=-1, keepdims=True)
    return tf.where(logits < threshold, -1e9, logits)


class Sampler:
    """Generates tunes from `model` (a CharLSTM or anything with the same call/initial_state contract)."""

    def __init__(self, model, vocab: Vocab):
        self.model = model
        self.vocab = vocab
        self.newline = vocab.index.get("\n", -1)
        # reduce_retracing: a batch of another size (the last of a run) does not trace the loop again
        self._loop = tf.function(self._generate_ids, reduce_retracing=True)
        self._rows: _GrammarRows | None = None  # the grammar states of the batch being generated (masked loop)

    def _generate_ids(self, primer, batch, max_new, temperature, top_k, top_p, seed, first_mask, masked: bool):
        """primer [P] ids -> new ids [batch, max_new] and per-row lengths (chars up to the end of the tune). With
        `masked`, each step draws from the characters the ABC grammar allows (`first_mask` [batch, V] for the
        first step, then the masks `self._rows` gives): the model's distribution renormalised over them, before
        temperature, top-k and top-p."""
        tokens = tf.tile(primer[None, :], [batch, 1])
        logits, states = self.model(tokens, self.model.initial_state(batch))
        logits = logits[:, -1, :]
        prev = tokens[:, -1]
        done = tf.zeros([batch], tf.bool)
        lengths = tf.fill([batch], max_new)
        out = tf.TensorArray(tf.int32, size=max_new)
        greedy = temperature <= 0.0

        def body(t, logits, states, prev, done, lengths, out, mask):
            if masked:
                logits = tf.where(mask, logits, -1e9)
            filtered = filter_logits(logits, temperature, top_k, top_p)
            drawn = tf.random.stateless_categorical(filtered, 1, seed=tf.stack([seed, tf.cast(t, tf.int64)]))[:, 0]
            nxt = tf.where(greedy, tf.argmax(logits, -1, output_type=tf.int32), tf.cast(drawn, tf.int32))
            out = out.write(t, nxt)
            # A blank line ends the tune: the row's text stops before the two newlines.
            ends = tf.logical_and(~done, tf.logical_and(tf.equal(prev, self.newline), tf.equal(nxt, self.newline)))
            lengths = tf.where(ends, t - 1, lengths)
            done = tf.logical_or(done, ends)
            step_logits, states = self.model(nxt[:, None], states)
            if masked:  # the grammar reads the characters drawn and says what may follow
                mask = tf.numpy_function(self._advance, [nxt, t + 1], tf.bool, stateful=True)
                mask = tf.ensure_shape(mask, first_mask.shape)  # an op, so graph optimisers know the shape too
            return t + 1, step_logits[:, 0, :], states, nxt, done, lengths, out, mask

        def cond(t, logits, states, prev, done, lengths, out, mask):
            return tf.logical_and(t < max_new, ~tf.reduce_all(done))

        t, _, _, _, done, lengths, out, _ = tf.while_loop(
            cond, body, [tf.constant(0), logits, states, prev, done, lengths, out, first_mask])
        ids = tf.transpose(out.stack())  # [batch, t]
        return ids, lengths, done

    def _advance(self, drawn: np.ndarray, t: np.ndarray) -> np.ndarray:
        return self._rows.advance(drawn, int(t))

    def generate(self, num: int, primer: str = DEFAULT_PRIMER, max_length: int = 1500, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int = 0, batch_size: int = 64,
                 constrain: str = "none") -> list[Tune]:
        """`num` tunes, each starting with `primer`, at most `max_length` chars long (primer included).

        `constrain="syntax"`: every character is drawn from those the ABC grammar (rlmusic/grammar.py) allows
        after the text so far, so every tune is valid ABC and ends within `max_length`; "none": the raw model."""
        if not primer:
            raise UserError("primer: must not be empty (the default is 'X:1\\n')")
        masked = check_constrain(constrain) == "syntax"
        primer_ids = tf.constant(self.vocab.encode(primer, what="primer"))
        max_new = max(1, max_length - len(primer))
        grammar = compiled(tuple(self.vocab.chars)) if masked else None
        start_state = grammar.start(primer) if masked else 0
        tunes: list[Tune] = []
        for start in range(0, num, batch_size):
            batch = min(batch_size, num - start)
            if masked:
                self._rows = _GrammarRows(grammar, start_state, batch, max_new)
                first_mask = self._rows.masks(0)
                if not first_mask.any(axis=1).all():
                    raise UserError(f"max_length {max_length}: too short for a valid tune after the primer")
            else:
                first_mask = np.ones((batch, len(self.vocab)), bool)
            ids, lengths, done = self._loop(
                primer_ids, tf.constant(batch), tf.constant(max_new), tf.constant(float(temperature)),
                tf.constant(int(top_k)), tf.constant(float(top_p)), tf.constant(seed * 1_000_003 + start, tf.int64),
                tf.constant(first_mask), masked)
            ids, lengths, done = ids.numpy(), lengths.numpy(), done.numpy()
            for row, n, d in zip(ids, lengths, done):
                text = primer + self.vocab.decode(row[: max(int(n), 0)])
                text = text.split(TUNE_SEPARATOR)[0].rstrip("\n")
                tunes.append(Tune(text=text, hit_limit=not bool(d)))
        return tunes


class _GrammarRows:
    """The grammar state of each row of one batch, advanced by the characters drawn (rlmusic/constrain.py)."""

    def __init__(self, grammar, start_state: int, batch: int, max_new: int):
        self.grammar, self.max_new = grammar, max_new
        self.sids = np.full(batch, start_state, np.int64)

    def masks(self, t: int) -> np.ndarray:
        return self.grammar.masks(self.sids, self.max_new - t)

    def advance(self, drawn: np.ndarray, t: int) -> np.ndarray:
        self.sids = self.grammar.advance(self.sids, drawn.astype(np.int64))
        return self.masks(t)


def header_primer(key: str | None = None, meter: str | None = None, title: str | None = None,
                  length: str | None = None) -> str:
    """A primer that asks for a tune with these header fields, in standard order (K: last closes the header)."""
    lines = ["X:1"]
    if title is None and (meter or length or key):
        title = "Untitled"  # T: comes before the other fields, so the model cannot add it once they are given
    if title is not None:
        lines.append(f"T:{title}")
    if meter is not None:
        lines.append(f"M:{meter}")
    if length is not None:
        lines.append(f"L:{length}")
    if key is not None:
        lines.append(f"K:{key}")
    return "\n".join(lines) + "\n"
