"""Oversubscription: two quick trainings at once on the same cores, against one alone, per thread setting.

Each trial is a real ``zoo train MODEL --preset quick --epochs 1 --limit N`` in its own process; the
figure is the epoch's loop time as the engine records it in metrics.jsonl (start-up, data loading and
the sample grid excluded, since they are the same with or without a neighbour). A setting passes
when each of two simultaneous runs takes at most ``LIMIT`` (2.5) times its time alone.

Settings: torch's default (one thread per core, libgomp's default wait policy), the same count with
``OMP_WAIT_POLICY=PASSIVE`` (what ``zoo`` sets before torch loads), and one thread each.

    .venv/bin/python benchmarks/scripts/oversubscription.py   # both models: 10-40 min on 2 cores
    .venv/bin/python benchmarks/scripts/oversubscription.py --models vae_faces --rounds 3

Writes benchmarks/results/oversubscription.json with the machine, its load average before and
after, and every trial, so a rerun on a quiet machine is comparable.
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
import time
from datetime import UTC, datetime
from pathlib import Path

from zoo_core import io as zio

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 2.5
# Data items per model, sized so one epoch alone takes a few seconds on one core of the 2-core EPYC.
ITEMS = {"vae_faces": 3000, "cyclegan_hair": 96, "ae_mnist": 6000}
SETTINGS = {
    "torch-default": {"threads": None, "wait_policy": None},
    "cores-passive": {"threads": None, "wait_policy": "PASSIVE"},
    "one-thread": {"threads": 1, "wait_policy": "PASSIVE"},
}
# The CLI group without main(): main() would set the passive policy, which the script sets (or not) itself.
ZOO = "import sys; from zoo_core.cli import cli; sys.exit(cli(prog_name='zoo'))"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["vae_faces", "cyclegan_hair"], choices=sorted(ITEMS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--rounds", type=int, default=2,
                        help="alone/pair rounds per setting; the ratio uses the median alone (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "oversubscription.json")
    return parser.parse_args()


def environment(setting: dict[str, object], cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "ZOO_THREADS", "OMP_WAIT_POLICY")}
    env["ZOO_CACHE_DIR"] = str(cache)
    if setting["wait_policy"]:
        env["OMP_WAIT_POLICY"] = str(setting["wait_policy"])
    return env


def command(model: str, setting: dict[str, object], out: Path) -> list[str]:
    args = [sys.executable, "-c", ZOO, "train", model, "--preset", "quick", "--epochs", "1", "--limit",
            str(ITEMS[model]), "--device", "cpu", "--no-progress", "--out", str(out)]
    if setting["threads"] is not None:
        args += ["--threads", str(setting["threads"])]
    return args


def trials(model: str, setting: dict[str, object], count: int, cache: Path, work: Path) -> list[dict[str, float]]:
    """``count`` simultaneous trainings; each one's loop seconds (from metrics.jsonl) and process wall time."""
    outs = [work / f"{model}-{time.perf_counter_ns()}-{i}" for i in range(count)]
    started = time.perf_counter()
    processes = [subprocess.Popen(command(model, setting, out), env=environment(setting, cache), cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for out in outs]
    results = []
    for process, out in zip(processes, outs, strict=True):
        _, stderr = process.communicate()
        wall = time.perf_counter() - started
        if process.returncode != 0:
            raise SystemExit(f"zoo train {model} failed ({process.returncode}): {stderr.strip()[-500:]}")
        record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        results.append({"loop_s": record["seconds"], "wall_s": wall})
    return results


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    args = parse_args()
    report: dict[str, object] = {
        "script": "benchmarks/scripts/oversubscription.py", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "load_average_before": load(), "limit": LIMIT, "items": {m: ITEMS[m] for m in args.models}, "results": [],
    }
    with tempfile.TemporaryDirectory(prefix="zoo-oversub-") as folder:
        work, cache = Path(folder), Path(folder) / "cache"
        for model in args.models:
            trials(model, SETTINGS["one-thread"], 1, cache, work)  # warm-up: fills the data cache
            for name in args.settings:
                setting = SETTINGS[name]
                alone, pairs, loads = [], [], [load()]  # other work on the machine shows in the load average
                for _ in range(args.rounds):
                    alone += [t["loop_s"] for t in trials(model, setting, 1, cache, work)]
                    pairs += [t["loop_s"] for t in trials(model, setting, 2, cache, work)]
                    loads.append(load())
                alone_s = statistics.median(alone)
                ratio = max(pairs) / alone_s
                row = {"model": model, "setting": name, **setting, "alone_loop_s": alone, "pair_loop_s": pairs,
                       "worst_ratio": round(ratio, 3), "passes": ratio <= LIMIT, "load_averages": loads}
                report["results"].append(row)  # type: ignore[union-attr]
                print(f"{model:14s} {name:14s} alone {alone_s:6.2f} s  pair {max(pairs):6.2f} s  "
                      f"ratio {ratio:5.2f}  {'ok' if ratio <= LIMIT else 'OVER ' + str(LIMIT)}", flush=True)
    report["load_average_after"] = load()
    zio.write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
