"""One reward mix: reward names and weights resolved once, scored together, combined into one number per tune.

    mix = RewardMix({"valid": 1.0, "in_key": 1.0}, gates="valid")
    scores = mix.score(tunes)            # [{"valid": 1.0, "in_key": 0.9}, ...]: each reward's score per tune
    mix.total(scores[0])                 # the weighted sum, the non-gate rewards scaled by the gates' product

A gate written `name@floor` is soft: it scales the others by floor + (1 - floor) x its score, so a tune it
scores 0 keeps `floor` of their reward instead of nothing (`form@0.5`: a tune that `form` scores 0 keeps half).

The environment, fine-tuning's log and `evaluate --rewards` share this object, so a tune is scored the same way
everywhere. A reward that raises, returns something other than one finite number (or None) per tune, or runs
longer than `time_limit` seconds on one batch is an error naming it (rlmusic.rewards.registry.check_scores).
"""

from __future__ import annotations

import threading
import time

from rlmusic.errors import UserError
from rlmusic.interrupts import INTERRUPTED, Interrupted
from rlmusic.rewards.registry import PLUGIN_ESCAPES, RewardInfo, reraise_signal, escaped, get, score

DEFAULT_TIME_LIMIT = 120.0  # seconds per reward per batch: generous (abc2midi on 64 tunes takes ~0.1 s)

# INTERRUPTED (set at once on Ctrl-C or SIGTERM, rlmusic/interrupts.py) stops a wait for a reward on a thread other
# than the main one, where Python delivers no KeyboardInterrupt (the environment is stepped from inside
# TensorFlow's compiled loop).


def parse_gates(gates: str | list[str] | None) -> dict[str, float]:
    """Gate name -> floor, from "valid, form@0.5" (or a list of such entries); a bad floor is an error naming
    the gate."""
    entries = gates.split(",") if isinstance(gates, str) else list(gates or [])
    floors: dict[str, float] = {}
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        name, soft, floor = entry.partition("@")
        try:
            value = float(floor) if soft else 0.0
        except ValueError:
            value = float("nan")
        if not 0.0 <= value < 1.0:
            raise UserError(f"gate {entry}: the floor after @ must be a number in [0, 1), got {floor!r}")
        floors[name.strip()] = value
    return floors


