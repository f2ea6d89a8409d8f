"""The export directory's ``manifest.json``: what was exported, how, from what, and how well it matched.

A runtime trusts an export only through this file: its format version must be one this
package reads, the model must be the one asked for, and every ``.onnx`` it lists must exist
with the recorded sha256. Graph specs are stored both as declared (``declared_shape``, with
config keys) and resolved at the exported config (``shape``, only the batch axis ``"N"``
left symbolic), so plain onnxruntime users need nothing but this file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core.checkpoint import file_sha256
from zoo_core.errors import ZooError
from zoo_core.spec import GraphSpec, TensorSpec

FORMAT = "zoo-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DEFAULT_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}


def tensor_json(tensor: TensorSpec, config: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": tensor.name, "shape": list(tensor.resolve(config)), "declared_shape": list(tensor.shape),
            "dtype": tensor.dtype, "value_range": list(tensor.value_range) if tensor.value_range else None,
            "layout": tensor.layout}


def tensor_from_json(record: Mapping[str, Any]) -> TensorSpec:
    value_range = record.get("value_range")
    return TensorSpec(name=record["name"], shape=tuple(record["declared_shape"]), dtype=record["dtype"],
                      value_range=tuple(value_range) if value_range else None, layout=record.get("layout", ""))


def graph_json(graph: GraphSpec, config: Mapping[str, Any]) -> dict[str, Any]:
    """A graph spec as manifest data (also stored in each ``.onnx`` file's metadata)."""
    return {"name": graph.name, "summary": graph.summary,
            "inputs": [tensor_json(t, config) for t in graph.inputs],
            "outputs": [tensor_json(t, config) for t in graph.outputs],
            "gflops_per_item": graph.gflops_per_item, "tolerance": dict(graph.tolerance)}


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
                raise ZooError(f"export {self.directory} has no int8 file for graph {graph!r}; export again with "
                               f"`zoo export {self.model} --int8` (a graph that misses its quality bar gets none)")
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
            for extra in ("fp16", "int8", "aoti"):
                if entry.get(extra):
                    listed.append((entry[extra]["file"], entry[extra]["sha256"]))
        return listed


def read_manifest(directory: Path) -> dict[str, Any]:
    """Parse ``manifest.json``; a missing, unreadable, foreign or newer one is one clear ZooError."""
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ZooError(f"no export directory at {directory}: run `zoo export MODEL` or pass --export DIR")
    if not path.is_file():
        raise ZooError(f"{directory} has no {MANIFEST}; it is not a zoo export (create one with `zoo export MODEL`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ZooError(f"{path} is not readable JSON ({error}); export the model again") from None
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
    return manifest


def verify_files(record: ExportRecord) -> None:
    """Every listed ``.onnx`` exists and still has the sha256 the manifest recorded."""
    for name, digest in record.files():
        path = record.directory / name
        if not path.is_file():
            raise ZooError(f"{path} is missing although {MANIFEST} lists it; export the model again")
        if file_sha256(path) != digest:
            raise ZooError(f"{path} does not match the sha256 in {MANIFEST} (changed or corrupted since export); "
                           f"export the model again with `zoo export {record.model}`")


def load_export(directory: str | Path, model: str | None = None, verify: bool = True) -> ExportRecord:
    """Read and check an export directory (format, model name, file hashes)."""
    directory = Path(directory)
    record = ExportRecord(directory, read_manifest(directory))
    if model is not None and record.model != model:
        raise ZooError(f"{directory} is an export of {record.model!r}, not {model!r}; "
                       f"pass --export with an export of {model}")
    if verify:
        verify_files(record)
    return record
