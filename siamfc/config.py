"""Typed configuration: dataclasses with defaults, checked when they are built.

Every config class derives from :class:`Config` and declares its fields with
:func:`param`, which carries the field's range or allowed values. Building an
instance (in code or from YAML) checks each field's type and range, so a bad
value fails at once, before any work starts, with one line that names the key
and what is allowed. One YAML file may hold several sections (``track``,
``data``, ``train``, ``compress``, ``pipeline``); each tool reads the sections it
needs. Unknown keys are an error, so a typo never silently falls back to a
default.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from typing import Any, Sequence, TypeVar

import yaml

from .errors import InputError
from .geometry import CROPS

T = TypeVar("T")


class ConfigError(InputError):
    """A config value of the wrong type or out of range; ``key`` is its dotted name."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


def param(default: Any = dataclasses.MISSING, *, factory: Any = None, ge: float | None = None,
          gt: float | None = None, le: float | None = None, choices: Sequence[Any] | None = None,
          path: str | None = None, length: int | None = None) -> Any:
    """A dataclass field with its checks: bounds (``ge``, ``gt``, ``le``; applied to
    every element of a list), ``choices``, a list ``length``, and ``path`` ("file"
    or "dir") for a path that must exist when a config file gives it."""
    meta = {"ge": ge, "gt": gt, "le": le, "choices": tuple(choices) if choices else None,
            "path": path, "length": length}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _conform(value: Any, hint: Any, key: str) -> Any:
    """``value`` converted to the type ``hint`` names, or a ConfigError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _conform(value, inner[0], key)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        raise ConfigError(key, f"expected a mapping of {hint.__name__} keys, got {_describe(value)}")
    if origin in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {_describe(value)}")
        item = args[0] if args else Any
        items = [_conform(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping, got {_describe(value)}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true or false, got {_describe(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected an integer, got {_describe(value)}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):   # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(key, f"expected a number, got {_describe(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(key, f"expected a string, got {_describe(value)}")
    return value


def _check_range(value: Any, meta: dict[str, Any], key: str) -> None:
    values = value if isinstance(value, (list, tuple)) else [value]
    if meta.get("length") is not None and isinstance(value, (list, tuple)) and len(value) != meta["length"]:
        raise ConfigError(key, f"expected {meta['length']} values, got {len(value)}")
    for v in values:
        if v is None or isinstance(v, (bool, str)) and not meta.get("choices"):
            continue
        if meta.get("choices") is not None and v not in meta["choices"]:
            allowed = ", ".join(str(c) for c in meta["choices"])
            raise ConfigError(key, f"{_describe(v)} is not allowed; choose one of {allowed}")
        for bound, test, word in (("ge", lambda a, b: a >= b, ">="), ("gt", lambda a, b: a > b, ">"),
                                  ("le", lambda a, b: a <= b, "<=")):
            limit = meta.get(bound)
            if limit is not None and isinstance(v, (int, float)) and not test(v, limit):
                raise ConfigError(key, f"{_describe(v)} is out of range; it must be {word} {limit:g}")


class Config:
    """Base of the config dataclasses: every field is checked when an instance is built."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            key = f"{type(self).__name__}.{f.name}"
            value = _conform(getattr(self, f.name), hints[f.name], key)
            _check_range(value, dict(f.metadata), key)
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Checks across fields; raise :class:`ConfigError` naming the field."""


def _requalify(err: ConfigError, where: str, cls: type) -> ConfigError:
    """Replace the class name in a field's key with where it came from (file:section.key)."""
    key = err.key
    prefix = f"{cls.__name__}."
    if key.startswith(prefix):
        key = key[len(prefix):]
    return ConfigError(_join(where, key), err.problem)


def _join(where: str, key: str) -> str:
    """``file.yaml:`` + ``train`` -> ``file.yaml:train``; ``file.yaml:train`` + ``epochs`` -> ``...train.epochs``."""
    return f"{where}{key}" if not where or where.endswith(":") else f"{where}.{key}"


