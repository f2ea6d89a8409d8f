"""The benchmark suite: every registered model's graphs on this machine, written up as BENCHMARKS.md.

``python benchmarks/scripts/suite.py`` runs each model at its card preset on the available
device (batch 1 and 8 in fp32 on a CPU; 1, 8 and 64 in fp32 and fp16 on CUDA, with onnxruntime
also timed with CUDA graphs; bf16 is one ``zoo bench --precision bf16`` away), writes
``benchmarks/results/<device-slug>.json`` and one PNG chart per model, runs the core's start-up
benchmark (``benchmarks/scripts/startup.py``) and rebuilds ``BENCHMARKS.md`` from every result
file in ``benchmarks/results/``, so CPU and GPU results measured on different machines sit side
by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo_bench.bench import BASELINE, SCHEMA, Benchmark, BenchOptions, BenchReport, CellResult, plan_cells
from zoo_bench.machine import device_slug, usable_cores
from zoo_bench.report import (
    machine_line,
    markdown_cells,
    markdown_table,
    peaks_line,
    significant,
    weights_text,
    write_json,
    write_plot,
)
from zoo_bench.timing import TimingRule

# ANCHORS.md (reference implementations, 2-vCPU AMD EPYC, measured 2026-11-26): items/s of torch eager fp32 and
# onnxruntime CPU fp32 at batch 8. The suite checks each first-party graph reaches the ratio within 10%, and shows
# the absolute figures so a slow harness (rather than a fast torch) is visible.
ANCHORS_CPU: dict[tuple[str, str], tuple[float, float, float]] = {  # torch, onnxruntime, ratio as ANCHORS.md rounds it
    ("ae_mnist", "autoencoder"): (42_681, 190_831, 4.5),
    ("vae_faces", "encoder"): (586, 1_059, 1.8),
    ("vae_faces", "decoder"): (288, 806, 2.8),
    ("cyclegan_hair", "black_to_blond"): (1.2, 1.7, 1.4),
    ("cyclegan_hair", "blond_to_black"): (1.2, 1.7, 1.4),
}
ANCHOR_BATCH = 8
RATIO_SLACK = 0.9
# The 256² generator on onnxruntime's CPU path should reach this share of the run's measured fp32 matmul peak.
PEAK_TARGETS: dict[tuple[str, str], float] = {
    ("cyclegan_hair", "black_to_blond"): 0.8,
    ("cyclegan_hair", "blond_to_black"): 0.8,
}
CUDA_GRAPH_RUNTIME = "onnxruntime-cuda-graph"
STARTUP_SCRIPT = Path("benchmarks/scripts/startup.py")
STARTUP_RESULT = "startup.json"


def suite_options(device: str, runtimes: Sequence[str] | None = None, preset: str | None = None,
                  batch_sizes: Sequence[int] | None = None, min_seconds: float = 1.0,
                  threads: int | None = None) -> BenchOptions:
    """The suite's settings per device: small batches in fp32 on a CPU, three batch sizes in fp32 and fp16 on CUDA.

    Each cell is timed for at least ``min_seconds`` and 50 runs, or 3 runs once 3 s (CPU) / 5 s
    (CUDA) have passed: the 256² generator takes seconds per batch on a CPU.
    """
    if device == "cuda":
        return BenchOptions(runtimes=tuple(runtimes or ("torch", "torch-compile", "onnxruntime", CUDA_GRAPH_RUNTIME)),
                            precisions=("fp32", "fp16"), device="cuda",
                            batch_sizes=tuple(batch_sizes or (1, 8, 64)), preset=preset, threads=threads,
                            rule=TimingRule(min_seconds=min_seconds, min_runs=50, max_seconds=max(5.0, min_seconds)))
    return BenchOptions(runtimes=tuple(runtimes or ("torch", "torch-compile", "onnxruntime")), precisions=("fp32",),
                        device="cpu", batch_sizes=tuple(batch_sizes or (1, 8)), preset=preset, threads=threads,
                        rule=TimingRule(min_seconds=min_seconds, min_runs=50, max_seconds=max(3.0, min_seconds)))


def model_report(report: BenchReport, model: str) -> BenchReport:
    """The part of ``report`` about one model (for its chart)."""
    return BenchReport(report.device, report.threads, report.settings, report.machine, report.peaks,
                       [m for m in report.models if m.name == model], [c for c in report.cells if c.model == model])


# -- the write-up -----------------------------------------------------------------------------
def find_cell(cells: Sequence[CellResult], model: str, graph: str, batch: int, runtime: str,
              precision: str = "fp32") -> CellResult | None:
    return next((c for c in cells if (c.model, c.graph, c.batch, c.runtime, c.precision)
                 == (model, graph, batch, runtime, precision) and c.status == "ok"), None)


def targets_section(report: BenchReport) -> str:
    """The CPU figures the suite is asked to reach, measured in this run."""
    if report.device != "cpu":
        return ""
    at_card = {(run.name, graph) for run in report.models for graph, info in run.graphs.items()
               if info["gflops_source"] == "card"}
    rows = []
    for (model, graph), (anchor_torch, anchor_ort, anchor) in ANCHORS_CPU.items():
        if (model, graph) not in at_card:
            continue  # the anchors were measured at the card preset (256² images)
        torch_cell = find_cell(report.cells, model, graph, ANCHOR_BATCH, *BASELINE)
        ort_cell = find_cell(report.cells, model, graph, ANCHOR_BATCH, "onnxruntime")
        if torch_cell is None or ort_cell is None:
            continue
        ratio = ort_cell.items_per_s / torch_cell.items_per_s
        met = "yes" if ratio >= RATIO_SLACK * anchor else "**no**"
        rows.append([f"{model} / {graph}", f"batch {ANCHOR_BATCH}: onnxruntime / torch fp32",
                     f"{ratio:.2f}× ({significant(ort_cell.items_per_s)} / {significant(torch_cell.items_per_s)} "
                     "items/s)",
                     f"≥ {RATIO_SLACK * anchor:.2f}× (ANCHORS {anchor}×: {significant(anchor_ort)} / "
                     f"{significant(anchor_torch)})", met])
    for (model, graph), share in PEAK_TARGETS.items():
        if (model, graph) not in at_card:
            continue
        for cell in report.cells:
            if (cell.model, cell.graph, cell.runtime, cell.precision, cell.status) == (model, graph, "onnxruntime",
                                                                                       "fp32", "ok"):
                if cell.peak_share is None or cell.gflops_per_s is None:
                    continue
                met = "yes" if cell.peak_share >= share else "**no**"
                rows.append([f"{model} / {graph}", f"batch {cell.batch}: onnxruntime share of the fp32 peak",
                             f"{100 * cell.peak_share:.0f}% ({significant(cell.gflops_per_s)} GFLOP/s)",
                             f"≥ {100 * share:.0f}%", met])
    if not rows:
        return ""
    return "Figures to reach (ratios and shares from this run):\n\n" + markdown_table(
        ["graph", "figure", "measured", "target", "met"], rows, numeric={"measured", "target"})


def startup_section(startup: Mapping[str, Any] | None) -> str:
    """The core's start-up benchmark (benchmarks/results/startup.json, written by benchmarks/scripts/startup.py)."""
    if not startup:
        return "_No start-up results: run `python benchmarks/scripts/startup.py`._"
    results = startup.get("results")
    if isinstance(results, dict) and all(isinstance(r, dict) and "median_s" in r for r in results.values()):
        machine = startup.get("machine", {})
        budget = startup.get("budget_s")
        head = (f"{startup.get('what', 'start-up time')}; {startup.get('runs', '?')} runs per command; "
                f"{startup.get('date', '')}; {machine.get('cpus', '?')} CPUs, load average "
                f"{machine.get('load_average_1m', '?')} when measured; "
                f"{len(startup.get('plugins', []))} plugin distributions installed.")
        rows = [[label, f"{r['median_s']:.3f}", f"{r['min_s']:.3f}", f"{r['max_s']:.3f}",
                 ("yes" if r["median_s"] <= budget else "**no**") if isinstance(budget, (int, float)) else "–"]
                for label, r in results.items()]
        budget_column = f"within {budget:g} s" if isinstance(budget, (int, float)) else "within budget"
        return head + "\n\n" + markdown_table(["command", "median s", "min s", "max s", budget_column], rows,
                                               numeric={"median s", "min s", "max s"})
    return generic_section(startup)


