"""Transposing ABC tunes: every note, the key and the chord symbols moved by a number of semitones, mode kept.

Pretraining reads each training tune in other keys too (`data.transpose`): the corpus' tunes sit in a handful of
keys (D, G, A, E minor...), so a model trained on them alone learns the tunes of those keys rather than tunes.

How a tune moves by `semitones`:

- The key's tonic moves by the interval and is spelled with the fewest accidentals in the signature (up a
  tritone from G is Db, not C#); the mode and whatever follows it in `K:` (a clef) stay.
- Every note's letter moves by the same number of letter steps as the tonic's, so the tune keeps its spelling
  relative to the key (the leading note of D, C#, becomes B# in C# but E in F); its accidental is whatever makes the
  sounding pitch move by exactly the interval, written where the new key's signature, an earlier accidental in
  the bar, or a tie would not already give it (and always where the tune wrote one).
- Chord symbols (`"Am7/E"`) move their root and bass; annotations (`"^text"`) and other quoted text stay.
- Inline `[K:...]` and `K:` lines in the body change key as they go.

`transpose` returns None when the tune cannot be moved sensibly: a key it cannot spell (`K:none`, the bagpipe
keys, explicit accidentals in `K:`), a note that would need a triple accidental, or a note outside
LOWEST..HIGHEST after the move.
"""

from __future__ import annotations

import re

from rlmusic.abc_fields import ACCIDENTAL, LETTER_SEMITONE, MODE_FIFTHS, TONIC_FIFTHS

LETTERS = "CDEFGAB"
LOWEST, HIGHEST = 48, 88  # C, .. e': the compass of all but ~1 % of the corpus' tunes
INTERVALS = tuple(i for i in range(-5, 7) if i)  # `data.transpose: all`: every key, within half an octave
_WRITE_ACC = {-2: "__", -1: "_", 0: "=", 1: "^", 2: "^^"}
_SYMBOL_ACC = {-1: "b", 0: "", 1: "#"}

_KEY = re.compile(r"^(\s*)([A-G])([#b]?)(\s*)([A-Za-z]*)(.*)$", re.S)
_TOKEN = re.compile(r"""
  (?P<field>\[[A-Za-z]:[^\]\n]*\])
 |(?P<quote>"[^"\n]*"?)
 |(?P<deco>![^!\n]*!|\+[^+\n\]]*\+)
 |(?P<bar>:*\[?\|+\]?:*|::+)
 |(?P<note>(?P<acc>\^\^|\^|__|_|=)?(?P<letter>[A-Ga-g])(?P<oct>[,']*)(?P<tie>[\d/]*-)?)
 |(?P<other>.)
""", re.VERBOSE)
_CHORD_SYMBOL = re.compile(r"^([A-G])([#b]?)([^/\s\"]*)(?:/([A-G])([#b]?))?$")


class Key:
    """A key as transposition needs it: the tonic's letter index and pitch class, mode, and the signature."""

    def __init__(self, letter: int, alter: int, mode: str, rest: str):
        self.letter, self.alter, self.mode, self.rest = letter, alter, mode, rest
        self.pc = (LETTER_SEMITONE[LETTERS[letter]] + alter) % 12
        fifths = TONIC_FIFTHS[LETTERS[letter]] + 7 * alter + _mode_fifths(mode)
        self.fifths = fifths
        order = "FCGDAEB" if fifths > 0 else "BEADGCF"
        self.signature = {ltr: (1 if fifths > 0 else -1) for ltr in order[:min(abs(fifths), 7)]}

    def text(self, lead: str, gap: str) -> str:
        return f"{lead}{LETTERS[self.letter]}{_SYMBOL_ACC[self.alter]}{gap}{self.mode}{self.rest}"


def _mode_fifths(mode: str) -> int:
    word = mode.lower()
    return MODE_FIFTHS[word if word == "m" else word[:3]] if word else 0


def parse_key(value: str) -> tuple[Key, str, str] | None:
    """K: value -> (Key, leading space, space before the mode), or None for a key this module cannot move."""
    m = _KEY.match(value)
    if not m:
        return None
    lead, letter, acc, gap, mode, rest = m.groups()
    word = mode.lower()
    if word and (word != "m" and word[:3] not in MODE_FIFTHS or word.startswith("exp")):
        return None
    if re.search(r"(\^|_|=)[A-Ga-g]", rest):  # explicit accidentals in K:
        return None
    return Key(LETTERS.index(letter), {"#": 1, "b": -1, "": 0}[acc], mode, rest), lead, gap


def moved_key(key: Key, semitones: int) -> tuple[Key, int]:
    """The key `semitones` away, spelled with the fewest accidentals, and the number of letter steps it moved."""
    pc = (key.pc + semitones) % 12
    best = None
    for letter in range(7):
        for alter in (0, 1, -1):
            if (LETTER_SEMITONE[LETTERS[letter]] + alter) % 12 != pc:
                continue
            cand = Key(letter, alter, key.mode, key.rest)
            # fewest accidentals; on a tie (F# / Gb), the spelling whose letter step is closest to the interval
            steps = _letter_steps(letter - key.letter, semitones)
            score = (abs(cand.fifths), abs(steps * 12 / 7 - semitones))
            if best is None or score < best[0]:
                best = (score, cand, steps)
    return best[1], best[2]


def _letter_steps(diff: int, semitones: int) -> int:
    """The signed number of letter steps (diff modulo 7) that comes closest to an interval of `semitones`."""
    k = diff % 7
    return min((k, k - 7, k + 7), key=lambda s: abs(s * 12 / 7 - semitones))


