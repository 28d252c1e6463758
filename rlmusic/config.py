"""Config dataclasses <-> YAML, with `--set a.b=value` overrides.

Each command has one dataclass (fields documented where they are declared). YAML presets fill them; an unknown
key or a value of the wrong type is a UserError naming the dotted key.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import yaml

from rlmusic.errors import UserError


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value, tp, key: str):
    """Check `value` (parsed from YAML) against the field type `tp`; return it in that type."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:  # Optional[X]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1]
        if isinstance(value, str):  # --set data.sources=a,b
            value = [v for v in value.split(",") if v]
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
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
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
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in data:
        if k not in names:
            raise UserError(f"unknown config key {prefix}{k} (valid keys here: {', '.join(sorted(names))})")
    obj = cls()
    for k, v in data.items():
        setattr(obj, k, _coerce(v, hints[k], prefix + k))
    return obj


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
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {key}: {p} is not a section")
        node[parts[-1]] = value
    return from_dict(cls, data)


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of config keys at the top level")
    return data


def dump_yaml(obj) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False, default_flow_style=False)