def generic_section(data: Mapping[str, Any]) -> str:
    """Any JSON object as scalar fields, a table of its first list of records, and one line per nested object."""
    records = next((v for v in data.values() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)),
                   None)
    scalars = {k: v for k, v in data.items() if not isinstance(v, (list, dict))}
    lines = [", ".join(f"{k}: {v}" for k, v in scalars.items())] if scalars else []
    if records:
        columns = list(dict.fromkeys(k for r in records for k, v in r.items() if not isinstance(v, (list, dict))))
        rows = [[_format(r.get(c)) for c in columns] for r in records]
        numeric = {c for c in columns if all(isinstance(r.get(c), (int, float)) for r in records)}
        lines.append(markdown_table(columns, rows, numeric=numeric))
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"- {key}: " + ", ".join(f"{k} {_format(v)}" for k, v in value.items()))
    return "\n\n".join(lines)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def device_title(report: BenchReport) -> str:
    gpu = report.machine.get("gpu")
    if report.device == "cuda" and gpu:
        return f"{gpu['name']} (CUDA)"
    return f"CPU: {report.machine['cpu']}, {report.machine['cores']} cores"


def render_benchmarks(reports: Mapping[str, BenchReport], startup: Mapping[str, Any] | None,
                      charts: Mapping[str, Mapping[str, str]]) -> str:
    """BENCHMARKS.md: how to read and reproduce it, the start-up figures, then one section per device."""
    lines = [
        "# Benchmarks", "",
        "Written by `python benchmarks/scripts/suite.py` (do not edit by hand; rerun it on a quiet machine). "
        "Each model's networks get random weights at the card preset (timing does not depend on the values); "
        "every graph runs on PyTorch eager, torch.compile and ONNX Runtime after its output is checked against "
        "PyTorch fp32 on the same input (relative L2 error within the graph's tolerance; a runtime that fails the "
        "check is listed as wrong, not timed).", "",
        "- **items/s**: batch / median latency. **p50/p90/p99**: per-call latency in ms, inputs already on the device "
        "(onnxruntime through IOBinding), device synchronised after each call.",
        "- **speedup**: against PyTorch eager fp32 at the same batch size. **% peak**: the graph's FLOPs (2 per "
        "multiply-add, `torch.utils.flop_counter`) per second over the run's own matmul peak in the same precision.",
        "- **warm-up s**: one-off cost of loading, compiling (torch.compile, onnxruntime session) and the first "
        "calls, beyond what the same calls cost at steady state; excluded from the timings.",
        "- CPU: torch and onnxruntime use the same intra-op thread count. CUDA: TF32 off in fp32 on both sides, "
        "cuDNN autotuning on, onnxruntime's `cudnn_conv_algo_search=EXHAUSTIVE`.", "",
        "Reproduce: `python benchmarks/scripts/suite.py` (CPU, or CUDA when present); one model: "
        "`zoo bench MODEL --device cpu --batch-sizes 1,8`.", "",
        "## Start-up of the `zoo` command", "", startup_section(startup), "",
    ]
    for slug, report in sorted(reports.items()):
        lines += [f"## {device_title(report)}", "", f"Results: `benchmarks/results/{slug}.json`. "
                  f"{machine_line(report)}.", "", f"{peaks_line(report)}.", ""]
        targets = targets_section(report)
        if targets:
            lines += [targets, ""]
        for run in report.models:
            cells = [c for c in report.cells if c.model == run.name]
            lines += [f"### {run.name} ({weights_text(run)})", ""]
            for graph, info in run.graphs.items():
                lines.append(f"- {graph}: {info['summary']}; {info['gflops_per_item']:.4g} GFLOP/item "
                             f"({info['gflops_source']})")
            lines += ["", markdown_cells(cells), ""]
            chart = charts.get(slug, {}).get(run.name)
            if chart:
                lines += [f"![{run.name} on {slug}]({chart})", ""]
    return "\n".join(lines).rstrip() + "\n"


