"""One graph module to one single-file ``.onnx``: the dynamo exporter first, TorchScript as fallback.

Both paths give a dynamic batch axis named ``N``, the GraphSpec's input and output names and
no external data. After writing, the file is checked (``onnx.checker`` with ``full_check``),
refused if it holds a random node (noise must be an input), and stamped with metadata
properties: zoo version, plugin and version, and the graph spec as JSON.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import json
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo_core.extend import GraphSpec, ZooError, error_line

BATCH_AXIS = "N"
DEFAULT_OPSET = 18  # DESIGN.md: newer opsets have had CUDA kernels missing for Pad and ConvTranspose
TRACE_BATCH = 2  # torch.export specialises size-1 dimensions, so trace with at least 2
PROTOBUF_LIMIT = 2**31  # bytes: a single-file .onnx cannot hold more
RANDOM_OPS = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}


@dataclass(frozen=True)
class ExportedFile:
    """How one file was produced: ``exporter`` is ``dynamo`` or ``torchscript`` (then ``note`` says why)."""

    path: Path
    exporter: str
    note: str | None
    io_dtype: str
    #: axes besides the batch that take any size (the spatial axes of fully convolutional graphs), checked at two sizes
    dynamic_axes: tuple[int, ...] = ()


class HalfPrecision(nn.Module):
    """A graph module run in float16; with ``float_io`` its inputs and outputs stay float32."""

    def __init__(self, module: nn.Module, float_io: bool) -> None:
        super().__init__()
        self.module = copy.deepcopy(module).half().eval()
        self.float_io = float_io

    def forward(self, *inputs: torch.Tensor) -> Any:
        outputs = self.module(*(x.half() for x in inputs))
        if not self.float_io:
            return outputs
        if isinstance(outputs, torch.Tensor):
            return outputs.float()
        return tuple(o.float() for o in outputs)


def _dynamic_batch(module: nn.Module, count: int, spatial: tuple[int, ...] = ()) -> tuple[Any, ...]:
    """``dynamic_shapes`` marking axis 0 of every input (and the ``spatial`` axes), shaped like ``forward``'s
    signature."""
    batch = torch.export.Dim(BATCH_AXIS, min=1)
    axes: dict[int, Any] = {0: batch, **{axis: torch.export.Dim.AUTO for axis in spatial}}
    shapes: list[Any] = []
    for parameter in inspect.signature(module.forward).parameters.values():
        if len(shapes) == count:
            break
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            shapes.append(tuple(dict(axes) for _ in range(count - len(shapes))))
            break
        shapes.append(dict(axes))
    return tuple(shapes)


@contextlib.contextmanager
def quiet(*logger_names: str) -> Iterator[None]:
    """Exporters, the quantizer and inductor print progress and notes; zoo reports its own one-line summary.

    Silences stdout and warnings and raises the named loggers (the root logger when none are named) to ERROR.
    """
    loggers = [logging.getLogger(name) for name in logger_names] or [logging.getLogger()]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _export_dynamo(module: nn.Module, inputs: tuple[torch.Tensor, ...], spec: GraphSpec, path: Path,
                   opset: int, spatial: tuple[int, ...] = ()) -> None:
    torch.onnx.export(module, inputs, str(path), dynamo=True, opset_version=opset, external_data=False,
                      input_names=[t.name for t in spec.inputs], output_names=[t.name for t in spec.outputs],
                      dynamic_shapes=_dynamic_batch(module, len(inputs), spatial), optimize=True, verbose=False)


def _export_torchscript(module: nn.Module, inputs: tuple[torch.Tensor, ...], spec: GraphSpec, path: Path,
                        opset: int, spatial: tuple[int, ...] = ()) -> None:
    names = [t.name for t in (*spec.inputs, *spec.outputs)]
    axes = {0: BATCH_AXIS, **{axis: f"{SPATIAL_NAMES.get(axis, 'D')}{axis}" for axis in spatial}}
    torch.onnx.export(module, inputs, str(path), dynamo=False, opset_version=opset,
                      input_names=[t.name for t in spec.inputs], output_names=[t.name for t in spec.outputs],
                      dynamic_axes={name: dict(axes) for name in names}, do_constant_folding=True)


SPATIAL_NAMES = {2: "H", 3: "W"}


def export_module(module: nn.Module, inputs: tuple[torch.Tensor, ...], spec: GraphSpec, path: Path,
                  opset: int, spatial: tuple[int, ...] = ()) -> tuple[str, str | None]:
    """Write ``module`` to ``path`` (with ``spatial`` axes dynamic besides the batch); returns the exporter used
    and, after a fallback, why."""
    module.eval()
    with quiet("torch.onnx", "torch.export", "torch._dynamo", "onnxscript"), torch.no_grad():
        try:
            _export_dynamo(module, inputs, spec, path, opset, spatial)
            return "dynamo", None
        # Only the exporter's own conversion errors fall back: anything else (an AttributeError from an import
        # that Ctrl-C cut short, a MemoryError) is not a property of the graph and must not be papered over.
        except torch.onnx.OnnxExporterError as error:
            reason = error_line(error, innermost=True)
        path.unlink(missing_ok=True)
        try:
            _export_torchscript(module, inputs, spec, path, opset, spatial)
        except Exception as error:
            raise ZooError(f"graph {spec.name}: neither ONNX exporter could export it "
                           f"(dynamo: {reason}; torchscript: {error_line(error, innermost=True)})") from None
    return "torchscript", f"dynamo exporter failed: {reason}"


def _all_nodes(graph: Any) -> Iterator[Any]:
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.g is not None and attribute.g.node:
                yield from _all_nodes(attribute.g)
            for sub in attribute.graphs:
                yield from _all_nodes(sub)


def check_file(path: Path, spec: GraphSpec) -> None:
    """``onnx.checker`` (full), the spec's input/output names, and no random node anywhere."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:
        raise ZooError(f"graph {spec.name}: the exported {path.name} fails the ONNX checker "
                       f"({error_line(error, innermost=True)})") from None
    model = onnx.load(str(path))
    found_inputs = [i.name for i in model.graph.input]
    found_outputs = [o.name for o in model.graph.output]
    if found_inputs != [t.name for t in spec.inputs] or found_outputs != [t.name for t in spec.outputs]:
        raise ZooError(f"graph {spec.name}: exported inputs {found_inputs} and outputs {found_outputs} differ from "
                       f"the spec's {[t.name for t in spec.inputs]} and {[t.name for t in spec.outputs]}; "
                       "graph_module must take and return tensors in the spec's order")
    nodes = list(_all_nodes(model.graph))
    for function in model.functions:
        nodes.extend(function.node)
    random = sorted({n.op_type for n in nodes if n.op_type in RANDOM_OPS})
    if random:
        raise ZooError(f"graph {spec.name}: the export contains random nodes ({', '.join(random)}); "
                       "graph_module must be deterministic: pass noise in as an input")


