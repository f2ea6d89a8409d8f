"""Validation of everything zoo reads back from disk: checkpoint metadata, run directories, metrics.

A checkpoint's JSON metadata and a run's ``config.json`` are user-editable files; nothing read from them is
used (to size a network, to position a resume) before it is checked here against the model's config schema
(its presets' keys, types and ranges). Every failure is one :class:`ZooError` naming the file and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from zoo_core.errors import UsageError, ZooError
from zoo_core.recipe import DataSource
from zoo_core.spec import ModelSpec

# config.json and metrics.jsonl of a real run are kilobytes; anything far larger is not one.
MAX_RECORD_BYTES = 16 << 20
MAX_SEED = 2**32 - 1  # numpy's seed range, the narrowest of the generators a run seeds
MAX_COUNT = 2**53  # a step or item counter beyond this has lost float precision: corrupt, not long
POSITION_INTS = ("epoch", "batch", "global_step", "items")


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; a missing, huge, non-UTF-8, truncated or non-object file is a ZooError."""
    try:
        size = path.stat().st_size
        if size > MAX_RECORD_BYTES:
            raise ZooError(f"{path}: {size} bytes, too large for a zoo {what}; is it the right file?")
        text = path.read_bytes().decode("utf-8")
        value = json.loads(text)
    except FileNotFoundError:
        raise ZooError(f"{path}: not found; is it a zoo run directory?") from None
    except UnicodeDecodeError as error:
        raise ZooError(f"{path}: not UTF-8 text (byte {error.start}); the {what} is corrupt") from None
    except (json.JSONDecodeError, RecursionError) as error:
        reason = f"line {error.lineno}: {error.msg}" if isinstance(error, json.JSONDecodeError) else "nested too deep"
        raise ZooError(f"{path}: not valid JSON ({reason}); the {what} is truncated or was edited badly") from None
    except ValueError as error:  # an integer literal too long to parse
        raise ZooError(f"{path}: not valid JSON ({str(error).splitlines()[0]}); the {what} is corrupt") from None
    except OSError as error:
        raise ZooError(f"{path}: cannot read ({error.strerror or error})") from None
    if not isinstance(value, dict):
        raise ZooError(f"{path}: the {what} must be a JSON object, found {type(value).__name__}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and not (isinstance(value, float) and not math.isfinite(value)))


def check_seed(value: Any, where: str) -> int:
    if not _is_int(value) or not 0 <= value <= MAX_SEED:
        raise ZooError(f"{where}: seed must be an integer from 0 to {MAX_SEED}, got {_short(value)}")
    return value


def check_config(spec: ModelSpec, config: Any, where: str) -> dict[str, Any]:
    """``config`` as the model's recipe may use it: an object with its preset's keys, types and ranges."""
    from zoo_core.config import check_ranges

    if not isinstance(config, dict):
        raise ZooError(f"{where}: config must be a JSON object, found {type(config).__name__}")
    preset_name = config.get("preset")
    presets = {p.name: p for p in spec.presets}
    if not isinstance(preset_name, str) or preset_name not in presets:
        raise ZooError(f"{where}: config names preset {_short(preset_name)}, which {spec.name} does not have "
                       f"({', '.join(presets)})")
    defaults = presets[preset_name].values
    missing = [key for key in defaults if key not in config]
    if missing:
        raise ZooError(f"{where}: config lacks {', '.join(missing[:5])}; it was written by another version of "
                       f"{spec.name} or edited, retrain or restore the file")
    for key, default in defaults.items():
        value = config[key]
        if not _same_kind(value, default):
            raise ZooError(f"{where}: config {key} is {_short(value)}, expected a value like {default!r}")
    try:
        check_ranges(spec, {key: config[key] for key in defaults}, where)
    except ZooError as error:
        raise ZooError(str(error)) from None
    return config


def _same_kind(value: Any, default: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return _is_int(value)
    if isinstance(default, float):
        return _is_number(value)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, list)
    return isinstance(value, type(default))


def check_position(value: Any, where: str) -> dict[str, Any]:
    """A checkpoint's ``position``: counters are non-negative integers, sums finite numbers."""
    if not isinstance(value, dict):
        raise ZooError(f"{where}: position must be a JSON object, found {type(value).__name__}")
    for key in POSITION_INTS:
        item = value.get(key, 0)
        if not _is_int(item) or not 0 <= item <= MAX_COUNT:
            raise ZooError(f"{where}: position.{key} must be a non-negative integer, got {_short(item)}")
    for key in ("epoch", "batch", "global_step"):
        if key not in value:
            raise ZooError(f"{where}: position lacks {key}; the checkpoint is not resumable")
    for key in ("best_metric", "best_loss"):  # best_loss: checkpoints of zoo 0.1
        best = value.get(key)
        if best is not None and not _is_number(best):
            raise ZooError(f"{where}: position.{key} must be a number or null, got {_short(best)}")
    seconds = value.get("seconds", 0.0)
    if not _is_number(seconds) or seconds < 0:
        raise ZooError(f"{where}: position.seconds must be a non-negative number, got {_short(seconds)}")
    sums = value.get("sums", {})
    if not isinstance(sums, dict) or not all(isinstance(k, str) and _is_number(v) for k, v in sums.items()):
        raise ZooError(f"{where}: position.sums must map metric names to finite numbers")
    return value


def check_optimizers(value: Any, where: str) -> None:
    """The optimizer part of a resumable checkpoint: per optimizer, a list of param groups and scalar state."""
    if not isinstance(value, dict):
        raise ZooError(f"{where}: optimizers must be a JSON object, found {type(value).__name__}")
    for name, entry in value.items():
        groups = entry.get("param_groups") if isinstance(entry, dict) else None
        scalars = entry.get("scalars") if isinstance(entry, dict) else None
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise ZooError(f"{where}: optimizers.{name}.param_groups must be a list of objects")
        if not isinstance(scalars, dict) or not all(
                isinstance(v, dict) and _index(k) for k, v in scalars.items()):
            raise ZooError(f"{where}: optimizers.{name}.scalars must map parameter indices to objects")


def _index(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) < 10  # "³".isdigit() holds, int("³") fails


def check_checkpoint_meta(spec: ModelSpec, meta: Mapping[str, Any], path: Path,
                          resumable: bool = False) -> None:
    """Everything a loader or a resume reads from a checkpoint's metadata, before anything is built from it."""
    where = str(path)
    if meta.get("model") != spec.name:
        raise ZooError(f"{path} is a checkpoint of {_short(meta.get('model'))}, not {spec.name!r}")
    check_config(spec, meta.get("config"), where)
    if "seed" in meta or resumable:
        check_seed(meta.get("seed"), where)
    if "position" in meta or resumable:
        check_position(meta.get("position"), where)
    if "optimizers" in meta:
        check_optimizers(meta["optimizers"], where)
    scalers = meta.get("scalers", {})
    if not isinstance(scalers, dict) or not all(isinstance(v, dict) for v in scalers.values()):
        raise ZooError(f"{where}: scalers must map names to objects")


def read_run_record(spec: ModelSpec, run_dir: Path) -> dict[str, Any]:
    """A run's ``config.json`` checked for ``--resume``: model, config, seed and data source."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise UsageError(f"--resume {run_dir}: no config.json there; is it a zoo run directory?")
    record = read_json_object(path, "run config")
    if record.get("model") != spec.name:
        raise UsageError(f"--resume {run_dir}: that run trained {_short(record.get('model'))}, not {spec.name!r}")
    check_config(spec, record.get("config"), str(path))
    check_seed(record.get("seed"), str(path))
    data = record.get("data", {})
    known = [f.name for f in fields(DataSource)]
    if not isinstance(data, dict) or set(data) - set(known):
        raise ZooError(f"{path}: data must be an object with keys among {', '.join(known)}")
    split = data.get("val_split")
    if split is not None and (not _is_number(split) or not 0 <= split < 1):
        raise ZooError(f"{path}: data.val_split must be a number from 0 to below 1 or null, got {_short(split)}")
    for key in ("data", "data_a", "data_b"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ZooError(f"{path}: data.{key} must be a path or null, got {_short(data[key])}")
    if not isinstance(data.get("strict", False), bool):
        raise ZooError(f"{path}: data.strict must be true or false, got {_short(data['strict'])}")
    limit = data.get("limit")
    if limit is not None and (not _is_int(limit) or limit < 1):
        raise ZooError(f"{path}: data.limit must be a positive integer or null, got {_short(limit)}")
    overrides = record.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ZooError(f"{path}: overrides must be a JSON object, found {type(overrides).__name__}")
    return record


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl``; a torn last line (a crash mid-append) is dropped, other damage refused."""
    if not path.exists():
        return []
    try:
        if path.stat().st_size > MAX_RECORD_BYTES * 16:
            raise ZooError(f"{path}: too large for a metrics file; is it the right file?")
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    except OSError as error:
        raise ZooError(f"{path}: cannot read ({error.strerror or error})") from None
    rows: list[dict[str, Any]] = []
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    for index, (number, line) in enumerate(numbered):
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            row = None
        if not isinstance(row, dict) or not _is_int(row.get("epoch")):
            if index == len(numbered) - 1:
                break  # the append a crash cut short; its epoch is re-run
            raise ZooError(f"{path}:{number}: not a metrics row; the file was edited or is corrupt, "
                           "restore it or delete it (the run's checkpoints are unaffected)")
        rows.append(row)
    return rows


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
