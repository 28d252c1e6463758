"""Melody helpers of the core: the notes of a scanned tune read as a melody, for rewards and evaluation alike.

The rules of Magenta's RL Tuner (Jaques et al. 2017) are built from these: which notes are in the key, runs of
repeated notes, leaps and their resolution, bar motifs, pitch autocorrelation. `rewards/theory.py` turns them
into rewards and `rlmusic/evaluate.py` into metrics; the constants live here with the helpers they define.
"""

from __future__ import annotations

import math

import numpy as np

from rlmusic.abc import Note, Scan

MAX_REPEATS = 4  # RL Tuner: more than 4 repeats of one note is excessive
LEAP = 7  # a leap is an interval of a fifth or more (semitones)


def melody(s: Scan) -> list[Note]:
    return s.melody()


def in_key_flags(s: Scan) -> list[bool]:
    scale = s.key.scale if s.key is not None else frozenset(range(12))
    return [n.pitch % 12 in scale for n in melody(s)]


def repeated_flags(pitches: list[int]) -> list[bool]:
    """True for each note inside a run of more than MAX_REPEATS equal pitches."""
    flags = [False] * len(pitches)
    i = 0
    while i < len(pitches):
        j = i
        while j + 1 < len(pitches) and pitches[j + 1] == pitches[i]:
            j += 1
        if j - i + 1 > MAX_REPEATS:
            flags[i:j + 1] = [True] * (j - i + 1)
        i = j + 1
    return flags


def autocorrelation(pitches: list[int], lag: int) -> float | None:
    """Pearson correlation of the pitch sequence with itself `lag` notes later (None if undefined)."""
    if len(pitches) <= lag + 1:
        return None
    p = np.asarray(pitches, dtype=np.float64)
    a, b = p[:-lag] - p[:-lag].mean(), p[lag:] - p[lag:].mean()
    va, vb = float(a @ a), float(b @ b)
    if va == 0 or vb == 0:
        return None
    return float(a @ b) / math.sqrt(va * vb)


def leap_outcomes(pitches: list[int]) -> tuple[int, int, int]:
    """(leaps, leaps resolved, double leaps): a leap (>= a fifth) is resolved when the next interval moves the
    other way by a step or third; a double leap is two leaps in a row in the same direction (RL Tuner). A leap
    on the last interval has nothing after it and is not counted."""
    leaps = resolved = double = 0
    for i in range(len(pitches) - 2):
        step = pitches[i + 1] - pitches[i]
        if abs(step) < LEAP:
            continue
        leaps += 1
        nxt = pitches[i + 2] - pitches[i + 1]
        if nxt * step < 0 and abs(nxt) <= 4:
            resolved += 1
        elif nxt * step > 0 and abs(nxt) >= LEAP:
            double += 1
    return leaps, resolved, double


def bar_motifs(s: Scan) -> dict[int, tuple[int, ...]]:
    """Per bar, its interval pattern when the bar holds a motif (>= 3 distinct pitches, RL Tuner)."""
    if "bar_motifs" not in s.cache:
        by_bar: dict[int, list[int]] = {}
        for n in melody(s):
            by_bar.setdefault(n.bar, []).append(n.pitch)
        s.cache["bar_motifs"] = {b: tuple(y - x for x, y in zip(p, p[1:]))
                                 for b, p in by_bar.items() if len(set(p)) >= 3}
    return s.cache["bar_motifs"]
