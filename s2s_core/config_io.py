"""Config dataclasses from JSON-like dicts, refusing fields they do not know (a typo in a
checkpoint or a task payload is an error, not a silently ignored setting)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def strict_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__} got unknown fields: {', '.join(unknown)}")
    return cls(**data)
