"""int8 on trained weights: train, export with --int8, and record quality and speed per graph, on this CPU.

    python benchmarks/scripts/int8_trained.py [--work DIR] [--book-steps 200] [--skip book] [--threads 2]

1. Trains what it measures with the CLI a user runs (``zoo train MODEL --out WORK/runs/NAME``): the quick CycleGAN
   (64²), the quick VAE, and the book CycleGAN generator at 256² for ``--book-steps`` steps
   (``--preset book --max-steps N``). A run directory that already holds a checkpoint of that command is reused
   (the JSON says so), so the long book run can be trained once and measured again.
2. Exports each with ``zoo export MODEL --run RUN --int8`` (calibration, the accuracy search and the speed check
   are the export's own), timing the command and its peak RSS (GNU time).
3. Per graph, reads the manifest's ``int8_search`` (every candidate's quality and the int8/fp32 speed the export
   measured) and times the kept int8 file against fp32 again here, interleaved, at batch 1 and 8.

Writes benchmarks/results/int8_trained.json (command, date, CPU model, load before and after each part) and the
Markdown tables beside it (int8_trained.md). Other processes move the speed figures; each ratio is one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ZOO = [sys.executable, "-m", "zoo_core"]
RUNS = {  # name: (model, extra train arguments)
    "cyclegan_quick": ("cyclegan_hair", []),
    "vae_quick": ("vae_faces", []),
    "cyclegan_book": ("cyclegan_hair", ["--preset", "book"]),
}
SPEED_SECONDS = 6.0  # per file and batch, in interleaved rounds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/zoo-int8-trained"))
    parser.add_argument("--book-steps", type=int, default=200)
    parser.add_argument("--book-until", help="HH:MM (UTC): stop the book training then (SIGINT: it checkpoints) "
                        "and measure the steps it reached")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", action="append", default=[], choices=sorted(RUNS), help="leave a run out")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/results/int8_trained.json")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the existing JSON")
    parser.add_argument("--calibration-only", action="store_true",
                        help="measure calibration alone again for every graph of the existing JSON's exports")
    return parser.parse_args(argv)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def timed(command: list[str], log: Path, interrupt_after: float | None = None) -> dict[str, Any]:
    """Run ``command`` under GNU time: wall seconds, peak RSS (MiB), exit status; output to ``log``. With
    ``interrupt_after``, the command gets SIGINT after that many seconds (zoo train then saves a checkpoint)."""
    stats = log.with_suffix(".time")
    started = time.perf_counter()
    interrupted = False
    with log.open("w") as out:
        child = subprocess.Popen(["/usr/bin/time", "-f", "%e %M", "-o", str(stats), *command], stdout=out,
                                 stderr=subprocess.STDOUT)
        try:
            child.wait(timeout=interrupt_after)
        except subprocess.TimeoutExpired:
            interrupted = True
            for process in _children(child.pid):  # the zoo process under GNU time
                os.kill(process, signal.SIGINT)
            child.wait()
    seconds, rss_kib = stats.read_text().split()[-2:]
    return {"command": shlex.join(command[2:] if command[:2] == ZOO[:2] else command), "returncode": child.returncode,
            "seconds": round(time.perf_counter() - started, 1), "time_seconds": float(seconds),
            "peak_rss_mib": round(int(rss_kib) / 1024, 1), "log": str(log), "interrupted": interrupted}


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in found.read_text().split()] if found.is_file() else []


def train(name: str, args: argparse.Namespace) -> dict[str, Any]:
    model, extra = RUNS[name]
    run = args.work / "runs" / name
    if name == "cyclegan_book":
        extra = [*extra, "--max-steps", str(args.book_steps)]
    command = [*ZOO, "train", model, *extra, "--out", str(run), "--threads", str(args.threads), "--no-progress"]
    resumed_from = None
    if (run / "checkpoints" / "last.safetensors").is_file():
        done = checkpoint_steps(run)
        if name != "cyclegan_book" or done is None or done >= args.book_steps:
            return {"run": str(run), "reused": True, "arguments": extra}
        # a book run stopped short (--book-until, an interruption) continues where it stopped
        resumed_from = done
        command = [*ZOO, "train", model, "--resume", str(run), "--max-steps", str(args.book_steps), "--threads",
                   str(args.threads), "--no-progress"]
    limit = None
    if name == "cyclegan_book" and args.book_until:
        hour, minute = map(int, args.book_until.split(":"))
        now = datetime.now(UTC)
        until = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if until <= now:  # 00:40 asked at 23:42 means tomorrow's
            until += timedelta(days=1)
        limit = max(60.0, (until - now).total_seconds())
    result = timed(command, args.work / f"train-{name}.log", limit)
    if resumed_from is not None:
        result["resumed_from_step"] = resumed_from
    steps = re.findall(r"at step (\d+)", Path(result["log"]).read_text())
    return {"run": str(run), "reused": False, "arguments": extra, "steps_reached": int(steps[-1]) if steps else None,
            **result}


def checkpoint_steps(run: Path) -> int | None:
    """The optimizer steps the run's last checkpoint holds (``position.global_step`` of its zoo metadata, read from
    the header alone)."""
    from zoo_core.errors import ZooError
    from zoo_core.weights import read_metadata

    try:
        position = read_metadata(run / "checkpoints" / "last.safetensors").get("position")
    except ZooError:
        return None
    step = position.get("global_step") if isinstance(position, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def steps_of(run: Path) -> int | None:
    """Optimizer steps the run's metrics record (its last line with a step count)."""
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        return None
    steps = None
    for line in metrics.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        for key in ("step", "steps", "global_step"):
            if isinstance(record.get(key), int):
                steps = record[key]
    return steps


