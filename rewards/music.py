"""Rewards aimed at the music, where the shipped model is furthest from the tradition: cadences, phrases that
come back, and how typical a tune's shape is of the corpus (the guard that keeps a gain on one of them from
being paid for with realness).

With syntax guaranteed by the grammar's mask, fine-tuning's reward can go to these. Each is scored on real tunes
beside the shipped model's in docs/rewards.md: a reward the corpus itself scores low would measure something else.

Definitions, on the scanner's melody (`rlmusic.abc.scan`; ties merged, chords as their top note):

- A strain ends at a bar line with a repeat sign (`:|`, `::`) or a double bar (`||`, `|]`), and at the tune's
  last note. A first ending (`|1`, `[1`) leads back into its strain, so its end is not a cadence.
- A bar's figure is its pattern of scale steps (the steps between its notes along the key's scale, 2 notes at
  least); a figure that comes back higher or lower along the scale is a sequence, which counts as a repeat
  (`repeated_motif` counts semitone motifs over the whole tune; these count phrases within their strain).
"""

from __future__ import annotations

import bisect

import numpy as np

from rlmusic.abc import Scan
from rlmusic.rewards.mix import per_real_tunes
from rlmusic.rewards.registry import register
from rlmusic.rewards.syntax import scans_of
from rlmusic.structure import is_boundary, strain_end_pitches

HALF_CADENCE = 0.5  # a strain (not the last) that ends on the dominant: a question the next strain answers
GUARD_LEVEL = 0.25  # `typical` of the corpus' 5th percentile (measured on 800 tunes: 1st 0.16, 5th 0.25, median 0.51)


@register("cadences")
def cadences(tunes: list[str], **context) -> list[float | None]:
    """Share of strain ends on the tonic, the tune's last note included, in [0, 1]; None without notes or key.

    A strain other than the last that ends on the dominant counts half (a half cadence). Examples, `K:D`:
    `|:DFAF d2d2:||:fafe dBd2:|` -> 1.0 (both strains home on D); `|:DFAF d2A2:||:fafe dBd2:|` -> 0.75 (the A
    strain on the dominant, a half cadence); `|:DFAF d2d2:||:fafe dBA2:|` -> 0.5 (the tune ends on A).
    """
    out = []
    for tune, s in zip(tunes, scans_of(tunes, context)):
        credit = _cadence_credits(s, tune)
        out.append(sum(credit) / len(credit) if credit else None)
    return out


def _cadence_credits(s: Scan, tune: str) -> list[float]:
    """Per strain end (the tune's end included): 1 on the tonic, HALF_CADENCE on the dominant before the last, else
    0. Empty without notes or key."""
    if s.key is None:
        return []
    ends = strain_end_pitches(s, tune)
    tonic, dominant = s.key.tonic, (s.key.tonic + 7) % 12
    return [1.0 if p % 12 == tonic else HALF_CADENCE if p % 12 == dominant and i < len(ends) - 1 else 0.0
            for i, p in enumerate(ends)]


STRAIN_BARS = 8  # the tradition's commonest strain: a tune of 16 written bars is expected to close 2 strains


@register("strain_cadences")
def strain_cadences(tunes: list[str], **context) -> list[float | None]:
    """`cadences` counted against the strains a tune of its length should close, in [0, 1]; None as `cadences`.

    The cadence credit of the strain ends (1 on the tonic, 1/2 for a half cadence on the dominant before the last)
    divided by max(strain ends, bars with notes / 8 rounded, 1): a tune cannot earn it by marking fewer strains,
    the cheapest route to `cadences` (docs/measurements.md: a policy trained on it dropped the second strain).
    Examples, `K:D`: `|:DFAF d2d2|DFAF d2d2:||:fafe dBd2|fafe dBd2:|` -> 1.0 (two strains of 2 bars, both home);
    `DFAF d2d2|...` 16 bars with no strain mark, ending on D -> 0.5 (one cadence where two were due).
    """
    out = []
    for tune, s in zip(tunes, scans_of(tunes, context)):
        credit = _cadence_credits(s, tune)
        if not credit:
            out.append(None)
            continue
        expected = max(len(credit), round(len({n.bar for n in s.melody()}) / STRAIN_BARS), 1)
        out.append(sum(credit) / expected)
    return out


