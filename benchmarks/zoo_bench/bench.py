"""The benchmark run: every graph × batch size × runtime × precision cell of a model.

For each graph the run builds the torch module at the chosen preset (random weights are
fine for timing), draws one batch of inputs at the largest batch size and computes the
torch fp32 reference on it. Each cell then loads its runtime, runs the graph once on the
same inputs (the first call: compilation, cuDNN search and sessions are paid here), checks
the outputs against the reference, warms up and times. A wrong runtime is reported, not
timed; a runtime that cannot run here is skipped with its reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo_bench.aoti_backend import AotiPackages
from zoo_bench.backends import Backend, GraphCase, TorchCompile, TorchEager, installed_backends
from zoo_bench.choices import COMPILE_MODES, MEMORY_FORMATS, PRECISIONS, RUNTIMES
from zoo_bench.executorch_backend import ExecuTorchPrograms
from zoo_bench.machine import describe_machine, usable_cores
from zoo_bench.measure import Peak, config_differs, count_gflops, measure_peak
from zoo_bench.ort_backend import OnnxRuntime, measure_int8_peak
from zoo_bench.sources import onnx_files, resolve_source
from zoo_bench.timing import TimingRule, time_calls, warm_up
from zoo_core.extend import RegisteredModel, UsageError, error_line

BASELINE = ("torch", "fp32")
DEFAULT_BATCH_SIZES = {"cpu": (1, 8), "cuda": (1, 8, 64)}
# Relative L2 error allowed against torch fp32 when a graph's spec does not say (GraphSpec.tolerance).
# int8: static quantization is checked by task quality at export; here the relative L2 bar only catches a broken graph.
DEFAULT_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2, "int8": 0.15}
SCHEMA = "zoo-bench/1"


@dataclass(frozen=True)
class BenchOptions:
    """What `zoo bench` was asked; empty ``graphs``/``batch_sizes`` mean all graphs / the device's default."""

    graphs: tuple[str, ...] = ()
    runtimes: tuple[str, ...] = RUNTIMES
    precisions: tuple[str, ...] = ("fp32",)
    device: str = "auto"
    batch_sizes: tuple[int, ...] = ()
    preset: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None
    export_dir: Path | None = None
    threads: int | None = None
    rule: TimingRule = field(default_factory=TimingRule)
    compile_mode: str = "default"
    cuda_graph: bool = False
    memory_format: str = "auto"
    seed: int = 0
    peak_size: int | None = None  # largest matmul of the peak measurement (default: per device)


@dataclass(frozen=True)
class Cell:
    graph: str
    batch: int
    runtime: str
    precision: str


@dataclass
class CellResult:
    """One measured (or skipped, or refused) cell; times in seconds, latencies in milliseconds."""

    model: str
    graph: str
    batch: int
    runtime: str
    precision: str
    status: str  # ok | wrong | skipped | failed
    reason: str = ""
    items_per_s: float | None = None
    latency_ms: dict[str, float] | None = None
    runs: int = 0
    timed_s: float = 0.0
    setup_s: float | None = None
    first_call_s: float | None = None
    warmup_s: float | None = None
    warmup_runs: int = 0
    warmup_cost_s: float | None = None
    speedup: float | None = None
    gflops_per_item: float | None = None
    gflops_per_s: float | None = None
    peak_share: float | None = None
    rel_error: float | None = None
    max_abs_error: float | None = None
    tolerance: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        # JSON has no inf or nan: an output of the wrong shape or with NaNs has no error figure.
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in asdict(self).items()}


@dataclass
class ModelRun:
    """What a run needs to know about one model: the preset it was built at and its graphs' FLOPs."""

    name: str
    distribution: str
    version: str
    preset: str
    config: dict[str, Any]
    graphs: dict[str, dict[str, Any]] = field(default_factory=dict)
    weights: str = "random"  # or "checkpoint FILE" / "export DIR"


