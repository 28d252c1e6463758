"""ABC as a machine that reads one character at a time: what a tune may write next, decided at every step.

This module holds the machine, the header, the body between tokens, fields, bar lines and repeats; notes, chords,
grace notes, tuplets and broken rhythm are in grammar_notes.py, the state in grammar_state.py, the value sets
(keys, meters, decorations, chord symbols, lengths) in grammar_values.py.

`step(state, char)` gives the next state, or None when no valid tune starts with the text so far plus `char`;
`can_end(state)` says whether the tune may end there (the next two characters, a blank line, close it). A state
is a small immutable tuple, so the compiled tables of rlmusic/constrain.py can number and memoise them.

The language is abc2midi's, narrowed where narrowing costs the corpus almost nothing and makes checks decidable
at the character where they arise (measured: `benchmarks/grammar_vs_abc2midi.py`):

- header: X: first (a number), then fields one per line; T: and M: before K:, which closes the header. M:, L:
  and K: take the values abc2midi knows (K: modes spelt out or by their first three letters);
- notes: accidental, letter, octave marks (`,` after upper-case letters, `'` after lower-case ones, at most 4),
  a length (`2`, `3/2`, `/`, `//`, `/4`: at most two digits on either side, no zero), a tie `-`;
- a tie is continued by the next note, or the first grace note: same letter and octave marks, the same
  accidental or none (across a bar line too); not by a rest or chord; not from a staccato note; no roll between;
- broken rhythm `>`/`<` joins two notes or rests written with the same length, both in or both out of one
  tuplet, the first not marked staccato or held (`H`): abc2midi stores those at another length (after a chord
  the length is not checked, as abc2midi does); the next note follows at once;
- decoration letters (`.~HLMOPSTuv`) stand directly before a note; `!...!` holds a decoration abc2midi knows;
- chords `[CEG]2` of notes only (at most 6, no ties inside), grace notes `{g}`/`{/g}` of notes only;
- bar lines `| || |] [| |: :| :: :|| :|] ||: :||:`, endings `|1`, `:|2`, `[1`, `[2`; repeats as abc2midi
  plays them: a `|:` is closed by `:|` or `::` before another opens or the tune ends, a `::` opens too, a first
  ending is closed by `:|` and a second ending follows that `:|` (or a `[2` after it), a first ending never
  follows an end repeat with no `|:` between (rlmusic/abc_checks.py has the same rules, read off abc2midi);
- body field lines `K: L: M: Q: P:` and inline fields `[K:..]`, `[M:..]`, `[L:..]`, `[Q:..]`, `[P:..]`, `[V:..]`
  (repeats are checked across voices, which every corpus tune with voices passes);
- slurs `(..)` (at most 4 open), tuplets `(3`, `(p:q:r`, chord symbols and annotations `"..."`, `%` comments,
  `\\` before the end of a line, spaces, `` ` ``, `y`.

Bounds (none rejects a corpus tune the rest of the grammar accepts; the tables stay small): 4 open slurs, 6 notes
in a chord, 12 characters in a `!decoration!`, 40 in an M:/L:/K:/Q: value. The tune ends at a blank line, which
needs: a note written, nothing open (chord, grace, quote, slur, tuplet, tie, broken rhythm, repeat, first
ending), and not right after a `\\` line continuation.
"""

from __future__ import annotations

from rlmusic.grammar_notes import _accidental, _broken, _note_letter
from rlmusic.grammar_state import BODY, END, START, Rep, State, step_body  # noqa: F401 (END, START: interface)
from rlmusic.grammar_values import (BAR_TOKENS, BODY_FIELDS, CHORD_SYMBOLS, DECORATION_LETTERS, DECORATIONS,
                                    HEADER_FIELDS, INLINE_FIELDS, NOTE_LETTERS, _BAR_PREFIXES, _CHORD_PREFIXES,
                                    MAX_VALUE, _DECORATION_PREFIXES, value_ok)


