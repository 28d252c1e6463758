"""A fast ABC scanner: tune text -> header fields, note events and bars, plus a list of problems.

music21's parser takes 25-35 ms per folk tune and accepts junk such as `]]]] zz(((` silently. Rewards in the RL
loop need something two orders of magnitude faster that also says what is wrong, so this scanner reads one tune
with one compiled regular expression and never raises on bad input: malformed text ends up in `Scan.problems`.

What it understands (ABC 2.1):
- header fields up to K:; M: (`C`, `C|`, `none`, `6/8`), L: (or the standard's default from M:), K: with
  modes (maj ion mix dor aeo m min phr lyd loc) and explicit accidentals (`K:D exp ^c`, `K:Ddor ^f`);
- notes with accidentals (carried through the bar for the same letter and octave), octave marks, lengths
  (`2`, `/`, `//`, `3/2`), broken rhythm `>`/`<`, tuplets `(3` and `(p:q:r`, ties `-`;
- rests `z`/`x` and bar rests `Z`; chords `[CEG]` (the chord's highest note is its melody note: `Note.pitch`;
  all its notes are in `Note.chord`); grace notes `{...}` ignored; decorations, chord symbols and annotations
  skipped; inline fields `[K:...]` `[M:...]` `[L:...]` and body field lines applied;
- bar lines, repeats (`|:` `:|` `::`), endings (`[1` `|2`), the bar index and the position in the bar of each note,
  and the character span of each note in the text.

Durations are floats in whole notes (a quarter note is 0.25).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# parse_key, parse_meter and parse_length are part of this module's interface too.
from rlmusic.abc_checks import Ties, bar_marks, length_mark, repeat_problems, unequal_for_broken_rhythm
from rlmusic.abc_fields import (ACCIDENTAL, LETTER_SEMITONE, Key, apply_field, compound,  # noqa: F401
                                default_unit, length_multiplier, parse_key, parse_length, parse_meter)

# letter -> (upper-case letter, octave above middle C's) for the note regex's letter group
_LETTER_OCTAVE = {ltr: (ltr.upper(), 1 if ltr.islower() else 0) for ltr in "ABCDEFGabcdefg"}

@dataclass(slots=True)
class Note:
    pitch: int | None
    """MIDI pitch (middle C = C = 60; c = 72), None for a rest."""
    duration: float
    """In whole notes, after broken rhythm and tuplets."""
    start: float
    """Onset from the start of the tune, in whole notes."""
    bar: int
    """Index of the bar the note is in (0 = the first bar, a pickup included)."""
    pos: float
    """Onset from the start of its bar."""
    span: tuple[int, int]
    """Character offsets [start, end) of the note (or chord) in the tune text."""
    tie: bool = False
    """Tied to the next note."""
    chord: tuple[int, ...] | None = None
    """All pitches when the event is a chord."""


@dataclass(slots=True)
class Bar:
    index: int
    duration: float
    """Sum of the durations of its notes and rests."""
    expected: float | None
    """The meter's bar length in force (None for free meter)."""
    end: int
    """Character offset of the bar line that closes it."""


