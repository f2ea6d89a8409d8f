"""Edge runtimes on this CPU: ExecuTorch and OpenVINO (fp32 and int8) beside onnxruntime and torch, every graph.

    python benchmarks/scripts/edge_runtimes.py [--threads 2] [--min-seconds 1] [--results PATH]

One run of `zoo bench`'s harness (every cell checked against torch fp32 before it is timed) over every graph of
the three quick models (batch 1 and 8) and the 256² CycleGAN generator at the book preset (batch 1), with random
weights: torch eager fp32; onnxruntime fp32 and int8 (QDQ, uint8 activations, calibrated on 32 random inputs);
ExecuTorch fp32 and int8 (XNNPACK; PT2E int8 calibrated on the same kind of inputs); OpenVINO fp32 and int8 (the
same .onnx and .int8.onnx files as onnxruntime, CPU plugin in strict f32). Writes one JSON with the command,
date, machine, load averages before and after, every cell and per graph and batch the ratios the goals are stated
in (ExecuTorch int8 / fp32, OpenVINO / onnxruntime) and the fastest runtime; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoo_bench.bench import Benchmark, BenchOptions, CellResult
from zoo_bench.machine import describe_machine
from zoo_bench.timing import TimingRule

from zoo_core import io as zio
from zoo_core.registry import registered_model

ROOT = Path(__file__).resolve().parents[2]
RUNTIMES = ("torch", "onnxruntime", "executorch", "openvino")
PRECISIONS = ("fp32", "int8")
# (label, model, preset, graphs (all when empty), batch sizes)
PLAN = (
    ("ae_mnist quick", "ae_mnist", "quick", (), (1, 8)),
    ("vae_faces quick", "vae_faces", "quick", (), (1, 8)),
    ("cyclegan_hair quick", "cyclegan_hair", "quick", (), (1, 8)),
    ("cyclegan_hair book (256² generator)", "cyclegan_hair", "book", ("black_to_blond",), (1,)),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/results/edge_runtimes.json")
    parser.add_argument("--only", help="comma-separated labels' models to run (a quick check; default: all)")
    return parser.parse_args(argv)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def speed(cells: list[CellResult], graph: str, batch: int, runtime: str, precision: str) -> float | None:
    found = [c for c in cells if (c.graph, c.batch, c.runtime, c.precision) == (graph, batch, runtime, precision)
             and c.status == "ok"]
    return found[0].items_per_s if found else None


def summary(cells: list[CellResult]) -> list[dict[str, Any]]:
    rows = []
    for graph, batch in dict.fromkeys((c.graph, c.batch) for c in cells):
        speeds = {f"{r} {p}": speed(cells, graph, batch, r, p) for r in RUNTIMES for p in PRECISIONS}
        speeds = {k: v for k, v in speeds.items() if v}

        def ratio(top: str, bottom: str, speeds: dict[str, float] = speeds) -> float | None:
            return speeds[top] / speeds[bottom] if top in speeds and bottom in speeds else None

        fp32 = {k: v for k, v in speeds.items() if k.endswith("fp32")}
        rows.append({"graph": graph, "batch": batch, "items_per_s": speeds,
                     "executorch_int8_over_fp32": ratio("executorch int8", "executorch fp32"),
                     "openvino_over_onnxruntime_fp32": ratio("openvino fp32", "onnxruntime fp32"),
                     "openvino_over_onnxruntime_int8": ratio("openvino int8", "onnxruntime int8"),
                     "fastest_fp32": max(fp32, key=fp32.get) if fp32 else None,
                     "fastest": max(speeds, key=speeds.get) if speeds else None,
                     "not_ok": {f"{c.runtime} {c.precision}": f"{c.status}: {c.reason}" for c in cells
                                if (c.graph, c.batch) == (graph, batch) and c.status != "ok"
                                and (c.runtime, c.precision) != ("torch", "int8")}})
    return rows


def markdown(runs: list[dict[str, Any]]) -> str:
    columns = [f"{r} {p}" for r in RUNTIMES for p in PRECISIONS if (r, p) != ("torch", "int8")]
    ratios = " | ET int8/fp32 | OV/ORT fp32 | OV/ORT int8 | fastest |"
    lines = ["| model | graph | batch | " + " | ".join(columns) + ratios,
             "| --- | --- | ---: | " + " | ".join("---:" for _ in columns) + " | ---: | ---: | ---: | --- |"]

    def number(value: float | None) -> str:
        if value is None:
            return "–"
        return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"

    def times(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}×"

    for run in runs:
        for row in run["summary"]:
            lines.append(f"| {run['label']} | {row['graph']} | {row['batch']} | "
                         + " | ".join(number(row["items_per_s"].get(c)) for c in columns)
                         + f" | {times(row['executorch_int8_over_fp32'])}"
                         f" | {times(row['openvino_over_onnxruntime_fp32'])}"
                         f" | {times(row['openvino_over_onnxruntime_int8'])} | {row['fastest']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rule = TimingRule(min_seconds=args.min_seconds, min_runs=20, max_seconds=max(3.0, 3 * args.min_seconds))
    only = set(args.only.split(",")) if args.only else None
    started = datetime.now(UTC)
    load_before, uptime_before = os.getloadavg(), uptime()
    print(f"before: {uptime_before}", file=sys.stderr)
    runs = []
    for label, name, preset, graphs, batches in PLAN:
        if only is not None and name not in only:
            continue
        options = BenchOptions(graphs=graphs, runtimes=RUNTIMES, precisions=PRECISIONS, device="cpu",
                               batch_sizes=batches, preset=preset, threads=args.threads, rule=rule)
        began = time.perf_counter()
        with Benchmark(options) as bench:
            cells = bench.run_model(registered_model(name))
            model_run = bench.report.models[-1]
            peaks = {k: v.as_json() for k, v in bench.report.peaks.items()}
        runs.append({"label": label, "model": name, "preset": model_run.preset, "config": model_run.config,
                     "weights": model_run.weights, "graphs": model_run.graphs, "peaks": peaks,
                     "seconds": round(time.perf_counter() - began, 1), "summary": summary(cells),
                     "cells": [c.as_json() for c in cells]})
        print(f"{label}: done in {runs[-1]['seconds']} s", file=sys.stderr)
    load_after, uptime_after = os.getloadavg(), uptime()
    print(f"after: {uptime_after}", file=sys.stderr)
    command = "flock -x /tmp/zoo-cpu.lock .venv/bin/python benchmarks/scripts/edge_runtimes.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    result = {"command": command.strip(), "date": started.isoformat(timespec="seconds"),
              "machine": describe_machine("cpu"), "threads": args.threads, "timing_rule": vars(rule) if hasattr(
                  rule, "__dict__") else str(rule),
              "load": {"before": list(load_before), "after": list(load_after), "uptime_before": uptime_before,
                       "uptime_after": uptime_after},
              "weights": "random (each model's preset, seeded); figures are speed, not quality", "runs": runs}
    zio.write_json(args.results, result)
    print(markdown(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
