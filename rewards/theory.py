"""Music-theory rewards: the rules of Magenta's RL Tuner (Jaques et al. 2017), re-expressed for ABC.

The RL Tuner scored one note per step of a 16th-note grid in C major. Here every rule reads the tune's real
melody from the scanner: the key and mode from K: (modes and explicit accidentals included), real octaves, and
tied notes merged into one. Chords count as their highest note. Each rule returns one score per tune, higher is
better, in a documented range, so that rules can be weighted against each other in a config; the RL Tuner's own
weights are in configs/finetune/sequence_tutor.yaml. The metric form of each rule (for `evaluate`) is in
`tune_stats`.
"""

from __future__ import annotations

from collections import Counter

from rlmusic.abc import Scan
from rlmusic.melody import autocorrelation, bar_motifs, in_key_flags, leap_outcomes, melody, repeated_flags
from rlmusic.rewards.registry import register
from rlmusic.rewards.syntax import scans_of

AUTOCORR_THRESHOLD = 0.15


def interval_quality(step: int) -> int:
    """RL Tuner's preferred intervals: +1 for steps, thirds and fifths; -1 for sevenths and beyond an octave;
    0 for unisons, fourths, sixths and octaves."""
    a = abs(step)
    if a in (1, 2, 3, 4, 7):
        return 1
    if a in (10, 11) or a > 12:
        return -1
    return 0


def _pitches(s: Scan) -> list[int]:
    return s.melody_pitches()


@register("in_key")
def in_key(tunes: list[str], **context) -> list[float | None]:
    """Share of notes in the key's scale (mode and K: accidentals included), in [0, 1]; None without notes.

    RL Tuner: -1 per note not in key. Example: `K:G`, `GABc d2f2|` -> 6/6 (f is F# in G); `K:C`, `C^CDE|` -> 0.75.
    """
    out = []
    for s in scans_of(tunes, context):
        flags = in_key_flags(s)
        out.append(sum(flags) / len(flags) if flags else None)
    return out


def _in_key_per_note(tunes: list[str], **context) -> list[list[tuple[int, float]]]:
    """Dense form: -1 at the end of every note out of key."""
    return [[(n.span[1], -1.0) for n, ok in zip(melody(s), in_key_flags(s)) if not ok]
            for s in scans_of(tunes, context)]


in_key.per_note = _in_key_per_note


@register("tonic_start_end")
def tonic_start_end(tunes: list[str], **context) -> list[float | None]:
    """0.5 if the first note is the tonic plus 0.5 if the last is, in [0, 1]; None without notes.

    RL Tuner: +3 for a tonic first note, +3 for a tonic last note. Example: `K:D`, `DFA dAF|D4|` -> 1.0.
    """
    out = []
    for s in scans_of(tunes, context):
        p = _pitches(s)
        if not p or s.key is None:
            out.append(None)
            continue
        out.append(0.5 * (p[0] % 12 == s.key.tonic) + 0.5 * (p[-1] % 12 == s.key.tonic))
    return out


@register("no_excessive_repeats")
def no_excessive_repeats(tunes: list[str], **context) -> list[float | None]:
    """1 - share of notes inside runs of more than 4 equal pitches (ties merged), in [0, 1].

    RL Tuner: -100 for a note repeated more than 4 times, its strongest rule. Example: `A A A A A B|` -> 1/6.
    """
    out = []
    for s in scans_of(tunes, context):
        flags = repeated_flags(_pitches(s))
        out.append(1 - sum(flags) / len(flags) if flags else None)
    return out


@register("low_autocorrelation")
def low_autocorrelation(tunes: list[str], **context) -> list[float | None]:
    """Minus the mean over lags 1-3 of |autocorrelation| where it exceeds 0.15, in [-1, 0].

    RL Tuner: -3|r| at lags 1-3 when |r| > 0.15, against melodies that are just scales or one oscillation.
    Example: a rising scale `CDEFGABc` has r ~ 1 at every lag -> about -1.
    """
    out = []
    for s in scans_of(tunes, context):
        p = _pitches(s)
        rs = [autocorrelation(p, k) for k in (1, 2, 3)]
        rs = [abs(r) for r in rs if r is not None]
        out.append(-sum(r for r in rs if r > AUTOCORR_THRESHOLD) / 3 if rs else None)
    return out


@register("motif")
def motif(tunes: list[str], **context) -> list[float | None]:
    """Share of bars holding a motif (at least 3 distinct pitches), in [0, 1]; None without bars.

    RL Tuner: +3 for a motif. Example: `ABcA|AAAA|` -> 0.5.
    """
    out = []
    for s in scans_of(tunes, context):
        bars = {n.bar for n in melody(s)}
        out.append(len(bar_motifs(s)) / len(bars) if bars else None)
    return out


@register("repeated_motif")
def repeated_motif(tunes: list[str], **context) -> list[float | None]:
    """Share of bars whose motif (interval pattern) also occurs in another bar, in [0, 1]; None without bars.

    Intervals, not pitches, so a motif repeated a step higher counts (a sequence). RL Tuner: +4.
    Example: `ABcA|DEFD|EEEE|` -> 2/3 (DEFD is ABcA a fifth lower).
    """
    out = []
    for s in scans_of(tunes, context):
        bars = {n.bar for n in melody(s)}
        motifs = bar_motifs(s)
        counts = Counter(motifs.values())
        out.append(sum(1 for m in motifs.values() if counts[m] > 1) / len(bars) if bars else None)
    return out


@register("preferred_intervals")
def preferred_intervals(tunes: list[str], **context) -> list[float | None]:
    """(good - bad intervals) / intervals, in [-1, 1]; None with fewer than 2 notes.

    Good: steps, thirds, fifths. Bad: sevenths and leaps beyond an octave. RL Tuner's interval rule.
    Example: `CDEG|` (step, step, third) -> 1.0; `Cb|` (major seventh) -> -1.0.
    """
    out = []
    for s in scans_of(tunes, context):
        p = _pitches(s)
        steps = [b - a for a, b in zip(p, p[1:])]
        out.append(sum(interval_quality(x) for x in steps) / len(steps) if steps else None)
    return out


@register("leaps_resolved")
def leaps_resolved(tunes: list[str], **context) -> list[float | None]:
    """(resolved leaps - double leaps) / leaps, in [-1, 1]; None without leaps.

    A leap of a fifth or more should be followed by a step or third back (RL Tuner +5); two leaps the same way
    are penalised (-5). Example: `CgfE|` -> 1.0 (C-g leaps up, g-f steps down); `Cgd'|` -> -1.0.
    """
    out = []
    for s in scans_of(tunes, context):
        leaps, resolved, double = leap_outcomes(_pitches(s))
        out.append((resolved - double) / leaps if leaps else None)
    return out


@register("unique_extremes")
def unique_extremes(tunes: list[str], **context) -> list[float | None]:
    """0.5 if the highest note occurs once plus 0.5 if the lowest does, in [0, 1]; None without notes.

    RL Tuner: +3 each; a single climax gives a melody its shape. Example: `CDEc|` -> 1.0; `CcCc|` -> 0.0.
    """
    out = []
    for s in scans_of(tunes, context):
        p = _pitches(s)
        if not p:
            out.append(None)
            continue
        out.append(0.5 * (p.count(max(p)) == 1) + 0.5 * (p.count(min(p)) == 1))
    return out
