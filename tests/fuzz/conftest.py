"""Hypothesis profiles for the fuzz suite, the tiny run and export its cases damage, and the case count.

``ci`` (the default, part of `make test`): fixed, derandomized examples, a few per reader, well under a
minute on two cores. ``long`` (`make fuzz`, HYPOTHESIS_PROFILE=long): many more random examples; at the end
the count of cases and their outcomes is written to benchmarks/results/fuzz.json (ZOO_FUZZ_SUMMARY).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))  # fuzz_bounded and fuzz_cases beside this file

from fuzz_bounded import OUTCOMES

from zoo_core.testing import torch_threads

COMMON = {"deadline": None, "database": None,
          "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                    HealthCheck.data_too_large, HealthCheck.filter_too_much]}
settings.register_profile("ci", max_examples=12, derandomize=True, print_blob=True, **COMMON)
settings.register_profile("long", max_examples=500, print_blob=True, **COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
# The CLI cases start a real `zoo` process each (about two seconds with torch): fewer of them.
CLI_EXAMPLES = {"ci": 8, "long": 150}.get(PROFILE, 8)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Forked cases run beside five other engineers' work on two cores; one thread keeps them predictable."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ae_mnist at toy sizes, two steps: a real run directory with config.json, metrics and a last checkpoint."""
    from zoo_core.engine import TrainOptions, train
    from zoo_core.registry import registered_model

    out = tmp_path_factory.mktemp("fuzz") / "run"
    options = TrainOptions(preset="quick", overrides={"h_dim": 16, "z_dim": 4, "embedded_items": 256, "epochs": 2,
                                                       "batch_size": 64},
                           out=out, max_steps=5, progress=False, device="cpu")
    return train(registered_model("ae_mnist"), options)


@pytest.fixture(scope="session")
def tiny_export(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run exported (fp32, not validated: validation is the export tests' business)."""
    from zoo_export.pipeline import ExportOptions, export_model

    from zoo_core.registry import registered_model

    out = tmp_path_factory.mktemp("fuzz-export") / "export"
    return export_model(registered_model("ae_mnist"), ExportOptions(run=tiny_run, out=out, validate=False,
                                                             log=lambda line: None))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After `make fuzz`: how many cases ran and how they ended, with when, where and how."""
    target = os.environ.get("ZOO_FUZZ_SUMMARY")
    if not target or not OUTCOMES:
        return
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    summary = {
        "command": os.environ.get("ZOO_FUZZ_COMMAND", "HYPOTHESIS_PROFILE=long pytest tests/fuzz"),
        "profile": PROFILE, "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, no GPU", "load_average_1m_at_end": load,
        "cases": sum(OUTCOMES.values()), "outcomes": dict(sorted(OUTCOMES.items())),
        "failed_tests": session.testsfailed, "exit_status": int(exitstatus),
    }
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nfuzz: {summary['cases']} cases, outcomes {summary['outcomes']}; written to {target}", file=sys.stderr)
