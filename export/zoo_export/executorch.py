"""ExecuTorch programs: `zoo export --format executorch` writes ``GRAPH.pte``; the ``executorch`` runtime runs them.

Export: ``torch.export`` of the graph module with a batch dimension bounded by :data:`MAX_BATCH` (ExecuTorch
plans its memory for the upper bound), lowered by ``executorch.exir.to_edge_transform_and_lower`` with the
``XnnpackPartitioner`` and serialised to a ``.pte``. The program is loaded back with ``executorch.runtime`` and
compared with eager PyTorch at batch 1 and 7 (the fp32 relative-L2 tolerance of the graph).

With ``--int8`` it also writes ``GRAPH.int8.pte``: PT2E quantisation (``XNNPACKQuantizer``, symmetric per-channel
int8 weights, int8 activations) calibrated on the same inputs as ``--int8``'s ONNX files
(:class:`zoo_export.quantize.Int8Data`), kept only where the graph's task-quality bars hold on held-out inputs
(:class:`zoo_export.quantize.Judge`); like the ONNX quantizer, a miss is retried once with the first and
last weighted layers left in fp32, and a second miss writes no int8 program and one line naming the figure.

Runtime: ``zoo generate MODEL TASK --runtime executorch [--precision int8] --export DIR`` checks the manifest and
every sha256, then loads each ``.pte`` with ``executorch.runtime.Runtime``: the program holds the weights and the
lowered graph, so no plugin network code is imported. Batches above ``MAX_BATCH`` run in slices.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

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
    file_sha256,
)
from zoo_core.extend import io as zio
from zoo_export.manifest import ExportRecord, ExportRunner, load_export, tolerance
from zoo_export.onnx_export import _dynamic_batch, quiet
from zoo_export.quantize import Int8Data, Int8Options, Judge, QualityFigure, psnr
from zoo_export.sessions import SessionSettings
from zoo_export.validation import BATCHES, compare

SUFFIX = ".pte"
INT8_SUFFIX = ".int8.pte"
MAX_BATCH = 64  # the upper bound memory is planned for; larger batches run in slices
CALIBRATION_CHUNK = 8  # items per calibration forward: memory stays flat however many samples
PRECISIONS = ("fp32", "int8")
MANIFEST_KEYS = {"fp32": "executorch", "int8": "executorch_int8"}
# torch.export and the ExecuTorch lowering log per-op notes; ExecuTorch's import logs a pytree deprecation.
_LOGGERS = ("torch", "torch.export", "torch._dynamo", "torch.utils._pytree", "executorch")
_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """ExecuTorch's C++ side prints CPU probing and load errors to fd 2 and, through its bindings, to sys.stderr;
    zoo reports its own one line."""
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded interpreters): only sys.stderr to silence
        saved = None
    try:
        if saved is not None:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)


def runtime_module() -> Any:
    """``executorch.runtime``, or one line saying how to install it."""
    try:
        with quiet(*_LOGGERS):
            import executorch.runtime as runtime
    except ImportError:
        raise ZooError("ExecuTorch is not installed: pip install 'zoo-export[executorch]' "
                       "(or pip install 'executorch>=1.5,<1.6')") from None
    return runtime


def set_threads(count: int) -> None:
    """The XNNPACK thread pool's size (ExecuTorch's default is one thread per core it detects)."""
    with native_stderr_silenced(), quiet(*_LOGGERS):  # it logs "Resetting threadpool" on stderr
        from executorch.extension.pybindings import portable_lib

        portable_lib._unsafe_reset_threadpool(count)


def _bounded_batch(module: nn.Module, count: int, max_batch: int) -> tuple[Any, ...]:
    """``dynamic_shapes`` like the ONNX export's, with the batch axis bounded (memory planning needs a maximum)."""
    batch = torch.export.Dim("N", min=1, max=max_batch)

    def bound(shapes: Any) -> Any:
        return {axis: batch for axis in shapes} if isinstance(shapes, dict) else tuple(map(bound, shapes))

    return bound(_dynamic_batch(module, count))


def _capture(module: nn.Module, inputs: tuple[torch.Tensor, ...], max_batch: int) -> torch.export.ExportedProgram:
    return torch.export.export(module, inputs, dynamic_shapes=_bounded_batch(module, len(inputs), max_batch))


