"""int8 and AOTInductor figures: quality on a trained quick CycleGAN, speed at the card presets, on this CPU.

    python benchmarks/scripts/int8_aoti_figures.py [--run RUN] [--threads 2] [--results PATH]

1. Quality (trained weights): trains the CycleGAN quick preset (or takes --run), exports it with
   ``--int8`` (256 calibration samples from its training data, MinMax) and reads the manifest's
   quality table: PSNR of each int8 generator against fp32 and the hair-colour success of both.
   The same export is then timed (onnxruntime fp32 vs int8, batch 1 and 8) at the quick size.
2. Speed (random weights at each model's card preset: the 256² generator, the 256² VAE, the AE):
   ``zoo bench``'s harness with torch, torch.compile, onnxruntime fp32/int8 and aoti; every cell
   checked against torch fp32 before it is timed; the int8 (MatMulInteger) and fp32 (matmul) peaks
   measured in the same run. Batch 1 and 8 for the generator, 8 for the others.
3. Activations: the 256² generator quantized with uint8 and with int8 activations, timed at batch 1
   with PSNR against fp32 (why ``zoo export --int8`` uses uint8).
4. What ran in int8: op counts of each int8 graph after onnxruntime's optimisation (a ConvTranspose
   or an InstanceNormalization between DequantizeLinear and QuantizeLinear runs in fp32).

Writes one JSON (default benchmarks/results/int8_aoti_figures.json) with the command, date, machine,
load averages before and after (per part too), and every cell; with --skip, the parts left out keep their
figures from the previous file. Other processes on the machine move the figures; each ratio comes from one run.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from zoo_bench.bench import Benchmark, BenchOptions, CellResult
from zoo_bench.machine import describe_machine
from zoo_bench.timing import TimingRule, time_calls
from zoo_export.pipeline import ExportOptions, export_model
from zoo_export.quantize import Int8Options, preprocess, psnr, quantize_file

from zoo_core import io as zio
from zoo_core.engine import TrainOptions, train
from zoo_core.registry import get_model

ROOT = Path(__file__).resolve().parents[2]
RULE = TimingRule(min_seconds=1.0, min_runs=50, max_seconds=3.0)  # the CPU suite's rule


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained cyclegan_hair quick run (default: train one)")
    parser.add_argument("--out-run", type=Path, help="where to train when --run is not given")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=256, help="int8 calibration samples")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/results/int8_aoti_figures.json")
    parser.add_argument("--skip", action="append", default=[], choices=["quality", "speed", "activations"],
                        help="leave a part out (repeatable)")
    return parser.parse_args(argv)


def cells_json(cells: list[CellResult]) -> list[dict[str, Any]]:
    return [c.as_json() for c in cells]


def ratio(cells: list[CellResult], graph: str, batch: int, top: tuple[str, str],
          bottom: tuple[str, str]) -> float | None:
    def speed(runtime: str, precision: str) -> float | None:
        found = [c for c in cells if (c.graph, c.batch, c.runtime, c.precision) == (graph, batch, runtime, precision)
                 and c.status == "ok"]
        return found[0].items_per_s if found else None

    a, b = speed(*top), speed(*bottom)
    return a / b if a and b else None


def summary(cells: list[CellResult]) -> list[dict[str, Any]]:
    """Per graph and batch: the ratios the issue's targets are stated in, and the peak shares."""
    rows = []
    for graph, batch in dict.fromkeys((c.graph, c.batch) for c in cells):
        shares = {f"{c.runtime} {c.precision}": c.peak_share for c in cells
                  if (c.graph, c.batch) == (graph, batch) and c.status == "ok"}
        rows.append({"graph": graph, "batch": batch,
                     "ort_int8_over_ort_fp32": ratio(cells, graph, batch, ("onnxruntime", "int8"),
                                                     ("onnxruntime", "fp32")),
                     "aoti_over_torch_compile": ratio(cells, graph, batch, ("aoti", "fp32"), ("torch-compile", "fp32")),
                     "aoti_over_ort_fp32": ratio(cells, graph, batch, ("aoti", "fp32"), ("onnxruntime", "fp32")),
                     "peak_share": shares})
    return rows