def stamp_metadata(path: Path, properties: Mapping[str, str], doc: str) -> None:
    """Write metadata properties (and the doc string) into an ``.onnx`` file in place."""
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key not in properties]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in properties.items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = doc
    onnx.save(model, str(path))


def metadata_properties(model: str, plugin: str, plugin_version: str, zoo_version: str, graph_record: Mapping[str, Any],
                        precision: str) -> dict[str, str]:
    return {"zoo_version": zoo_version, "zoo_model": model, "zoo_plugin": plugin, "zoo_plugin_version": plugin_version,
            "zoo_precision": precision, "zoo_graph": json.dumps(graph_record, sort_keys=True)}


def second_size_inputs(inputs: Sequence[torch.Tensor], spatial: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """``inputs`` with their 4-D images resized 8 and 4 pixels larger: the second, non-square size at which every
    format checks that a dynamic spatial axis holds at more than the traced size."""
    import torch.nn.functional as F

    resized = []
    for tensor in inputs:
        if tensor.ndim == 4 and spatial:
            size = (tensor.shape[2] + 8, tensor.shape[3] + 4)
            tensor = F.interpolate(tensor.float(), size=size, mode="bilinear").to(tensor.dtype)
        resized.append(tensor)
    return tuple(resized)


def second_size_error(module: nn.Module, path: Path, inputs: tuple[torch.Tensor, ...],
                      spatial: tuple[int, ...]) -> float:
    """Relative L2 error of the file against ``module`` on inputs resized to a second, non-square size (8 and 4
    pixels larger: a dynamic spatial axis must hold at more than the traced size)."""
    import numpy as np
    import onnxruntime as ort

    resized = second_size_inputs(inputs, spatial)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {arg.name: t.numpy() for arg, t in zip(session.get_inputs(), resized, strict=True)}
    got = session.run(None, feeds)
    with torch.no_grad():
        want = module(*resized)
    want = (want,) if isinstance(want, torch.Tensor) else tuple(want)
    worst = 0.0
    for value, reference in zip(got, want, strict=True):
        reference = reference.float().numpy()
        if value.shape != reference.shape:
            return float("inf")
        norm = float(np.linalg.norm(reference)) or 1.0
        worst = max(worst, float(np.linalg.norm(value.astype(np.float32) - reference)) / norm)
    return worst


#: relative L2 a file with dynamic spatial axes must keep at the second size, per precision
SECOND_SIZE_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}


