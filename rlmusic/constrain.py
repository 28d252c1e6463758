"""The ABC grammar compiled for one vocabulary: at every step, the characters that keep a tune valid.

Outlines and XGrammar compile a grammar into tables once and apply a mask per step; here the states of
rlmusic/grammar.py are numbered as they are met (lazily: the state space of real tunes is small, the state space
of all strings is not) and each state's row of two tables is filled once, on first use:

- `next[s, v]`: the state after character v, or -1 where v cannot continue a valid tune;
- `cost[s, v]`: 1 + the length of a shortest known way from that state to the end of the tune (a blank line), or
  a large number where v is not allowed.

A masked step is then two look-ups: `next[s, v]` for the character drawn, `cost[s', :] <= characters left` for the
mask. The length bound keeps every tune within `max_length`: a character is allowed only if the tune can still end
in the characters left, and a way to the end is always allowed (no dead ends). Ways to the end come from
`close_char`, which writes, one character at a time, an obvious close of what is open (a chord, a tie, a repeat,
...); `CompiledGrammar.distance` walks it on the machine, and a state it cannot close is treated as a dead end and
never entered.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from rlmusic.errors import UserError
from rlmusic.grammar import END, START, AbcGrammar, State
from rlmusic.grammar_values import (_DENOMINATORS, BAR_TOKENS, CHORD_SYMBOLS, DECORATIONS, KEY_VALUES,
                                    LENGTH_VALUES, METER_VALUES, length_ok, value_ok)

BLOCKED = np.int32(1 << 30)
"""`cost` of a character that is not allowed."""
MAX_CLOSE = 96  # a longer close is not looked for (the closes the grammar needs are a few characters)
_FILL = (" ", "\n", "|", "]", "}", '"', "!", ":", "1")  # tried when the close rule's character is refused

_VALUE_SETS = {"K": KEY_VALUES, "M": METER_VALUES, "L": LENGTH_VALUES}


@lru_cache(maxsize=4096)
def _completion(values, prefix: str, allowed=None) -> str | None:
    """The rest of the shortest of `values` that starts with `prefix` (and is written in `allowed` characters)."""
    best = min((v for v in values if v.startswith(prefix) and (allowed is None or set(v) <= allowed)),
               key=len, default=None)
    return None if best is None else best[len(prefix):]


def _value_char(field: str, buf: str, parts, allowed=None) -> str | None:
    """The next character of a short valid value of `field` after `buf`, or None when `buf` is complete."""
    if value_ok(field, buf, True) and not (field == "P" and parts and buf not in parts):
        return None
    if field in _VALUE_SETS:
        rest = _completion(_VALUE_SETS[field], buf, allowed)
        return rest[0] if rest else None
    if field == "X" or field == "V":
        return "1"
    if field == "P":
        return sorted(parts)[0] if parts and not buf else "A"
    if field == "Q":
        for ch in "4/=1":  # 1/4=120 from any prefix the Q: grammar accepts
            if value_ok("Q", buf + ch, False):
                return ch
    return None


def _note_letter(s: State, allowed=None) -> str:
    """The tied note's letter, or a note letter of the vocabulary."""
    if s.tie is not None:
        return s.tie[0]
    return next((c for c in "cdefgabCDEFGAB" if allowed is None or c in allowed), "c")