def read_results(directory: Path) -> dict[str, BenchReport]:
    """Every zoo-bench result file in ``directory`` by device slug (other JSON files are ignored)."""
    found = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("schema") == SCHEMA:
            found[path.stem] = BenchReport.from_json(data)
    return found


def chart_links(reports: Mapping[str, BenchReport], directory: Path, relative_to: Path) -> dict[str, dict[str, str]]:
    links: dict[str, dict[str, str]] = {}
    for slug, report in reports.items():
        for run in report.models:
            path = directory / f"{slug}-{run.name}.png"
            if path.exists():
                links.setdefault(slug, {})[run.name] = Path(os.path.relpath(path, relative_to)).as_posix()
    return links


# -- the run ------------------------------------------------------------------------------------
def run_suite(options: BenchOptions, models: Sequence[str] | None, progress: bool = True) -> BenchReport:
    """Measure every (or each named) registered model with ``options``."""
    from zoo_bench.command import cell_progress
    from zoo_bench.ort_backend import OnnxRuntime
    from zoo_core.extend import list_models, registered_model

    registered = [registered_model(name) for name in models] if models else list_models()
    extra = {}
    if CUDA_GRAPH_RUNTIME in options.runtimes:
        extra[CUDA_GRAPH_RUNTIME] = OnnxRuntime(options.threads or usable_cores(), cuda_graph=True)
    with Benchmark(options, backends=extra) as bench:
        plans = {m.name: plan_cells(m, options, bench.device) for m in registered}
        with cell_progress(sum(map(len, plans.values())), progress) as on_cell:
            bench.on_cell = on_cell
            for model in registered:
                bench.run_model(model, plans[model.name])
    return bench.report