def _natural(degree: int) -> int:
    """MIDI pitch of the natural note `degree` letter steps above C0 (degree 28 is middle C, 60)."""
    return 12 * (degree // 7) + 12 + LETTER_SEMITONE[LETTERS[degree % 7]]


def _degree(letter: str, marks: str) -> int:
    octave = 4 + (letter.islower()) + marks.count("'") - marks.count(",")
    return 7 * octave + LETTERS.index(letter.upper())


def _note_text(degree: int) -> str:
    octave, letter = divmod(degree, 7)
    name = LETTERS[letter]
    if octave >= 5:
        return name.lower() + "'" * (octave - 5)
    return name + "," * (4 - octave)


class _Mover:
    """The state of one transposition: both keys, both sides' accidentals in the bar, ties, the range."""

    def __init__(self, semitones: int):
        self.semitones = semitones
        self.key: Key | None = None
        self.new: Key | None = None
        self.steps = 0
        self.old_bar: dict[int, int] = {}
        self.new_bar: dict[int, int] = {}
        self.tied: tuple[int, int, int] | None = None  # old degree, old and new alteration of a note tied on
        self.low, self.high = 999, -1

    def set_key(self, value: str) -> str | None:
        parsed = parse_key(value)
        if parsed is None:
            return None
        self.key, lead, gap = parsed
        self.new, self.steps = moved_key(self.key, self.semitones)
        return self.new.text(lead, gap)

    def bar(self) -> None:
        self.old_bar.clear()
        self.new_bar.clear()

    def note(self, acc: str | None, letter: str, marks: str, tie: str | None) -> str | None:
        degree = _degree(letter, marks)
        if acc:
            alter = ACCIDENTAL[acc]
            self.old_bar[degree] = alter
        elif self.tied is not None and self.tied[0] == degree:
            alter = self.tied[1]
        else:
            alter = self.old_bar.get(degree, self.key.signature.get(LETTERS[degree % 7], 0))
        pitch = _natural(degree) + alter + self.semitones
        new_degree = degree + self.steps
        new_alter = pitch - _natural(new_degree)
        if abs(new_alter) > 2:
            return None
        self.low, self.high = min(self.low, pitch), max(self.high, pitch)
        if not acc and self.tied is not None and self.tied[0] == degree:
            in_force = self.tied[2]  # a tie holds the pitch across the bar line, on both sides
        else:
            in_force = self.new_bar.get(new_degree, self.new.signature.get(LETTERS[new_degree % 7], 0))
        self.tied = (degree, alter, new_alter) if tie else None
        written = ""
        if acc or new_alter != in_force:
            written = _WRITE_ACC[new_alter]
            self.new_bar[new_degree] = new_alter
        return written + _note_text(new_degree) + (tie or "")

    def symbol(self, text: str) -> str:
        """A chord symbol's root and bass moved as the notes are; other quoted text as it was."""
        m = _CHORD_SYMBOL.match(text)
        if not m:
            return text
        root, acc, kind, bass, bass_acc = m.groups()
        out = self._symbol_note(root, acc) + kind
        return out + ("/" + self._symbol_note(bass, bass_acc) if bass else "")

    def _symbol_note(self, letter: str, acc: str) -> str:
        degree = LETTERS.index(letter) + self.steps
        pitch = LETTER_SEMITONE[letter] + {"#": 1, "b": -1, "": 0}[acc] + self.semitones
        alter = (pitch - LETTER_SEMITONE[LETTERS[degree % 7]] + 6) % 12 - 6
        if abs(alter) > 1:  # Fx or Cbb: spell it the way the key leans
            pc = pitch % 12
            names = [(n, a) for n in LETTERS for a in (0, 1, -1) if (LETTER_SEMITONE[n] + a) % 12 == pc]
            lean = 1 if self.new.fifths >= 0 else -1
            n, a = min(names, key=lambda na: (na[1] != 0, na[1] != lean))
            return n + _SYMBOL_ACC[a]
        return LETTERS[degree % 7] + _SYMBOL_ACC[alter]


def transpose(tune: str, semitones: int, lowest: int = LOWEST, highest: int = HIGHEST) -> str | None:
    """`tune` moved by `semitones` (see the module docstring), or None when it cannot be moved sensibly."""
    if semitones == 0:
        return tune
    mover = _Mover(semitones)
    out = []
    in_body = False
    for line in tune.split("\n"):
        field = re.match(r"^([A-Za-z]):(.*)$", line)
        if field:
            if field.group(1) == "K":
                value = mover.set_key(field.group(2))
                if value is None:
                    return None
                line = "K:" + value
                in_body = True
            out.append(line)
            continue
        if not in_body or line.startswith("%"):
            out.append(line)
            continue
        moved = _move_line(line, mover)
        if moved is None:
            return None
        out.append(moved)
    if mover.key is None or (mover.high >= 0 and (mover.low < lowest or mover.high > highest)):
        return None
    return "\n".join(out)


def _move_line(line: str, mover: _Mover) -> str | None:
    comment = line.find("%")
    body, tail = (line[:comment], line[comment:]) if comment >= 0 else (line, "")
    parts = []
    for m in _TOKEN.finditer(body):
        kind, text = m.lastgroup, m.group()
        if kind == "note":
            text = mover.note(m.group("acc"), m.group("letter"), m.group("oct"), m.group("tie"))
            if text is None:
                return None
        elif kind == "bar":
            mover.bar()
        elif kind == "field" and text[1] == "K":
            value = mover.set_key(text[3:-1])
            if value is None:
                return None
            text = f"[K:{value}]"
        elif kind == "quote" and len(text) > 2 and text.endswith('"') and text[1] not in "^_<>@":
            text = '"' + mover.symbol(text[1:-1]) + '"'
        parts.append(text)
    return "".join(parts) + tail
