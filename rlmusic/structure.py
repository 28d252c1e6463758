"""Strains: the sections of a folk tune, and whether the second one answers the first.

Most tunes in the corpus are in two (or more) 4- or 8-bar strains, A then B, each usually repeated. A B strain
rarely copies A, but it "answers" it: it comes home to the same cadence, or reuses A's figures. Whether a model
writes a B strain that answers its A is structure over 100-200 characters, beyond what a character LSTM is
known to hold well, and so a test of what attention over past outputs adds (benchmarks/attention.py).

Definitions, on the scanner's melody:
- a strain boundary is a bar line with a repeat sign (`:|`, `|:`, `::`) or a double bar (`||`, `|]`); the
  strains are the runs of bars between boundaries, those with fewer than 2 bars holding notes ignored;
- a bar's figure is its sequence of pitches (at least 2 notes);
- B answers A when B's last figure equals A's last figure (the same cadence), or when at least a quarter of
  B's figures occur in A.
"""

from __future__ import annotations

import re

from rlmusic.abc import Scan, scan

_BARLINE = re.compile(r"[:|\[\]]+")
MIN_BARS = 2
SHARED_FIGURES = 0.25


def _is_boundary(text: str, end: int) -> bool:
    m = _BARLINE.match(text, end)
    token = m.group(0) if m else ""
    return ":" in token or "||" in token or "|]" in token


def strains(s: Scan, text: str) -> list[list[tuple[int, ...]]]:
    """The strains of a scanned tune, each as the figures of its bars (bars with fewer than 2 notes dropped)."""
    figures: dict[int, list[int]] = {}
    for n in s.melody():
        figures.setdefault(n.bar, []).append(n.pitch)
    out: list[list[tuple[int, ...]]] = [[]]
    for bar in s.bars:
        if len(figures.get(bar.index, [])) >= 2:
            out[-1].append(tuple(figures[bar.index]))
        if _is_boundary(text, bar.end) and out[-1]:
            out.append([])
    return [st for st in out if len(st) >= MIN_BARS]


def second_strain_answers(tune: str, s: Scan | None = None) -> bool | None:
    """Whether the second strain answers the first (see the module docstring); None with fewer than 2 strains."""
    found = strains(s if s is not None else scan(tune), tune)
    if len(found) < 2:
        return None
    a, b = found[0], found[1]
    if b[-1] == a[-1]:
        return True
    in_a = set(a)
    return sum(f in in_a for f in b) >= SHARED_FIGURES * len(b)
