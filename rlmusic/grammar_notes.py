"""The ABC grammar's notes (rlmusic/grammar.py): accidentals, letters, octave marks, lengths and ties; rests;
chords and grace notes; slurs, tuplets and broken rhythm. Each function reads one character in its mode."""

from __future__ import annotations

import re
from functools import lru_cache

from rlmusic.grammar_state import BODY, State, step_body
from rlmusic.grammar_values import MAX_CHORD, MAX_MARKS, MAX_SLURS, NOTE_LETTERS, length_ok

_LENGTH_MARK = {"s": "s", "~": "?"}  # the mark abc2midi's length of a note depends on ("?": a roll, unknown)


def _accidental(s: State, ctx: str, ch: str):
    t = s.tie if ctx != "c" else None
    if t is not None and not t[2].startswith(ch):
        return None  # the continuation of a tie keeps the tied note's accidental (or has none)
    return s._replace(mode="A", aux=(ctx, ch), buf="")


def _after_accidental(s: State, ch: str):
    ctx, acc = s.aux
    if ch in "^_" and acc == ch:
        return _accidental(s, ctx, acc + ch)
    return _note_letter(s, ch)


def _note_letter(s: State, ch: str):
    """A note letter, `s` in mode A with aux (context, accidental)."""
    if ch not in NOTE_LETTERS:
        return None
    ctx, acc = s.aux
    tie = s.tie if ctx != "c" else None
    if tie is not None and (tie[0] != ch or (acc and acc != tie[2])):
        return None
    if ctx == "c" and s.chord >= MAX_CHORD:
        return None
    return s._replace(mode="T", aux=(ctx, acc, ch, ""), buf="")


def _in_note(s: State, ch: str):
    """After a note's letter: octave marks, then the length, then a tie; any other character ends the note."""
    ctx, acc, letter, marks = s.aux
    if not s.buf and ch in ",'":
        if (ch == "," and letter.islower()) or (ch == "'" and letter.isupper()) or len(marks) >= MAX_MARKS:
            return None
        marks += ch
        if ctx != "c" and s.tie is not None and not s.tie[1].startswith(marks):
            return None
        return s._replace(aux=(ctx, acc, letter, marks))
    if ch.isdigit() or ch == "/":
        buf = s.buf + ch
        if not length_ok(buf, False):
            return None
        if ctx == "n" and s.broken is not None and s.broken[0] != "any" and not s.broken[0].startswith(buf):
            return None
        return s._replace(buf=buf)
    if ch == "-" and ctx != "c":
        if ctx == "g" or s.mark == "s":
            return None  # no ties in grace notes; a staccato note cannot be tied (abc2midi)
        s = _finish_note(s)
        return None if s is None else s._replace(mode="E", tie=(letter, marks, acc))
    if ch == "-":
        return None  # no ties inside chords
    s = _finish_note(s)
    return None if s is None else step_body(s, ch)


@lru_cache(maxsize=4096)  # every character after a note finishes it alike: once per state
def _finish_note(s: State):
    """The note in progress is complete: check it against a tie or broken rhythm waiting for it; place it."""
    ctx, acc, letter, marks = s.aux
    length = s.buf
    if not length_ok(length, True):
        return None
    if ctx == "c":
        return s._replace(mode="CH", buf="", aux=(), chord=s.chord + 1)
    if ctx == "n" or (ctx == "g" and s.tie is not None):
        if s.tie is not None and s.tie[1] != marks:
            return None
    if ctx == "g":
        return s._replace(mode="G", buf="", aux=("note",), tie=None)
    return _place(s, length, (letter, marks, acc))


def _unequal_marks(a: str, b: str) -> bool:
    """Whether two notes' marks give them lengths abc2midi counts as unequal for broken rhythm: a staccato dot or a
    fermata ("s") against a plain note; a roll ("?") against either is read by abc2midi case by case, and its
    verdicts on the corpus and on random walks are a roll against a plain note or a roll: equal; against "s": not."""
    if "?" in (a, b):
        return "s" in (a, b)
    return a != b


def _place(s: State, length: str, pitch: tuple | None):
    """A note (pitch given) or rest is complete, with `length` as written: broken rhythm and tuplets advance."""
    factor = s.tuplet_factor_next()
    mark = _LENGTH_MARK.get(s.mark, "")
    if s.broken is not None and s.broken[0] != "any" and (
            length != s.broken[0] or factor != s.broken[1] or _unequal_marks(mark, s.broken[2])):
        return None
    left, tf = s.tuplet
    tuplet = (left - 1, tf) if left > 1 else (0, 1.0)
    prev = None if s.broken is not None else (length, factor, mark)
    rep = s.rep._replace(second_ok=False) if s.rep.second_ok else s.rep
    return s._replace(mode="N", buf="", aux=(), tie=None, prev=prev,
                      broken=None, tuplet=tuplet, mark="", notes=True, rep=rep, graced=False)


