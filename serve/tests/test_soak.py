"""A short soak of a real `zoo serve` (issue 22): zoo's asyncio generator (zoo_serve.soak) at 70% of the
maximum rate it measured, 20 s of mixed v2 binary/JSON inference, a task route and bad requests. The 2- and
30-minute runs are `python benchmarks/scripts/soak.py --minutes 2|30`.

Criteria: no 5xx, every request gets the status it must (a hang is a failed request after 30 s), resident memory
after the warm-up grows at most 5%; p99 of the last windows within 3x of the first when the generator kept its
rate (1.5x and no skipped request in the long runs, which hold the CPU lock alone: two cores shared with other
tests make a 2-second window's p99 noisy)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from zoo_serve.soak import max_rate, soak, verdict
from zoo_serve_live import LiveServer, start_server

SECONDS, WINDOW_S, WARMUP, COMPARE = 20.0, 2.0, 2, 3


@pytest.fixture(scope="module")
def soaked(exports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server({"ae_mnist": exports["ae_mnist"]}, tmp_path_factory.mktemp("soak"))
    yield server
    assert server.stop() == 0, server.log.read_text()


def test_soak_at_70_percent_of_the_measured_maximum(soaked: LiveServer) -> None:
    maximum = asyncio.run(max_rate(soaked.url, seconds=4, clients=8))
    offered = 0.7 * maximum * SECONDS
    result = asyncio.run(soak(soaked.url, 0.7 * maximum, SECONDS, WINDOW_S, pid=soaked.process.pid,
                              max_outstanding=64))
    outcome = verdict(result, WARMUP, COMPARE)
    print(f"soak: max {maximum:.0f}/s, ran at {0.7 * maximum:.0f}/s: {outcome}")
    assert outcome["server_errors"] == 0 and outcome["failures"] == 0, result["windows"]
    assert outcome["rss_growth"] is not None and outcome["rss_growth"] <= 0.05, outcome
    kinds = {s for w in result["windows"] for s in w["statuses"]}
    assert {"200", "400", "404"} <= kinds
    # Other tests on the two cores (and this process's own client) can slow the pair below the rate measured a
    # moment before; then the generator skips what it cannot start (64 waiting) and latency measures the
    # neighbours, not the server. A stalled server shows as failures: each request times out after 30 s.
    assert outcome["requests"] >= min(1000, 0.3 * offered), outcome
    if outcome["skipped_by_generator"] == 0:
        assert outcome["p99_last_ms"] <= max(3 * outcome["p99_first_ms"], outcome["p99_first_ms"] + 250), outcome
