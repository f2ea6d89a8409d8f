"""AOTInductor packages: ``zoo export --format aoti`` writes ``GRAPH.pt2``, and the ``aoti`` runtime runs them.

Export: ``torch.export`` of the graph module with a dynamic batch dimension (traced at batch 2, since torch.export
specialises size-1 dimensions) and, for a fully convolutional graph, dynamic height and width (kept only where the
package matches eager PyTorch at a second, non-square size too), then ``torch._inductor.aoti_compile_and_package``
on the export device (CPU here, CUDA when exported with a GPU), timed. The package is loaded back and compared with
eager PyTorch at batch 1 and 7 (the fp32 relative-L2 tolerance of the graph); it is listed in the same manifest
(file, sha256, bytes, compile seconds, validation).

Runtime: ``zoo generate MODEL TASK --runtime aoti --export DIR`` checks the manifest and the
sha256 of every file, then loads each ``.pt2`` with ``torch._inductor.aoti_load_package``: the
compiled code and weights are in the package, so no plugin network code is imported to run it.
A truncated or tampered package is refused in one line (sha256, then the loader's own check).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from zoo_core.extend import (
    GraphSpec,
    RegisteredModel,
    RuntimeSource,
    UsageError,
    ZooError,
    check_inputs,
    dynamic_axes,
    error_line,
    file_sha256,
    refuse_precision,
)
from zoo_export.manifest import ExportRecord, ExportRunner, load_export, tolerance
from zoo_export.onnx_export import _dynamic_batch, quiet, second_size_inputs
from zoo_export.validation import BATCHES, compare

SUFFIX = ".pt2"

# Inductor warns about a missing CUDA runtime on CPU machines and logs its compile steps.
_INDUCTOR_LOGGERS = ("torch", "torch._inductor", "torch.export", "torch._dynamo")


def compile_package(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], path: Path,
                    spatial: tuple[int, ...] = ()) -> float:
    """torch.export (dynamic batch, and the ``spatial`` axes) + AOTInductor into ``path``; returns the seconds it
    took."""
    start = time.perf_counter()
    module.eval()
    with quiet(*_INDUCTOR_LOGGERS), torch.no_grad():
        try:
            program = torch.export.export(module, inputs, dynamic_shapes=_dynamic_batch(module, len(inputs), spatial))
            torch._inductor.aoti_compile_and_package(program, package_path=str(path))
        except Exception as error:
            reason = error_line(error, innermost=True)
            raise ZooError(f"{path.stem}: AOTInductor could not compile it ({reason})") from None
    return time.perf_counter() - start


def load_package(path: Path) -> Callable[..., Any]:
    """A loaded ``.pt2``; a damaged one is one ZooError."""
    with quiet(*_INDUCTOR_LOGGERS):
        try:
            return torch._inductor.aoti_load_package(str(path))
        except Exception as error:
            raise ZooError(f"{path}: not a loadable AOTInductor package ({error_line(error, 160, innermost=True)}); "
                           "export the model again with --format aoti") from None


def run_package(package: Callable[..., Any], inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    with torch.inference_mode():
        outputs = package(*inputs)
    if isinstance(outputs, torch.Tensor):
        outputs = (outputs,)
    return tuple(o.float().cpu() for o in outputs)


def export_aoti(stage: Path, graph: GraphSpec, runner: Any, trace_batch: int, seed: int,
                log: Callable[[str], None]) -> dict[str, Any]:
    """``GRAPH.pt2`` in ``stage``, validated against eager PyTorch; returns its manifest entry."""
    path = stage / f"{graph.name}{SUFFIX}"
    recipe = runner.recipe
    module = runner.module(graph.name)
    if torch.cuda.is_available():  # the package runs where it was compiled: CUDA when exported with a GPU
        module = copy.deepcopy(module).cuda()
    device = next(iter(module.parameters()), torch.empty(0)).device
    trace = tuple(x.to(device) for x in recipe.example_inputs(graph.name, trace_batch,
                                                              torch.Generator().manual_seed(seed)))
    limit = tolerance(graph, "fp32")
    spatial = dynamic_axes(runner.model.spec, graph.name)
    note = None
    seconds = compile_package(module, trace, path, spatial)
    package = load_package(path)
    if spatial:  # a fully convolutional graph: the package must hold at a second, non-square size too
        error = _second_size_error(package, runner, graph.name, trace, spatial, device)
        if not error <= limit:
            note = (f"dynamic spatial axes off: relative L2 {error:.3g} at a second size" if math.isfinite(error)
                    else "dynamic spatial axes off: the package refused a second size")
            spatial = ()
            seconds += compile_package(module, trace, path)
            package = load_package(path)
    worst_abs, worst_rel = 0.0, 0.0
    for batch in BATCHES:
        inputs = tuple(recipe.example_inputs(graph.name, batch, torch.Generator().manual_seed(seed + batch)))
        max_abs, rel_l2 = compare(run_package(package, tuple(x.to(device) for x in inputs)),
                                  runner.run(graph.name, *inputs))
        worst_abs, worst_rel = max(worst_abs, max_abs), max(worst_rel, rel_l2)
    passed = math.isfinite(worst_rel) and worst_rel <= limit
    axes = ", any height and width" if spatial else ""
    log(f"zoo: exported {graph.name} (aoti on {device.type}{axes}, compiled in {seconds:.1f} s, rel L2 "
        f"{worst_rel:.3g} against eager)" + (f"; {note}" if note else ""))
    if not passed:
        raise ZooError(f"export validation failed for {graph.name} (aoti): the package differs from PyTorch by "
                       f"relative L2 {worst_rel:.3g} (tolerance {limit:.0e}); nothing was written")
    return {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size,
            "exporter": f"torch.export + AOTInductor (torch {torch.__version__})", "device": device.type,
            "compile_seconds": round(seconds, 2), "dynamic_batch": True, "dynamic_axes": list(spatial),
            **({"exporter_note": note} if note else {}),
            "validation": {"max_abs": worst_abs if math.isfinite(worst_abs) else None,
                           "rel_l2": worst_rel if math.isfinite(worst_rel) else None, "tolerance": limit,
                           "batches": list(BATCHES), "passed": passed}}


def _second_size_error(package: Callable[..., Any], runner: Any, graph: str, trace: tuple[torch.Tensor, ...],
                       spatial: tuple[int, ...], device: torch.device) -> float:
    """Relative L2 of the package against eager PyTorch at the second size (inf where the package refuses it)."""
    resized = second_size_inputs(tuple(x.cpu() for x in trace), spatial)
    try:
        got = run_package(package, tuple(x.to(device) for x in resized))
    except Exception:  # a guard compiled in for the traced size: the axes are not really free
        return math.inf
    return compare(got, runner.run(graph, *resized))[1]


class AotiRunner(ExportRunner):
    """An export's ``.pt2`` packages behind zoo's GraphRunner interface; each loads on first use."""

    runtime = "aoti"
    platform = "zoo_aoti"

    def __init__(self, export: ExportRecord, device: str) -> None:
        self.export = export
        self.config = export.config
        self.device = device
        self.packages: dict[str, Callable[..., Any]] = {}
        self.description = f"aoti (torch {torch.__version__}) on {device}, {export.directory}"

    def package(self, graph: str) -> Callable[..., Any]:
        if graph not in self.packages:
            entry = self.export.graph_entry(graph).get("aoti")
            if not entry:
                raise ZooError(f"export {self.export.directory} has no AOTInductor package for graph {graph!r}; "
                               f"export again with `zoo export {self.export.model} --format aoti`")
            self.packages[graph] = load_package(self.export.directory / entry["file"])
        return self.packages[graph]

    def dynamic_axes(self, graph: str) -> tuple[int, ...]:
        """Axes besides the batch the package takes at any size (``dynamic_axes`` of its manifest entry, checked
        at a second size when it was compiled; none in packages written before zoo 0.2)."""
        entry = self.export.graph_entry(graph).get("aoti") or {}
        axes = entry.get("dynamic_axes") or []
        return tuple(a for a in axes if isinstance(a, int) and not isinstance(a, bool) and 0 < a < 8)

    def run(self, graph: str, *inputs: Any) -> tuple[torch.Tensor, ...]:
        """CPU float tensors in, CPU float32 tensors out."""
        check_inputs(self.graph_spec(graph), self.config, inputs, self.dynamic_axes(graph))
        package = self.package(graph)
        return run_package(package, tuple(x.to(self.device).contiguous() for x in inputs))


def open_aoti_export(directory: str | Path, model: str | None = None, device: str = "auto") -> AotiRunner:
    """A runner over an export directory's packages, checked (format, model, sha256 of every file) first."""
    record = load_export(Path(directory), model=model)
    packaged = {entry.get("aoti", {}).get("device") for entry in record.manifest["graphs"].values()
                if entry.get("aoti")}
    if not packaged:
        raise ZooError(f"export {directory} holds no AOTInductor packages; export again with "
                       f"`zoo export {record.model} --format aoti`")
    wanted = next(iter(packaged)) if device == "auto" else device
    if wanted not in packaged:
        raise UsageError(f"--device {device}: the packages in {directory} were compiled for "
                         f"{', '.join(sorted(packaged))}; export again on a {device} machine")
    return AotiRunner(record, wanted)


def load_aoti_runner(model: RegisteredModel, source: RuntimeSource) -> AotiRunner:
    """The ``aoti`` RuntimeSpec loader: ``--export DIR`` or ``exports/MODEL``."""
    if source.weights is not None:  # weights are checkpoints: an exported runtime runs their export
        raise ZooError(f"--runtime aoti runs an export, not --weights: export them first "
                       f"(zoo export {model.name} --weights {source.weights}) and pass --export DIR")
    refuse_precision("aoti", source.precision)  # packages are compiled from the fp32 graphs
    if source.export is None and (source.run is not None or source.checkpoint is not None):
        raise ZooError("--runtime aoti runs an export, not a run or checkpoint: pass --export DIR "
                       f"(made by `zoo export {model.name} --format aoti`)")
    return open_aoti_export(source.export or Path("exports") / model.name, model.name, source.device)