class RewardMix:
    def __init__(self, weights: dict[str, float], gates: str | list[str] | None = None,
                 time_limit: float | None = DEFAULT_TIME_LIMIT, context: dict | None = None):
        self.weights = dict(weights)
        self.context = dict(context or {})
        """Keyword arguments every reward receives (a call's own context wins): `finetune` passes `real_tunes`."""
        self.floors = parse_gates(gates)
        """Each gate's floor: 0 for a hard gate, the `@floor` of a soft one."""
        for g in self.floors:
            self.weights.setdefault(g, 0.0)  # scored for the gate, adds nothing by itself
        for name, w in self.weights.items():
            if not isinstance(w, (int, float)) or w != w or w in (float("inf"), float("-inf")):
                raise UserError(f"rewards.{name}: the weight must be a finite number, got {w!r}")
        # Resolved once: unknown names fail here, listing the valid ones; no lookups when scoring.
        self.infos: dict[str, RewardInfo] = {name: get(name) for name in self.weights}
        self.time_limit = time_limit
        self.failure: UserError | None = None
        """The last error scoring raised: callers that score inside TensorFlow (which re-wraps exceptions) read
        it to report the plugin by name."""

    @property
    def names(self) -> list[str]:
        return list(self.weights)

    @property
    def gates(self) -> list[str]:
        return list(self.floors)

    def score(self, tunes: list[str], **context) -> list[dict[str, float | None]]:
        """Each reward's score of each tune (one scan per tune, shared by all rewards)."""
        from rlmusic.abc import scan

        context = {**self.context, **context}
        context.setdefault("scans", [scan(t) for t in tunes])
        try:
            per_reward = self._run_all(tunes, context)
        except UserError as exc:
            self.failure = exc
            raise
        return [{name: per_reward[name][i] for name in self.weights} for i in range(len(tunes))]

    def total(self, scores: dict[str, float | None]) -> float:
        """The weighted sum of one tune's scores, the non-gate ones scaled by the product of the gates' factors
        (a hard gate's score; a soft one's floor + (1 - floor) x score). A gate scoring None (abc2midi where it is
        not installed) does not apply and lets the tune pass. A reward weighted below 0 is a charge, not scaled:
        the gates scale what a tune earns, and a charge they scaled would be escaped by breaking the tune."""
        gate = 1.0
        for g, floor in self.floors.items():
            if scores[g] is not None:
                gate *= floor + (1.0 - floor) * scores[g]
        return sum(self.weights[n] * v * (1.0 if n in self.floors or self.weights[n] < 0 else gate)
                   for n, v in scores.items() if v is not None)

    @property
    def dense_names(self) -> list[str]:
        """The rewards that offer a per-position form (`reward.per_note`)."""
        return [n for n, info in self.infos.items() if callable(getattr(info.fn, "per_note", None))]

    def dense(self, tunes: list[str], **context) -> list[list[tuple[int, float]]]:
        """Per tune, (character offset, credit) where the dense forms place credit: each reward's per-note
        credits times its weight (a gate counts with weight 1 - floor: its penalty is where the tune broke).
        Offsets are in each tune's text, the primer included. Guarded like `score` (time limit, errors named)."""
        from rlmusic.abc import scan

        context = {**self.context, **context}
        context.setdefault("scans", [scan(t) for t in tunes])
        calls = []
        for name in self.dense_names:
            info = self.infos[name]
            calls.append((name, info, lambda info=info: _checked_credits(info, info.fn.per_note, tunes, context)))
        try:
            per_reward = self._run_all(tunes, context, calls)
        except UserError as exc:
            self.failure = exc
            raise
        out: list[list[tuple[int, float]]] = [[] for _ in tunes]
        for name, credits in per_reward.items():
            weight = 1.0 - self.floors[name] if name in self.floors else self.weights[name]
            for i, pairs in enumerate(credits):
                out[i].extend((at, weight * c) for at, c in pairs if weight)
        return out

    def means(self, scores: list[dict[str, float | None]]) -> dict[str, float | None]:
        """Each reward's mean over the tunes it applies to (None where it applies to none)."""
        out = {}
        for name in self.weights:
            values = [s[name] for s in scores if s[name] is not None]
            out[name] = sum(values) / len(values) if values else None
        return out

    def _run_all(self, tunes: list[str], context: dict, calls=None) -> dict[str, list]:
        """Every reward on `tunes` (or the given (name, RewardInfo, call) triples), on a daemon thread so that a
        reward that never returns can be left behind: after `time_limit` seconds (or on Ctrl-C) the one running
        is named in the error."""
        if calls is None:
            calls = [(name, info, lambda info=info: score(info, tunes, **context)) for name, info in self.infos.items()]
        if not self.time_limit:
            return {name: call() for name, _, call in calls}
        results: dict[str, list] = {}
        state: dict = {"running": None, "error": None}

        def work():
            try:
                for name, info, call in calls:
                    state["running"] = info
                    results[name] = call()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                state["error"] = exc

        worker = threading.Thread(target=work, name="rlmusic-rewards", daemon=True)
        started = time.monotonic()
        worker.start()
        while worker.is_alive():
            worker.join(timeout=0.1)
            if not worker.is_alive():
                break
            info = state["running"]
            if INTERRUPTED.is_set():
                raise Interrupted(f"interrupted while reward {info.name} ({info.source}) was scoring "
                                f"{len(tunes)} tunes")
            if time.monotonic() - started > self.time_limit:
                raise UserError(f"reward {info.name} ({info.source}) did not return within "
                                f"{self.time_limit:g} s for {len(tunes)} tunes (raise rewards_time_limit if it "
                                "is only slow)")
        if state["error"] is not None:
            raise state["error"]
        return results


def _checked_credits(info: RewardInfo, fn, tunes: list[str], context: dict) -> list[list[tuple[int, float]]]:
    """A reward's per-note credits, checked: one list of (offset, finite number) pairs per tune."""
    import math

    where = f"reward {info.name}.per_note ({info.source})"
    try:
        values = list(fn(tunes, **context))
    except UserError:
        raise
    except PLUGIN_ESCAPES as exc:  # reported with the plugin's name (rlmusic.rewards.registry)
        reraise_signal(exc)
        raise UserError(f"{where} {escaped(exc)}") from exc
    if len(values) != len(tunes):
        raise UserError(f"{where} returned {len(values)} credit lists for {len(tunes)} tunes")
    out = []
    for pairs in values:
        try:
            checked = [(int(at), float(c)) for at, c in pairs]
        except (TypeError, ValueError):
            raise UserError(f"{where} returned {pairs!r:.60}; expected (offset, credit) pairs") from None
        if any(not math.isfinite(c) for _, c in checked):
            raise UserError(f"{where} returned a credit that is not finite")
        out.append(checked)
    return out


def real_tunes(context: dict) -> list[str] | None:
    """The real tunes a reward should compare with: the context's `real_tunes` (a list, or a function returning
    one; `finetune` passes the pretrained model's training tunes), None when the caller gave none (then a reward
    falls back to the default collections)."""
    real = context.get("real_tunes")
    return real() if callable(real) else real


def per_real_tunes(cache: dict, context: dict, make):
    """`make(real)` once per set of real tunes of the context (`real_tunes`; None: the default collections), kept
    in `cache` beside the tunes themselves, so that their id, the key, stays theirs."""
    real = real_tunes(context)
    if id(real) not in cache:
        cache[id(real)] = (real, make(real))
    return cache[id(real)][1]
