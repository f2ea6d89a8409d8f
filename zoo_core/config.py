"""Resolve a preset plus command-line overrides into the config a run records."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from zoo_core.errors import UsageError
from zoo_core.spec import ModelSpec

# Keys with a meaning to the engine, and the smallest value each may take.
ENGINE_MINIMA: dict[str, float] = {"epochs": 1, "batch_size": 1}
POSITIVE = ("lr",)


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` from ``--set``; the value is read as JSON when it parses, else as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--set takes KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Give an override the type of the preset's value, so `--set epochs=3` stays an int."""
    if default is None or value is None:
        return value
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes"):
                    return True
                if value.lower() in ("false", "0", "no"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, (list, tuple)):
            return list(value) if isinstance(value, (list, tuple)) else [value]
    except (TypeError, ValueError):
        raise UsageError(f"{key} must be {_kind(default)} like {default!r}, got {value!r}") from None
    return value


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    return f"a {type(default).__name__}"


def resolve_config(spec: ModelSpec, preset: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The preset's values with overrides applied and checked; unknown keys are refused."""
    try:
        values = dict(spec.preset(preset).values)
    except KeyError:
        names = ", ".join(p.name for p in spec.presets)
        raise UsageError(f"model {spec.name} has no preset {preset!r}; presets: {names}") from None
    for key, value in overrides.items():
        if key not in values:
            close = difflib.get_close_matches(key, list(values), n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; known: {', '.join(sorted(values))}"
            raise UsageError(f"preset {preset!r} of {spec.name} has no setting {key!r}{hint}")
        values[key] = _coerce(key, value, values[key])
    for key, minimum in ENGINE_MINIMA.items():
        if key in values and values[key] < minimum:
            raise UsageError(f"{key} must be at least {minimum:g}, got {values[key]}")
    for key in POSITIVE:
        if key in values and not values[key] > 0:
            raise UsageError(f"{key} must be positive, got {values[key]}")
    values["preset"] = preset
    return values
