"""Config dataclasses <-> YAML, with `--set a.b=value` overrides, checked when they are built.

Each command has one dataclass (fields documented where they are declared). YAML presets fill them; an unknown
key, a value of the wrong type, a value outside a field's `Literal[...]` choices or its `Range`, and any NaN or
infinite number are a UserError naming the dotted key, before any work is done. Config classes derive from
`Checked`, so a config built in Python (`TrainConfig(steps=0)`) is checked too.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import yaml

from rlmusic.errors import UserError


@dataclasses.dataclass(frozen=True)
class Range:
    """The allowed values of a numeric field: `steps: Annotated[int, Range(1)]` is at least 1."""

    min: float | None = None
    max: float | None = None
    min_open: bool = False
    """True: the minimum itself is not allowed (learning_rate > 0)."""
    max_open: bool = False

    def problem(self, value) -> str | None:
        low = self.min is None or (value > self.min if self.min_open else value >= self.min)
        high = self.max is None or (value < self.max if self.max_open else value <= self.max)
        return None if low and high else f"expected {self.describe()}, got {value!r}"

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{'>' if self.min_open else '>='} {self.min:g}")
        if self.max is not None:
            parts.append(f"{'<' if self.max_open else '<='} {self.max:g}")
        return "a number " + " and ".join(parts)


class FieldError(UserError):
    """A field's value is not allowed; `from_dict` adds the dotted prefix of the key."""

    def __init__(self, field: str, message: str):
        super().__init__(f"config key {field}: {message}")
        self.field, self.message = field, message


class Checked:
    """Base of config dataclasses: every field is checked against its type's `Literal` choices and `Range`
    when the object is built."""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self), include_extras=True)
        for f in dataclasses.fields(self):
            problem = _constraint_problem(getattr(self, f.name), hints[f.name])
            if problem:
                raise FieldError(f.name, problem)


def _constraint_problem(value, tp) -> str | None:
    if typing.get_origin(tp) is typing.Annotated:
        base, *marks = typing.get_args(tp)
        for mark in marks:
            if isinstance(mark, Range) and isinstance(value, (int, float)) and not isinstance(value, bool):
                if (problem := mark.problem(value)):
                    return problem
        return _constraint_problem(value, base)
    if typing.get_origin(tp) is typing.Literal:
        choices = typing.get_args(tp)
        return None if value in choices else f"expected one of {', '.join(map(str, choices))}, got {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value}"
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, float) and not math.isfinite(v):
                return f"{k}: expected a finite number, got {v}"
    return None


def _type_name(tp) -> str:
    if typing.get_origin(tp) is typing.Literal:
        return " or ".join(map(str, typing.get_args(tp)))
    if typing.get_origin(tp) in (list, tuple):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _int_or_text(text: str):
    """An item of a comma-separated list: an int if it reads as one (a str field turns it back)."""
    try:
        return int(text)
    except ValueError:
        return text


def _coerce(value, tp, key: str):
    """Check `value` (parsed from YAML) against the field type `tp`; return it in that type."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _coerce(value, typing.get_args(tp)[0], key)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise UserError(f"config key {key}: expected one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if origin is typing.Union:  # Optional[X], or one of several types (the first that fits)
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        if len(args) == 1:
            return _coerce(value, args[0], key)
        for arg in args:
            try:
                return _coerce(value, arg, key)
            except UserError:
                continue
        raise UserError(f"config key {key}: expected {' or '.join(map(_type_name, args))}, got {value!r}")
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1]
        if isinstance(value, str):  # --set data.sources=a,b or data.transpose=-2,2
            value = [_int_or_text(v.strip()) for v in value.split(",") if v.strip()]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):  # --set data.transpose=2
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key {key}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"config key {key}: expected a mapping, got {value!r}")
        kt, vt = typing.get_args(tp)
        return {_coerce(k, kt, key): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):
                raise UserError(f"config key {key}: expected a finite number, got {value!r}")
            return number
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"config key {key}: expected a mapping of {_type_name(tp)} fields, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    else:
        return value
    raise UserError(f"config key {key}: expected {_type_name(tp)}, got {value!r}")


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass `cls` from a (partial) mapping: missing fields keep their defaults."""
    hints = typing.get_type_hints(cls, include_extras=True)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in data:
        if k not in names:
            raise UserError(f"unknown config key {prefix}{k} (valid keys here: {', '.join(sorted(names))})")
    values = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        return cls(**values)
    except FieldError as exc:  # a value out of its range, named with its full dotted key
        raise UserError(f"config key {prefix}{exc.field}: {exc.message}") from None


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def load(cls, path: str | Path | None = None, overrides: list[str] | None = None):
    """Defaults <- YAML file <- `--set key=value` overrides, in that order."""
    data: dict = {}
    if path is not None:
        data = read_yaml(Path(path))
    for item in overrides or []:
        if "=" not in item:
            raise UserError(f"--set {item}: expected KEY=VALUE, for example train.steps=100")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        node, section = data, cls
        parts = key.strip().split(".")
        for p in parts[:-1]:
            if p not in node:  # a mapping field (rewards) the file leaves at its default: `--set rewards.X=w`
                node[p] = _default_mapping(section, p)  # adds or changes one entry of the default, as under a file
            node = node[p]
            if not isinstance(node, dict):
                raise UserError(f"--set {key}: {p} is not a section")
            section = _field_type(section, p)
        node[parts[-1]] = value
    return from_dict(cls, data)


def _field_type(cls, name: str):
    """The dataclass type of field `name` of `cls` (None when it is not a dataclass, or `cls` is None)."""
    if cls is None or not dataclasses.is_dataclass(cls):
        return None
    tp = typing.get_type_hints(cls).get(name)
    return tp if tp is not None and dataclasses.is_dataclass(tp) else None


def _default_mapping(cls, name: str) -> dict:
    """A copy of the default of mapping field `name` of dataclass `cls` ({} for a section or an unknown key)."""
    if cls is None or not dataclasses.is_dataclass(cls):
        return {}
    for f in dataclasses.fields(cls):
        if f.name == name:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            return dict(default) if isinstance(default, dict) else {}
    return {}


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not a config file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of config keys at the top level")
    return data


def dump_yaml(obj) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False, default_flow_style=False)
