"""Where an int8 graph spends its time, by operator type, beside its fp32 original: onnxruntime's own profiler.

    python benchmarks/scripts/int8_op_profile.py EXPORT_DIR [EXPORT_DIR ...] [--batch 8] [--runs 30]

For every graph of each export that has an int8 file, runs the fp32 and the int8 file ``--runs`` times at
``--batch`` (after 3 warm-up runs) on the CPU with onnxruntime's profiling on, and sums the kernel time of each
operator type (``Node`` events; the fused QLinear/QDQ kernels keep their own type). Writes
benchmarks/results/int8_op_profile.json: per file the milliseconds per run by operator type, the number of nodes
of each type, and the share of the run each type took. Run it alone on the machine (the numbers are timings).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def profile(path: Path, shapes: list[list[Any]], batch: int, runs: int, threads: int) -> dict[str, Any]:
    """Per operator type: ms per run, node count, share of the run (kernel time only); ``shapes`` are the
    manifest's input shapes, ``"N"`` the batch."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="zoo-profile-") as scratch:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(scratch) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feeds = {}
        for arg, declared in zip(session.get_inputs(), shapes, strict=True):
            shape = [batch if d == "N" else int(d) for d in declared]
            feeds[arg.name] = np.random.default_rng(0).random(shape, dtype=np.float32) * 2 - 1
        for _ in range(3):
            session.run(None, feeds)
        warm_events = len(json.loads(Path(session.end_profiling()).read_text()))
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_type: defaultdict[str, float] = defaultdict(float)
    nodes: Counter[str] = Counter()
    seen: set[str] = set()
    run_us = 0.0
    for event in events:
        if event.get("cat") == "Session" and event.get("name") == "model_run":
            run_us += float(event["dur"])
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        op = event.get("args", {}).get("op_name", "?")
        per_type[op] += float(event["dur"])
        node = event["name"]
        if node not in seen:
            seen.add(node)
            nodes[op] += 1
    kernel = sum(per_type.values()) or 1.0
    return {"file": path.name, "batch": batch, "runs": runs, "warmup_events": warm_events,
            "ms_per_run": round(run_us / runs / 1e3, 3),
            "by_op": {op: {"ms_per_run": round(us / runs / 1e3, 3), "nodes": nodes[op],
                           "share": round(us / kernel, 3)}
                      for op, us in sorted(per_type.items(), key=lambda item: -item[1])}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exports", nargs="+", type=Path)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/int8_op_profile.json")
    args = parser.parse_args(argv)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    result: dict[str, Any] = {"command": "python benchmarks/scripts/int8_op_profile.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(), "threads": args.threads, "uptime_before": uptime, "load_before": os.getloadavg(),
        "graphs": {}}
    for export in args.exports:
        manifest = json.loads((export / "manifest.json").read_text())
        for name, entry in manifest["graphs"].items():
            int8 = entry.get("int8") or {}
            if not int8.get("file"):
                continue
            key = f"{export.name}/{name}"
            shapes = [spec["shape"] for spec in entry["inputs"]]
            result["graphs"][key] = {precision: profile(export / file, shapes, args.batch, args.runs, args.threads)
                                     for precision, file in (("fp32", entry["file"]), ("int8", int8["file"]))}
            fp32, quantized = result["graphs"][key]["fp32"], result["graphs"][key]["int8"]
            print(f"{key}: fp32 {fp32['ms_per_run']} ms, int8 {quantized['ms_per_run']} ms per run at batch "
                  f"{args.batch}", file=sys.stderr)
            for op, figures in list(quantized["by_op"].items())[:8]:
                print(f"  int8 {op:24s} {figures['ms_per_run']:8.3f} ms  {figures['share']:5.1%}  "
                      f"({figures['nodes']} nodes)", file=sys.stderr)
    result["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
