"""ABC header fields: keys with modes and explicit accidentals, meters, unit note lengths, note length suffixes.

Each parser returns (value, problem): a problem is a string for `Scan.problems`, never an exception.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

LETTER_SEMITONE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# Fifths from C of each natural tonic, and each mode's offset in fifths from the major mode on the same tonic.
TONIC_FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}
MODE_FIFTHS = {"maj": 0, "ion": 0, "mix": -1, "dor": -2, "aeo": -3, "min": -3, "m": -3, "phr": -4, "lyd": 1,
               "loc": -5}
# Scale degrees (semitones above the tonic) of each mode, for in-key and tonic rules.
MODE_SCALE = {0: (0, 2, 4, 5, 7, 9, 11), -1: (0, 2, 4, 5, 7, 9, 10), -2: (0, 2, 3, 5, 7, 9, 10),
              -3: (0, 2, 3, 5, 7, 8, 10), -4: (0, 1, 3, 5, 7, 8, 10), 1: (0, 2, 4, 6, 7, 9, 11),
              -5: (0, 1, 3, 5, 6, 8, 10)}
SHARP_ORDER, FLAT_ORDER = "FCGDAEB", "BEADGCF"
ACCIDENTAL = {"^": 1, "^^": 2, "_": -1, "__": -2, "=": 0}


@dataclass
class Key:
    """A key: tonic pitch class, mode (as fifths offset, see MODE_FIFTHS) and the signature per letter."""

    tonic: int = 0
    mode: int = 0
    signature: dict[str, int] = field(default_factory=dict)  # letter -> semitone alteration
    name: str = "C"

    @property
    def scale(self) -> frozenset[int]:
        """Pitch classes of the key's scale, explicit accidentals of K: included."""
        base = {(self.tonic + d) % 12 for d in MODE_SCALE[self.mode]}
        natural = {(LETTER_SEMITONE[ltr] + alt) % 12 for ltr, alt in self.signature.items()}
        return frozenset(base | natural) if self.signature and not base >= natural else frozenset(base)


_KEY = re.compile(r"^\s*(?:(?P<none>none|HP|Hp)|(?P<tonic>[A-G])(?P<acc>[#b]?)\s*(?P<mode>[A-Za-z]*))(?P<rest>.*)$")
_EXPLICIT = re.compile(r"(\^\^|\^|__|_|=)([A-Ga-g])")


def parse_key(value: str) -> tuple[Key | None, str | None]:
    """K: field value -> (Key, None) or (None, problem)."""
    m = _KEY.match(value)
    if not m:
        return None, f"unknown key {value!r}"
    if m.group("none"):
        return Key(name=value.strip()), None
    letter, acc, mode_word = m.group("tonic"), m.group("acc"), m.group("mode").lower()
    mode_key = "maj" if not mode_word else ("m" if mode_word == "m" else mode_word[:3])
    explicit_only = mode_word.startswith("exp")  # K:D exp ^f^c: only the accidentals listed
    if explicit_only or mode_word.startswith("clef"):
        mode_key = "maj"
    if mode_key not in MODE_FIFTHS:
        return None, f"unknown mode {mode_word!r} in K:{value}"
    mode = MODE_FIFTHS[mode_key]
    fifths = TONIC_FIFTHS[letter] + (7 if acc == "#" else -7 if acc == "b" else 0) + mode
    signature: dict[str, int] = {}
    if fifths > 0:
        signature = {ltr: 1 for ltr in SHARP_ORDER[:min(fifths, 7)]}
    elif fifths < 0:
        signature = {ltr: -1 for ltr in FLAT_ORDER[:min(-fifths, 7)]}
    explicit = m.group("rest")
    if explicit_only or explicit.strip().lower().startswith("exp"):
        signature = {}
    for a, ltr in _EXPLICIT.findall(explicit):
        signature[ltr.upper()] = ACCIDENTAL[a]
    tonic = (LETTER_SEMITONE[letter] + (1 if acc == "#" else -1 if acc == "b" else 0)) % 12
    return Key(tonic=tonic, mode=MODE_FIFTHS[mode_key], signature=signature, name=value.strip()), None


def parse_meter(value: str) -> tuple[float | None, str | None]:
    """M: value -> (bar length in whole notes, or None for free meter; problem or None)."""
    v = value.strip()
    if v in ("", "none", "None", "NONE"):
        return None, None
    if v == "C":
        return 1.0, None
    if v == "C|":
        return 1.0, None
    m = re.match(r"^\(?([\d+]+)\)?/(\d+)$", v)
    if not m:
        return None, f"bad meter M:{value}"
    num, den = sum(int(x) for x in m.group(1).split("+") if x), int(m.group(2))
    if num == 0 or den == 0:  # M:3/0 would divide by zero; M:0/4 is a bar of no length
        return None, f"bad meter M:{value}"
    return num / den, None


def parse_length(value: str) -> tuple[float | None, str | None]:
    m = re.match(r"^\s*(\d+)/(\d+)\s*$", value)
    if not m or int(m.group(2)) == 0:
        return None, f"bad unit length L:{value}"
    return int(m.group(1)) / int(m.group(2)), None


@functools.lru_cache(maxsize=512)
def length_multiplier(text: str) -> float:
    """ABC note length suffix -> multiplier of the unit length: '' 1, '2' 2, '/' 1/2, '//' 1/4, '3/2' 1.5."""
    if not text:
        return 1.0
    if "/" not in text:
        return float(int(text))
    num, _, den = text.partition("/")
    slashes = text.count("/")
    den_digits = den.lstrip("/")
    n = int(num) if num else 1
    d = int(den_digits) if den_digits else 2 ** slashes
    return n / d if d else 1.0


def default_unit(meter: float | None) -> float:
    return 0.0625 if meter is not None and meter < 0.75 else 0.125


def compound(meter: float | None) -> bool:
    return meter is not None and abs(meter * 8 % 3) < 1e-9 and meter * 8 >= 6


def apply_field(name, value, key, unit, meter):
    """A field met in the body (a line or inline [K:...]): the new (key, unit, meter) and a problem or None."""
    value = value.strip()
    problem = None
    if name == "K":
        new, problem = parse_key(value)
        key = key if problem else new
    elif name == "M":
        new, problem = parse_meter(value)
        meter = meter if problem else new
    elif name == "L":
        new, problem = parse_length(value)
        unit = unit if problem else new
    return key, unit, meter, problem