def from_dict(cls: type[T], values: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``values``, recursing into nested dataclasses.

    Errors name ``where`` (e.g. ``configs/x.yaml:train``) and the key.
    """
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(where or cls.__name__, f"expected a mapping of keys, got {_describe(values)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(where or cls.__name__, f"unknown key(s) {', '.join(map(str, unknown))}; "
                                                 f"known keys: {', '.join(fields)}")
    kwargs = {}
    for name, value in values.items():
        sub = hints[name]
        inner = [a for a in typing.get_args(sub) if dataclasses.is_dataclass(a)]
        target = sub if dataclasses.is_dataclass(sub) else (inner[0] if inner else None)
        if target is not None and typing.get_origin(sub) is list:   # a list of sections: each a mapping
            if not isinstance(value, list):
                raise ConfigError(_join(where, name), f"expected a list of {target.__name__} sections, "
                                                      f"got {_describe(value)}")
            value = [from_dict(target, v, f"{_join(where, name)}[{i}]") for i, v in enumerate(value)]
        elif target is not None and isinstance(value, dict):
            # a partial section overrides the field's own default (a recipe), not the bare class's
            base = _default(fields[name])
            if dataclasses.is_dataclass(base):
                value = _overlay(dataclasses.asdict(base), value)
            value = from_dict(target, value, _join(where, name))
        kind = fields[name].metadata.get("path")
        if kind and isinstance(value, str) and value:
            exists = os.path.isfile if kind == "file" else os.path.isdir
            if not exists(value):
                raise ConfigError(_join(where, name), f"{value}: no such {kind}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise _requalify(e, where, cls) from None


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:   # type: ignore[misc]
        return f.default_factory()   # type: ignore[misc]
    return None if f.default is dataclasses.MISSING else f.default


def _overlay(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` over ``base``, section by section."""
    out = dict(base)
    for k, v in values.items():
        out[k] = _overlay(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise InputError(f"{path}: config file not found")
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: top level must be a mapping of sections")
    return data


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=VALUE`` (VALUE read as YAML) in a config's loaded YAML, making sections as needed."""
    key, sep, value = override.partition("=")
    if not sep or not key:
        raise InputError(f"{override}: an override is KEY=VALUE, e.g. train.epochs=4")
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        if node.get(part) is None:   # absent, or an empty section (``finetune:`` alone reads as None)
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise InputError(f"{override}: {part} is not a config section")
    try:
        node[parts[-1]] = yaml.safe_load(value)
    except yaml.YAMLError:
        raise InputError(f"{override}: the value is not valid YAML") from None


def load_section(path: str | os.PathLike | None, section: str, cls: type[T]) -> T:
    """Read one section of a YAML config into ``cls`` (defaults if no path)."""
    if path is None:
        return cls()
    return from_dict(cls, load_yaml(path).get(section), f"{path}:{section}")


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


@dataclasses.dataclass
class TrackerConfig(Config):
    """SiamFC's tracking hyper-parameters (the defaults of the original paper)."""

    out_scale: float = param(0.001, gt=0)
    exemplar_sz: int = param(127, ge=15)
    instance_sz: int = param(255, ge=15)
    context: float = param(0.5, ge=0)
    scale_num: int = param(3, ge=1)
    scale_step: float = param(1.0375, gt=0)
    scale_lr: float = param(0.59, ge=0, le=1)
    scale_penalty: float = param(0.9745, gt=0, le=1)
    window_influence: float = param(0.176, ge=0, le=1)
    response_sz: int = param(17, ge=1)
    response_up: int = param(16, ge=1)
    total_stride: int = param(8, ge=1)
    # How the squares are cut (geometry.CROPS): ``resize`` tracks pixel for pixel as the
    # public code does; ``warp`` differs by a grey level at most and reads only the
    # pixels it samples (faster where a large target's square leaves a large frame).
    crop: str = param("resize", choices=tuple(CROPS))

    def check(self) -> None:
        if self.instance_sz < self.exemplar_sz:
            raise ConfigError("TrackerConfig.instance_sz", f"{self.instance_sz} is smaller than exemplar_sz "
                                                           f"{self.exemplar_sz}")
        # The score map's side follows from the two crops and the stride; the window and
        # the upsampling buffers are sized from response_sz, so the two must agree.
        side = (self.instance_sz - self.exemplar_sz) // self.total_stride + 1
        if self.response_sz != side:
            raise ConfigError("TrackerConfig.response_sz", f"{self.response_sz} does not match the score map of "
                                                           f"exemplar_sz {self.exemplar_sz}, instance_sz "
                                                           f"{self.instance_sz} and total_stride "
                                                           f"{self.total_stride} ({side})")