def close_char(s: State, allowed=None) -> str | None:
    """The next character of an obvious way to close the tune from state `s`, in `allowed` characters where
    there is a choice (the caller checks it on the machine)."""
    mode, aux = s.mode, s.aux
    if mode == "H0":
        return "X" if not s.head & 1 else "T" if not s.head & 2 else "M" if not s.head & 4 else "K"
    if mode in ("H1", "IF"):
        return ":"
    if mode in ("HV", "BV", "IV"):
        ch = _value_char(aux[0], s.buf, s.parts, allowed)
        return ch if ch is not None else ("]" if mode == "IV" else "\n")
    if mode == "LF":
        return ":"
    if mode == "Q":
        annotation = s.buf[:1] in ("^", "_", "<", ">", "@")
        if annotation or s.buf in CHORD_SYMBOLS:
            return '"'
        rest = _completion(CHORD_SYMBOLS, s.buf, allowed)
        return rest[0] if rest else None
    if mode == "D":
        rest = "!" if s.buf in DECORATIONS else _completion(DECORATIONS, s.buf, allowed)
        return rest[0] if rest else None
    if mode in ("C", "BS"):
        return "\n"
    if mode == "A":
        return _note_letter(s if aux[0] != "c" else s._replace(tie=None), allowed)
    if mode == "T":
        return _close_note(s)
    if mode in ("E", "ED", "Z", "TP"):
        return " "
    if mode == "R":
        if s.broken is not None and s.broken[0] != "any" and s.buf != s.broken[0]:
            return s.broken[0][len(s.buf)]
        return _close_length(s.buf) or " "
    if mode == "B":
        return "|" if s.tie is not None else _note_letter(s, allowed)
    if mode == "CH":
        return "]" if s.chord else _note_letter(s._replace(tie=None), allowed)
    if mode == "CL":
        return _close_length(s.buf) or " "
    if mode == "G":
        return "}" if aux else _note_letter(s, allowed)
    if mode == "BR":
        return " " if s.buf in BAR_TOKENS else "|"
    if mode in ("P", "BK"):
        return _note_letter(s, allowed)
    if mode == "L1":
        return " "
    return _close_neutral(s, allowed)  # N, L0


def _close_length(buf: str) -> str | None:
    if length_ok(buf, True):
        return None
    den = buf.rsplit("/", 1)[-1]
    return _completion(_DENOMINATORS, den)[0]


def _close_note(s: State) -> str:
    ctx, _, _, marks = s.aux
    if ctx != "c" and s.tie is not None and marks != s.tie[1]:
        return s.tie[1][len(marks)]
    if ctx == "n" and s.broken is not None and s.broken[0] != "any" and s.buf != s.broken[0]:
        return s.broken[0][len(s.buf)]
    rest = _close_length(s.buf)
    if rest:
        return rest
    return {"n": " ", "c": "]", "g": "}"}[ctx]


def _close_neutral(s: State, allowed=None) -> str:
    if s.tie is not None:
        return s.tie[2][:1] or s.tie[0]
    if s.mark in ("s", "~", "d", "b", "g") or s.broken is not None or s.tuplet[0] or not s.notes:
        return _note_letter(s, allowed)
    if s.rep.first_open or s.rep.open:
        return ":"
    if s.parts and s.mode == "L0":
        return "P"
    return "\n"