def lower(program: torch.export.ExportedProgram, path: Path) -> list[str]:
    """XNNPACK lowering into ``path``; returns the operators left outside the delegate (run by portable kernels)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    outside = sorted({getattr(node.target, "__name__", str(node.target))
                      for node in edge.exported_program().graph.nodes
                      if node.op == "call_function" and "delegate" not in str(node.target)
                      and "getitem" not in str(node.target)})
    zio.write_bytes(path, edge.to_executorch().buffer)
    return outside


def compile_program(module: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path,
                    max_batch: int = MAX_BATCH) -> tuple[float, list[str]]:
    """torch.export (bounded dynamic batch) + XNNPACK lowering of fp32 ``module`` into ``path``; returns the seconds
    it took and the operators left outside the delegate."""
    started = time.perf_counter()
    module.eval()
    with quiet(*_LOGGERS), torch.no_grad():
        try:
            outside = lower(_capture(module, inputs, max_batch), path)
        except Exception as error:
            reason = error_line(error, innermost=True)
            raise ZooError(f"{path.stem}: ExecuTorch could not lower it ({reason})") from None
    return time.perf_counter() - started, outside


def weighted_layers(module: nn.Module) -> list[str]:
    """Qualified names of ``module``'s convolutions and linear layers, in definition order."""
    return [name for name, layer in module.named_modules() if isinstance(layer, _WEIGHTED)]


