"""Start-up time of the catalogue commands: `zoo --help`, `zoo list`, `zoo plugins`.

Each command runs as a fresh subprocess (what a user waits for: interpreter start, plugin
discovery, every installed plugin's plugin.py, the command); the figure is the median wall
time of --runs runs after one unmeasured warm-up. Prints a table and writes
benchmarks/results/startup.json with the machine, the date and the versions.

    .venv/bin/python benchmarks/scripts/startup.py [--runs 10] [--budget 1.5] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from zoo_core import __version__
from zoo_core.io import write_json

COMMANDS = (("zoo --help", ["--help"]), ("zoo list", ["list"]), ("zoo plugins", ["plugins"]))
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "results" / "startup.json"


def zoo_command() -> list[str]:
    """The installed `zoo` console script beside this interpreter, else `python -m zoo_core.cli`."""
    script = Path(sys.executable).parent / "zoo"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "zoo_core.cli"]


def time_once(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {done.returncode}: {done.stderr.strip()}")
    return seconds


def measure(command: list[str], runs: int) -> dict[str, float | list[float]]:
    time_once(command)  # warm-up: bytecode caches and the OS page cache
    samples = [time_once(command) for _ in range(runs)]
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples),
            "samples_s": [round(s, 4) for s in samples]}


def installed_plugins(command: list[str]) -> list[dict[str, object]]:
    done = subprocess.run([*command, "plugins", "--json"], capture_output=True, text=True, timeout=120, check=True)
    return [{"name": r["name"], "version": r["version"], "models": r["models"], "errors": r["errors"]}
            for r in json.loads(done.stdout)]


def machine() -> dict[str, object]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="measured runs per command (default 10)")
    parser.add_argument("--budget", type=float, default=1.5, help="seconds a median may take (default 1.5)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON result (default {DEFAULT_OUT})")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    command = zoo_command()
    plugins = installed_plugins(command)
    load_before = os.getloadavg()[0]
    results = {label: measure([*command, *arguments], args.runs) for label, arguments in COMMANDS}

    print(f"zoo {__version__}, {len(plugins)} plugin distributions "
          f"({', '.join(p['name'] for p in plugins)}); {args.runs} runs each, load average {load_before:.2f}")
    print(f"{'command':<14}{'median s':>10}{'min s':>9}{'max s':>9}  within {args.budget:g} s")
    for label, result in results.items():
        verdict = "yes" if result["median_s"] <= args.budget else "NO"
        print(f"{label:<14}{result['median_s']:>10.3f}{result['min_s']:>9.3f}{result['max_s']:>9.3f}  {verdict}")

    write_json(args.out, {
        "what": "wall time of a fresh `zoo` subprocess, median of runs after one warm-up",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {"zoo": __version__, "python": platform.python_version(),
                     **{name: metadata.version(name) for name in ("click", "pluggy", "rich")}},
        "command": [Path(part).name if i == 0 else part for i, part in enumerate(command)],
        "runs": args.runs,
        "budget_s": args.budget,
        "plugins": plugins,
        "results": results,
    })
    print(f"wrote {args.out}")
    return 0 if all(r["median_s"] <= args.budget for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