def _after_tie(s: State, ch: str):
    if ch == "-" or ch == ">" or ch == "<":
        return None
    return step_body(s._replace(mode="N"), ch)


def _rest(s: State, ch: str):
    if ch.isdigit() or ch == "/":
        buf = s.buf + ch
        if not length_ok(buf, False):
            return None
        if s.broken is not None and s.broken[0] != "any" and not s.broken[0].startswith(buf):
            return None
        return s._replace(buf=buf)
    if ch == "-":
        return None
    s = _place(s, s.buf, None)
    return None if s is None else step_body(s, ch)


def _bar_rest(s: State, ch: str):
    if ch.isdigit() and len(s.buf) < 2 and not (ch == "0" and not s.buf):
        return s._replace(buf=s.buf + ch)
    s = s._replace(mode="N", buf="", prev=None, notes=True)
    return step_body(s, ch)


def _in_chord(s: State, ch: str):
    if ch in NOTE_LETTERS:
        return _note_letter(s._replace(mode="A", aux=("c", "")), ch)
    if ch in "^_=":
        return _accidental(s, "c", ch)
    if ch == "]" and s.chord:
        return s._replace(mode="CL", buf="")
    return None


def _chord_length(s: State, ch: str):
    if ch.isdigit() or ch == "/":
        buf = s.buf + ch
        return s._replace(buf=buf) if length_ok(buf, False) else None
    if ch == "-" or not length_ok(s.buf, True):
        return None
    left, tf = s.tuplet
    s = s._replace(mode="N", buf="", chord=None, tie=None, prev=None if s.broken else ("chord",),
                   broken=None, tuplet=(left - 1, tf) if left > 1 else (0, 1.0), mark="", notes=True,
                   rep=s.rep._replace(second_ok=False), graced=False)
    return step_body(s, ch)


def _grace(s: State, ch: str):
    if ch == "/" and not s.aux and not s.buf:
        return s._replace(buf="/")
    if ch == "}":
        return s._replace(mode="N", buf="", aux=(), mark="g", graced=True) if s.aux else None
    if ch in NOTE_LETTERS:
        return _note_letter(s._replace(mode="A", aux=("g", "")), ch)
    if ch in "^_=":
        return _accidental(s, "g", ch)
    return None


def _paren(s: State, ch: str):
    if ch.isdigit():
        if ch in "01":
            return None
        return s._replace(mode="TP", buf=ch)
    if s.slurs >= MAX_SLURS:
        return None
    return step_body(s._replace(mode="N", slurs=s.slurs + 1, mark="g" if s.mark == "g" else ""), ch)


_TUPLET = re.compile(r"([2-9])(?::([1-9]?)(?::([1-9]?))?)?")
_TUPLET_Q = {2: 3, 3: 2, 4: 3, 6: 2, 8: 3}


def _tuplet(s: State, ch: str):
    buf = s.buf + ch
    if (ch.isdigit() or ch == ":") and _TUPLET.fullmatch(buf):
        return s._replace(buf=buf)
    if s.tuplet[0] or s.broken is not None:
        return None  # a tuplet inside a tuplet, or between the notes of broken rhythm
    m = _TUPLET.fullmatch(s.buf)
    p = int(m.group(1))
    q = int(m.group(2)) if m.group(2) else _TUPLET_Q.get(p, 2)
    r = int(m.group(3)) if m.group(3) else p
    return step_body(s._replace(mode="N", buf="", tuplet=(r, q / p)), ch)


def _broken(s: State, ch: str):
    if s.prev is None or s.tie is not None or s.chord is not None or s.mark:
        return None
    return s._replace(mode="BK", buf=ch)


def _in_broken(s: State, ch: str):
    if ch == s.buf[0] and len(s.buf) < 3:
        return s._replace(buf=s.buf + ch)
    if ch in "<>":
        return None
    prev = s.prev
    if prev == ("chord",):
        target = ("any",)
    else:
        if prev[1] != s.tuplet_factor_next():
            return None  # one note in a tuplet, the other not: unequal lengths
        target = prev
    return step_body(s._replace(mode="N", buf="", broken=target, prev=None), ch)


BODY.update({"A": _after_accidental, "T": _in_note, "E": _after_tie, "R": _rest, "Z": _bar_rest, "CH": _in_chord,
             "CL": _chord_length, "G": _grace, "P": _paren, "TP": _tuplet, "BK": _in_broken})
