"""Soak `zoo serve`: 70% of the measured maximum request rate for N minutes, mixed traffic, then the verdict.

The load generator is zoo's own (zoo_serve.soak: asyncio with raw keep-alive HTTP/1.1, open loop at a fixed
rate), not Locust.
Mix: v2 inference on ae_mnist.autoencoder with the binary tensor extension (40%) and JSON (30%), the
``ae_mnist reconstruct`` task as PNG (10%), and four kinds of bad request (20%: malformed JSON, wrong
shape, unknown graph, unknown task field) that must get their own 4xx.

Criteria: 0 5xx and every answer the one it must be; p99 of the last 5 windows within 1.5x of the first 5
after the warm-up; resident memory of the server (its workers included) at the end within 5% of its value
after the warm-up. Writes benchmarks/results/serve_soak_<N>min.json.

    flock -x /tmp/zoo-cpu.lock .venv/bin/python benchmarks/scripts/soak.py --minutes 30   # 1-minute windows
    .venv/bin/python benchmarks/scripts/soak.py --minutes 2                                # 10-second windows

Without ``--export`` it trains the autoencoder for two steps and exports it into a temporary folder (the
graph has its full size at any preset).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def start(export: Path, port: int, log: Path, workers: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "zoo_core.cli", "serve", "--export", str(export), "--host", LOOPBACK,
               "--port", str(port), "--workers", str(workers)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_ORT_THREADS": "1"}
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"zoo serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"http://{LOOPBACK}:{port}/v2/health/ready", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("zoo serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--window-s", type=float, default=None, help="default: 60 from 10 minutes up, else 10")
    parser.add_argument("--warmup-windows", type=int, default=2)
    parser.add_argument("--compare-windows", type=int, default=5)
    parser.add_argument("--share", type=float, default=0.7, help="fraction of the measured maximum rate")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--export", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from zoo_serve.soak import max_rate, soak, verdict

    window = args.window_s or (60.0 if args.minutes >= 10 else 10.0)
    out = args.out or ROOT / "benchmarks" / "results" / f"serve_soak_{args.minutes:g}min.json"
    with tempfile.TemporaryDirectory(prefix="zoo-soak-") as scratch:
        folder = Path(scratch)
        export = args.export
        if export is None:
            from zoo_serve.testing import tiny_export

            from zoo_core.testing import private_cache

            with private_cache(folder / "cache"):
                export = tiny_export("ae_mnist", folder)
        import socket

        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            port = probe.getsockname()[1]
        log = folder / "serve.log"
        load_before = os.getloadavg()
        server = start(export, port, log, args.workers)
        url = f"http://{LOOPBACK}:{port}"
        try:
            maximum = asyncio.run(max_rate(url, seconds=15, clients=16))
            rate = args.share * maximum
            print(f"soak: maximum {maximum:.1f} requests/s; soaking at {rate:.1f}/s for {args.minutes:g} min",
                  flush=True)
            result = asyncio.run(soak(url, rate, args.minutes * 60, window, pid=server.pid,
                                      progress=lambda w: print(f"soak: {w}", flush=True)))
        finally:
            server.terminate()
            code = server.wait(timeout=60)
        outcome = verdict(result, args.warmup_windows, args.compare_windows)
        log_text = log.read_text(errors="replace")
    passed = (outcome["server_errors"] == 0 and outcome["failures"] == 0 and outcome["p99_ratio"] <= 1.5
              and outcome["skipped_by_generator"] == 0
              and outcome["rss_growth"] is not None and outcome["rss_growth"] <= 0.05 and code == 0)
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cpu": cpu_model(), "cores": os.cpu_count(),
              "command": " ".join([Path(sys.executable).name, *sys.argv]), "load_before": load_before,
              "load_after": os.getloadavg(),
              "generator": "zoo_serve.soak (asyncio, raw keep-alive HTTP/1.1, open loop)",
              "workers": args.workers, "max_rate_per_s": round(maximum, 1), "share": args.share,
              "verdict": outcome, "passed": passed, "server_exit_code": code,
              "tracebacks_in_log": log_text.count("Traceback"), **result}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"soak: {'PASSED' if passed else 'FAILED'} {outcome}; written to {out}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