def export(name: str, run: Path, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any] | None]:
    model = RUNS[name][0]
    out = args.work / "exports" / name
    command = [*ZOO, "export", model, "--run", str(run), "--out", str(out), "--int8", "--force"]
    result = timed(command, args.work / f"export-{name}.log")
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if result["returncode"] == 0 and manifest_path.is_file() else None
    return result, manifest


PREPROCESS = """
import json, resource, sys, time
from pathlib import Path
from zoo_export.quantize import preprocess
started = time.perf_counter()
preprocess(Path(sys.argv[1]), Path(sys.argv[2]))
print(json.dumps({"seconds": round(time.perf_counter() - started, 1),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""

CALIBRATE = """
import json, resource, sys, time
import numpy as np
from pathlib import Path
from zoo_export.int8_calibration import ArraySource, collect_ranges, sample_rule
pre, shape = Path(sys.argv[1]), json.loads(sys.argv[2])
count = sample_rule(int(np.prod(shape[1:])))
data = np.clip(np.random.default_rng(0).standard_normal([count, *shape[1:]]).astype(np.float32) * 0.5, -1, 1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
ranges = collect_ranges(pre, ArraySource([data]), ("minmax", "entropy", "percentile"))
print(json.dumps({"samples": count, "chunk": ranges.chunk, "passes": ranges.passes,
                  "seconds": round(time.perf_counter() - started, 1),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "rss_before_mib": round(before / 1024, 1)}))
"""


def _python(script: str, *arguments: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", script, *arguments], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def calibration_alone(fp32: Path, work: Path, shape: list[Any]) -> dict[str, Any]:
    """The bounded calibration of one graph in a fresh process (all three methods, the rule's sample count): its
    time and the process's peak RSS, after onnxruntime's quantization pre-processing of the file, which runs in a
    process of its own before it (its time and peak are reported apart: ``preprocess``)."""
    pre = work / "calibration-pre.onnx"
    prepared = _python(PREPROCESS, str(fp32), str(pre))
    if "error" in prepared:
        return {"error": prepared["error"], "stage": "preprocess"}
    return {**_python(CALIBRATE, str(pre), json.dumps(shape)), "preprocess": prepared}


def time_files(fp32: Path, int8: Path, threads: int, shapes: list[list[Any]]) -> dict[str, Any]:
    """fp32 and int8 items/s at batch 1 and 8, interleaved, on random inputs of the graph's shape."""
    import numpy as np
    from zoo_export.quantize import measure_speed
    from zoo_export.sessions import SessionSettings

    settings = SessionSettings(device="cpu", precision="int8", intra_op_threads=threads)
    rows = {}
    for batch in (1, 8):
        rng = np.random.default_rng(batch)
        inputs = [np.clip(rng.standard_normal([batch, *s[1:]]).astype(np.float32) * 0.5, -1, 1) for s in shapes]
        fp32_speed, int8_speed = measure_speed([fp32, int8], inputs, settings, SPEED_SECONDS)
        rows[str(batch)] = {"fp32_items_per_s": round(fp32_speed, 3), "int8_items_per_s": round(int8_speed, 3),
                            "int8_over_fp32": round(int8_speed / fp32_speed, 3)}
    return rows


def graphs_of(manifest: dict[str, Any], export_dir: Path, threads: int) -> list[dict[str, Any]]:
    rows = []
    for graph, entry in manifest["graphs"].items():
        search = entry.get("int8_search") or {}
        int8 = entry.get("int8")
        row = {"graph": graph, "kept": int8 is not None, "why": search.get("why"),
               "fp32_layers": int8["excluded_nodes"] if int8 else None,
               "export_speedup": int8.get("speedup") if int8 else None, "speed_batch": search.get("speed_batch"),
               "quality": int8["quality"] if int8 else None, "calibration": search.get("calibration"),
               "candidates": search.get("candidates", []), "sensitivity": search.get("sensitivity", [])}
        shapes = [list(t["shape"]) for t in entry["inputs"]]  # resolved at the run's config; "N" stays symbolic
        row["calibration_alone"] = calibration_alone(export_dir / entry["file"], export_dir.parent, shapes[0])
        if int8 is not None:
            row["timed_here"] = time_files(export_dir / entry["file"], export_dir / int8["file"], threads, shapes)
        rows.append(row)
    return rows


def markdown(result: dict[str, Any]) -> str:
    lines = [f"Written by `{result['command']}` on {result['date']} ({result['cpu']}, {result['threads']} threads); "
             f"load average {result['load_before'][0]} at the start, {result['load_after'][0]} at the end "
             f"(`uptime` before: {result['uptime_before']}; after: {result['uptime_after']}).", ""]
    lines += ["| run | trained | export --int8 | peak RSS | graph | int8 kept | fp32 layers | PSNR dB | other bar | "
              "int8/fp32 (export's check) | int8/fp32 b1 / b8 (timed again) |",
              "| --- | --- | ---: | ---: | --- | --- | ---: | ---: | --- | ---: | --- |"]
    for name, part in result["runs"].items():
        training = part["train"]
        trained = "reused" if training.get("reused") else f"{training.get('seconds', '?')} s"
        steps = f", {part['steps']} steps" if part.get("steps") else ""
        ex = part.get("export") or {}
        for row in part.get("graphs", []):
            quality = row.get("quality") or []
            psnr_value = next((q["int8"] for q in quality if q["metric"] == "psnr"), None)
            other = "; ".join(f"{q['metric']} {q['int8']:.3g} (fp32 {q['fp32']:.3g})" for q in quality
                              if q["metric"] != "psnr" and q.get("fp32") is not None)
            timed_here = row.get("timed_here") or {}
            again = " / ".join(f"{timed_here[b]['int8_over_fp32']:.2f}×" for b in ("1", "8") if b in timed_here)
            speed = f"{row['export_speedup']:.2f}× (b{row['speed_batch']})" if row.get("export_speedup") else "–"
            if not row["kept"]:
                best = max((c for c in row["candidates"] if c.get("speedup")), key=lambda c: c["speedup"],
                           default=None)
                speed = f"{best['speedup']:.2f}× (b{row['speed_batch']}), not kept" if best else "–"
                psnr_value = max((c["psnr_db"] or 0 for c in row["candidates"]), default=None)
            lines.append(f"| {name}{steps} | {trained} | {ex.get('seconds', '–')} s | "
                         f"{ex.get('peak_rss_mib', '–')} MiB | {row['graph']} | {'yes' if row['kept'] else 'no'} | "
                         f"{len(row['fp32_layers']) if row['fp32_layers'] is not None else '–'} | "
                         f"{psnr_value if psnr_value is None else f'{psnr_value:.1f}'} | {other or '–'} | {speed} | "
                         f"{again or '–'} |")
    again = result.get("calibration_alone_run")
    when = (f"; measured by `{again['command']}` on {again['date']}, load {again['load_before'][0]} at the start"
            if again else "")
    lines += ["", "Calibration alone (a fresh process: the rule's sample count, minmax + entropy + percentile ranges "
              f"in two passes; time and peak RSS of the process, model loading included{when}):", ""]
    for name, part in result["runs"].items():
        for row in part.get("graphs", []):
            alone = row.get("calibration_alone") or {}
            if "seconds" in alone:
                prepared = alone.get("preprocess") or {}
                before = (f"; pre-processing the file before it, in a process of its own: {prepared['seconds']} s, "
                          f"peak RSS {prepared['peak_rss_mib']} MiB") if prepared else ""
                lines.append(f"- {name}/{row['graph']}: {alone['samples']} samples, chunk {alone['chunk']}, "
                             f"{alone['seconds']} s, peak RSS {alone['peak_rss_mib']} MiB{before}")
    lines += ["", "Why each graph ended as it did (the export's own words, `int8_search.why` in the manifest):", ""]
    for name, part in result["runs"].items():
        for row in part.get("graphs", []):
            lines.append(f"- {name}/{row['graph']}: {row['why']}")
    lines += ["", "Every candidate the search tried (method, Q/DQ placement, fp32 layers, PSNR against fp32, bars, "
              "int8/fp32 speed measured by the export):", ""]
    for name, part in result["runs"].items():
        for row in part.get("graphs", []):
            cells = [f"{c['method']}/{c['placement']}/{len(c['fp32_layers'])} fp32: "
                     f"{c['psnr_db'] if c['psnr_db'] is None else round(c['psnr_db'], 1)} dB "
                     f"{'met' if c['passed'] else 'missed'}"
                     + (f" {c['speedup']:.2f}×" if c.get("speedup") else "") for c in row["candidates"]]
            lines.append(f"- {name}/{row['graph']}: " + "; ".join(cells))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    md = args.results.with_suffix(".md")
    if args.markdown_only:
        md.write_text(markdown(json.loads(args.results.read_text())))
        return 0
    if args.calibration_only:
        result = json.loads(args.results.read_text())
        result["calibration_alone_run"] = {
            "command": "python benchmarks/scripts/int8_trained.py " + shlex.join(argv if argv is not None
                                                                                  else sys.argv[1:]),
            "date": datetime.now(UTC).isoformat(timespec="seconds"), "load_before": load()}
        for name, part in result["runs"].items():
            export_dir = args.work / "exports" / name
            manifest = json.loads((export_dir / "manifest.json").read_text())
            for row in part.get("graphs", []):
                shape = list(manifest["graphs"][row["graph"]]["inputs"][0]["shape"])
                row["calibration_alone"] = calibration_alone(export_dir / manifest["graphs"][row["graph"]]["file"],
                                                             export_dir.parent, shape)
                print(f"{name}/{row['graph']}: {row['calibration_alone']}", file=sys.stderr)
        result["calibration_alone_run"]["load_after"] = load()
        args.results.write_text(json.dumps(result, indent=1) + "\n")
        md.write_text(markdown(result))
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "command": "python benchmarks/scripts/int8_trained.py "
                   + shlex.join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "cpu": cpu_model(), "threads": args.threads,
        "uptime_before": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "load_before": load(), "book_steps": args.book_steps, "runs": {}}
    os.environ["ZOO_THREADS"] = str(args.threads)
    for name in RUNS:
        if name in args.skip:
            continue
        part: dict[str, Any] = {"load_before": load()}
        part["train"] = training = train(name, args)
        run = Path(training["run"])
        part["steps"] = steps_of(run)
        if part["steps"] is None and name == "cyclegan_book":  # shorter than an epoch: no metrics line
            part["steps"] = training.get("steps_reached") or checkpoint_steps(run)
        if training.get("returncode", 0) != 0 and not training.get("interrupted"):
            part["error"] = f"training failed, see {training['log']}"
        else:
            part["export"], manifest = export(name, run, args)
            if manifest is None:
                part["error"] = f"export failed, see {part['export']['log']}"
            else:
                part["config"] = {k: manifest["config"].get(k) for k in ("preset", "image_size", "ngf", "n_blocks")}
                part["graphs"] = graphs_of(manifest, args.work / "exports" / name, args.threads)
        part["load_after"] = load()
        result["runs"][name] = part
        print(f"{name}: {json.dumps(part.get('export'))}", file=sys.stderr)
        args.results.write_text(json.dumps(result, indent=1) + "\n")  # what is done survives an interruption
    result["load_after"] = load()
    result["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    args.results.write_text(json.dumps(result, indent=1) + "\n")
    md.write_text(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