class AbcGrammar:
    """The machine: `step`, `can_end`, `run` (a whole text), `first_error` (where a text stops being ABC)."""

    def start(self) -> State:
        return START

    def run(self, text: str, state: State = START) -> State | None:
        for ch in text:
            state = self.step(state, ch)
            if state is None:
                return None
        return state

    def first_error(self, text: str, end: bool = True) -> int | None:
        """Offset of the first character no valid tune has there (len(text) if the text cannot end: a tune is
        `text` plus a blank line), or None for a valid tune."""
        state = START
        for i, ch in enumerate(text):
            state = self.step(state, ch)
            if state is None or state is END:
                return i
        return None if not end or self.can_end(state) else len(text)

    def accepts(self, text: str) -> bool:
        return self.first_error(text) is None

    def describe_error(self, text: str) -> str | None:
        """None for a valid tune, else where it stops being one, in words."""
        at = self.first_error(text)
        if at is None:
            return None
        line = text.count("\n", 0, at) + 1
        if at == len(text):
            return f"the tune cannot end here (line {line}): something is left open"
        return f"{text[at]!r} at {at} (line {line}) cannot continue a valid tune"

    def can_end(self, state: State) -> bool:
        """May the tune end here (the next characters a blank line)?"""
        s = self.step(state, "\n")
        return s is not None and s is not END and self.step(s, "\n") is END

    # --- one character ---------------------------------------------------------------------------------------
    def step(self, s: State, ch: str) -> State | None:
        if s is END:
            return None
        mode = s.mode
        if mode in _HEADER:
            return _HEADER[mode](s, ch)
        return BODY[mode](s, ch)


# --- header -----------------------------------------------------------------------------------------------------
def _h0(s: State, ch: str):
    if ch not in HEADER_FIELDS:
        return None
    if s.head == 0 and ch != "X" or s.head and ch == "X":
        return None  # X: first, once
    if ch == "K" and s.head & 7 != 7:
        return None  # T: and M: before K:
    return s._replace(mode="H1", aux=(ch,))


def _h1(s: State, ch: str):
    return s._replace(mode="HV", buf="") if ch == ":" else None


def _hv(s: State, ch: str):
    field = s.aux[0]
    if ch == "\n":
        if not value_ok(field, s.buf, True):
            return None
        if field == "P" and not (s.buf.isalpha() and s.buf.isupper()):
            return None  # abc2midi: the header's P: is the order of parts, by their letters
        head = s.head | {"X": 1, "T": 2, "M": 4, "K": 8, "P": 16}.get(field, 0)
        parts = s.parts | set(s.buf) if field == "P" else s.parts
        return s._replace(mode="L0" if field == "K" else "H0", buf="", aux=(), head=head, parts=parts)
    return _typed(s, ch)


def _typed(s: State, ch: str):
    """`s` with `ch` added to the field value it reads, or None when no value of the field starts so. Free text
    (T:, R:, ...) is not kept: any character but a newline may follow."""
    field = s.aux[0]
    if field not in "XMLKQPV":
        return s
    buf = s.buf + ch
    if ch == "\n" or len(buf) > MAX_VALUE or not value_ok(field, buf, False):
        return None
    return s._replace(buf=buf)


_HEADER = {"H0": _h0, "H1": _h1, "HV": _hv}


# --- body: between tokens --------------------------------------------------------------------------------------
def _neutral(s: State, ch: str):
    """A character that starts a token (mode N, and the body line starts)."""
    if s.broken is not None and not (ch in NOTE_LETTERS or ch in _AFTER_BROKEN):
        return None  # the second note of broken rhythm follows (slurs, grace notes, decorations between)
    if s.mark in _MUST_FOLLOW and not (ch in NOTE_LETTERS or ch in "^_=zx" or ch in DECORATION_LETTERS
                                       or (ch == "[" and s.mark == "b")):
        return None  # abc2midi: a decoration letter stands before a note (u, v before a chord too)
    if s.tie is not None and not (ch in NOTE_LETTERS or ch in "^_= \t|\n()" or ch in DECORATION_LETTERS):
        return None  # a tie is continued by the next note, across spaces, slurs, decorations, a plain bar line
    if s.graced and ch in "{~":
        return None  # abc2midi: a note between two grace groups (a roll is written as grace notes)
    if ch in NOTE_LETTERS:
        return _note_letter(s._replace(mode="A", aux=("n", "")), ch)
    if ch in "^_=":
        return _accidental(s, "n", ch)
    if ch == " " or ch == "\t":
        return s._replace(mode="N")
    if ch == "`" or ch == "y" or ch == "k":  # spacers abc2midi skips (`k` is in the corpus' tunes)
        return s._replace(mode="N", prev=None)
    if ch == "|" or ch == ":":
        return s._replace(mode="BR", buf=ch, mark="")
    if ch == "\n":
        return _newline(s)
    if ch in DECORATION_LETTERS:
        if ch == "~" and (s.tie is not None or s.mark == "~"):
            return None  # abc2midi writes a roll as notes of other pitches: the tie is broken
        return s._replace(mode="N", mark=_deco_mark(s.mark, ch))
    if ch == "z" or ch == "x":
        if s.tie is not None:
            return None  # a tie to a rest
        return s._replace(mode="R", buf="", mark="s" if s.mark == "s" else "")  # a fermata lengthens a rest too
    if ch == "Z":
        if s.tie is not None or s.broken is not None:
            return None
        return s._replace(mode="Z", buf="", mark="")
    if ch == "[":
        return s._replace(mode="B", mark=s.mark if s.mark == "b" else "", prev=None)
    if ch == "(":
        return s._replace(mode="P", prev=None)
    if ch == ")":  # abc2midi reads a `)` that closes no slur, as real tunes have them
        return s._replace(mode="N", slurs=max(s.slurs - 1, 0), mark="g" if s.mark == "g" else "")
    if ch == "{":
        return s._replace(mode="G", buf="", aux=(), mark="", prev=None)
    if ch == '"':
        return s._replace(mode="Q", buf="", mark="", prev=None)
    if ch == "!":
        return s._replace(mode="D", buf="", prev=None)
    if ch == ">" or ch == "<":
        return _broken(s, ch)
    if ch == "%":
        return s._replace(mode="C", prev=None)
    if ch == "\\":
        return s._replace(mode="BS", prev=None)
    return None


