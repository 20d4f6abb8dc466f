"""Typed configuration: dataclasses with defaults, filled from YAML sections.

One YAML file may hold several sections (``track``, ``data``, ``train``,
``compress``, ``pipeline``); each tool reads the sections it needs. Unknown keys
are an error, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any, TypeVar

import yaml

from .errors import InputError

T = TypeVar("T")


@dataclasses.dataclass
class TrackerConfig:
    """SiamFC's tracking hyper-parameters (the defaults of the original paper)."""

    out_scale: float = 0.001
    exemplar_sz: int = 127
    instance_sz: int = 255
    context: float = 0.5
    scale_num: int = 3
    scale_step: float = 1.0375
    scale_lr: float = 0.59
    scale_penalty: float = 0.9745
    window_influence: float = 0.176
    response_sz: int = 17
    response_up: int = 16
    total_stride: int = 8


def from_dict(cls: type[T], values: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``values``, recursing into nested dataclasses."""
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InputError(f"{where or cls.__name__}: unknown key(s) {', '.join(unknown)}")
    kwargs = {}
    for name, value in values.items():
        sub = hints[name]
        if dataclasses.is_dataclass(sub) and isinstance(value, dict):
            value = from_dict(sub, value, f"{where}.{name}" if where else name)
        kwargs[name] = value
    return cls(**kwargs)


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise InputError(f"{path}: config file not found")
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: top level must be a mapping of sections")
    return data


def load_section(path: str | os.PathLike | None, section: str, cls: type[T]) -> T:
    """Read one section of a YAML config into ``cls`` (defaults if no path)."""
    if path is None:
        return cls()
    return from_dict(cls, load_yaml(path).get(section), f"{path}:{section}")


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)