class CompiledGrammar:
    """The grammar's tables for one vocabulary (`chars`, in id order), filled as states are met."""

    def __init__(self, chars: list[str], grammar: AbcGrammar | None = None):
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}
        self.charset = frozenset(self.chars)
        self.grammar = grammar or AbcGrammar()
        self.states: list = []
        self.ids: dict = {}
        self._dist: dict = {END: 0}
        # rows of the tables for the states whose row has been filled (a state met only as a neighbour gets an id,
        # not a row): row_of[state id] -> row, or -1
        self.row_of = np.full(1024, -1, np.int64)
        self.next = np.full((256, len(self.chars)), -1, np.int32)
        self.cost = np.full((256, len(self.chars)), BLOCKED, np.int32)
        self.rows = 0
        self.end_id = self.state_id(END)

    # --- states ------------------------------------------------------------------------------------------------
    def state_id(self, state) -> int:
        sid = self.ids.get(state)
        if sid is None:
            sid = len(self.states)
            self.ids[state] = sid
            self.states.append(state)
            if sid >= len(self.row_of):
                self.row_of = np.concatenate([self.row_of, np.full(len(self.row_of), -1, np.int64)])
        return sid

    def distance(self, state) -> int | None:
        """Characters from `state` to the end of the tune along its close (None: no close found)."""
        if state in self._dist:
            return self._dist[state]
        path, s = [], state
        while s not in self._dist:
            if len(path) >= MAX_CLOSE:
                s = None
                break
            path.append(s)
            s = self._close_step(s, path)
            if s is None:
                break
        known = None if s is None else self._dist[s]
        for i, p in enumerate(reversed(path)):  # every state on the way learns its distance too
            self._dist[p] = None if known is None else known + i + 1
        return self._dist[state]

    def _close_step(self, s: State, path: list) -> State | None:
        """The state after the next character of `s`'s close: the close rule's character if the machine and the
        vocabulary take it, else the first of a few fillers that leads somewhere new."""
        step = self.grammar.step
        first = close_char(s, self.charset)
        for ch in (first, *_FILL):
            if ch not in self.index:
                continue
            t = step(s, ch)
            if t is not None and (t is END or t not in path):
                return t
        return None

    def fill(self, sid: int) -> int:
        """Fill state `sid`'s row of `next` and `cost`; returns the row."""
        if self.rows == len(self.next):
            self.next = np.concatenate([self.next, np.full_like(self.next, -1)])
            self.cost = np.concatenate([self.cost, np.full_like(self.cost, BLOCKED)])
        row = self.rows
        state = self.states[sid]
        step = self.grammar.step
        for v, ch in enumerate(self.chars):
            t = step(state, ch) if state is not END else None
            if t is None:
                continue
            d = self.distance(t)
            if d is None:
                continue  # a dead end: never entered
            self.next[row, v] = self.state_id(t)
            self.cost[row, v] = 1 + d
        self.row_of[sid] = row
        self.rows += 1
        return row

    def rows_of(self, sids: np.ndarray) -> np.ndarray:
        """The table rows of states `sids`, filling those not filled yet."""
        rows = self.row_of[sids]
        if (rows < 0).any():
            for sid in np.unique(sids[rows < 0]):
                self.fill(int(sid))
            rows = self.row_of[sids]
        return rows

    def start(self, primer: str) -> int:
        """The state id after `primer`; an error when no valid tune starts with it."""
        state = START
        for i, ch in enumerate(primer):
            if ch not in self.index:
                raise UserError(f"primer: {ch!r} is not in the model's vocabulary")
            state = self.grammar.step(state, ch)
            if state is None or state is END:
                raise UserError(f"primer: no valid ABC tune starts with {primer[:i + 1]!r} (constrain none, "
                                "--constrain none on the command line, draws without the grammar)")
        if self.distance(state) is None:
            raise UserError(f"primer: a tune starting {primer!r} cannot be ended with this vocabulary (it lacks "
                            "characters a valid ABC tune needs; constrain none draws without the grammar)")
        return self.state_id(state)

    # --- batches -----------------------------------------------------------------------------------------------
    def masks(self, sids: np.ndarray, left) -> np.ndarray:
        """[B, V] allowed characters for rows in states `sids` with `left` characters still to write (scalar or
        [B]); a row at the end of its tune allows everything (its characters are padding)."""
        left = np.asarray(left).reshape(-1, 1) if np.ndim(left) else left
        rows = self.rows_of(sids)  # before reading the table: filling may grow it
        out = self.cost[rows] <= left
        out[sids == self.end_id] = True
        return out

    def mask_one(self, sid: int, left: int) -> np.ndarray:
        """`masks` for one state (the environment's step: no batch to gather)."""
        row = self.row_of[sid]
        if row < 0:
            row = self.fill(sid)
        return self.cost[row] <= left if sid != self.end_id else np.ones(len(self.chars), bool)

    def step_one(self, sid: int, action: int) -> int:
        """`advance` for one state; -1 where the character is not allowed."""
        if sid == self.end_id:
            return sid
        row = self.row_of[sid]
        if row < 0:
            row = self.fill(sid)
        return int(self.next[row, action])

    def advance(self, sids: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The next state ids of rows in `sids` that write `actions`; rows at the end stay there. A character
        the mask did not allow is an error (the caller applied no mask)."""
        rows = self.rows_of(sids)
        nxt = self.next[rows, actions]
        nxt = np.where(sids == self.end_id, self.end_id, nxt)
        if (nxt < 0).any():
            row = int(np.argmax(nxt < 0))
            raise ValueError(f"character {self.chars[int(actions[row])]!r} is not allowed here by the ABC grammar")
        return nxt


@lru_cache(maxsize=8)
def compiled(chars: tuple[str, ...]) -> CompiledGrammar:
    """One compiled grammar per vocabulary in a process: sampler, environments and policy share its tables."""
    return CompiledGrammar(list(chars))


CONSTRAINTS = ("syntax", "none")


def check_constrain(value: str, what: str = "--constrain") -> str:
    if value not in CONSTRAINTS:
        raise UserError(f"{what} {value}: expected one of {', '.join(CONSTRAINTS)}")
    return value
