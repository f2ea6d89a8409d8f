"""The ``openvino`` runtime: an export's ONNX graphs (fp32, or the ``.int8.onnx`` QDQ files) compiled by OpenVINO.

``zoo generate MODEL TASK --runtime openvino [--precision int8] --export DIR`` reads the export through
zoo-export's manifest reader (format, model, sha256 of every file), has OpenVINO read each ``.onnx`` directly
(``Core.read_model``) and compiles it for the CPU at the shapes it is called with (static shapes compile to
faster kernels than a dynamic batch; the last :data:`CACHED_SHAPES` are kept). Inputs and outputs are CPU float32
tensors, checked like every runtime's with :func:`zoo_core.runtime.check_inputs`.

fp32 is compiled with ``INFERENCE_PRECISION_HINT=f32``: on CPUs with AMX or AVX-512 BF16 OpenVINO otherwise runs
fp32 graphs in bf16, which a zoo export's fp32 tolerance (1e-4 relative L2) does not allow. The int8 files keep
their quantised layers in int8 (OpenVINO turns QDQ pairs into its own int8 kernels). ``ZOO_OV_THREADS=N`` sets
OpenVINO's inference threads (default: its own choice, one per core).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from zoo_export.manifest import ExportRecord, ExportRunner, load_export

from zoo_core.extend import (
    GraphSpec,
    RegisteredModel,
    RuntimeSource,
    UsageError,
    ZooError,
    check_config,
    check_inputs,
    error_line,
    export_to_run,
)

PRECISIONS = ("fp32", "int8")
CACHED_SHAPES = 4  # compiled shapes kept per graph: tasks call a graph at one or two batch sizes
THREADS_ENV = "ZOO_OV_THREADS"


def openvino_module() -> Any:
    """``openvino``, or one line saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise ZooError("OpenVINO is not installed: pip install zoo-openvino (or pip install openvino)") from None
    return openvino


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("openvino")
    except metadata.PackageNotFoundError:
        return "unknown"


def threads_from_env() -> int | None:
    """``ZOO_OV_THREADS`` as a thread count (None when unset); anything else is one line."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 1024:
        raise UsageError(f"{THREADS_ENV} must be a thread count from 1 to 1024, got {value[:20]!r}")
    return int(value)


def compile_config(threads: int | None = None) -> dict[str, Any]:
    """The CPU plugin's settings: strict fp32 arithmetic, one request at a time, optionally a thread count."""
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


class GraphModel:
    """One ``.onnx`` read by OpenVINO, compiled per input shape on first use."""

    def __init__(self, path: Path, spec: GraphSpec, threads: int | None = None) -> None:
        ov = openvino_module()
        self.path = path
        self.spec = spec
        self.core = ov.Core()
        self.config = compile_config(threads)
        try:
            self.model = self.core.read_model(str(path))
        except Exception as error:
            raise ZooError(f"{path}: OpenVINO cannot read it ({error_line(error)}); export the model again") from None
        self._check_signature()
        self.requests: OrderedDict[tuple[tuple[int, ...], ...], Any] = OrderedDict()

    def _check_signature(self) -> None:
        """The file's inputs and outputs are the manifest's (a swapped file with a fixed-up sha256 is not)."""
        for side, found, declared in (("inputs", self.model.inputs, self.spec.inputs),
                                      ("outputs", self.model.outputs, self.spec.outputs)):
            names = [port.get_any_name() for port in found]
            ranks = [port.get_partial_shape().rank.get_length() for port in found]
            expected = [t.name for t in declared]
            if names != expected or ranks != [len(t.shape) for t in declared]:
                raise ZooError(f"{self.path}: its {side} {names} (ranks {ranks}) are not the {expected} its manifest "
                               "declares for this graph; the file was swapped or edited, export the model again")

    def request(self, shapes: Sequence[tuple[int, ...]]) -> Any:
        """An infer request of the model compiled at these input shapes (kept for the next call of that shape)."""
        key = tuple(tuple(shape) for shape in shapes)
        if key in self.requests:
            self.requests.move_to_end(key)
            return self.requests[key]
        model = self.model.clone()
        model.reshape({port.get_any_name(): list(shape) for port, shape in zip(model.inputs, key, strict=True)})
        try:
            compiled = self.core.compile_model(model, "CPU", self.config)
        except Exception as error:
            raise ZooError(f"{self.path}: OpenVINO could not compile it ({error_line(error)})") from None
        self.requests[key] = compiled.create_infer_request()
        while len(self.requests) > CACHED_SHAPES:
            self.requests.popitem(last=False)
        return self.requests[key]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """float32 arrays in, float32 arrays out (copies: the request reuses its output memory)."""
        request = self.request([tuple(x.shape) for x in inputs])
        request.infer({t.name: np.ascontiguousarray(x, dtype=np.float32) for t, x in zip(self.spec.inputs, inputs,
                                                                                          strict=True)})
        return [np.array(request.get_output_tensor(i).data, dtype=np.float32, copy=True)
                for i in range(len(self.spec.outputs))]


class OpenVinoRunner(ExportRunner):
    """An export's ONNX graphs run by OpenVINO on the CPU, behind zoo's GraphRunner interface."""

    runtime = "openvino"
    platform = "openvino"

    def __init__(self, export: ExportRecord, precision: str = "fp32", threads: int | None = None) -> None:
        if precision not in PRECISIONS:
            raise UsageError(f"--runtime openvino runs fp32 or int8 graphs, not --precision {precision}")
        openvino_module()
        self.export = export
        self.config = export.config
        self.precision = precision
        self.threads = threads
        self.graphs: dict[str, GraphModel] = {}
        self.description = f"openvino {_version()} {precision} on cpu, {export.directory}"

    def graph_spec(self, graph: str) -> GraphSpec:
        return self.graph(graph).spec

    def graph(self, graph: str) -> GraphModel:
        if graph not in self.graphs:
            path = self.export.graph_file(graph, self.precision)  # one line when the graph has no file of it
            self.graphs[graph] = GraphModel(path, self.export.graph_spec(graph), self.threads)
        return self.graphs[graph]

    def run(self, graph: str, *inputs: Any) -> tuple[torch.Tensor, ...]:
        """CPU float tensors in, CPU float32 tensors out."""
        model = self.graph(graph)
        check_inputs(model.spec, self.config, inputs)
        outputs = model.run([x.detach().cpu().numpy() for x in inputs])
        return tuple(torch.from_numpy(o) for o in outputs)


def open_export(directory: str | Path, model: str | None = None, precision: str = "fp32",
                threads: int | None = None) -> OpenVinoRunner:
    """A runner over an export directory, checked (format, model, sha256 of every file) before anything runs."""
    record = load_export(Path(directory), model=model)
    if precision == "int8" and not any(entry.get("int8") for entry in record.manifest["graphs"].values()):
        raise ZooError(f"export {directory} has no int8 file for any graph; export again with "
                       f"`zoo export {record.model} --int8` or run another --precision")
    return OpenVinoRunner(record, precision, threads)


def load(model: RegisteredModel, source: RuntimeSource) -> OpenVinoRunner:
    """The ``openvino`` RuntimeSpec loader: ``--export DIR`` or ``exports/MODEL``, on the CPU."""
    directory, precision = export_to_run("openvino", model, source, PRECISIONS, "graphs", f"zoo export {model.name}",
                                         " here")
    runner = open_export(directory, model.name, precision, threads_from_env())
    check_config(model.spec, runner.config, str(Path(directory) / "manifest.json"))
    return runner
