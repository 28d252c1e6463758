"""ABC as a machine that reads one character at a time: what a tune may write next, decided at every step.

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

import re
from typing import NamedTuple

END = "END"
"""The state after the blank line that ends a tune."""

NOTE_LETTERS = frozenset("ABCDEFGabcdefg")
ACCIDENTALS = ("^", "^^", "_", "__", "=")
DECORATION_LETTERS = frozenset(".~HLMOPSTuv")
HEADER_FIELDS = frozenset("XTRMLQPKCONZSBDFGH")  # the tune's fields and free-text notes about it
BODY_FIELDS = frozenset("KLMPQ")  # field lines in the body (the corpus' cleaning keeps these)
INLINE_FIELDS = frozenset("KLMPV")
MAX_SLURS, MAX_CHORD, MAX_DECORATION, MAX_VALUE, MAX_MARKS = 4, 6, 12, 40, 4

# Field values abc2midi reads, as finite sets: a value typed so far must be a prefix of one of them.
_MODES = ("", "m", "min", "minor", "maj", "major", "mix", "mixolydian", "dor", "dorian", "aeo", "aeolian", "phr",
          "phrygian", "lyd", "lydian", "loc", "locrian", "ion", "ionian")
KEY_VALUES = frozenset(
    [f"{t}{a}{sep}{spelt}" for t in "ABCDEFG" for a in ("", "#", "b") for m in _MODES
     for spelt in {m, m.capitalize()} for sep in (("",) if not m else ("", " "))] + ["none", "Hp", "HP"])
METER_VALUES = frozenset(["C", "C|", "none"] + [f"{n}/{d}" for n in range(1, 17) for d in (1, 2, 4, 8, 16)])
LENGTH_VALUES = frozenset(f"1/{d}" for d in (1, 2, 4, 8, 16, 32, 64))
DECORATIONS = frozenset((
    "trill lowermordent uppermordent mordent pralltriller roll turn turnx invertedturn invertedturnx arpeggio > "
    "accent emphasis fermata invertedfermata tenuto 0 1 2 3 4 5 + plus snap slide wedge upbow downbow open thumb "
    "breath pppp ppp pp p mp mf f ff fff ffff sf sfz crescendo( crescendo) <( <) diminuendo( diminuendo) >( >) "
    "segno Segno coda Coda D.S. D.C. dacoda dacapo fine shortphrase mediumphrase longphrase").split())
CHORD_SYMBOLS = frozenset(f"{r}{a}{t}{bass}" for r in "ABCDEFG" for a in ("", "#", "b")
                          for t in ("", "m", "7", "m7", "maj7", "dim", "6", "m6", "9", "sus4")
                          for bass in ("", *(f"/{b}" for b in "ABCDEFG")))
BAR_TOKENS = frozenset(["|", "||", "|]", "[|", "|:", ":|", "::", ":||", ":|]", "||:", ":||:"])
_Q_DEN = r"(?:[1248]|16|32)"  # abc2midi: the note of a tempo is a power of two
_Q_FULL = re.compile(rf'\d{{1,3}}|\d{{1,2}}/{_Q_DEN}=\d{{1,3}}(?: "[A-Za-z ]{{1,30}}")?')
_Q_PREFIX = re.compile(rf'\d{{0,3}}|\d{{1,2}}/(?:1|3|{_Q_DEN})?|\d{{1,2}}/{_Q_DEN}=\d{{0,3}}|'
                       rf'\d{{1,2}}/{_Q_DEN}=\d{{1,3}} (?:"[A-Za-z ]{{0,30}}"?)?')
_PART_FULL = re.compile(r"[A-Z][A-Za-z. ]{0,11}")
_LENGTH = re.compile(r"(\d{0,2})(/{0,2})(\d{0,2})")


def _prefixes(values) -> frozenset:
    return frozenset(v[:i] for v in values for i in range(len(v) + 1))


_KEY_PREFIXES, _METER_PREFIXES = _prefixes(KEY_VALUES), _prefixes(METER_VALUES)
_LENGTH_PREFIXES, _DECORATION_PREFIXES = _prefixes(LENGTH_VALUES), _prefixes(DECORATIONS)
_BAR_PREFIXES, _CHORD_PREFIXES = _prefixes(BAR_TOKENS), _prefixes(CHORD_SYMBOLS)


def value_ok(field: str, value: str, complete: bool) -> bool:
    """Is `value` (typed so far, or `complete`) a value of field `field` the grammar accepts?"""
    if field == "K":
        return value in (KEY_VALUES if complete else _KEY_PREFIXES)
    if field == "M":
        return value in (METER_VALUES if complete else _METER_PREFIXES)
    if field == "L":
        return value in (LENGTH_VALUES if complete else _LENGTH_PREFIXES)
    if field == "X":
        return (value.isdigit() if complete else value == "" or value.isdigit()) and len(value) <= 6
    if field == "Q":
        return bool((_Q_FULL if complete else _Q_PREFIX).fullmatch(value))
    if field == "P":
        return bool(_PART_FULL.fullmatch(value)) if complete else value == "" or bool(_PART_FULL.fullmatch(value))
    if field == "V":
        return (value != "" or not complete) and len(value) <= 12 and all(c.isalnum() for c in value)
    return True  # free text (T:, R:, ...)


def length_ok(text: str, complete: bool) -> bool:
    """A note length suffix: `2`, `3/2`, `/`, `//`, `/4`; at most two digits each side, no zero, a denominator
    a power of two (abc2midi crashes on `E/3`)."""
    m = _LENGTH.fullmatch(text)
    if not m:
        return False
    num, slashes, den = m.groups()
    if den and not slashes or num.startswith("0") or den.startswith("0") or (den and len(slashes) > 1):
        return False
    return not den or (den in _DENOMINATORS if complete else any(d.startswith(den) for d in _DENOMINATORS))


_DENOMINATORS = ("2", "4", "8", "16", "32")


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

    def tuplet_factor_next(self) -> float:
        """The tuplet factor the next note gets."""
        return self.tuplet[1] if self.tuplet[0] else 1.0


START = State("H0")


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
        return _BODY[mode](s, ch)


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
        head = s.head | {"X": 1, "T": 2, "M": 4, "K": 8, "P": 16}.get(field, 0)
        named = set(s.buf) if field == "P" and s.buf.isalpha() and s.buf.isupper() else set()
        parts = s.parts | named
        return s._replace(mode="L0" if field == "K" else "H0", buf="", aux=(), head=head, parts=parts)
    if field in "XMLKQP":
        buf = s.buf + ch
        if len(buf) > MAX_VALUE or not value_ok(field, buf, False):
            return None
        return s._replace(buf=buf)
    return s


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
    if s.mark == "g" and ch in "{~":
        return None  # abc2midi: a note follows grace notes (a roll is written as grace notes)
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
        return s._replace(mode="R", buf="", mark="")
    if ch == "Z":
        if s.tie is not None or s.broken is not None:
            return None
        return s._replace(mode="Z", buf="", mark="")
    if ch == "[":
        return s._replace(mode="B", mark=s.mark if s.mark == "b" else "", prev=None)
    if ch == "(":
        return s._replace(mode="P", prev=None)
    if ch == ")":  # abc2midi reads a `)` that closes no slur, as real tunes have them
        return s._replace(mode="N", slurs=max(s.slurs - 1, 0), mark="")
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
_LENGTH_MARK = {"s": "s", "~": "?"}  # the mark abc2midi's length of a note depends on ("?": unknown)


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
        return s._replace(mode="L0", buf="", aux=(), parts=s.parts - {s.buf} if field == "P" else s.parts)
    buf = s.buf + ch
    if len(buf) > MAX_VALUE or not value_ok(field, buf, False):
        return None
    return s._replace(buf=buf)


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


# --- notes --------------------------------------------------------------------------------------------------------
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


def _place(s: State, length: str, pitch: tuple | None):
    """A note (pitch given) or rest is complete, with `length` as written: broken rhythm and tuplets advance."""
    factor = s.tuplet_factor_next()
    mark = _LENGTH_MARK.get(s.mark, "")
    if s.broken is not None and s.broken[0] != "any" and (
            length != s.broken[0] or factor != s.broken[1] or "?" not in (mark, s.broken[2]) and mark != s.broken[2]):
        return None
    left, tf = s.tuplet
    tuplet = (left - 1, tf) if left > 1 else (0, 1.0)
    prev = None if s.broken is not None else (length, factor, mark)
    rep = s.rep._replace(second_ok=False) if s.rep.second_ok else s.rep
    return s._replace(mode="N", buf="", aux=(), tie=None, prev=prev,
                      broken=None, tuplet=tuplet, mark="", notes=True, rep=rep)


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
        return s._replace(mode="N", buf="", aux=(), parts=s.parts - {s.buf} if field == "P" else s.parts)
    buf = s.buf + ch
    if ch == "\n" or len(buf) > MAX_VALUE or not value_ok(field, buf, False):
        return None
    return s._replace(buf=buf)


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
                   rep=s.rep._replace(second_ok=False))
    return step_body(s, ch)


def _grace(s: State, ch: str):
    if ch == "/" and not s.aux and not s.buf:
        return s._replace(buf="/")
    if ch == "}":
        return s._replace(mode="N", buf="", aux=(), mark="g") if s.aux else None
    if ch in NOTE_LETTERS:
        return _note_letter(s._replace(mode="A", aux=("g", "")), ch)
    if ch in "^_=":
        return _accidental(s, "g", ch)
    return None


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


# --- slurs, tuplets, broken rhythm ------------------------------------------------------------------------------
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


def step_body(s: State, ch: str):
    return _BODY[s.mode](s, ch)


_BODY = {"L0": _l0, "L1": _l1, "LF": _lf, "BV": _bv, "N": _neutral, "C": _comment, "BS": _backslash, "Q": _quote,
         "D": _decoration, "A": _after_accidental, "T": _in_note, "E": _after_tie, "R": _rest, "Z": _bar_rest,
         "B": _bracket, "IF": _inline_letter, "IV": _inline_value, "CH": _in_chord, "CL": _chord_length,
         "G": _grace, "BR": _bar, "ED": _ending_after, "P": _paren, "TP": _tuplet, "BK": _in_broken}