def run_startup(root: Path, results: Path) -> dict[str, Any] | None:
    """Run the core's start-up benchmark when its script exists; return what it wrote."""
    script = root / STARTUP_SCRIPT
    if script.exists():
        completed = subprocess.run([sys.executable, str(script), "--out", str(results / STARTUP_RESULT)], cwd=root,
                                   timeout=900, check=False)
        if completed.returncode != 0:
            print(f"suite: {script} exited with {completed.returncode} (a command over its budget, or a failure)",
                  file=sys.stderr)
    return read_startup(results)


def read_startup(results: Path) -> dict[str, Any] | None:
    path = results / STARTUP_RESULT
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else {"results": data}


def main(argv: Sequence[str] | None = None, root: Path | None = None) -> int:
    """Run the suite; a bad option or model is one line on stderr and exit status 2."""
    from zoo_core.extend import UnknownName, ZooError

    try:
        return run(argv, root)
    except (ZooError, UnknownName) as error:
        print(f"suite: {error}", file=sys.stderr)
        return getattr(error, "exit_code", 2)


def run(argv: Sequence[str] | None, root: Path | None) -> int:
    from zoo_bench.bench import resolve_device
    from zoo_bench.command import split_ints, split_names, warn_if_busy
    from zoo_core.extend import io as zio

    root = (root or Path.cwd()).resolve()
    parser = argparse.ArgumentParser(prog="suite.py", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--models", help="comma-separated models (default: every registered model)")
    parser.add_argument("--runtimes", help="comma-separated runtimes (default: all for the device)")
    parser.add_argument("--preset", help="preset of every model (default: each card preset); quick for a smoke run")
    parser.add_argument("--batch-sizes", help="default 1,8 on CPU, 1,8,64 on CUDA")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="time each cell at least this long")
    parser.add_argument("--threads", type=int, help="intra-op threads of torch and onnxruntime (default: all cores)")
    parser.add_argument("--results", type=Path, default=root / "benchmarks" / "results",
                        help="folder of the result files and charts")
    parser.add_argument("--markdown", type=Path, default=root / "BENCHMARKS.md")
    parser.add_argument("--skip-startup", action="store_true", help="read startup.json instead of running startup.py")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    device = resolve_device(args.device).type
    options = suite_options(device, split_names(args.runtimes, "--runtimes") or None, args.preset,
                            split_ints(args.batch_sizes, "--batch-sizes") or None, args.min_seconds, args.threads)
    report = run_suite(options, split_names(args.models, "--models") or None, progress=not args.no_progress)
    slug = device_slug(report.device, report.machine)
    args.results.mkdir(parents=True, exist_ok=True)
    write_json(report, args.results / f"{slug}.json")
    for run in report.models:
        write_plot(model_report(report, run.name), args.results / f"{slug}-{run.name}.png",
                   title=f"{run.name} on {device_title(report)}; bar labels: speedup over torch eager fp32")
    startup = read_startup(args.results) if args.skip_startup else run_startup(root, args.results)
    reports = read_results(args.results)
    markdown_dir = args.markdown.resolve().parent
    zio.write_text(args.markdown, render_benchmarks(reports, startup, chart_links(reports, args.results, markdown_dir)))
    from zoo_bench.report import print_table

    print_table(report)
    warn_if_busy(report.machine)
    print(f"suite: wrote {args.results / (slug + '.json')}, its charts and {args.markdown}", file=sys.stderr)
    return 0
