"""Finding rewards by name.

A reward is a plain callable `reward(tunes: list[str], **context) -> list[float | None]`: one score per tune,
None where the rule does not apply. Names resolve, in this order, to:

1. a built-in reward of `rlmusic.rewards` (registered with `@register` by the modules of BUILTIN_MODULES, which
   are loaded by name on first use, as plugins are: this module never imports them, they import it);
2. a reward an installed package declares in the entry-point group `rlmusic.rewards`
   (`[project.entry-points."rlmusic.rewards"] my_rule = "my_pkg.rules:my_rule"`);
3. a dotted path `package.module:function` (a factory call is not allowed here: give a function).

Context passed to every reward: `scans` (one `rlmusic.abc.Scan` per tune, computed once for all rewards) and
whatever the caller adds. A reward may also offer `reward.per_note(tunes, **context)` returning, per tune, a list
of `(char_offset, credit)` pairs so an environment can place credit where a note ends.
"""

from __future__ import annotations

import functools
import importlib
import math
import numbers
from dataclasses import dataclass
from importlib import metadata
from typing import Callable

from rlmusic.errors import UserError

ENTRY_POINT_GROUP = "rlmusic.rewards"
BUILTIN_MODULES = ("rlmusic.rewards.syntax", "rlmusic.rewards.theory", "rlmusic.rewards.music",
                   "rlmusic.rewards.discriminator", "rlmusic.rewards.preference")
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


@functools.lru_cache(maxsize=1)
def _entry_points() -> dict[str, RewardInfo]:
    """The installed plugins, read once per process (`refresh()` reads them again, after a pip install)."""
    found: dict[str, RewardInfo] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        if ep.name in _BUILTINS or ep.name in found:
            other = "a built-in reward" if ep.name in _BUILTINS else found[ep.name].source
            raise UserError(f"reward plugin {ep.name!r} from {dist} clashes with {other}; rename one of them")
        try:
            fn = ep.load()
        except PLUGIN_ESCAPES as exc:  # a broken plugin must not hide the others' names
            reraise_signal(exc)
            raise UserError(f"reward plugin {ep.name!r} ({ep.value}, from {dist}) failed to load: "
                            f"{failure(exc)}") from exc
        found[ep.name] = RewardInfo(ep.name, fn, f"entry point ({dist})")
    return found


def refresh() -> None:
    """Forget the cached entry points (a plugin was installed or removed in this process)."""
    _entry_points.cache_clear()


def available() -> dict[str, RewardInfo]:
    """Every reward that can be named: built-ins, then installed plugins."""
    for module in BUILTIN_MODULES:  # loaded by name when first needed (a no-op once imported)
        importlib.import_module(module)
    return {**_BUILTINS, **_entry_points()}


def get(name: str) -> RewardInfo:
    """Resolve a reward name (see module docstring). Unknown names are an error listing the valid ones."""
    rewards = available()
    if name in rewards:
        return rewards[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        if not module_name or not attr or not all(p.isidentifier() for p in (*module_name.split("."), attr)):
            raise UserError(f"reward {name!r}: expected package.module:function")
        try:
            module = importlib.import_module(module_name)
        except PLUGIN_ESCAPES as exc:  # ImportError, SyntaxError, or whatever the module raises, sys.exit included
            reraise_signal(exc)
            raise UserError(f"reward {name}: cannot import {module_name} ({failure(exc)})") from exc
        fn = getattr(module, attr, None)
        if fn is None:
            raise UserError(f"reward {name}: {module_name} has no {attr}")
        if not callable(fn):
            raise UserError(f"reward {name}: {attr} is not callable")
        return RewardInfo(name, fn, f"path {name}")
    raise UserError(f"unknown reward {name!r}; valid names: {', '.join(sorted(rewards))} "
                    "(or package.module:function)")


def score(reward: str | RewardInfo, tunes: list[str], **context) -> list[float | None]:
    """Call one reward (a name, or a RewardInfo from `get` to skip the lookup in hot loops), checking what it
    returns. A reward that raises, or gives anything but one finite number (or None) per tune, is an error
    naming it; the plugin's own exception is kept as the cause (`--traceback` shows it)."""
    info = reward if isinstance(reward, RewardInfo) else get(reward)
    name = info.name
    try:
        values = info.fn(tunes, **context)
    except UserError:
        raise
    except PLUGIN_ESCAPES as exc:  # any failure inside a plugin is reported with the plugin's name
        reraise_signal(exc)
        raise UserError(f"reward {name} ({info.source}) {escaped(exc)}") from exc
    return check_scores(info, values, len(tunes))


# What a plugin can raise that must end as an error naming it: any exception, and also sys.exit() (SystemExit:
# the command would otherwise end quietly with the plugin's exit code) and a KeyboardInterrupt that no Ctrl-C sent.
PLUGIN_ESCAPES = (Exception, SystemExit, KeyboardInterrupt)


def reraise_signal(exc: BaseException) -> None:
    """A KeyboardInterrupt that a real Ctrl-C or SIGTERM caused goes on as an interruption."""
    from rlmusic import interrupts

    if isinstance(exc, KeyboardInterrupt) and interrupts.signalled():
        raise exc


def _exited(exc: SystemExit) -> str:
    return f"called sys.exit({exc.code!r}); a reward plugin must not end the program"


def failure(exc: BaseException) -> str:
    """What a plugin raised, as an error line says it."""
    if isinstance(exc, SystemExit):
        return f"it {_exited(exc)}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def escaped(exc: BaseException) -> str:
    """How a plugin's failure while scoring reads in an error line."""
    return _exited(exc) if isinstance(exc, SystemExit) else f"raised {failure(exc)}"


def check_scores(info: RewardInfo, values, n: int) -> list[float | None]:
    """`values` as a list of n floats or None, or a UserError naming the reward and what is wrong."""
    where = f"reward {info.name} ({info.source})"
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise UserError(f"{where} returned {type(values).__name__} {_short(values)}; expected a list of "
                        f"{n} numbers (or None)")
    values = list(values)
    if len(values) != n:
        raise UserError(f"{where} returned {len(values)} scores for {n} tunes")
    out: list[float | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        if not isinstance(v, numbers.Real):  # numpy scalars are numbers.Real too
            raise UserError(f"{where} returned {_short(v)}; scores must be numbers or None")
        if not math.isfinite(float(v)):
            raise UserError(f"{where} returned {float(v)}; scores must be finite (None where a rule does not "
                            "apply)")
        out.append(float(v))
    return out


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
