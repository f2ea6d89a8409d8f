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
from zoo_core.registry import registered_model

ROOT = Path(__file__).resolve().parents[2]
RULE = TimingRule(min_seconds=1.0, min_runs=50, max_seconds=3.0)  # the CPU suite's rule


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained cyclegan_hair quick run (default: train one)")
    parser.add_argument("--out-run", type=Path, help="where to train when --run is not given")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=256, help="int8 calibration samples")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/results/int8_aoti_figures.json")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the existing JSON")
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
    model = registered_model("cyclegan_hair")
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
            cells = bench.run_model(registered_model(name))
            peaks.update({k: v.as_json() for k, v in bench.report.peaks.items()})
            run = bench.report.models[-1]
        compile_notes = {c.graph: c.notes for c in cells if c.runtime == "aoti" and c.status == "ok"}
        results[name] = {"preset": run.preset, "config": run.config, "weights": run.weights,
                         "peaks": {k: v.as_json() for k, v in bench.report.peaks.items()},
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
        model = registered_model(name)
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


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 10 ** digits else f"{value:.{digits}g}"


def _speed(cells: list[dict[str, Any]], graph: str, batch: int, runtime: str, precision: str) -> dict[str, Any]:
    for cell in cells:
        if (cell["graph"], cell["batch"], cell["runtime"], cell["precision"]) == (graph, batch, runtime, precision):
            return cell
    return {}


def markdown(result: dict[str, Any]) -> str:
    """The BENCHMARKS.md section for these figures."""
    lines = [f"Written by `{result['command']}` on {result['date']} ({result['machine'].get('cpu', 'CPU')}, "
             f"{result['threads']} threads); load average {result['load_average_before'][0]} at the start, "
             f"{result['load_average_after'][0]} at the end: other processes shared the 2 cores, so absolute "
             "figures are low and noisy; each ratio comes from one run.", ""]
    quality = result.get("quality_trained_quick")
    if quality:
        lines += [f"### int8 quality on a trained quick CycleGAN ({quality['config']['image_size']}², "
                  f"{'trained here' if quality['trained_here'] else quality['run']})", "",
                  "| graph | metric | fp32 | int8 | bar | kept |", "| --- | --- | ---: | ---: | --- | --- |"]
        for row in quality["quality"]:
            bar = f"≥ {row['limit']:g} dB" if row["rule"] == "at_least" else f"at most {row['limit']:g} below fp32"
            lines.append(f"| {row['graph']} | {row['metric']} | {_number(row['fp32'])} | {_number(row['int8'])} | "
                         f"{bar} | {'yes' if row['kept'] else 'no'} |")
        calibration = next(iter(quality["int8"].values()))["calibration"]
        lines += ["", f"Calibration: {calibration['samples']} samples of {calibration['source']}, "
                  f"{calibration['method']}, {calibration['format']}, {calibration['weights']} weights, "
                  f"{calibration['activations']} activations. Speed of this export (onnxruntime, trained weights):", "",
                  "| graph | batch | fp32 items/s | int8 items/s | int8 / fp32 | int8 rel. L2 vs torch |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        cells = quality["speed_cells"]
        for row in quality["speed_summary"]:
            fp32 = _speed(cells, row["graph"], row["batch"], "onnxruntime", "fp32")
            int8 = _speed(cells, row["graph"], row["batch"], "onnxruntime", "int8")
            lines.append(f"| {row['graph']} | {row['batch']} | {_number(fp32.get('items_per_s'))} | "
                         f"{_number(int8.get('items_per_s'))} | {_number(row['ort_int8_over_ort_fp32'])}× | "
                         f"{_number(int8.get('rel_error'))} |")
        lines.append("")
    speed = result.get("speed_card_presets")
    if speed:
        measured = "; ".join(
            f"{name} fp32 {_number(m['peaks']['fp32']['gflops'])} GFLOP/s, "
            f"int8 {_number(m['peaks']['int8']['gflops'])} GOP/s"
            for name, m in speed["models"].items() if "peaks" in m)
        lines += ["### Speed at the card presets (random weights)", "",
                  "Peaks measured at the start of each model's run (fp32: 2048² matmul in torch; int8: 2048² "
                  f"MatMulInteger in onnxruntime; the shares below are against these): {measured}.", "",
                  "| model / graph | batch | torch | torch.compile | aoti | ORT fp32 | ORT int8 | int8 / fp32 | "
                  "aoti / compile | aoti / ORT fp32 | ORT fp32 % fp32 peak | ORT int8 % int8 peak |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, model in speed["models"].items():
            cells = model["cells"]
            for row in model["summary"]:
                g, b = row["graph"], row["batch"]
                rate = {k: _speed(cells, g, b, *k.split()).get("items_per_s") for k in
                        ("torch fp32", "torch-compile fp32", "aoti fp32", "onnxruntime fp32", "onnxruntime int8")}
                share = {k: _number(100 * v, 2) if v else "–" for k, v in row["peak_share"].items()}
                lines.append(
                    f"| {name} / {g} | {b} | " + " | ".join(_number(v) for v in rate.values()) +
                    f" | {_number(row['ort_int8_over_ort_fp32'])}× | {_number(row['aoti_over_torch_compile'])}× | "
                    f"{_number(row['aoti_over_ort_fp32'])}× | {share.get('onnxruntime fp32', '–')}% | "
                    f"{share.get('onnxruntime int8', '–')}% |")
        compile_notes = {f"{n}/{g}": notes for n, m in speed["models"].items() for g, notes in m["aoti_notes"].items()}
        lines += ["", "aoti compile (torch.export + AOTInductor, once per graph, dynamic batch): " + "; ".join(
            f"{k} {', '.join(v)}" for k, v in compile_notes.items()) + ".", ""]
    activations = result.get("activations")
    if activations:
        gen = activations["generator_256"]
        lines += ["### uint8 or int8 activations (256² generator, batch 1, random weights)", "",
                  "| activations | items/s | PSNR vs fp32 dB |", "| --- | ---: | ---: |"]
        lines += [f"| {k} | {_number(v['items_per_s'])} | {_number(v['psnr_db_vs_fp32'])} |" for k, v in gen.items()]
        lines += ["", "What onnxruntime runs of each int8 graph after optimisation (op counts):", ""]
        for graph, ops in activations["optimized_int8_ops"].items():
            lines.append(f"- {graph}: " + ", ".join(f"{op} {count}" for op, count in ops.items()))
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown_only:
        result = json.loads(args.results.read_text())
        zio.write_text(args.results.with_suffix(".md"), markdown(result))
        return 0
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
    zio.write_text(args.results.with_suffix(".md"), markdown(result))
    print(f"wrote {args.results} and its .md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
