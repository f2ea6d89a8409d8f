"""The long Schemathesis run of `make fuzz`: every check on a real `zoo serve` of the three first-party models
(tiny exports made here), the raw-ASGI v2 infer path and every task form included. Writes
benchmarks/results/serve_fuzz.json and exits 1 on any failure, error or server traceback.

    .venv/bin/python benchmarks/scripts/serve_fuzz.py --examples 300 --seed 7
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "serve" / "tests"))  # the live-server helper the tests use


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=300, help="per operation and phase")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve_fuzz.json")
    args = parser.parse_args()
    from zoo_serve.testing import run_schemathesis, tiny_exports
    from zoo_serve_live import start_server

    from zoo_core.testing import private_cache, torch_threads

    with tempfile.TemporaryDirectory(prefix="zoo-serve-fuzz-") as scratch:
        folder = Path(scratch)
        with private_cache(folder / "cache"), torch_threads(1):
            exports = tiny_exports(folder)
        server = start_server(exports, folder)
        try:
            outcome = run_schemathesis(server.url, args.examples, seed=args.seed)
        finally:
            code = server.stop()
        log = server.log.read_text(errors="replace")
    tracebacks = log.count("Traceback")
    passed = outcome["exit_code"] == 0 and not outcome["failures"] and not outcome["errors"] and not tracebacks
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cores": os.cpu_count(),
              "command": f"python benchmarks/scripts/serve_fuzz.py --examples {args.examples} --seed {args.seed}",
              "schemathesis": outcome["command"], "cases": outcome["generated"], "passed_cases": outcome["passed"],
              "failures": outcome["failures"], "errors": outcome["errors"], "server_tracebacks": tracebacks,
              "server_exit_code": code, "passed": passed}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(outcome["output"] if not passed else f"serve fuzz: {record}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
