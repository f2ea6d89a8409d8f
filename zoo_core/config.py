"""Resolve a preset plus command-line overrides into the config a run records."""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from typing import Any

from zoo_core.errors import UsageError
from zoo_core.spec import ModelSpec

# Keys with a meaning to the engine, and the smallest value each may take.
ENGINE_MINIMA: dict[str, float] = {"epochs": 1, "batch_size": 1}
POSITIVE = ("lr",)
# The engine keys' own upper bounds: long runs and big batches stay possible, absurd ones are refused.
ENGINE_MAXIMA: dict[str, float] = {"epochs": 100_000, "batch_size": 65_536}
# Any other integer setting (a width, a count of items) may grow to this many times its largest preset value:
# ``z_dim=1e30`` or ``embedded_items=1e8`` would otherwise ask for gigabytes before the first step.
GROWTH = 16
SMALL_INT_CEILING = 1024  # the ceiling of an integer setting whose presets are all tiny (0, 1, 2)


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` from ``--set``; the value is read as JSON when it parses, else as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--set takes KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(raw)
    except RecursionError:
        raise UsageError(f"--set {key.strip()}: the value nests too deeply") from None
    except ValueError:  # not JSON (or an integer too long for Python to parse): the text itself
        return key.strip(), raw


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Give an override the type of the preset's value, so `--set epochs=3` stays an int."""
    if default is None:
        return value
    if value is None:
        raise UsageError(f"{key} must be {_expected(default)}, got null")
    if isinstance(default, str) and not isinstance(value, str):
        raise UsageError(f"{key} must be {_expected(default)}, got {_show(value)}")
    if isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, (list, dict)):
        raise UsageError(f"{key} must be {_expected(default)}, got {_show(value)}")
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
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            return number
        if isinstance(default, (list, tuple)):
            return list(value) if isinstance(value, (list, tuple)) else [value]
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{key} must be {_expected(default)}, got {_show(value)}") from None
    return value


def _expected(default: Any) -> str:
    """What an override must be, in words: "true or false", or a kind with the preset's value as an example."""
    return _kind(default) if isinstance(default, bool) else f"{_kind(default)} like {default!r}"


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
    check_ranges(spec, values)
    values["preset"] = preset
    return values


def value_range(spec: ModelSpec, key: str) -> tuple[float, float] | None:
    """The closed range a numeric setting ``key`` may take, from the engine's rules and the model's presets."""
    defaults = [p.values[key] for p in spec.presets if key in p.values]
    numbers = [v for v in defaults if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not numbers:
        return None
    integral = all(isinstance(v, int) for v in numbers)
    # A setting no preset makes negative is a size, a weight or a rate; an integer no preset sets to 0 is a size.
    low = -math.inf if min(numbers) < 0 else 1.0 if integral and min(numbers) >= 1 else 0.0
    if key in ENGINE_MINIMA:
        return ENGINE_MINIMA[key], ENGINE_MAXIMA[key]
    if key in POSITIVE:
        return math.nextafter(0.0, 1.0), math.inf
    if integral:
        return low, max(SMALL_INT_CEILING, GROWTH * max(abs(v) for v in numbers))
    return low, math.inf


def check_ranges(spec: ModelSpec, values: Mapping[str, Any], where: str = "") -> None:
    """Refuse a numeric setting outside :func:`value_range` (``where`` names a file the values came from)."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        bounds = value_range(spec, key)
        if bounds is None:
            continue
        low, high = bounds
        if (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
            prefix = f"{where}: " if where else ""
            if key in POSITIVE:
                raise UsageError(f"{prefix}{key} must be positive and finite, got {_show(value)}")
            bound = f"at least {low:g}" if not value >= low else f"at most {high:g}"  # NaN reads as too small
            raise UsageError(f"{prefix}{key} must be {bound}, got {_show(value)}")


def _show(value: Any) -> str:
    """A value for an error line: a 400-digit integer is cut, not printed whole."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