def quality_part(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    model = get_model("cyclegan_hair")
    run = args.run
    train_seconds = None
    if run is None:
        started = time.perf_counter()
        out = args.out_run or work / "cyclegan_quick"
        run = train(model, TrainOptions(preset="quick", device="cpu", out=out, progress=False))
        train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    export = export_model(model, ExportOptions(run=run, out=work / "export", int8=Int8Options(samples=args.samples),
                                               log=lambda line: print(line, file=sys.stderr)))
    export_seconds = time.perf_counter() - started
    manifest = json.loads((export / "manifest.json").read_text())
    with Benchmark(BenchOptions(runtimes=("onnxruntime",), precisions=("fp32", "int8"), device="cpu",
                                batch_sizes=(1, 8), export_dir=export, threads=args.threads, rule=RULE)) as bench:
        cells = bench.run_model(model)
        peaks = {k: v.as_json() for k, v in bench.report.peaks.items()}
    return {"run": str(run), "trained_here": args.run is None, "train_seconds": train_seconds,
            "config": manifest["config"], "export_seconds": round(export_seconds, 1),
            "int8": {g: e["int8"] for g, e in manifest["graphs"].items()},
            "quality": manifest["validation"]["quality"], "speed_cells": cells_json(cells),
            "speed_summary": summary(cells), "peaks": peaks}


def speed_part(args: argparse.Namespace) -> dict[str, Any]:
    plan = {"cyclegan_hair": (1, 8), "vae_faces": (8,), "ae_mnist": (8,)}
    results: dict[str, Any] = {}
    peaks: dict[str, Any] = {}
    for name, batches in plan.items():
        options = BenchOptions(runtimes=("torch", "torch-compile", "onnxruntime", "aoti"), precisions=("fp32", "int8"),
                               device="cpu", batch_sizes=batches, threads=args.threads, rule=RULE)
        with Benchmark(options) as bench:
            cells = bench.run_model(get_model(name))
            peaks.update({k: v.as_json() for k, v in bench.report.peaks.items()})
            run = bench.report.models[-1]
        compile_notes = {c.graph: c.notes for c in cells if c.runtime == "aoti" and c.status == "ok"}
        results[name] = {"preset": run.preset, "config": run.config, "weights": run.weights,
                         "summary": summary(cells), "aoti_notes": compile_notes, "cells": cells_json(cells)}
        print(f"{name}: " + "; ".join(f"{r['graph']} b{r['batch']} int8/fp32 {r['ort_int8_over_ort_fp32']} "
                                      f"aoti/compile {r['aoti_over_torch_compile']}" for r in results[name]["summary"]),
              file=sys.stderr)
    return {"models": results, "peaks": peaks}


def _optimized_ops(path: Path, threads: int) -> dict[str, int]:
    """Op counts of ``path`` after onnxruntime's full optimisation (what the CPU EP actually runs)."""
    import onnx
    from zoo_export.sessions import SessionSettings, onnxruntime_module, session_options

    ort = onnxruntime_module()
    with tempfile.TemporaryDirectory() as folder:
        options = session_options(SessionSettings(intra_op_threads=threads))
        options.optimized_model_filepath = str(Path(folder) / "optimized.onnx")
        ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        model = onnx.load(options.optimized_model_filepath)
    return dict(collections.Counter(node.op_type for node in model.graph.node).most_common())


def activations_part(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """uint8 vs int8 activations on the 256² generator (random weights), and what ran in int8 per graph."""
    from zoo_bench.sources import onnx_files, resolve_source
    from zoo_export.sessions import GraphSession, SessionSettings

    from zoo_core.models import build_model

    out: dict[str, Any] = {"generator_256": {}, "optimized_int8_ops": {}}
    for name, graphs in {"cyclegan_hair": ("black_to_blond",), "vae_faces": ("encoder", "decoder"),
                         "ae_mnist": ("autoencoder",)}.items():
        model = get_model(name)
        source = resolve_source(model, None, {}, None, None)
        loaded = build_model(model, source.config, device="cpu", seed=0)
        for graph in graphs:
            module = loaded.recipe.graph_module(graph, loaded.networks).eval()
            files = onnx_files(model, source, loaded.recipe, module, graph, work)
            fp32 = files("fp32")
            int8 = files("int8")
            out["optimized_int8_ops"][f"{name}/{graph}"] = _optimized_ops(int8, args.threads)
            if name != "cyclegan_hair":
                continue
            spec = loaded.recipe.spec.graph(graph)
            calibration = loaded.recipe.example_inputs(graph, 8, torch.Generator().manual_seed(1))
            held = loaded.recipe.example_inputs(graph, 1, torch.Generator().manual_seed(2))
            reference = tuple(GraphSession(fp32, SessionSettings(intra_op_threads=args.threads)).run_numpy(held))
            pre = work / "generator.pre.onnx"
            preprocess(fp32, pre)
            for activations in ("uint8", "int8"):
                path = work / f"generator.{activations}.onnx"
                quantize_file(pre, path, [t.name for t in spec.inputs], calibration, "minmax", activations)
                session = GraphSession(path, SessionSettings(precision="int8", intra_op_threads=args.threads))
                quality = psnr(session.run_numpy(held), [torch.from_numpy(r) for r in reference], spec)
                bound = session.bind([x.contiguous() for x in held])
                bound.run()
                timing = time_calls(bound.run, None, RULE)
                out["generator_256"][activations] = {"items_per_s": timing.items_per_second(1), "runs": timing.runs,
                                                     "psnr_db_vs_fp32": quality,
                                                     "optimized_ops": _optimized_ops(path, args.threads)}
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    result: dict[str, Any] = {
        "command": " ".join(["python benchmarks/scripts/int8_aoti_figures.py", *(sys.argv[1:] if argv is None
                                                                               else argv)]),
        "date": started.isoformat(timespec="seconds"), "machine": describe_machine("cpu"), "threads": args.threads,
        "load_average_before": [round(v, 2) for v in load_before],
    }
    parts = {"quality": ("quality_trained_quick", lambda work: quality_part(args, work)),
             "activations": ("activations", lambda work: activations_part(args, work)),
             "speed": ("speed_card_presets", lambda work: speed_part(args))}
    previous = json.loads(args.results.read_text()) if args.skip and args.results.is_file() else {}
    with tempfile.TemporaryDirectory(prefix="zoo-int8-figures-") as folder:
        for part, (key, measure) in parts.items():
            if part in args.skip:
                if key in previous:  # a part left out keeps its figures from the previous run, with their own stamp
                    result[key] = previous[key]
                continue
            before = [round(v, 2) for v in os.getloadavg()]
            result[key] = measure(Path(folder))
            result[key]["measured"] = {"command": result["command"], "date": datetime.now(UTC).isoformat(
                timespec="seconds"), "load_average_before": before,
                "load_average_after": [round(v, 2) for v in os.getloadavg()]}
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    result["wall_seconds"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    zio.write_json(args.results, result)
    print(f"wrote {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
