"""The export directory's ``manifest.json``: what was exported, how, from what, and how well it matched.

A runtime trusts an export only through this file: its format version must be one this
package reads, the model must be the one asked for, and every ``.onnx`` it lists must exist
with the recorded sha256. Graph specs are stored both as declared (``declared_shape``, with
config keys) and resolved at the exported config (``shape``, only the batch axis ``"N"``
left symbolic), so plain onnxruntime users need nothing but this file.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core.extend import GraphSpec, TensorSpec, ZooError, file_sha256

FORMAT = "zoo-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 << 20  # a real manifest is kilobytes
DEFAULT_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}


def tensor_json(tensor: TensorSpec, config: Mapping[str, Any]) -> dict[str, Any]:
    return tensor.as_json(config)  # the same record `zoo info --json` shows


def tensor_from_json(record: Mapping[str, Any]) -> TensorSpec:
    value_range = record.get("value_range")
    return TensorSpec(name=record["name"], shape=tuple(record["declared_shape"]), dtype=record["dtype"],
                      value_range=tuple(value_range) if value_range else None, layout=record.get("layout", ""))


def graph_json(graph: GraphSpec, config: Mapping[str, Any], gflops: float | None = None) -> dict[str, Any]:
    """A graph spec as manifest data (also stored in each ``.onnx`` file's metadata); ``gflops``: the graph's
    GFLOPs per item at ``config`` (:func:`config_gflops`), else the spec's figure at the card preset."""
    return {"name": graph.name, "summary": graph.summary,
            "inputs": [tensor_json(t, config) for t in graph.inputs],
            "outputs": [tensor_json(t, config) for t in graph.outputs],
            "gflops_per_item": graph.gflops_per_item if gflops is None else gflops, "tolerance": dict(graph.tolerance)}


def config_gflops(recipe: Any, graph: GraphSpec, module: Any = None) -> float:
    """GFLOPs per item of ``graph`` at ``recipe.config`` (2 per multiply-add, counted as the card test counts).

    The spec's ``gflops_per_item`` is the card preset's: a quick 64² CycleGAN is not the book's 256² one. Counted
    on the meta device (no weights, no arithmetic); a network without meta kernels is counted on ``module``.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    batch = 2
    counter = FlopCounterMode(display=False)
    try:
        with torch.device("meta"):
            networks = recipe.build_networks()
            meta_module = recipe.graph_module(graph.name, networks).eval()
            inputs = tuple(torch.empty(t.resolve(recipe.config, batch), dtype=getattr(torch, t.dtype))
                           for t in graph.inputs)
            with counter, torch.no_grad():
                meta_module(*inputs)
    except NotImplementedError:  # an operator without a meta kernel: one real item through the exported module
        if module is None:
            raise
        batch = 1
        inputs = recipe.example_inputs(graph.name, batch, torch.Generator().manual_seed(0))
        device = next((p.device for p in module.parameters()), torch.device("cpu"))
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            module(*(x.to(device) for x in inputs))
    return counter.get_total_flops() / batch / 1e9


def graph_from_json(record: Mapping[str, Any]) -> GraphSpec:
    return GraphSpec(name=record["name"], summary=record.get("summary", ""),
                     inputs=tuple(tensor_from_json(t) for t in record["inputs"]),
                     outputs=tuple(tensor_from_json(t) for t in record["outputs"]),
                     gflops_per_item=float(record.get("gflops_per_item", 0.0)),
                     tolerance=dict(record.get("tolerance", {})))


def tolerance(graph: GraphSpec, precision: str) -> float:
    """The relative-L2 threshold of ``graph`` at ``precision`` (GraphSpec.tolerance overrides the default)."""
    return float(graph.tolerance.get(precision, DEFAULT_TOLERANCE[precision]))


@dataclass
class ExportRecord:
    """A read, checked export directory."""

    directory: Path
    manifest: dict[str, Any]

    @property
    def model(self) -> str:
        return self.manifest["model"]

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest["config"]

    @property
    def graph_names(self) -> list[str]:
        return list(self.manifest["graphs"])

    def graph_entry(self, graph: str) -> dict[str, Any]:
        graphs = self.manifest["graphs"]
        if graph not in graphs:
            raise ZooError(f"export {self.directory} has no graph {graph!r} (it holds {', '.join(graphs) or 'none'}); "
                           f"export it with `zoo export {self.model}` (without --graphs)")
        return graphs[graph]

    def graph_spec(self, graph: str) -> GraphSpec:
        return graph_from_json(self.graph_entry(graph))

    def graph_file(self, graph: str, precision: str = "fp32") -> Path:
        entry = self.graph_entry(graph)
        if precision == "fp32":
            return self.directory / entry["file"]
        if precision == "int8":
            if not entry.get("int8"):
                why = (entry.get("int8_search") or {}).get("why")
                raise ZooError(f"export {self.directory} has no int8 file for graph {graph!r}"
                               + (f" ({why})" if isinstance(why, str) else "") + "; export again with "
                               f"`zoo export {self.model} --int8` (a graph that misses its quality bar or whose "
                               "int8 is not faster than fp32 gets none; --int8-keep-slower writes it anyway)")
            return self.directory / entry["int8"]["file"]
        if not entry.get("fp16"):
            raise ZooError(f"export {self.directory} has no fp16 file for graph {graph!r}; "
                           f"export again with `zoo export {self.model} --fp16`")
        return self.directory / entry["fp16"]["file"]

    def files(self) -> list[tuple[str, str]]:
        """Every (file name, sha256) the manifest lists."""
        listed = []
        for entry in self.manifest["graphs"].values():
            listed.append((entry["file"], entry["sha256"]))
            for extra in FILE_VARIANTS:
                if entry.get(extra):
                    listed.append((entry[extra]["file"], entry[extra]["sha256"]))
        return listed

class ExportRunner:
    """What every runner over an export shares: the checked record (``export``), the graphs it holds and their
    specs, read once each. Runtimes subclass it and set ``self.export``."""

    export: ExportRecord

    @property
    def graph_names(self) -> tuple[str, ...]:
        """The graphs the export holds."""
        return tuple(self.export.graph_names)

    def graph_spec(self, graph: str) -> GraphSpec:
        specs = self.__dict__.setdefault("_graph_specs", {})
        if graph not in specs:
            specs[graph] = self.export.graph_spec(graph)
        return specs[graph]



def read_manifest(directory: Path, model: str = "MODEL") -> dict[str, Any]:
    """Parse ``manifest.json``; a missing, unreadable, foreign or newer one is one clear ZooError that says how to
    make the export of ``model``."""
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ZooError(f"no export directory at {directory}: run `zoo export {model}` or pass --export DIR")
    if not path.is_file():
        raise ZooError(f"{directory} has no {MANIFEST}; it is not a zoo export (create one with `zoo export {model}`)")
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ZooError(f"{path} is {path.stat().st_size} bytes, too large for a manifest; export the model again")
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        reason = " ".join(str(error).split())[:120] or type(error).__name__
        raise ZooError(f"{path} is not readable JSON ({reason}); export the model again") from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != FORMAT:
        raise ZooError(f"{path} is not a zoo export manifest (format {found!r}, expected {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise ZooError(f"{path} has no integer format_version; export the model again")
    if version > FORMAT_VERSION:
        raise ZooError(f"{path} has export format {version}, newer than the {FORMAT_VERSION} this zoo-export reads; "
                       "upgrade zoo-export or export the model again with this one")
    missing = [key for key in ("model", "config", "graphs") if key not in manifest]
    if missing:
        raise ZooError(f"{path} lacks {', '.join(missing)}; export the model again")
    check_manifest(manifest, path)
    return manifest


# -- the manifest's schema: one place; a new file variant (another precision, another format) is one entry ----------
# Extra files a graph entry may carry beside its fp32 ``file``, each ``null`` or a file record.
FILE_VARIANTS = ("fp16", "int8", "aoti", "executorch", "executorch_int8")
FILE_SUFFIXES = (".onnx", ".pt2", ".pte")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _refuse(path: Path, where: str, what: str) -> ZooError:
    return ZooError(f"{path}: {where} {what}; the manifest was edited or is corrupt, export the model again")


def _check_file_record(record: Any, path: Path, where: str) -> None:
    """A ``{"file", "sha256"}`` record whose file is a plain name inside the export directory."""
    if not isinstance(record, dict):
        raise _refuse(path, where, f"must be an object, found {type(record).__name__}")
    name = record.get("file")
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name or not name.endswith(FILE_SUFFIXES):
        raise _refuse(path, f"{where}.file", f"must be a plain {' or '.join(FILE_SUFFIXES)} file name inside the "
                      f"export directory, got {str(name)[:60]!r}")
    digest = record.get("sha256")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise _refuse(path, f"{where}.sha256", "must be 64 lowercase hex digits")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_tensor(record: Any, path: Path, where: str) -> None:
    if not isinstance(record, dict):
        raise _refuse(path, where, f"must be an object, found {type(record).__name__}")
    if not isinstance(record.get("name"), str) or not record["name"]:
        raise _refuse(path, f"{where}.name", "must be a non-empty string")
    for key in ("declared_shape", "shape"):
        shape = record.get(key)
        if key == "shape" and shape is None:
            continue
        if not isinstance(shape, list) or len(shape) > 8 or not all(
                (isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 1 << 20)
                or (isinstance(d, str) and 0 < len(d) <= 64) for d in shape):
            raise _refuse(path, f"{where}.{key}", "must be a list of at most 8 sizes (0 to 2^20) or axis names")
    if not isinstance(record.get("dtype"), str):
        raise _refuse(path, f"{where}.dtype", "must be a string")
    value_range = record.get("value_range")
    if value_range is not None and not (isinstance(value_range, list) and len(value_range) == 2
                                        and all(_is_number(v) for v in value_range)
                                        and value_range[0] <= value_range[1]):
        raise _refuse(path, f"{where}.value_range", "must be null or [low, high] with finite low <= high")
    if not isinstance(record.get("layout", ""), str):
        raise _refuse(path, f"{where}.layout", "must be a string")


def _check_graph(name: Any, entry: Any, path: Path) -> None:
    where = f"graphs.{str(name)[:40]}"
    if not isinstance(name, str) or not _SAFE_NAME.match(name):
        raise _refuse(path, where, "is not a valid graph name (letters, digits, _ . -)")
    if not isinstance(entry, dict):
        raise _refuse(path, where, f"must be an object, found {type(entry).__name__}")
    if entry.get("name") != name:
        raise _refuse(path, f"{where}.name", f"must repeat the graph's name {name!r}")
    if not isinstance(entry.get("summary", ""), str):
        raise _refuse(path, f"{where}.summary", "must be a string")
    _check_file_record(entry, path, where)
    for variant in FILE_VARIANTS:
        if entry.get(variant) is not None:
            _check_file_record(entry[variant], path, f"{where}.{variant}")
    for side in ("inputs", "outputs"):
        tensors = entry.get(side)
        if not isinstance(tensors, list) or not tensors or len(tensors) > 64:
            raise _refuse(path, f"{where}.{side}", "must be a non-empty list of tensors")
        for index, tensor in enumerate(tensors):
            _check_tensor(tensor, path, f"{where}.{side}[{index}]")
    if not _is_number(entry.get("gflops_per_item", 0.0)):
        raise _refuse(path, f"{where}.gflops_per_item", "must be a finite number")
    tolerances = entry.get("tolerance", {})
    if not isinstance(tolerances, dict) or not all(_is_number(v) and v >= 0 for v in tolerances.values()):
        raise _refuse(path, f"{where}.tolerance", "must map precisions to non-negative numbers")


def _check_axes(entry: dict[str, Any], config: dict[str, Any], path: Path, where: str) -> None:
    """Every named axis of a declared shape (``z_dim``) is a config value a runtime can allocate for."""
    batch_axis = "N"
    for side in ("inputs", "outputs"):
        for tensor in entry[side]:
            for dim in tensor["declared_shape"]:
                if not isinstance(dim, str) or dim == batch_axis:
                    continue
                value = config.get(dim)
                if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1 << 20:
                    raise _refuse(path, f"config.{dim[:40]}", f"(an axis of {where}.{side}) must be an integer "
                                  f"from 1 to 2^20, got {str(value)[:40]!r}")


def check_manifest(manifest: dict[str, Any], path: Path) -> None:
    """The schema every reader relies on; whatever it refuses is one ZooError naming the field."""
    if not isinstance(manifest.get("model"), str) or not _SAFE_NAME.match(manifest["model"]):
        raise _refuse(path, "model", "must be a model name")
    if not isinstance(manifest.get("config"), dict):
        raise _refuse(path, "config", "must be an object")
    graphs = manifest.get("graphs")
    if not isinstance(graphs, dict) or not graphs:
        raise _refuse(path, "graphs", "must be a non-empty object of graph entries")
    for name, entry in graphs.items():
        _check_graph(name, entry, path)
        _check_axes(entry, manifest["config"], path, f"graphs.{name}")
    opset = manifest.get("opset", 18)
    if not isinstance(opset, int) or isinstance(opset, bool) or not 1 <= opset <= 100:
        raise _refuse(path, "opset", "must be an integer opset version")


def verify_files(record: ExportRecord) -> None:
    """Every listed file is a regular file inside the export directory and still has its recorded sha256."""
    root = record.directory.resolve()
    for name, digest in record.files():
        path = record.directory / name
        if path.is_symlink() or (path.exists() and path.resolve().parent != root):
            raise ZooError(f"{path} leads outside {record.directory} (a link); an export's files must lie in it, "
                           "export the model again")
        if path.exists() and not path.is_file():
            raise ZooError(f"{path} is not a regular file; export the model again")
        if not path.is_file():
            raise ZooError(f"{path} is missing although {MANIFEST} lists it; export the model again")
        if file_sha256(path) != digest:
            raise ZooError(f"{path} does not match the sha256 in {MANIFEST} (changed or corrupted since export); "
                           f"export the model again with `zoo export {record.model}`")


def load_export(directory: str | Path, model: str | None = None, verify: bool = True) -> ExportRecord:
    """Read and check an export directory (format, model name, file hashes)."""
    directory = Path(directory)
    record = ExportRecord(directory, read_manifest(directory, model or "MODEL"))
    if model is not None and record.model != model:
        raise ZooError(f"{directory} is an export of {record.model!r}, not {model!r}; "
                       f"pass --export with an export of {model}")
    if verify:
        verify_files(record)
    return record