def _steps(s: Scan):
    """pitch -> its scale step counted from C0 in the tune's key (a note off the scale: the step below it), so that
    a figure moved along the scale keeps its steps: a diatonic sequence."""
    scale = sorted(s.key.scale) if s.key is not None and s.key.scale else list(range(12))

    def step(pitch: int) -> int:
        return len(scale) * (pitch // 12) + bisect.bisect_right(scale, pitch % 12) - 1

    return step


def _strain_figures(s: Scan, text: str) -> list[list[tuple[tuple[int, ...], int]]]:
    """Per strain, (pattern of scale steps, offset of the end of its last note) of each of its bars (bars with
    fewer than 2 notes give no figure)."""
    step = _steps(s)
    notes: dict[int, list] = {}
    for n in s.melody():
        notes.setdefault(n.bar, []).append(n)
    out: list[list[tuple[tuple[int, ...], int]]] = [[]]
    for bar in s.bars:
        ns = notes.get(bar.index, [])
        if len(ns) >= 2:
            p = [step(n.pitch) for n in ns]
            out[-1].append((tuple(b - a for a, b in zip(p, p[1:])), ns[-1].span[1]))
        if is_boundary(text, bar.end) and out[-1]:
            out.append([])
    return [f for f in out if len(f) >= 2]


def _repeat_hits(s: Scan, text: str) -> tuple[list[int], int] | None:
    """(offsets of the bars that repeat or sequence an earlier bar of their strain, or whose two-bar figure with
    the bar before does; bars after each strain's first) or None without a strain of 2 bars."""
    strains = _strain_figures(s, text)
    if not strains:
        return None
    hits, total = [], 0
    for bars in strains:
        figs = [f for f, _ in bars]
        for i in range(1, len(figs)):
            pairs = set(zip(figs[:i - 1], figs[1:i]))
            if figs[i] in figs[:i] or (figs[i - 1], figs[i]) in pairs:
                hits.append(bars[i][1])
            total += 1
    return hits, total


@register("phrase_repeats")
def phrase_repeats(tunes: list[str], **context) -> list[float | None]:
    """Share of bars (after each strain's first) that repeat or sequence an earlier bar of their strain, or whose
    two-bar figure with the bar before repeats an earlier one, in [0, 1]; None without a strain of 2 bars.

    Folk tunes build a strain from few figures: a bar or a two-bar phrase comes back, at the same pitch or
    moved (a sequence). Example: `|:ABcA|BAGB|ABcA|d2c2:|` -> 1/3 (the third bar repeats the first; the second
    and the fourth bring new figures).
    """
    out = []
    for tune, s in zip(tunes, scans_of(tunes, context)):
        got = _repeat_hits(s, tune)
        out.append(len(got[0]) / got[1] if got and got[1] else None)
    return out


@register("phrase_repeats_dense")
def phrase_repeats_dense(tunes: list[str], **context) -> list[float | None]:
    """`phrase_repeats`, with its credit also placed where it is earned (with `dense_coef`): at the last note of
    each bar that comes back, 1 / the bars that could (so a tune's credits sum to its score), so that a policy
    that rarely writes a repeat finds the step that wrote one.

    The credits are a share, not a count: +1 per bar paid for length, and a run doubled its tunes' length in 25
    iterations to write more bars that come back. The end-of-tune score is `phrase_repeats`' own. Example:
    `|:ABcA|BAGB|ABcA|d2c2:|` -> 1/3, and +1/3 at the third bar's last note.
    """
    return phrase_repeats(tunes, **context)


def _phrase_repeats_per_note(tunes: list[str], **context) -> list[list[tuple[int, float]]]:
    out = []
    for tune, s in zip(tunes, scans_of(tunes, context)):
        hits, candidates = _repeat_hits(s, tune) or ([], 0)
        out.append([(at, 1.0 / candidates) for at in hits])
    return out


phrase_repeats_dense.per_note = _phrase_repeats_per_note


_REFERENCES: dict = {}  # one reference per process and set of real tunes (rlmusic.rewards.mix.per_real_tunes)


def _reference(real: list[str] | None, sample: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    """The realness FEATURES of `sample` of the real tunes (None: the default collections), each sorted (an
    empirical CDF)."""
    from rlmusic.abc import scan
    from rlmusic.corpus import DEFAULT_SOURCES, load_corpus
    from rlmusic.realness import FEATURES, scalar_features

    tunes = real if real is not None else load_corpus(DEFAULT_SOURCES).tunes
    rng = np.random.default_rng(seed)
    chosen = [tunes[i] for i in rng.choice(len(tunes), min(sample, len(tunes)), replace=False)]
    rows = [f for f in (scalar_features(scan(t)) for t in chosen) if f is not None]
    return {name: np.sort([r[name] for r in rows]) for name in FEATURES}


def typicality(s: Scan, reference: dict[str, np.ndarray]) -> float | None:
    """How typical a tune's shape is of `reference`: the mean over the realness FEATURES of the two-sided tail
    share 2 min(F, 1 - F) under the reference's empirical distribution, F counting values equal to the tune's
    half (the mid-p value). For a feature with a continuous distribution a real tune scores 0.5 on average, more
    where real tunes share values (a common note length); a tune too long, too leapy, too narrow... near 0."""
    from rlmusic.realness import scalar_features

    features = scalar_features(s)
    if features is None:
        return None
    tails = []
    for name, values in reference.items():
        below = np.searchsorted(values, features[name], side="left")
        equal = np.searchsorted(values, features[name], side="right") - below
        f = (below + 0.5 * equal) / len(values)
        tails.append(2 * min(f, 1.0 - f))
    return float(np.mean(tails))


@register("typical")
def typical(tunes: list[str], **context) -> list[float | None]:
    """How typical the tune's shape is of the corpus (range, distinct pitches, step size, notes per bar, bars,
    note length), in [0, 1]: real tunes average 0.5, outliers score near 0; None without notes. Real means the
    context's `real_tunes` (in `finetune`: the pretrained model's training tunes), else the default collections.

    The realness guard: a reward bought by writing unlike the tradition (longer, leapier, one note repeated)
    lowers it. The reference is 2,000 of those real tunes, read once per process and set of tunes (`typical_reference=`,
    a dict of sorted feature arrays, replaces it). Example: a tune of 300 bars of one repeated note -> ~0.
    """
    reference = context.get("typical_reference") or per_real_tunes(_REFERENCES, context, _reference)
    return [typicality(s, reference) for s in scans_of(tunes, context)]


@register("typical_guard")
def typical_guard(tunes: list[str], **context) -> list[float | None]:
    """`typical` as a gate: 1.0 for a tune at least as typical as 95 % of real tunes (typical >= 0.25), falling
    linearly to 0 below; None without notes.

    As a gate it takes the reward from a tune whose shape no real tune has, without pulling every tune towards
    the corpus' median (which `typical` as a weight would). Example: a typical jig -> 1.0; 60 bars of one note
    -> 0.0.
    """
    return [None if t is None else min(1.0, t / GUARD_LEVEL) for t in typical(tunes, **context)]