def export_graph(module: nn.Module, inputs: Sequence[torch.Tensor], spec: GraphSpec, path: Path, opset: int,
                 properties: Mapping[str, str], precision: str = "fp32", float_io: bool = True,
                 spatial: tuple[int, ...] = ()) -> ExportedFile:
    """Export, check and stamp one graph at ``precision`` (fp16 halves weights and activations).

    ``spatial``: axes of 4-D inputs to make dynamic besides the batch (a fully convolutional graph); the file is
    then checked at a second size and, where it fails, exported again with fixed axes (the note says why)."""
    weight_bytes = sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
    if weight_bytes >= PROTOBUF_LIMIT:
        raise ZooError(f"graph {spec.name}: {weight_bytes / 2**30:.1f} GiB of weights exceed the 2 GiB a single-file "
                       ".onnx can hold; zoo export writes single files only")
    inputs = tuple(inputs)
    io_dtype = "float32"
    if precision == "fp16":
        module = HalfPrecision(module, float_io)
        if not float_io:
            inputs = tuple(x.half() for x in inputs)
            io_dtype = "float16"
    exporter, note = export_module(module, inputs, spec, path, opset, spatial)
    check_file(path, spec)
    if spatial:
        try:
            error = second_size_error(module, path, inputs, spatial)
        except Exception as failure:  # the runtime refuses the second size: the axes are not really free
            reason = error_line(failure, innermost=True)
            error, note = float("inf"), f"dynamic spatial axes failed at a second size ({reason})"
        if not error <= SECOND_SIZE_TOLERANCE.get(precision, 1e-4):
            note = note or f"dynamic spatial axes off: relative L2 {error:.3g} at a second size"
            spatial = ()
            exporter, _ = export_module(module, inputs, spec, path, opset)
            check_file(path, spec)
    stamp_metadata(path, {**properties, "zoo_exporter": exporter,
                          "zoo_dynamic_axes": json.dumps(list(spatial))}, spec.summary)
    return ExportedFile(path, exporter, note, io_dtype, tuple(spatial))


def export_model_graph(model: Any, recipe: Any, module: nn.Module, graph: GraphSpec, path: Path,
                       precision: str = "fp32", opset: int = DEFAULT_OPSET, float_io: bool = True,
                       seed: int = 0) -> ExportedFile:
    """One graph of a model (a RegisteredModel and its Recipe) to a checked, stamped ``.onnx`` at ``path``.

    The one export path of ``zoo export`` and ``zoo bench``: both trace the same inputs
    (:data:`TRACE_BATCH` items of ``recipe.example_inputs`` from ``seed``) at the same default opset.
    """
    from zoo_core import __version__ as zoo_version
    from zoo_export.manifest import config_gflops, graph_json

    properties = metadata_properties(model.name, model.distribution, model.version, zoo_version,
                                     graph_json(graph, recipe.config, config_gflops(recipe, graph, module)), precision)
    from zoo_core.extend import dynamic_axes

    inputs = recipe.example_inputs(graph.name, TRACE_BATCH, torch.Generator().manual_seed(seed))
    return export_graph(module, inputs, graph, path, opset, properties, precision, float_io,
                        spatial=dynamic_axes(model.spec, graph.name))
