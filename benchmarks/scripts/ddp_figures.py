"""Training throughput with DDP on this machine's CPU: `zoo train --nproc 2` (gloo) against one process.

Each configuration trains the same recipe for --epochs epochs from a fresh run directory, as a user would start it
(a subprocess per run, start-up not counted); the figure is the items/s the engine writes to metrics.jsonl for
each epoch (the global batch, all processes together), median over the epochs of --repeats runs. On a machine with
as many cores as processes, two processes can at best match one process using both cores: this measures the cost
of the gradient all-reduce and of splitting each batch, not a speed-up. Writes benchmarks/results/ddp_cpu.json.

    .venv/bin/python benchmarks/scripts/ddp_figures.py [--model ae_mnist] [--epochs 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from zoo_core import __version__
from zoo_core.io import write_json

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "results" / "ddp_cpu.json"
CORES = os.cpu_count() or 1
# name, `zoo train` options, environment: one process on every core, one on one core, and N processes of one core
CONFIGURATIONS = (
    (f"1 process x {CORES} threads", [], {"OMP_NUM_THREADS": str(CORES)}),
    ("1 process x 1 thread", [], {"OMP_NUM_THREADS": "1"}),
    (f"{CORES} processes x 1 thread (gloo)", ["--nproc", str(CORES)], {"OMP_NUM_THREADS": "1"}),
)


def train_once(model: str, options: list[str], env: dict[str, str], epochs: int, extra: list[str]) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="zoo-ddp-figures-") as folder:
        run = Path(folder) / "run"
        command = [sys.executable, "-m", "zoo_core", "train", model, "--epochs", str(epochs), "--out", str(run),
                   "--no-progress", "--device", "cpu", *options, *extra]
        done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [row["items_per_s"] for row in rows]


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ae_mnist")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="passed on to `zoo train --set`")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    extra = [item for assignment in args.assignments for item in ("--set", assignment)]
    results = []
    load_before = load_average()
    for name, options, env in CONFIGURATIONS:
        rates: list[float] = []
        for _ in range(args.repeats):
            rates += train_once(args.model, options, env, args.epochs, extra)
        results.append({"configuration": name, "options": options, "env": env,
                        "items_per_s_median": round(statistics.median(rates), 1),
                        "items_per_s": [round(rate, 1) for rate in rates]})
        print(f"{name:34s} {statistics.median(rates):10.1f} items/s", flush=True)
    baseline = results[0]["items_per_s_median"]
    for row in results:
        row["relative_to_first"] = round(row["items_per_s_median"] / baseline, 3)
    write_json(args.out, {
        "what": f"zoo train {args.model} --epochs {args.epochs} (preset default for CPU) items/s: one process "
                "against DDP processes on gloo, same global batch",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"processor": platform.processor() or platform.machine(), "cores": CORES,
                    "load_average_before": load_before, "load_average_after": load_average(),
                    "note": "shared machine: other jobs may have run at the same time; see the load averages"},
        "versions": {"zoo": __version__, "torch": metadata.version("torch"), "python": platform.python_version()},
        "command": f"{Path(sys.argv[0]).as_posix()} " + " ".join(sys.argv[1:]),
        "repeats": args.repeats, "set": args.assignments, "results": results,
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