def quantize_module(module: nn.Module, inputs: tuple[torch.Tensor, ...], calibration: Sequence[torch.Tensor],
                    keep_fp32: Sequence[str] = (), max_batch: int = MAX_BATCH) -> nn.Module:
    """PT2E int8 (XNNPACKQuantizer, per-channel symmetric) of ``module`` calibrated on ``calibration``, with the
    layers named in ``keep_fp32`` left unquantised."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))
    for name in keep_fp32:
        quantizer.set_module_name(name, None)
    prepared = prepare_pt2e(_capture(module, inputs, max_batch).module(), quantizer)
    count = int(calibration[0].shape[0])
    for start in range(0, count, CALIBRATION_CHUNK):
        prepared(*(t[start:start + CALIBRATION_CHUNK] for t in calibration))
    return convert_pt2e(prepared)


def compile_int8_program(module: nn.Module, inputs: tuple[torch.Tensor, ...], calibration: Sequence[torch.Tensor],
                         path: Path, keep_fp32: Sequence[str] = (),
                         max_batch: int = MAX_BATCH) -> tuple[float, list[str]]:
    """PT2E int8 + XNNPACK lowering into ``path``; returns seconds and the operators left outside the delegate."""
    started = time.perf_counter()
    module.eval()
    with quiet(*_LOGGERS), torch.no_grad():
        try:
            quantized = quantize_module(module, inputs, calibration, keep_fp32, max_batch)
            outside = lower(_capture(quantized, inputs, max_batch), path)
        except Exception as error:
            reason = error_line(error, innermost=True)
            raise ZooError(f"{path.stem}: ExecuTorch int8 quantisation failed ({reason})") from None
    return time.perf_counter() - started, outside


class Program:
    """One loaded ``.pte``'s ``forward``: CPU float tensors in, CPU float32 tensors out."""

    def __init__(self, path: Path, max_batch: int = MAX_BATCH) -> None:
        runtime = runtime_module()
        self.path = path
        self.max_batch = max_batch
        with native_stderr_silenced(), quiet(*_LOGGERS):
            try:
                program = runtime.Runtime.get().load_program(str(path))
                self.method = program.load_method("forward")
            except Exception as error:
                raise ZooError(f"{path}: not a loadable ExecuTorch program ({error_line(error, 160, innermost=True)}); "
                               "export the model again with --format executorch") from None
        if self.method is None:
            raise ZooError(f"{path}: the ExecuTorch program has no forward method; export the model again")
        # the batch memory was planned for: torch.export may narrow the declared bound (seen on PT2E graphs)
        planned = self.method.metadata.input_tensor_meta(0).sizes()[0]
        self.max_batch = max(1, min(max_batch, int(planned)))

    def _execute(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        try:
            outputs = self.method.execute([x.float().contiguous() for x in inputs])
        except Exception as error:
            reason = error_line(error, 160, innermost=True)
            raise ZooError(f"{self.path}: ExecuTorch could not run it ({reason})") from None
        return [o.float().clone() for o in outputs]  # copies: the method reuses its planned output memory

    def run(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        count = int(inputs[0].shape[0])
        if count <= self.max_batch:
            return tuple(self._execute(inputs))
        slices = [self._execute([x[start:start + self.max_batch] for x in inputs])
                  for start in range(0, count, self.max_batch)]
        return tuple(torch.cat(parts) for parts in zip(*slices, strict=True))

    def run_numpy(self, inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
        """What :func:`zoo_export.quantize.measure_quality` calls on a candidate."""
        return [o.numpy() for o in self.run(inputs)]


def _validate(program: Program, graph: GraphSpec, runner: Any, seed: int) -> tuple[float, float]:
    worst_abs, worst_rel = 0.0, 0.0
    for batch in BATCHES:
        inputs = tuple(runner.recipe.example_inputs(graph.name, batch, torch.Generator().manual_seed(seed + batch)))
        max_abs, rel_l2 = compare(program.run(inputs), runner.run(graph.name, *inputs))
        worst_abs, worst_rel = max(worst_abs, max_abs), max(worst_rel, rel_l2)
    return worst_abs, worst_rel


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def export_fp32(stage: Path, graph: GraphSpec, runner: Any, trace: tuple[torch.Tensor, ...], seed: int,
                log: Callable[[str], None]) -> dict[str, Any]:
    """``GRAPH.pte`` in ``stage``, validated against eager PyTorch; returns its manifest entry."""
    path = stage / f"{graph.name}{SUFFIX}"
    seconds, outside = compile_program(runner.module(graph.name), trace, path)
    program = Program(path)
    worst_abs, worst_rel = _validate(program, graph, runner, seed)
    limit = tolerance(graph, "fp32")
    passed = math.isfinite(worst_rel) and worst_rel <= limit
    log(f"zoo: exported {graph.name} (executorch xnnpack fp32, lowered in {seconds:.1f} s, rel L2 {worst_rel:.3g} "
        "against eager)")
    if not passed:
        raise ZooError(f"export validation failed for {graph.name} (executorch): the program differs from PyTorch by "
                       f"relative L2 {worst_rel:.3g} (tolerance {limit:.0e}); nothing was written")
    return {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size,
            "exporter": f"torch.export + executorch {_version()} (XnnpackPartitioner)", "backend": "xnnpack",
            "compile_seconds": round(seconds, 2), "max_batch": program.max_batch, "not_delegated": outside,
            "validation": {"max_abs": _finite(worst_abs), "rel_l2": _finite(worst_rel), "tolerance": limit,
                           "batches": list(BATCHES), "passed": passed}}


def quality_figures(judge: Judge, program: Program) -> list[QualityFigure]:
    """The graph's quality bars measured on an int8 program by zoo export's own judge (its fp32 outputs and metric
    functions); like ``Judge.figures`` for ONNX files, the bars after a missed one are not measured."""
    graph = judge.graph
    with torch.no_grad():
        value = psnr(program.run_numpy(judge.held_out), judge.expected, graph)
        figures: list[QualityFigure] = []
        for bar in graph.quality_bars:
            if figures and not figures[-1].passed:
                break
            figures.append(QualityFigure(graph.name, bar, value, None) if bar.metric == "psnr"
                           else judge._metric(bar, program))  # the task metric, with this program for the graph
    return figures


def export_int8(stage: Path, graph: GraphSpec, runner: Any, trace: tuple[torch.Tensor, ...], inputs: Int8Data,
                options: Int8Options, log: Callable[[str], None]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """``GRAPH.int8.pte`` when the graph's quality bars hold: (manifest entry or None, quality rows)."""
    path = stage / f"{graph.name}{INT8_SUFFIX}"
    module = runner.module(graph.name)
    calibration, held_out = inputs.calibration(graph.name), inputs.held_out(graph.name)
    layers = weighted_layers(module)
    tries: list[list[str]] = [[]] + ([[layers[0], layers[-1]]] if len(layers) > 2 else [])
    attempts: list[dict[str, Any]] = []
    figures: list[QualityFigure] = []
    seconds, outside, kept = 0.0, [], False
    judge = Judge(graph, runner.run, held_out, inputs.data, runner.recipe, SessionSettings(device="cpu"))
    for keep_fp32 in tries:
        seconds, outside = compile_int8_program(module, trace, calibration, path, keep_fp32)
        program = Program(path)
        figures = quality_figures(judge, program)
        attempts.append({"fp32_layers": keep_fp32, "quality": [f.as_json() for f in figures]})
        if all(f.passed for f in figures):
            kept = True
            break
    rows = [{**f.as_json(), "format": "executorch", "kept": kept, "fp32_layers": keep_fp32} for f in figures]
    if not kept:
        path.unlink(missing_ok=True)
        missed = "; ".join(f.describe() for f in figures if not f.passed)
        log(f"zoo: executorch int8 {graph.name} not written: {missed} on held-out inputs (fp32 program kept)")
        return None, rows
    fp32_layers = f", layers kept in fp32: {', '.join(keep_fp32)}" if keep_fp32 else ""
    log(f"zoo: exported {graph.name} (executorch xnnpack int8, {int(calibration[0].shape[0])} calibration samples"
        f"{fp32_layers}): " + "; ".join(f.describe() for f in figures))
    calibration_record = {"samples": int(calibration[0].shape[0]), "source": inputs.source, "method": "minmax",
                          "quantizer": "XNNPACKQuantizer (PT2E)", "weights": "int8 per-channel symmetric",
                          "activations": "int8",
                          "held_out": int(held_out[0].shape[0]) if inputs.held_out_is_separate else 0}
    return {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size,
            "exporter": f"torch.export + PT2E + executorch {_version()} (XnnpackPartitioner)", "backend": "xnnpack",
            "compile_seconds": round(seconds, 2), "max_batch": program.max_batch, "not_delegated": outside,
            "calibration": calibration_record, "fp32_layers": keep_fp32, "attempts": attempts,
            "quality": [f.as_json() for f in figures]}, rows


def export_executorch(stage: Path, graph: GraphSpec, runner: Any, trace_batch: int, seed: int,
                      int8: tuple[Int8Data, Int8Options] | None,
                      log: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]]:
    """The graph's ``.pte`` (and ``.int8.pte`` when ``int8`` is given): (fp32 entry, int8 entry or None, rows)."""
    runtime_module()  # one line when ExecuTorch is missing, before any work
    trace = tuple(runner.recipe.example_inputs(graph.name, trace_batch, torch.Generator().manual_seed(seed)))
    fp32 = export_fp32(stage, graph, runner, trace, seed, log)
    if int8 is None:
        return fp32, None, []
    entry, rows = export_int8(stage, graph, runner, trace, int8[0], int8[1], log)
    return fp32, entry, rows


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("executorch")
    except metadata.PackageNotFoundError:
        return "unknown"


class ExecuTorchRunner(ExportRunner):
    """An export's ``.pte`` programs behind zoo's GraphRunner interface; each loads on first use."""

    runtime = "executorch"
    platform = "zoo_executorch"

    def __init__(self, export: ExportRecord, precision: str = "fp32", threads: int | None = None) -> None:
        if precision not in PRECISIONS:
            raise UsageError(f"--runtime executorch runs fp32 or int8 programs, not --precision {precision}")
        runtime_module()
        if threads is not None:
            set_threads(threads)
        self.export = export
        self.config = export.config
        self.precision = precision
        self.programs: dict[str, Program] = {}
        self.description = f"executorch {_version()} (xnnpack) {precision} on cpu, {export.directory}"

    def program(self, graph: str) -> Program:
        if graph not in self.programs:
            entry = self.export.graph_entry(graph).get(MANIFEST_KEYS[self.precision])
            if not entry:
                flag = " --int8" if self.precision == "int8" else ""
                missed = " (a graph that misses its quality bar gets none)" if self.precision == "int8" else ""
                raise ZooError(f"export {self.export.directory} has no ExecuTorch {self.precision} program for graph "
                               f"{graph!r}; export again with `zoo export {self.export.model} --format executorch"
                               f"{flag}`{missed}")
            self.programs[graph] = Program(self.export.directory / entry["file"], int(entry.get("max_batch", 1)))
        return self.programs[graph]

    def run(self, graph: str, *inputs: Any) -> tuple[torch.Tensor, ...]:
        """CPU float tensors in, CPU float32 tensors out."""
        check_inputs(self.graph_spec(graph), self.config, inputs)
        return self.program(graph).run([x.cpu() for x in inputs])


def open_executorch_export(directory: str | Path, model: str | None = None, precision: str = "fp32",
                           threads: int | None = None) -> ExecuTorchRunner:
    """A runner over an export directory's programs, checked (format, model, sha256 of every file) first."""
    record = load_export(Path(directory), model=model)
    key = MANIFEST_KEYS.get(precision)
    if key is None:
        raise UsageError(f"--runtime executorch runs fp32 or int8 programs, not --precision {precision}")
    if not any(entry.get(key) for entry in record.manifest["graphs"].values()):
        flag = " --int8" if precision == "int8" else ""
        raise ZooError(f"export {directory} holds no ExecuTorch {precision} programs; export again with "
                       f"`zoo export {record.model} --format executorch{flag}`")
    return ExecuTorchRunner(record, precision, threads)


def load_executorch_runner(model: RegisteredModel, source: RuntimeSource) -> ExecuTorchRunner:
    """The ``executorch`` RuntimeSpec loader: ``--export DIR`` or ``exports/MODEL``, CPU only."""
    directory, precision = export_to_run("executorch", model, source, PRECISIONS, "programs",
                                         f"zoo export {model.name} --format executorch", " (XNNPACK)")
    runner = open_executorch_export(directory, model.name, precision)
    check_config(model.spec, runner.config, str(Path(directory) / "manifest.json"))
    return runner
