"""Stage configs: nested dataclasses loaded from YAML, with dotted ``a.b=value`` overrides.

Every stage has one config dataclass (it lives beside the stage, e.g. ``disranker.data.demo.DemoCorpusConfig``) whose
fields are plain values or nested dataclasses. ``load_config(StageConfig, "file.yaml", ["model.lr=3e-5"])`` builds it:

- keys that the dataclass does not declare are an error naming the key and the allowed ones, except a renamed
  key's old name (the class's ``RENAMED``, old → new), read as the new name with a warning for one release;
- values are checked against the field's annotation (int, float, bool, str, Literal, ``X | None``, list, dict, nested
  dataclass) and the error names the dotted key;
- after construction, a ``validate()`` method on any (nested) config runs the cross-field checks.

Written here rather than taken from Hydra/OmegaConf: those bring a second config language and their own CLI; we need
only strict dataclasses + YAML + overrides, which fit in this file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit its dataclass; the message names the key."""


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build ``cls`` from an optional YAML file plus ``key.sub=value`` overrides (applied in order)."""
    data: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(loaded).__name__}")
        data = loaded
    for override in overrides:
        apply_override(data, override)
    config = from_dict(cls, data)
    _validate_tree(config)
    return config


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set ``data[a][b] = value`` for ``"a.b=value"``; the value is YAML (``3`` is an int, ``[1,2]`` a list)."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} is not of the form key.sub=value")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        if node.get(part) is None:  # absent, or a YAML section whose keys are all commented out
            node[part] = {}
        child = node[part]
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: '{part}' holds a value, not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        node[parts[-1]] = raw  # plain text such as a path with a colon in it


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Construct dataclass ``cls`` from a mapping, strictly (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"'{prefix.rstrip('.') or cls.__name__}' must be a mapping, got {data!r}")
    data = _renamed_keys(cls, data, prefix)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key '{prefix}{unknown[0]}' in {cls.__name__}; allowed keys: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, f"{prefix}{name}") for name, value in data.items()}
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing required key '{prefix}{missing[0]}' in {cls.__name__}")
    return cls(**kwargs)


def _renamed_keys(cls: type, data: Mapping[str, Any], prefix: str) -> Mapping[str, Any]:
    """``data`` with each old key name in ``cls.RENAMED`` replaced by the new one; both names at once is an error."""
    for old, new in getattr(cls, "RENAMED", {}).items():
        if old in data:
            if new in data:
                raise ConfigError(f"'{prefix}{old}' is the old name of '{prefix}{new}': give only '{prefix}{new}'")
            warnings.warn(f"'{prefix}{old}' is deprecated: rename it '{prefix}{new}'", FutureWarning, stacklevel=2)
            data = {new if key == old else key: value for key, value in data.items()}
    return data


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain data, e.g. for ``disranker.json`` lineage records."""
    return dataclasses.asdict(config)


def _coerce(annotation: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value or {}, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"'{key}': {value!r} fits none of {annotation}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"'{key}' must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, tuple, Sequence):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"'{key}' must be a list, got {value!r}")
        item_type = args[0] if args else Any
        return [_coerce(item_type, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"'{key}' must be a mapping, got {value!r}")
        return dict(value)
    if annotation is Any:
        return value
    return _coerce_scalar(annotation, value, key)


def _coerce_scalar(annotation: Any, value: Any, key: str) -> Any:
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"'{key}' must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"'{key}' must be an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 3e-5 (no dot) as text
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"'{key}' must be a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # YAML reads `run: 2024` as an int; a name is what was meant
        raise ConfigError(f"'{key}' must be text, got {value!r}")
    raise ConfigError(f"'{key}': unsupported annotation {annotation!r} in the config dataclass")


def _validate_tree(config: Any) -> None:
    for f in dataclasses.fields(config):
        child = getattr(config, f.name)
        if dataclasses.is_dataclass(child):
            _validate_tree(child)
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate()