def _deco_mark(before: str, ch: str) -> str:
    """The mark after a decoration letter, given the mark before it; each says a note must follow. "s": the chain
    holds a staccato dot or a fermata (`H`), which change the length abc2midi gives the note; "~": a roll, which
    abc2midi writes out as notes; "b": bowing marks only (`u`, `v`), which may stand before a chord; "d": other."""
    if ch in ".H" or before == "s":
        return "s"
    if ch == "~" or before == "~":
        return "~"
    return "b" if ch in "uv" and before in ("", "g", "b") else "d"


_MUST_FOLLOW = frozenset("s~db")  # marks after a decoration letter: a note follows
_AFTER_BROKEN = frozenset("^_=zx(){ [") | DECORATION_LETTERS


def _newline(s: State):
    if s.chord is not None or s.broken is not None or s.mark in _MUST_FOLLOW:
        return None
    if s.mode == "L0":  # a blank line: the end of the tune (abc2midi: not right after grace notes)
        return END if _complete(s) and s.mark != "g" else None
    if s.mode == "L1":
        return None
    return s._replace(mode="L0", mark="g" if s.mark == "g" else "")


def _complete(s: State) -> bool:
    rep = s.rep
    return (s.notes and not s.parts and s.tie is None and s.broken is None and s.tuplet[0] == 0
            and s.chord is None and not (rep.open or rep.first_open))


def _l0(s: State, ch: str):
    if ch in BODY_FIELDS and s.tie is None and s.broken is None and s.tuplet[0] == 0:
        return s._replace(mode="LF", aux=(ch,))
    return _neutral(s, ch)


def _l1(s: State, ch: str):
    return _neutral(s, ch)


def _lf(s: State, ch: str):
    letter = s.aux[0]
    if ch == ":":
        return s._replace(mode="BV", buf="", aux=(letter,))
    before = s._replace(mode="N", aux=())
    after = _neutral(before, letter)
    return None if after is None else step_body(after, ch)


def _bv(s: State, ch: str):
    field = s.aux[0]
    if ch == "\n":
        if not value_ok(field, s.buf, True):
            return None
        s = _part_played(s) if field == "P" else s
        return None if s is None else s._replace(mode="L0", buf="", aux=())
    return _typed(s, ch)


def _part_played(s: State):
    """A body P: (its value in `s.buf`): where the header names the parts, each one's letter, once (abc2midi:
    `Part defined more than once`)."""
    if not s.head & 16:
        return s
    return s._replace(parts=s.parts - {s.buf}) if s.buf in s.parts else None


def _comment(s: State, ch: str):
    if ch == "\n":
        return _newline(s._replace(mode="N"))
    return s if ch.isprintable() or ch == "\t" else None


def _backslash(s: State, ch: str):
    return s._replace(mode="L1") if ch == "\n" else None


def _quote(s: State, ch: str):
    """A chord symbol abc2midi knows (`"Am7"`, `"G/B"`; the corpus has no annotations)."""
    if ch == '"':
        return s._replace(mode="N", buf="") if s.buf in CHORD_SYMBOLS else None
    buf = s.buf + ch
    return s._replace(buf=buf) if buf in _CHORD_PREFIXES else None


def _decoration(s: State, ch: str):
    if ch == "\n" and not s.buf:  # a `!` ending a line: ABC 1.6's line break, which abc2midi reads
        return _newline(s._replace(mode="N"))
    if ch == "!":
        if s.buf not in DECORATIONS:
            return None
        return s._replace(mode="N", buf="", mark="s" if s.buf == "fermata" else "")
    buf = s.buf + ch
    return s._replace(buf=buf) if buf in _DECORATION_PREFIXES else None


