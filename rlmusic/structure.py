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
_ENDING_BARLINE = re.compile(r"[:|\[\]]+\d*")  # with a first ending's number: `|1`
MIN_BARS = 2
SHARED_FIGURES = 0.25


def closes_strain(token: str) -> bool:
    """Whether a bar-line token ends a strain: a repeat sign or a double bar."""
    return ":" in token or "||" in token or "|]" in token


def is_boundary(text: str, end: int) -> bool:
    """Whether the bar line at `end` (a bar's end offset) ends a strain."""
    m = _BARLINE.match(text, end)
    return closes_strain(m.group(0) if m else "")


def strains(s: Scan, text: str) -> list[list[tuple[int, ...]]]:
    """The strains of a scanned tune, each as the figures of its bars (bars with fewer than 2 notes dropped)."""
    figures: dict[int, list[int]] = {}
    for n in s.melody():
        figures.setdefault(n.bar, []).append(n.pitch)
    out: list[list[tuple[int, ...]]] = [[]]
    for bar in s.bars:
        if len(figures.get(bar.index, [])) >= 2:
            out[-1].append(tuple(figures[bar.index]))
        if is_boundary(text, bar.end) and out[-1]:
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


# --- form metrics of a set of tunes (evaluate) ---------------------------------------------------------------
STRAIN_LENGTHS = (4, 8, 16)
_BAR_TOKEN = re.compile(r"::|:*\[?\|+\]?:*(?:\d+(?:[,-]\d+)*)?|\[\d+")
_REPEAT = re.compile(r"\|:|:\||::")


def has_repeat_signs(tune: str) -> bool:
    """`|:`, `:|` or `::` anywhere in the body."""
    return _REPEAT.search(_body(tune)) is not None


def _body(tune: str) -> str:
    return "\n".join(ln for ln in tune.split("\n") if not (len(ln) > 1 and ln[1] == ":" and ln[0].isalpha()))


def bar_line_pattern(tune: str) -> str:
    """The tune's sequence of bar-line tokens (`|`, `|:`, `:|`, `||`, `|1`, `[2`...), quoted text removed: the
    tune's outline, whatever the notes (folk-rnn's "bar-line pattern")."""
    body = re.sub(r'"[^"\n]*"|![^!\n]*!|\[[A-Za-z]:[^\]\n]*\]', "", _body(tune))
    return " ".join(_BAR_TOKEN.findall(body))


def is_aabb(tune: str, s: Scan | None = None) -> bool:
    """Two strains of 4, 8 or 16 complete bars, each repeated (`|: ... :|`, so written once) or written out
    twice in a row: AABB, the commonest form of the tradition (folk-rnn, Sturm & Ben-Tal 2017). A first ending
    counts among its strain's bars; a second ending (at most 2 bars after a repeat) is not a strain."""
    parts = strain_parts(s if s is not None else scan(tune), tune)
    return len(parts) == 2 and all(rep and len(figs) in STRAIN_LENGTHS for figs, rep in parts)


def strain_parts(s: Scan, text: str) -> list[tuple[tuple, bool]]:
    """The tune's sections as (bar figures, repeated), a strain written out twice folded into one repeated
    part and a second ending folded into the strain before it."""
    parts: list[tuple[tuple, bool]] = []
    for figs, repeated in _sections(s, text):
        if parts and parts[-1][1] and len(figs) <= 2:
            continue  # the second ending of the strain before
        if parts and not parts[-1][1] and parts[-1][0] == figs:
            parts[-1] = (figs, True)
        else:
            parts.append((figs, repeated))
    return parts


def proper_strains(s: Scan, text: str) -> int:
    """Strains of the tradition's shape: 4, 8 or 16 complete bars, repeated or written out twice."""
    return sum(1 for figs, rep in strain_parts(s, text) if rep and len(figs) in STRAIN_LENGTHS)


def _sections(s: Scan, text: str) -> list[tuple[tuple, bool]]:
    """Runs of bars between strain boundaries: (the bars' figures, ends with a repeat sign). A short first bar
    (a pickup) and short final bar are not counted as bars of the strain."""
    figures: dict[int, list[int]] = {}
    for n in s.melody():
        figures.setdefault(n.bar, []).append(n.pitch)
    out, current = [], []
    bars = [b for b in s.bars if figures.get(b.index)]
    for i, bar in enumerate(bars):
        short = bar.expected is not None and bar.duration < bar.expected - 1e-6
        if not short:
            current.append(tuple(figures[bar.index]))
        m = _BARLINE.match(text, bar.end)
        token = m.group(0) if m else ""
        if (closes_strain(token) or i == len(bars) - 1) and current:
            out.append((tuple(current), token.startswith(":")))
            current = []
    return out


def meter_consistent(s: Scan, text: str) -> bool | None:
    """Every bar has the meter's length, but the pickup and last bar of each strain, which may be short (never
    long): the first bar of the tune and the bars at either side of a strain boundary (`:|`, `|:`, `||`,
    `|]`). None for free meter or fewer than 3 bars."""
    bars = [b for b in s.bars if b.expected is not None]
    if len(bars) < 3:
        return None
    for i, b in enumerate(bars):
        edge = i in (0, len(bars) - 1) or is_boundary(text, b.end) or is_boundary(text, bars[i - 1].end)
        if abs(b.duration - b.expected) < 1e-6 or (edge and b.duration < b.expected):
            continue
        return False
    return True


def strain_end_pitches(s: Scan, text: str) -> list[int]:
    """The last melody pitch before each strain end, the tune's last note included: the notes a cadence is heard on.

    A first ending (`|1`, `[1`) leads back into its strain, so its end is not a strain end (the `cadences` reward,
    rewards/music.py, and the reward model's music view, rlmusic/preference.py, read the cadences here)."""
    last_pitch: dict[int, int] = {}
    for n in s.melody():
        last_pitch[n.bar] = n.pitch
    ends, current, in_first_ending = [], None, False
    for bar in s.bars:
        current = last_pitch.get(bar.index, current)
        m = _ENDING_BARLINE.match(text, bar.end)
        token = m.group(0) if m else ""
        if token.endswith("1") or text.startswith("[1", bar.end + len(token)):
            in_first_ending = True  # the bar line opens a first ending
            continue
        if closes_strain(token) and current is not None:
            if not in_first_ending:
                ends.append(current)
            in_first_ending = False
    melody = s.melody()
    ends_at_last_note = bool(s.bars) and is_boundary(text, s.bars[-1].end)  # its last note already counted
    if melody and not ends_at_last_note:  # a tune that stops without a double bar still ends there
        ends.append(melody[-1].pitch)
    return ends