PROBLEM_KINDS = ("field", "chord", "slur", "tuplet", "broken_rhythm", "grace", "quote", "character", "tie",
                 "repeat", "no_notes")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a tune: what kind, where (character offset in the tune's text), and a message."""

    kind: str
    """One of PROBLEM_KINDS: a header or inline field that does not parse (or no K:), an unbalanced or misplaced
    chord, an unbalanced slur, a bad tuplet, broken rhythm with no note before it or between notes of unequal
    length (abc2midi applies it only to equal ones), unclosed grace notes or quote,
    a character ABC does not know, a tie that the next note does not continue (abc2midi's `Could not find note to
    be tied`), repeats abc2midi cannot play (a `|:` never closed, a first ending after `:|`: abc_checks.py), a
    tune without notes."""
    offset: int
    """Where the problem arises: the offset of the offending character (the end of the text for what is left
    open at the end; for a tie, the note, rest or grace notes that do not continue it); a dense syntax penalty
    is placed here."""
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class Scan:
    fields: dict[str, str] = field(default_factory=dict)
    """Header fields (first value of each), up to and including K:."""
    key: Key | None = None
    meter: float | None = None
    unit: float = 0.125
    notes: list[Note] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    repeats: dict[str, int] = field(default_factory=lambda: {"start": 0, "end": 0, "endings": 0})
    problems: list[Problem] = field(default_factory=list)
    body_start: int = 0
    """Character offset where the music begins (after the K: line)."""

    _melody: list[Note] | None = field(default=None, repr=False, compare=False)
    cache: dict = field(default_factory=dict, repr=False, compare=False)
    """Values derived from the scan by rewards (computed once, shared by every reward that needs them)."""

    @property
    def pitched(self) -> list[Note]:
        return [n for n in self.notes if n.pitch is not None]

    def melody(self) -> list[Note]:
        """Pitched notes with ties merged: a tied pair sounds as one note. Computed once per scan."""
        if self._melody is not None:
            return self._melody
        out: list[Note] = []
        tied = False
        for n in self.notes:
            if n.pitch is None:
                continue
            if tied and out and out[-1].pitch == n.pitch:
                prev = out[-1]
                out[-1] = Note(prev.pitch, prev.duration + n.duration, prev.start, prev.bar, prev.pos,
                               (prev.span[0], n.span[1]), n.tie, prev.chord)
            else:
                out.append(n)
            tied = n.tie
        self._melody = out
        return out

    def melody_pitches(self) -> list[int]:
        return [n.pitch for n in self.melody()]


_TOKEN = re.compile(r"""
  (?P<field>\[[A-Za-z]:[^\]\n]*\])
 |(?P<quote>"[^"\n]*"?)
 |(?P<deco>![^!\n]*!|\+[^+\n\]]*\+)
 |(?P<grace>\{[^}\n]*\}?)
 |(?P<bar>:*\[?\|+\]?:*|::+)(?P<ending>\d+(?:[,-]\d+)*)?
 |(?P<ending2>\[\d+(?:[,-]\d+)*)
 |(?P<tuplet>\((?P<p>\d)(?::(?P<q>\d*))?(?::(?P<r>\d*))?)
 |(?P<slur_open>\()
 |(?P<slur_close>\))
 |(?P<chord_open>\[)
 |(?P<chord_close>\](?P<chord_len>\d*/*\d*)(?P<chord_tie>-)?)
 |(?P<note>(?P<acc>\^\^|\^|__|_|=)?(?P<letter>[A-Ga-g])(?P<oct>[,']*)(?P<len>\d*/*\d*)(?P<tie>-)?)
 |(?P<rest>[zx](?P<rest_len>\d*/*\d*))
 |(?P<bar_rest>Z(?P<bars>\d*))
 |(?P<broken>[<>]+)
 |(?P<skip>[\s\\`y.~HLMOPSTuvJR]+)
 |(?P<lone_tie>-)
 |(?P<other>.)
""", re.VERBOSE)

_FIELD_LINE = re.compile(r"^([A-Za-z]):(.*)$")
_TUPLET_Q = {2: 3, 3: 2, 4: 3, 6: 2, 8: 3}


def scan(text: str, carry_accidentals: bool = True) -> Scan:
    """Scan one tune. Never raises on malformed ABC: what is wrong goes to `.problems`.

    `carry_accidentals`: an accidental holds for the same letter and octave until the bar line, as the ABC
    standard and abc2midi have it. music21's ABC reader applies it to the one note only; pass False to match it.
    """
    out = Scan()
    lines = text.split("\n")
    offset, i = 0, 0
    unit_given = False
    # --- header -----------------------------------------------------------------------------------------------
    while i < len(lines):
        line = lines[i]
        m = _FIELD_LINE.match(line)
        if not m:
            if line.strip() and not line.startswith("%"):
                break
            offset += len(line) + 1
            i += 1
            continue
        name, value = m.group(1), m.group(2).strip()
        out.fields.setdefault(name, value)
        problem = None
        if name == "M":
            out.meter, problem = parse_meter(value)
        elif name == "L":
            unit, problem = parse_length(value)
            if not problem:
                out.unit, unit_given = unit, True
        elif name == "K":
            out.key, problem = parse_key(value)
        if problem:
            out.problems.append(Problem("field", offset, problem))
        offset += len(line) + 1
        i += 1
        if name == "K":
            break
    if not unit_given:
        out.unit = default_unit(out.meter)
    out.body_start = min(offset, len(text))
    if "K" not in out.fields:
        out.problems.append(Problem("field", out.body_start, "no K: field ends the header"))
    if out.key is None:
        out.key = Key()
    _scan_body(text, out, i, offset, lines, carry_accidentals)
    # in the order they arise (what is found at the end, open repeats and slurs, at its offset): the first problem
    # is where a dense penalty goes
    out.problems.sort(key=lambda p: p.offset)
    return out


def _scan_body(text: str, out: Scan, first_line: int, offset: int, lines: list[str], carry: bool) -> None:
    key, unit, meter = out.key, out.unit, out.meter
    time = bar_start = 0.0
    bar = 0
    bar_accidentals: dict[tuple[str, int], int] = {}
    notes = out.notes
    problems = out.problems

    def problem(kind: str, at: int, message: str) -> None:
        problems.append(Problem(kind, at, message))
    tuplet_left, tuplet_factor = 0, 1.0
    pending_broken = 1.0
    chord: list | None = None
    slurs = 0
    seen_note_in_bar = False
    tied_from: tuple[str, int, int] | None = None  # letter, octave, alteration of a note tied to the next
    ties = Ties(problem)  # what abc2midi rejects in ties, at the note that breaks one (rlmusic/abc_checks.py)
    repeat_marks: list[tuple[int, str]] = []  # repeat marks and endings, in order, for abc_checks.repeat_problems

    # abc2midi applies `>`/`<` only between notes (or rests) of equal length as they stand, tuplets and an
    # earlier `>` applied: `A2>B`, `A>B>c` and `A>(3BAG` are errors there, `A>B`, `(3A>BA`, `[CE]2>G` are not.
    broken_prev: tuple[float, str] | None = None  # the note before a pending `>`: length, mark; None: a chord
    broken_at = 0

    def place(pitch, duration, span, tie, chord_pitches):
        nonlocal time, tuplet_left, pending_broken, seen_note_in_bar
        if tuplet_left:
            duration *= tuplet_factor
            tuplet_left -= 1
        if (pending_broken != 1.0 and broken_prev is not None and chord_pitches is None
                and unequal_for_broken_rhythm(broken_prev, (duration, length_mark(text, span[0])))):
            problem("broken_rhythm", span[0], f"broken rhythm at {broken_at} between notes of unequal length")
        duration *= pending_broken
        pending_broken = 1.0
        notes.append(Note(pitch, duration, time, bar, time - bar_start, span, tie, chord_pitches))
        time += duration
        seen_note_in_bar = True

    def close_bar(end):
        nonlocal bar, bar_start, seen_note_in_bar
        if seen_note_in_bar:
            out.bars.append(Bar(bar, time - bar_start, meter, end))
            bar += 1
        bar_start = time
        seen_note_in_bar = False
        bar_accidentals.clear()

    def pitch_of(acc, letter, marks) -> tuple[str, int, int]:
        upper, octave = _LETTER_OCTAVE[letter]
        if marks:
            octave += marks.count("'") - marks.count(",")
        if acc:
            alter = ACCIDENTAL[acc]
            if carry:
                bar_accidentals[(upper, octave)] = alter
        elif tied_from is not None and tied_from[0] == upper and tied_from[1] == octave:
            alter = tied_from[2]  # a tie holds the pitch across the bar line
        elif bar_accidentals:
            alter = bar_accidentals.get((upper, octave), key.signature.get(upper, 0))
        else:
            alter = key.signature.get(upper, 0)
        return upper, octave, alter

    for li in range(first_line, len(lines)):
        line = lines[li]
        fm = _FIELD_LINE.match(line)
        if fm:
            key, unit, meter, bad = apply_field(fm.group(1), fm.group(2), key, unit, meter)
            if bad:
                problem("field", offset, bad)
            offset += len(line) + 1
            continue
        comment = line.find("%")
        if comment >= 0 and (comment == 0 or line[comment - 1] != "\\"):
            line = line[:comment]
        for m in _TOKEN.finditer(line):
            kind = m.lastgroup
            if kind == "ending":  # `|1`, `:|2`: a bar line with an ending number (the last group matched)
                kind = "bar"
            if kind == "skip":  # spaces and decorations: the most common token after notes
                if ties.pending and "~" in m.group():
                    ties.roll(offset + m.start())
                continue
            a, b = offset + m.start(), offset + m.end()
            if kind == "note":
                acc, letter, marks, length, tie = m.group("acc", "letter", "oct", "len", "tie")
                upper, octave, alter = pitch_of(acc, letter, marks)
                p = 60 + 12 * octave + LETTER_SEMITONE[upper] + alter
                tie = tie is not None
                tied_from = (upper, octave, alter) if tie else None
                dur = unit * length_multiplier(length)
                if chord is not None:
                    chord.append((p, dur, tie, upper, octave))
                    continue
                ties.last = [(p, upper, octave)]
                if ties.pending:
                    ties.event(ties.last, a, bar, "note")
                if tie:
                    ties.tie(ties.last, a, bar, staccato=m.start() > 0 and line[m.start() - 1] == ".")
                if tuplet_left or pending_broken != 1.0:
                    place(p, dur, (a, b), tie, None)
                else:  # the common case, inlined
                    notes.append(Note(p, dur, time, bar, time - bar_start, (a, b), tie, None))
                    time += dur
                    seen_note_in_bar = True
            elif kind == "rest":
                if chord is not None:
                    problem("chord", a, f"rest inside a chord at {a}")
                    continue
                if ties.pending:
                    ties.event([], a, bar, "rest")
                ties.last = []
                place(None, unit * length_multiplier(m.group("rest_len")), (a, b), False, None)
            elif kind == "bar_rest":
                n = int(m.group("bars") or 1)
                if ties.pending:
                    ties.event([], a, bar, "rest")
                ties.last = []
                place(None, (meter or 1.0) * n, (a, b), False, None)
            elif kind == "bar":
                if chord is not None:
                    problem("chord", a, f"bar line inside a chord at {a}")
                    chord = None
                token = m.group("bar")
                if token.startswith(":"):
                    out.repeats["end"] += 1
                if token.endswith(":"):
                    out.repeats["start"] += 1
                    repeat_marks.extend((a, mark) for mark in bar_marks(token))
                elif token.startswith(":"):
                    repeat_marks.append((a, "end"))
                if m.group("ending"):
                    out.repeats["endings"] += 1
                    repeat_marks.append((a, "ending"))
                close_bar(a)
            elif kind == "ending2":
                out.repeats["endings"] += 1
                repeat_marks.append((a, "ending"))
            elif kind == "chord_open":
                if chord is not None:
                    problem("chord", a, f"chord opened inside a chord at {a}")
                chord = []
                chord_start = a
            elif kind == "chord_close":
                if chord is None:
                    problem("chord", a, f"']' without an open chord at {a}")
                    continue
                if not chord:
                    problem("chord", chord_start, f"empty chord at {chord_start}")
                    chord = None
                    continue
                mult = length_multiplier(m.group("chord_len"))
                pitches = tuple(c[0] for c in chord)
                ties.last = [(p, up, o) for p, _, _, up, o in chord]
                if ties.pending:
                    ties.event(ties.last, chord_start, bar, "chord")
                if m.group("chord_tie"):  # `[DG]-` ties every note of the chord
                    ties.tie(ties.last, chord_start, bar)
                elif any(c[2] for c in chord):  # `[D-G]` ties the D only
                    ties.tie([e for c, e in zip(chord, ties.last) if c[2]], chord_start, bar)
                place(max(pitches), chord[0][1] * mult, (chord_start, b),
                      bool(m.group("chord_tie")) or any(c[2] for c in chord), pitches)
                chord = None
            elif kind == "tuplet":
                p_ = int(m.group("p"))
                q_ = int(m.group("q")) if m.group("q") else _TUPLET_Q.get(p_, 3 if compound(meter) else 2)
                r_ = int(m.group("r")) if m.group("r") else p_
                if p_ < 2:
                    problem("tuplet", a, f"bad tuplet ({p_} at {a}")
                    continue
                tuplet_left, tuplet_factor = r_, q_ / p_
            elif kind == "broken":
                n = len(m.group("broken"))
                if not notes or chord is not None:
                    problem("broken_rhythm", a, f"broken rhythm without a note before it at {a}")
                    continue
                long_f, short_f = 2 - 0.5 ** n, 0.5 ** n
                first, second = (long_f, short_f) if m.group("broken")[0] == ">" else (short_f, long_f)
                prev = notes[-1]
                broken_prev = (prev.duration, length_mark(text, prev.span[0])) if prev.chord is None else None
                broken_at = a
                extra = prev.duration * (first - 1)
                prev.duration *= first
                time += extra
                pending_broken = second
            elif kind == "slur_open":
                slurs += 1
            elif kind == "slur_close":
                if slurs == 0:
                    problem("slur", a, f"')' closes no slur at {a}")
                else:
                    slurs -= 1
            elif kind == "field":
                inner = m.group("field")[1:-1]
                key, unit, meter, bad = apply_field(inner[0], inner[2:], key, unit, meter)
                if bad:
                    problem("field", a, bad)
            elif kind == "grace":
                if not m.group("grace").endswith("}"):
                    problem("grace", a, f"unclosed grace notes at {a}")
                if ties.pending:  # the first grace note is the next note: `d3-{d}d` is continued, `d3-{e}d` is not
                    first = _TOKEN.search(m.group("grace"), 1)
                    if first is not None and first.lastgroup == "note":
                        up, o, alt = pitch_of(*first.group("acc", "letter", "oct"))
                        ties.event([(60 + 12 * o + LETTER_SEMITONE[up] + alt, up, o)], a, bar, "grace note")
            elif kind == "lone_tie":  # a tie apart from its note
                ties.lone(a, bar, line[:m.start()].rstrip().endswith("}"))
            elif kind == "quote":
                if not m.group("quote").endswith('"') or len(m.group("quote")) == 1:
                    problem("quote", a, f"unclosed quote at {a}")
            elif kind == "other":
                problem("character", a, f"unexpected character {m.group('other')!r} at {a}")
        offset += len(lines[li]) + 1
    ties.end(len(text))
    if "V:" not in text:  # abc2midi reads repeats voice by voice; the scanner does not tell voices apart
        for at, message in repeat_problems(repeat_marks, len(text)):
            problem("repeat", at, message)
    if chord is not None:
        problem("chord", chord_start, "chord not closed at the end of the tune")
    if slurs:
        problem("slur", len(text), f"{slurs} slur(s) not closed at the end of the tune")
    if seen_note_in_bar:
        out.bars.append(Bar(bar, time - bar_start, meter, len(text)))
    if not notes:
        problem("no_notes", len(text), "no notes")
