"""What the ABC grammar (rlmusic/grammar.py) accepts inside a token: field values abc2midi knows, note lengths,
decorations, chord symbols, bar lines, as finite sets or patterns with their prefixes (a value typed so far must be
a prefix of one of them, so the machine can refuse a character the moment no valid value starts so)."""

from __future__ import annotations

import re

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
