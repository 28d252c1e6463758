"""What abc2midi rejects that the scanner's grammar reads: ties the next note does not continue, broken rhythm
between notes abc2midi holds at unequal lengths, and repeat structure it cannot play.

abc2midi is the check the valid rates are measured by, and its `line-char` for these errors points at the end of
the line or of the tune, not at the fault. The scanner finds them where they arise, so the `valid` reward's dense
credit lands on the character at fault. Each rule here was read off abc2midi 4.x's verdicts on hand-written
tunes (the tables in tests/test_abc.py, re-checked against abc2midi where it is installed), and measured on the
corpus and on sampled tunes (`benchmarks/scanner_vs_abc2midi.py`).
"""

from __future__ import annotations

from typing import Callable

Pitch = tuple[int, str, int]  # MIDI pitch, upper-case letter, octave


class Ties:
    """Ties waiting for the next note event. A tie must be continued by the next note, chord, rest or grace
    note, each tied pitch in it (abc2midi errs on `d3-|c2`, `d3- z`, `[DG]3-|G2`, `d3-{e}d`, a tie at the end);
    `problem(kind, offset, message)` reports one, at the event that breaks the tie."""

    __slots__ = ("pending", "at", "bar", "last", "problem")

    def __init__(self, problem: Callable[[str, int, str], None]):
        self.pending: list[Pitch] = []  # the notes tied to the next event
        self.at = self.bar = 0  # where the tied note starts, and its bar
        self.last: list[Pitch] = []  # the last note or chord, which a tie apart from it (`d3 -d`) ties
        self.problem = problem

    def event(self, pitches: list[Pitch], at: int, bar: int, what: str) -> None:
        """The event at `at` follows a tie: each tied pitch must be in it, by pitch, or across a bar line by
        letter and octave (abc2midi accepts `^c-_d` and `^f-|=f`, not `^f-=f`)."""
        by_letter = bar != self.bar
        for p, up, o in self.pending:
            if not any(p == q or (by_letter and up == uq and o == oq) for q, uq, oq in pitches):
                self.problem("tie", at, f"tie at {self.at} not continued by the {what} at {at}")
                break
        self.pending = []

    def tie(self, pitches: list[Pitch], at: int, bar: int, staccato: bool = False) -> None:
        """A tie from these notes at `at`; on a staccato note (`.d3-d`) abc2midi finds no note before it."""
        if staccato:
            self.problem("tie", at, f"a tie after a staccato note at {at}")
        self.pending, self.at, self.bar = pitches, at, bar

    def lone(self, at: int, bar: int, after_grace: bool) -> None:
        """A `-` apart from its note."""
        if self.pending:
            self.problem("tie", at, f"two ties in a row at {at}")
        elif after_grace:  # `{c}-B`: abc2midi ties no grace note
            self.problem("tie", at, f"a tie after grace notes at {at}")
        elif self.last:
            self.tie(self.last, at, bar)
        else:
            self.problem("tie", at, f"a tie with no note before it at {at}")

    def roll(self, at: int) -> None:
        """`~` while a tie waits: abc2midi writes a roll as notes of other pitches."""
        self.problem("tie", at, f"tie at {self.at} followed by a roll at {at}")
        self.pending = []

    def end(self, at: int) -> None:
        if self.pending:
            self.problem("tie", at, f"tie at {self.at} not continued: the tune ends")


def length_mark(text: str, start: int) -> str:
    """abc2midi stores a note under a fermata (`H`, `!fermata!`: held twice as long) or a staccato dot at
    another length than written, so `>` between a marked and an unmarked note is an error there (`Hc>c`, `A>.B`),
    and between two alike is not. `.Hc` counts as unmarked, as abc2midi reads it; a roll (`~`), which abc2midi
    writes out as notes, is "?": not checked."""
    before = text[max(0, start - 9):start]
    if before.endswith("~"):
        return "?"
    if before.endswith("!fermata!") or (before.endswith("H") and not before.endswith(".H")):
        return "H"
    return "." if before.endswith(".") else ""


def unequal_for_broken_rhythm(first: tuple[float, str], second: tuple[float, str]) -> bool:
    """Two notes (length, length_mark) that abc2midi will not join with `>`/`<`."""
    if "?" in (first[1], second[1]):
        return False
    return abs(first[0] - second[0]) > 1e-9 or first[1] != second[1]


def bar_marks(token: str) -> list[str]:
    """The repeat marks of one bar-line token, in order: "start" (`|:`), "end" (`:|`), "double" (`::`); `:||:`
    is an end, then a start, and `:|:` an end alone, as abc2midi reads them (`:|:` before a first ending is an
    error there, `::` and `:||:` are not)."""
    ends, starts = token.startswith(":"), token.endswith(":")
    if ends and starts:
        middle = token.strip(":")
        return ["double"] if middle == "" else ["end"] if middle == "|" else ["end", "start"]
    return ["end"] if ends else ["start"] if starts else []


def repeat_problems(marks: list[tuple[int, str]], end: int) -> list[tuple[int, str]]:
    """(offset, message) of what abc2midi cannot play in a tune's repeats, from its marks in order ((offset,
    "start" | "end" | "double" | "ending")); `end` is the offset of the tune's end.

    - the tune's first ending (`|1`, `[1`) after a `:|` with no `|:` or `::` since: abc2midi's `found [1 or
      like before |:` (`|:A:|B|1 c:|2 d|]`; after `:||:` it is fine);
    - `::` after a `:|` with no `|:` between: `found :: before |:`;
    - `|:` while a `|:` is still open: `found another |: after a |:`;
    - a `|:` never closed (no `:|` after it) at the end of the tune: `Missing :| at end of tune` (abc2midi lets it
      pass when the tune's endings come before that `|:`).
    """
    out = []
    after_end = False  # a `:|` since the last `|:` or `::`
    first_ending, endings_seen = True, False
    open_at: int | None = None  # a `|:` not closed yet
    open_after_endings = False
    for at, mark in marks:
        if mark == "start":
            if open_at is not None:
                out.append((at, f"'|:' at {at} while the '|:' at {open_at} is open"))
            after_end = False
            open_at, open_after_endings = at, endings_seen
        elif mark == "end":
            after_end, open_at = True, None
        elif mark == "double":
            if after_end:
                out.append((at, f"'::' at {at} after a ':|' with no '|:' between"))
            after_end, open_at = False, None
        elif mark == "ending":
            if first_ending and after_end:
                out.append((at, f"the first ending, at {at}, follows an end repeat with no '|:' after it"))
            first_ending, endings_seen = False, True
    if open_at is not None and not open_after_endings:
        out.append((end, f"the repeat opened at {open_at} is not closed: the tune ends"))
    return out
