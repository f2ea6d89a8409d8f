"""Benchmark every registered model on this machine and rebuild BENCHMARKS.md.

    python benchmarks/scripts/suite.py                 # the committed results (CPU, or CUDA when present)
    python benchmarks/scripts/suite.py --device cuda   # the GPU results
    python benchmarks/scripts/suite.py --preset quick --batch-sizes 1 --results /tmp/r --markdown /tmp/B.md

See zoo_bench.suite for what it measures and writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from zoo_bench.suite import main

if __name__ == "__main__":
    sys.exit(main(root=Path(__file__).resolve().parents[2]))
