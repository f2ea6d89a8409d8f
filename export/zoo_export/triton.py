"""A Triton Inference Server model repository from a zoo export: ``zoo export MODEL --triton DIR``.

Each exported graph becomes one Triton model named ``<model>.<graph>`` (the name `zoo serve` gives it too)::

    DIR/ae_mnist.autoencoder/config.pbtxt     platform onnxruntime_onnx, max_batch_size, dynamic_batching
    DIR/ae_mnist.autoencoder/1/model.onnx     the export's fp32 file, byte for byte

Input and output dims come from the manifest without the batch axis (Triton adds it when
``max_batch_size`` > 0). DIR may already hold other models: a model folder is replaced only when
zoo wrote it (its config.pbtxt starts with :data:`MARKER`), and each is written beside its final
place and renamed in, so a failure never leaves half a model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo_core.extend import UsageError, ZooError
from zoo_core.extend import io as zio
from zoo_export.manifest import ExportRecord

MARKER = "# written by zoo export --triton"
DEFAULT_MAX_BATCH = 8
DEFAULT_QUEUE_DELAY_US = 2000
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "float64": "TYPE_FP64", "int64": "TYPE_INT64",
                "int32": "TYPE_INT32", "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL"}


def _dims(record: Mapping[str, Any], graph: str) -> list[int]:
    shape = list(record["shape"])
    if not shape or shape[0] != "N" or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        raise ZooError(f"graph {graph}: tensor {record['name']} has shape {shape}; a Triton model needs the batch "
                       "axis N first and fixed sizes after it")
    return shape[1:]


def _tensor(record: Mapping[str, Any], graph: str) -> str:
    dtype = record["dtype"]
    if dtype not in TRITON_TYPES:
        raise ZooError(f"graph {graph}: tensor {record['name']} has dtype {dtype}, which Triton's ONNX backend "
                       "does not take here")
    dims = ", ".join(str(d) for d in _dims(record, graph))
    return f'  {{\n    name: "{record["name"]}"\n    data_type: {TRITON_TYPES[dtype]}\n    dims: [ {dims} ]\n  }}'


def model_config(name: str, entry: Mapping[str, Any], max_batch: int = DEFAULT_MAX_BATCH,
                 queue_delay_us: int = DEFAULT_QUEUE_DELAY_US) -> str:
    """The config.pbtxt text of one graph (manifest entry ``entry``) as Triton model ``name``."""
    graph = entry["name"]
    inputs = ",\n".join(_tensor(t, graph) for t in entry["inputs"])
    outputs = ",\n".join(_tensor(t, graph) for t in entry["outputs"])
    summary = _escape(entry.get("summary", ""))
    preferred = sorted({size for size in (max_batch // 2, max_batch) if size >= 1})
    return (f"{MARKER}\n"
            f'name: "{name}"\n'
            'platform: "onnxruntime_onnx"\n'
            f"max_batch_size: {max_batch}\n"
            f"input [\n{inputs}\n]\n"
            f"output [\n{outputs}\n]\n"
            "dynamic_batching {\n"
            f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]\n"
            f"  max_queue_delay_microseconds: {queue_delay_us}\n"
            "}\n"
            f'parameters {{\n  key: "zoo_summary"\n  value: {{ string_value: "{summary}" }}\n}}\n')


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _check_replaceable(folder: Path) -> None:
    """Refuse to replace a model folder zoo did not write."""
    if not folder.exists():
        return
    config = folder / "config.pbtxt"
    try:
        ours = folder.is_dir() and config.is_file() and config.read_text(encoding="utf-8").startswith(MARKER)
    except (OSError, UnicodeDecodeError):
        ours = False
    if not ours:
        raise UsageError(f"--triton: {folder} exists and was not written by zoo export; "
                         "choose another --triton directory or move it away (zoo replaces only its own models)")


def check_repository(repository: Path, model: str, graphs: Sequence[str]) -> None:
    """Refuse, before any work, a repository path that is a file or holds a model folder zoo did not write."""
    if repository.exists() and not repository.is_dir():
        raise UsageError(f"--triton {repository} is a file; give a directory for the model repository")
    for graph in graphs:
        _check_replaceable(repository / f"{model}.{graph}")


def write_triton_repository(export: ExportRecord, repository: Path, graphs: Sequence[str] | None = None,
                            max_batch: int = DEFAULT_MAX_BATCH, log: Callable[[str], None] | None = None) -> list[Path]:
    """Write one Triton model per graph of ``export`` into ``repository``; returns the model folders."""
    if max_batch < 1:
        raise UsageError(f"Triton max_batch_size must be at least 1, got {max_batch}")
    names = list(graphs) if graphs is not None else export.graph_names
    check_repository(repository, export.model, names)
    folders = [(graph, f"{export.model}.{graph}") for graph in names]
    repository.mkdir(parents=True, exist_ok=True)
    written = []
    for graph, name in folders:
        entry = export.graph_entry(graph)
        config = model_config(name, entry, max_batch)
        stage = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=repository))
        try:
            (stage / "1").mkdir()
            shutil.copyfile(export.graph_file(graph), stage / "1" / "model.onnx")
            (stage / "config.pbtxt").write_text(config, encoding="utf-8")
            for path in (stage, stage / "1"):
                os.chmod(path, 0o777 & ~_umask())
            zio.replace_directory(stage, repository / name)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        written.append(repository / name)
        if log is not None:
            log(f"zoo: wrote Triton model {repository / name}")
    return written


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
