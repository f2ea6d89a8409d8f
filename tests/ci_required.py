"""A pytest plugin: under CI=true, a skip because a required tool is missing fails the run.

Locally a test that needs Chromium, tritonclient or the shared real MNIST skips with a reason saying what to
install; in CI (``.ci/run`` installs all three) such a skip would hide a broken setup behind a green run, so it is
reported as a failure there. Other skips (no CUDA, a docs block marked skip) stay skips. tests/conftest.py registers
this module for the whole session; ``pytest -p ci_required`` with tests/ on the path does the same.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from typing import Any

import pytest

#: What CI must have, and the skip reasons that say it is missing (matched case-insensitively).
REQUIRED = {
    "Chromium and chromedriver (the gallery and docs browser tests; selenium drives them)":
        re.compile(r"chromium|chromedriver|selenium", re.IGNORECASE),
    "tritonclient (Triton's model-config schema)": re.compile(r"tritonclient", re.IGNORECASE),
    "the shared real MNIST at ../shared/data/mnist-t10k": re.compile(r"real MNIST", re.IGNORECASE),
}


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def missing_tool(report: Any) -> str | None:
    """The required tool a skipped report's reason names, or None for any other outcome or reason."""
    if not report.skipped:
        return None
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    if "docs-test: skip" in reason:  # a docs example its page marks as not runnable in tests, whatever it names
        return None
    return next((tool for tool, pattern in REQUIRED.items() if pattern.search(reason)), None)


def _reason(report: Any) -> str:
    return report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)


def _message(tool: str, reason: str) -> str:
    return f"CI=true and {tool} is missing, so this skip fails the run ({reason}); .ci/run installs it"


#: Modules skipped as a whole for a missing tool: a failed collection would stop the session before any test
#: ran, so these stay skips in the counts and fail the run at its end.
_SKIPPED_MODULES: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    tool = missing_tool(report) if in_ci() else None
    if tool is not None:
        report.outcome = "failed"
        report.longrepr = _message(tool, _reason(report))


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield  # a module that skips as a whole (allow_module_level, importorskip at import)
    report = outcome.get_result()
    tool = missing_tool(report) if in_ci() else None
    if tool is not None:
        _SKIPPED_MODULES.append(f"{report.nodeid}: {_message(tool, _reason(report))}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _SKIPPED_MODULES:
        terminalreporter.section("required tools missing under CI=true", red=True)
        for line in _SKIPPED_MODULES:
            terminalreporter.line(f"FAILED {line}", red=True)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if _SKIPPED_MODULES and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