@dataclass
class BenchReport:
    """Everything one run measured; ``as_json`` is the schema of --json and the suite's results."""

    device: str
    threads: int
    settings: dict[str, Any]
    machine: dict[str, Any]
    peaks: dict[str, Peak] = field(default_factory=dict)
    models: list[ModelRun] = field(default_factory=list)
    cells: list[CellResult] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "device": self.device, "threads": self.threads, "settings": self.settings,
                "machine": self.machine, "peaks": {k: p.as_json() for k, p in self.peaks.items()},
                "models": [asdict(m) for m in self.models], "cells": [c.as_json() for c in self.cells]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BenchReport:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} result (schema {data.get('schema')!r})")
        peaks = {k: Peak(p["precision"], p["matmul_size"], p["gflops"], p["runs"]) for k, p in data["peaks"].items()}
        return cls(device=data["device"], threads=data["threads"], settings=dict(data["settings"]),
                   machine=dict(data["machine"]), peaks=peaks, models=[ModelRun(**m) for m in data["models"]],
                   cells=[CellResult(**c) for c in data["cells"]])


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU; ``cuda`` without CUDA stays cuda, and every cell says why it skipped."""
    from zoo_core.extend import select_device

    return select_device(name, choices=("cpu", "cuda"), must_exist=False)


def check_options(options: BenchOptions, runtimes: Sequence[str]) -> None:
    """One clear line for each kind of bad option."""
    for runtime in options.runtimes:
        if runtime not in runtimes:
            raise UsageError(f"--runtimes: unknown runtime {runtime!r}; known: {', '.join(runtimes)}")
    for precision in options.precisions:
        if precision not in PRECISIONS:
            raise UsageError(f"--precision: unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if any(b < 1 for b in options.batch_sizes):
        raise UsageError(f"--batch-sizes must be positive integers, got {','.join(map(str, options.batch_sizes))}")
    if options.compile_mode not in COMPILE_MODES:
        raise UsageError(f"--compile-mode must be one of {', '.join(COMPILE_MODES)}")
    if options.memory_format not in MEMORY_FORMATS:
        raise UsageError(f"--memory-format must be one of {', '.join(MEMORY_FORMATS)}")
    if options.threads is not None and options.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {options.threads}")
    if (options.checkpoint or options.export_dir) and (options.preset or options.overrides):
        raise UsageError("--preset/--set build random weights; a --checkpoint or --export fixes the config itself, "
                         "so drop --preset and --set")


def plan_cells(model: RegisteredModel, options: BenchOptions, device: torch.device) -> list[Cell]:
    """The cells of one model in run order: per graph and batch size, the torch fp32 baseline first."""
    spec = model.spec
    names = [g.name for g in spec.graphs]
    for graph in options.graphs:
        if graph not in names:
            raise UsageError(f"--graphs: {spec.name} has no graph {graph!r}; graphs: {', '.join(names)}")
    graphs = list(options.graphs) or names
    batches = options.batch_sizes or DEFAULT_BATCH_SIZES.get(device.type, (1, 8))
    combos = [BASELINE, *((r, p) for r in options.runtimes for p in options.precisions)]
    unique = list(dict.fromkeys(combos))
    return [Cell(g, b, r, p) for g in graphs for b in batches for r, p in unique]


def relative_errors(outputs: Sequence[torch.Tensor], reference: Sequence[torch.Tensor]) -> tuple[float, float]:
    """Worst relative L2 error and worst absolute error over the outputs (inf when shapes differ or NaN)."""
    if len(outputs) != len(reference):
        return math.inf, math.inf
    worst_rel = worst_abs = 0.0
    for out, ref in zip(outputs, reference, strict=True):
        if tuple(out.shape) != tuple(ref.shape) or not bool(torch.isfinite(out).all()):
            return math.inf, math.inf
        diff = (out.double() - ref.double())
        norm = float(ref.double().norm())
        worst_rel = max(worst_rel, float(diff.norm()) / max(norm, 1e-30))
        worst_abs = max(worst_abs, float(diff.abs().max()) if diff.numel() else 0.0)
    return worst_rel, worst_abs


@contextlib.contextmanager
def bench_environment(device: torch.device, threads: int) -> Iterator[None]:
    """Same intra-op threads as onnxruntime, strict fp32 (no TF32) and cuDNN autotuning, restored afterwards."""
    saved = (torch.get_num_threads(), torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cudnn.benchmark)
    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = device.type == "cuda"
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[1], saved[2]
        torch.backends.cudnn.benchmark = saved[3]


# (recipe, module, graph, workdir) -> precision -> .onnx path; None when there is no ONNX to run.
OnnxFactory = Callable[[Any, torch.nn.Module, str, Path], Callable[[str], Path] | None]


class Benchmark:
    """Runs the cells of one or more models and collects a :class:`BenchReport`.

    ``backends`` adds or replaces runtimes by name (tests add a deliberately wrong one);
    ``onnx_factory(recipe, module, graph, workdir)`` replaces zoo_export as the source of a
    graph's ONNX files.
    """

    def __init__(self, options: BenchOptions, backends: Mapping[str, Backend] | None = None,
                 onnx_factory: OnnxFactory | None = None,
                 on_cell: Callable[[Cell, CellResult | None], None] | None = None) -> None:
        self.options = options
        self.device = resolve_device(options.device)
        self.threads = options.threads or usable_cores()
        self.backends: dict[str, Backend] = {
            "torch": TorchEager(options.memory_format),
            "torch-compile": TorchCompile(options.compile_mode, options.memory_format),
            "onnxruntime": OnnxRuntime(self.threads, options.cuda_graph),
            "aoti": AotiPackages(),
            "executorch": ExecuTorchPrograms(self.threads),
            **installed_backends(self.threads),
            **(backends or {}),
        }
        check_options(options, list(self.backends))
        self.onnx_factory = onnx_factory
        self.on_cell = on_cell or (lambda cell, result: None)
        self.report = BenchReport(device=self.device.type, threads=self.threads, settings=self.settings(),
                                  machine=describe_machine(self.device.type))
        self.workdir = tempfile.TemporaryDirectory(prefix="zoo-bench-")

    def settings(self) -> dict[str, Any]:
        o = self.options
        return {"runtimes": list(o.runtimes), "precisions": list(o.precisions), "batch_sizes": list(o.batch_sizes),
                "min_seconds": o.rule.min_seconds, "min_runs": o.rule.min_runs, "max_seconds": o.rule.max_seconds,
                "warmup_seconds": o.rule.warmup_seconds, "compile_mode": o.compile_mode, "cuda_graph": o.cuda_graph,
                "memory_format": o.memory_format, "seed": o.seed, "tf32": False,
                "cudnn_benchmark": self.device.type == "cuda",
                "checkpoint": str(o.checkpoint) if o.checkpoint else None,
                "export_dir": str(o.export_dir) if o.export_dir else None}

    def close(self) -> None:
        self.workdir.cleanup()
        for backend in self.backends.values():
            getattr(backend, "close", lambda: None)()  # e.g. the aoti packages' folder

    def __enter__(self) -> Benchmark:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def peak(self, precision: str) -> Peak | None:
        """The device's matmul peak in ``precision``, measured once per run."""
        if self.device.type == "cuda" and not torch.cuda.is_available():
            return None
        if precision == "int8" and self.device.type != "cpu":
            return None  # int8 graphs run on onnxruntime's CPU EP only
        if precision == "int8" and precision not in self.report.peaks:
            self.report.peaks[precision] = measure_int8_peak(self.threads, self.options.rule.min_seconds)
        if precision not in self.report.peaks:
            with bench_environment(self.device, self.threads):
                self.report.peaks[precision] = measure_peak(self.device, precision, self.options.rule.min_seconds,
                                                            self.options.peak_size)
        return self.report.peaks[precision]

    def run_model(self, model: RegisteredModel, cells: Sequence[Cell] | None = None) -> list[CellResult]:
        """Measure ``cells`` (default: the model's whole plan) and add them to the report."""
        from zoo_core.extend import build_model, load_model

        spec = model.spec
        o = self.options
        cells = list(cells if cells is not None else plan_cells(model, o, self.device))
        source = resolve_source(model, o.preset, o.overrides, o.checkpoint, o.export_dir)
        run = ModelRun(model.name, model.distribution, model.version, source.preset, source.config,
                       weights=source.weights)
        self.report.models.append(run)
        for precision in dict.fromkeys(c.precision for c in cells):
            self.peak(precision)  # before any runtime loads, so no other thread pool competes with it
        results: list[CellResult] = []
        build_device = self.device if self.device.type != "cuda" or torch.cuda.is_available() else torch.device("cpu")
        with bench_environment(self.device, self.threads):
            if source.checkpoint is not None:
                loaded = load_model(model, checkpoint=source.checkpoint, device=build_device)
            else:
                loaded = build_model(model, source.config, device=build_device, seed=o.seed)
            recipe, networks = loaded.recipe, loaded.networks
            recount = source.checkpoint is not None or config_differs(source.config,
                                                                       spec.preset(spec.card_preset).values)

            def onnx(module: torch.nn.Module, graph: str) -> Callable[[str], Path] | None:
                workdir = Path(self.workdir.name)
                if self.onnx_factory is not None:
                    return self.onnx_factory(recipe, module, graph, workdir)
                return onnx_files(model, source, recipe, module, graph, workdir)

            for graph in dict.fromkeys(c.graph for c in cells):
                graph_cells = [c for c in cells if c.graph == graph]
                results += self._run_graph(run, recipe, networks, graph, graph_cells, recount, build_device, onnx)
                if graph in source.export_seconds:
                    run.graphs[graph]["export_s"] = source.export_seconds[graph]
        self.report.cells.extend(results)
        return results

    def _run_graph(self, run: ModelRun, recipe: Any, networks: Mapping[str, torch.nn.Module], graph: str,
                   cells: Sequence[Cell], recount: bool, build_device: torch.device,
                   onnx: Callable[[torch.nn.Module, str], Callable[[str], Path] | None]) -> list[CellResult]:
        spec = recipe.spec.graph(graph)
        module = recipe.graph_module(graph, networks).eval()
        case = GraphCase(run.name, spec, run.config, module, self.device, onnx(module, graph))
        runnable = self.device == build_device
        max_batch = max(c.batch for c in cells)
        generator = torch.Generator().manual_seed(self.options.seed)
        inputs = tuple(x.to(build_device) for x in recipe.example_inputs(graph, max_batch, generator))
        reference: tuple[torch.Tensor, ...] = ()
        gflops = spec.gflops_per_item
        source = "card"
        if runnable:
            with torch.inference_mode():
                result = module(*inputs)
            reference = tuple(o.detach().float().cpu() for o in ((result,) if torch.is_tensor(result) else result))
            if recount or not gflops:
                gflops = count_gflops(module, tuple(x[:1] for x in inputs))
                source = "counted at this config"
        run.graphs[graph] = {"gflops_per_item": gflops, "gflops_source": source, "summary": spec.summary,
                             "inputs": [list(x.shape[1:]) for x in inputs]}
        results: list[CellResult] = []
        for batch in dict.fromkeys(c.batch for c in cells):
            batch_inputs = tuple(x[:batch] for x in inputs)
            batch_reference = tuple(r[:batch] for r in reference)
            for cell in (c for c in cells if c.batch == batch):
                self.on_cell(cell, None)
                result = self._run_cell(case, cell, batch_inputs, batch_reference, gflops)
                results.append(result)
                self.on_cell(cell, result)
            baseline = next((r for r in results if r.batch == batch and (r.runtime, r.precision) == BASELINE
                             and r.status == "ok"), None)
            for result in results:
                if result.batch == batch and result.status == "ok" and baseline and baseline.items_per_s:
                    result.speedup = result.items_per_s / baseline.items_per_s if result.items_per_s else None
        return results

    def _run_cell(self, case: GraphCase, cell: Cell, inputs: tuple[torch.Tensor, ...],
                  reference: tuple[torch.Tensor, ...], gflops: float) -> CellResult:
        result = CellResult(case.model, cell.graph, cell.batch, cell.runtime, cell.precision, status="skipped",
                            gflops_per_item=gflops)
        backend = self.backends[cell.runtime]
        reason = backend.skip_reason(self.device, cell.precision)
        if reason is None and getattr(backend, "needs_onnx", False) and case.onnx is None:
            reason = "no ONNX model to run (zoo-export is not installed)"
        if reason:
            result.reason = reason
            return result
        tolerance = case.spec.tolerance.get(cell.precision, DEFAULT_TOLERANCE[cell.precision])
        result.tolerance = tolerance
        prepared = None
        try:
            fetch = getattr(backend, "fetch", None)
            if fetch is not None:
                fetch(case, cell.precision)  # e.g. the ONNX export: not part of the runtime's warm-up
            started = time.perf_counter()
            prepared = backend.prepare(case, inputs, [tuple(r.shape) for r in reference], cell.precision)
            result.setup_s = time.perf_counter() - started - prepared.diagnostic_seconds
            result.notes = list(prepared.notes)
            with prepared.context():
                started = time.perf_counter()
                first = prepared.call()
                if prepared.sync is not None:
                    prepared.sync()
                result.first_call_s = time.perf_counter() - started
                outputs = prepared.outputs(first)
                del first
                result.rel_error, result.max_abs_error = relative_errors(outputs, reference)
                if not result.rel_error <= tolerance:
                    result.status = "wrong"
                    result.reason = (f"output differs from torch fp32: relative L2 error {result.rel_error:.3g} "
                                     f"> {tolerance:g}")
                    return result
                rule = self.options.rule
                if prepared.min_warmup_runs > rule.warmup_runs:
                    rule = dataclasses.replace(rule, warmup_runs=prepared.min_warmup_runs)
                result.warmup_s, result.warmup_runs = warm_up(prepared.call, prepared.sync, rule)
                timing = time_calls(prepared.call, prepared.sync, rule)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # a runtime that crashes is a result, not the end of the run
            result.status = "failed"
            result.reason = error_line(error)  # a cell's skip reason: one line
            return result
        finally:
            if prepared is not None:
                prepared.close()
            del prepared
            gc.collect()
        result.status = "ok"
        result.runs = timing.runs
        result.timed_s = timing.wall_seconds
        result.items_per_s = timing.items_per_second(cell.batch)
        result.latency_ms = {"p50": timing.p50 * 1e3, "p90": timing.p90 * 1e3, "p99": timing.p99 * 1e3,
                             "mean": timing.mean * 1e3, "min": min(timing.samples) * 1e3}
        # What loading, the first call and warm-up cost beyond the same number of steady-state runs.
        before = (result.setup_s or 0) + (result.first_call_s or 0) + (result.warmup_s or 0)
        result.warmup_cost_s = max(0.0, before - (1 + result.warmup_runs) * timing.p50)
        if gflops:
            result.gflops_per_s = gflops * result.items_per_s
            peak = self.peak(cell.precision)
            if peak is not None:
                result.peak_share = result.gflops_per_s / peak.gflops
        return result



