"""The ``onnxruntime`` runtime: a model's exported graphs behind zoo's GraphRunner interface.

``zoo generate MODEL TASK --runtime onnxruntime [--export DIR] [--device auto|cpu|cuda]`` loads
``DIR`` (default ``exports/MODEL``), checks its manifest (format version, model, sha256 of every
file) and runs each graph through a :class:`~zoo_export.sessions.GraphSession`. ``run`` takes
and returns CPU float32 tensors like the ``torch`` runtime and refuses bad inputs with
:func:`zoo_core.runtime.check_inputs`; inside, inputs are copied into buffers on the session's
device (CUDA or CPU) that an IOBinding keeps bound between calls of the same shape.
``--precision fp16`` or ``int8`` (or ``ZOO_ORT_PRECISION``) selects the ``.fp16.onnx`` or ``.int8.onnx``
files; see
:meth:`SessionSettings.from_env` for the other knobs. Benchmarks use
:meth:`OnnxRunner.session` for the lower-level, copy-free API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from zoo_core.extend import GraphSpec, RegisteredModel, RuntimeSource, ZooError, check_config, check_inputs
from zoo_export.manifest import ExportRecord, ExportRunner, load_export
from zoo_export.sessions import BoundRun, GraphSession, SessionSettings, onnxruntime_module, torch_dtype


class OnnxRunner(ExportRunner):
    """Exported graphs run by onnxruntime; sessions open on first use of each graph."""

    runtime = "onnxruntime"
    platform = "onnxruntime_onnx"

    def __init__(self, export: ExportRecord, settings: SessionSettings) -> None:
        self.export = export
        self.settings = settings
        self.config = export.config
        self.sessions: dict[str, GraphSession] = {}
        self.bindings: dict[str, BoundRun] = {}
        version = onnxruntime_module().__version__
        self.description = f"onnxruntime {version} {settings.precision} on {settings.device}, {export.directory}"

    def session(self, graph: str) -> GraphSession:
        """The session of ``graph`` at the runner's precision (opened once)."""
        if graph not in self.sessions:
            session = GraphSession(self.export.graph_file(graph, self.settings.precision), self.settings)
            _check_signature(session, self.graph_spec(graph))
            self.sessions[graph] = session
        return self.sessions[graph]

    def bound(self, graph: str, shapes: list[tuple[int, ...]]) -> BoundRun:
        """The graph's IOBinding over buffers of these input shapes on the session's device, kept between calls.

        A captured CUDA graph is tied to its shapes and buffer addresses, so with CUDA graphs a new
        shape also gets a new session.
        """
        cached = self.bindings.get(graph)
        if cached is not None and [tuple(t.shape) for t in cached.inputs] == shapes:
            return cached
        if cached is not None and self.settings.cuda_graph:
            self.sessions.pop(graph)
        session = self.session(graph)
        device = torch.device(f"cuda:{self.settings.device_id}" if self.settings.device == "cuda" else "cpu")
        buffers = [torch.empty(shape, dtype=torch_dtype(info.dtype), device=device)
                   for shape, info in zip(shapes, session.inputs, strict=True)]
        self.bindings[graph] = session.bind(buffers)
        return self.bindings[graph]

    def dynamic_axes(self, graph: str) -> tuple[int, ...]:
        """Axes besides the batch the file takes at any size: those its first input names symbolically (an export
        of a fully convolutional graph, checked at two sizes; the manifest records them as ``dynamic_axes``)."""
        shape = self.session(graph).inputs[0].shape
        return tuple(axis for axis, dim in enumerate(shape) if axis > 0 and not isinstance(dim, int))

    def run(self, graph: str, *inputs: Any) -> tuple[torch.Tensor, ...]:
        """CPU float tensors in, CPU float32 tensors out, through IOBinding on the session's device."""
        check_inputs(self.graph_spec(graph), self.config, inputs, self.dynamic_axes(graph))
        bound = self.bound(graph, [tuple(x.shape) for x in inputs])
        for buffer, value in zip(bound.inputs, inputs, strict=True):
            buffer.copy_(value)  # host to device, and to float16 for fp16 inputs
        bound.run()
        # copies: the bound buffers are overwritten by the next call
        return tuple(o.to(device="cpu", dtype=torch.float32, copy=True) for o in bound.outputs)


def _check_signature(session: GraphSession, spec: GraphSpec) -> None:
    """The file's inputs and outputs are the ones the manifest declares (a swapped file with a fixed-up sha is not)."""
    for side, found, declared in (("inputs", session.inputs, spec.inputs), ("outputs", session.outputs, spec.outputs)):
        names, expected = [t.name for t in found], [t.name for t in declared]
        ranks = [len(t.shape) for t in found]
        if names != expected or any(rank != len(t.shape) for rank, t in zip(ranks, declared, strict=True)):
            raise ZooError(f"{session.path}: its {side} {names} (ranks {ranks}) are not the {expected} its manifest "
                           "declares for this graph; the file was swapped or edited, export the model again")


def _check_precision(export: ExportRecord, precision: str) -> None:
    """One line before anything runs when no graph of the export has a file of this precision."""
    if precision == "fp32" or any(entry.get(precision) for entry in export.manifest["graphs"].values()):
        return
    raise ZooError(f"export {export.directory} has no {precision} file for any graph; export again with "
                   f"`zoo export {export.model} --{precision}` or run another --precision")


def open_export(directory: str | Path, model: str | None = None, settings: SessionSettings | None = None) -> OnnxRunner:
    """A runner over an export directory, checked (format, model name, sha256) before anything runs."""
    record = load_export(Path(directory), model=model)
    return OnnxRunner(record, settings or SessionSettings.from_env("auto"))


def load_onnx_runner(model: RegisteredModel, source: RuntimeSource) -> OnnxRunner:
    """The ``onnxruntime`` RuntimeSpec loader: ``--export DIR`` or ``exports/MODEL``."""
    if source.weights is not None:  # weights are checkpoints: an exported runtime runs their export
        raise ZooError(f"--runtime onnxruntime runs an export, not --weights: export them first "
                       f"(zoo export {model.name} --weights {source.weights}) and pass --export DIR")
    if source.export is None and (source.run is not None or source.checkpoint is not None):
        raise ZooError("--runtime onnxruntime runs an export, not a run or checkpoint: pass --export DIR "
                       f"(made by `zoo export {model.name} --run ...`)")
    directory = source.export or Path("exports") / model.name
    runner = open_export(directory, model.name, SessionSettings.from_env(source.device, source.precision))
    _check_precision(runner.export, runner.settings.precision)
    # the tasks read the export's config (z_dim, image_size): the same schema as a checkpoint's
    check_config(model.spec, runner.config, str(Path(directory) / "manifest.json"))
    return runner