# --- brackets: chords, inline fields, endings, `[|` --------------------------------------------------------------
def _bracket(s: State, ch: str):
    if s.broken is not None and not (ch in NOTE_LETTERS or ch in "^_="):
        return None  # after `>` a chord, nothing else
    if s.mark == "b" and not (ch in NOTE_LETTERS or ch in "^_="):
        return None  # after a decoration letter, a chord
    if ch in INLINE_FIELDS and s.tuplet[0] == 0:  # abc2midi: no field inside a tuplet
        return s._replace(mode="IF", aux=(ch,))
    if ch == "1" or ch == "2":
        return _ending(s, ch)
    if ch == "|":
        return s._replace(mode="BR", buf="[|")
    if s.tie is not None:
        return None  # no chord continues a tie (the grammar's bound)
    if ch in NOTE_LETTERS:
        return _note_letter(s._replace(mode="A", aux=("c", ""), chord=0), ch)
    if ch in "^_=":
        return _accidental(s._replace(chord=0), "c", ch)
    return None


def _inline_letter(s: State, ch: str):
    return s._replace(mode="IV", buf="") if ch == ":" else None


def _inline_value(s: State, ch: str):
    field = s.aux[0]
    if ch == "]":
        if not value_ok(field, s.buf, True):
            return None
        rep = s.rep
        if field == "V":  # abc2midi reads repeats voice by voice: a voice starts with none open, and afresh
            if rep.open or rep.first_open:
                return None
            rep = Rep()
        s = _part_played(s) if field == "P" else s
        return None if s is None else s._replace(mode="N", buf="", aux=(), rep=rep)
    return _typed(s, ch)


# --- bar lines, endings, repeats -----------------------------------------------------------------------------------
def _bar(s: State, ch: str):
    buf = s.buf + ch
    if ch in "|:]" and buf in _BAR_PREFIXES:
        return s._replace(buf=buf)
    token = s.buf
    if token not in BAR_TOKENS or ch in "|:]":
        return None
    s = _bar_line(s, token)
    if s is None:
        return None
    if ch in "12" and token.endswith("|") and token != "[|":
        return _ending(s, ch)
    return step_body(s, ch)


def _bar_marks(token: str) -> list[str]:
    if token == "::":
        return ["double"]
    if token == ":||:":
        return ["end", "start"]
    return (["end"] if token.startswith(":") else []) + (["start"] if token.endswith(":") else [])


def _bar_line(s: State, token: str):
    if s.broken is not None or (s.tie is not None and (token not in ("|", "||") or len(s.tie) > 3)):
        return None  # a tie crosses one plain bar line at most
    rep = s.rep
    for mark in _bar_marks(token):
        rep = _repeat(rep, mark)
        if rep is None:
            return None
    tie = s.tie if s.tie is None else s.tie[:3] + (True,)
    return s._replace(mode="N", buf="", rep=rep, prev=None, mark="", tie=tie)


def _repeat(rep: Rep, mark: str) -> Rep | None:
    if mark == "start":
        if rep.open or rep.first_open:
            return None  # abc2midi: another |: after a |: (or in a first ending)
        return rep._replace(after_end=False, open=True, second_ok=False)
    if mark == "end":
        return rep._replace(after_end=True, open=False, first_open=False, second_ok=rep.first_open)
    # "::": an end and a start
    if rep.after_end:
        return None  # abc2midi: :: before |:
    return rep._replace(after_end=False, open=True, first_open=False, second_ok=False)


def _ending(s: State, ch: str):
    if s.tie is not None:
        return None
    rep = s.rep
    if ch == "1":
        if rep.first_open or (not rep.ending_seen and rep.after_end):
            return None  # abc2midi: a first ending after :| with no |: between
        rep = rep._replace(first_open=True, ending_seen=True, second_ok=False)
    else:
        if not rep.second_ok:
            return None
        rep = rep._replace(second_ok=False, ending_seen=True)
    return s._replace(mode="ED", buf="", rep=rep, prev=None, mark="")


def _ending_after(s: State, ch: str):
    if ch.isdigit() or ch in ",-":
        return None
    return step_body(s._replace(mode="N"), ch)


BODY.update({"L0": _l0, "L1": _l1, "LF": _lf, "BV": _bv, "N": _neutral, "C": _comment, "BS": _backslash, "Q": _quote,
             "D": _decoration, "B": _bracket, "IF": _inline_letter, "IV": _inline_value, "BR": _bar,
             "ED": _ending_after})
