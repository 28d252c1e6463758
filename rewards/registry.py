"""Finding rewards by name.

A reward is a plain callable `reward(tunes: list[str], **context) -> list[float | None]`: one score per tune,
None where the rule does not apply. Names resolve, in this order, to:

1. a built-in reward of `rlmusic.rewards` (registered with `@register`);
2. a reward an installed package declares in the entry-point group `rlmusic.rewards`
   (`[project.entry-points."rlmusic.rewards"] my_rule = "my_pkg.rules:my_rule"`);
3. a dotted path `package.module:function` (a factory call is not allowed here: give a function).

Context passed to every reward: `scans` (one `rlmusic.abc.Scan` per tune, computed once for all rewards) and
whatever the caller adds. A reward may also offer `reward.per_note(tunes, **context)` returning, per tune, a list
of `(char_offset, credit)` pairs so an environment can place credit where a note ends.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from importlib import metadata
from typing import Callable

from rlmusic.errors import UserError

ENTRY_POINT_GROUP = "rlmusic.rewards"
RewardFn = Callable[..., list]


@dataclass(frozen=True)
class RewardInfo:
    name: str
    fn: RewardFn
    source: str
    """"built-in", "entry point (dist-name)" or "path module:function"."""

    @property
    def summary(self) -> str:
        doc = (self.fn.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else "(no docstring)"


_BUILTINS: dict[str, RewardInfo] = {}


def register(name: str):
    """Decorator for built-in rewards. Two rewards with one name is an error, not a silent override."""

    def deco(fn):
        if name in _BUILTINS:
            raise ValueError(f"reward {name!r} registered twice")
        _BUILTINS[name] = RewardInfo(name, fn, "built-in")
        return fn

    return deco


def _entry_points() -> dict[str, RewardInfo]:
    found: dict[str, RewardInfo] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        if ep.name in _BUILTINS or ep.name in found:
            other = "a built-in reward" if ep.name in _BUILTINS else found[ep.name].source
            raise UserError(f"reward plugin {ep.name!r} from {dist} clashes with {other}; rename one of them")
        try:
            fn = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the others' names
            raise UserError(f"reward plugin {ep.name!r} ({ep.value}, from {dist}) failed to load: {exc}") from None
        found[ep.name] = RewardInfo(ep.name, fn, f"entry point ({dist})")
    return found


def available() -> dict[str, RewardInfo]:
    """Every reward that can be named: built-ins, then installed plugins."""
    _load_builtins()
    return {**_BUILTINS, **_entry_points()}


def get(name: str) -> RewardInfo:
    """Resolve a reward name (see module docstring). Unknown names are an error listing the valid ones."""
    rewards = available()
    if name in rewards:
        return rewards[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise UserError(f"reward {name}: cannot import ({exc})") from None
        if not callable(fn):
            raise UserError(f"reward {name}: {attr} is not callable")
        return RewardInfo(name, fn, f"path {name}")
    raise UserError(f"unknown reward {name!r}; valid names: {', '.join(sorted(rewards))} "
                    "(or package.module:function)")


def score(reward: str | RewardInfo, tunes: list[str], **context) -> list[float | None]:
    """Call one reward (a name, or a RewardInfo from `get` to skip the lookup in hot loops), checking what it
    returns. A reward that raises or gives NaN is an error naming it."""
    info = reward if isinstance(reward, RewardInfo) else get(reward)
    name = info.name
    try:
        values = list(info.fn(tunes, **context))
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure inside a plugin is reported with the plugin's name
        raise UserError(f"reward {name} ({info.source}) raised {type(exc).__name__}: {exc}") from None
    if len(values) != len(tunes):
        raise UserError(f"reward {name} ({info.source}) returned {len(values)} scores for {len(tunes)} tunes")
    for v in values:
        if v is not None and (not isinstance(v, (int, float)) or math.isnan(v)):
            raise UserError(f"reward {name} ({info.source}) returned {v!r}; scores must be numbers or None")
    return values


def _load_builtins() -> None:
    from rlmusic.rewards import syntax, theory  # noqa: F401 - importing registers them
