"""The state of the ABC grammar's machine (rlmusic/grammar.py): a small immutable tuple, so that the compiled
tables (rlmusic/constrain.py) can number and memoise states; and the table of body modes, which grammar.py and
grammar_notes.py fill with the function that reads one character in each."""

from __future__ import annotations

from typing import Callable, NamedTuple

END = "END"
"""The state after the blank line that ends a tune."""


class Rep(NamedTuple):
    """Repeat structure so far (abc2midi's rules; see the module docstring)."""

    after_end: bool = False  # a `:|` since the last `|:` or `::`
    ending_seen: bool = False  # the tune has had an ending
    open: bool = False  # a `|:` or `::` not closed yet
    first_open: bool = False  # a first ending not closed by `:|` yet
    second_ok: bool = False  # a `:|` just closed a first ending: a second ending may follow here


class State(NamedTuple):
    mode: str
    """Where in the text: H0 H1 HV (header line start, field letter, value), L0 L1 (body line start, after a `\\`
    continuation), LF (line start after a letter that may open a field line), BV (body field value), N (between
    tokens), C (comment), Q (quote), D (!decoration!), B (after `[`), IF IV (inline field letter, value),
    A T E (note: after its accidental, after its letter, after its tie), R Z (rest, bar rest), CH CL (in a chord,
    its length after `]`), G (grace notes), BR ED (bar line, ending digits), P TP (after `(`, tuplet), BK
    (broken rhythm), BS (after `\\`)."""
    buf: str = ""
    """The text of the token or value in progress."""
    aux: tuple = ()
    """Mode data: the field letter; a note's (context, accidental, letter, marks); the broken rhythm sign."""
    head: int = 0
    """Header fields seen: 1 X, 2 T, 4 M, 8 K (the body), 16 P."""
    slurs: int = 0
    chord: int | None = None
    """Notes in the open chord so far; None: no chord."""
    tie: tuple | None = None
    """The tied note waiting for its continuation: (letter, marks, accidental)."""
    prev: tuple | None = None
    """For broken rhythm after it: the last note or rest's (length text, tuplet factor), ("chord",), or None."""
    broken: tuple | None = None
    """A `>` waiting for its second note: (length text, tuplet factor) it must have, or ("any",)."""
    tuplet: tuple = (0, 1.0)
    mark: str = ""
    """How the next note is marked: "." staccato, "H" held, "~" roll, "d" after a decoration letter (a note must
    follow), "g" after grace notes."""
    rep: Rep = Rep()
    notes: bool = False
    parts: frozenset = frozenset()
    """Parts the header's P: names that no P: in the body has defined yet (abc2midi: `Part not defined`)."""
    graced: bool = False
    """Grace notes written and no note, rest or chord since: another grace group, or a roll (abc2midi writes
    one as grace notes), must wait for one (abc2midi: `Intervening note needed between grace notes`), whatever
    stands between (decorations, chord symbols, fields, line breaks)."""

    def tuplet_factor_next(self) -> float:
        """The tuplet factor the next note gets."""
        return self.tuplet[1] if self.tuplet[0] else 1.0


START = State("H0")


BODY: dict[str, Callable] = {}
"""Body mode -> the function (state, character) -> next state or None."""


def step_body(s: State, ch: str):
    return BODY[s.mode](s, ch)
