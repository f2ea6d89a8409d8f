"""The timing loop and its statistics."""

from __future__ import annotations

import time

import pytest
from zoo_bench.timing import Timing, TimingRule, percentile, time_calls, warm_up


def busy() -> int:
    return sum(range(200))


def test_time_calls_honours_min_runs_and_min_seconds() -> None:
    timing = time_calls(busy, None, TimingRule(min_seconds=0.05, min_runs=20, max_seconds=1.0))
    assert timing.runs >= 20
    assert timing.wall_seconds >= 0.05
    assert all(s > 0 for s in timing.samples)
    assert 0 < timing.p50 <= timing.p90 <= timing.p99
    assert timing.items_per_second(8) == pytest.approx(8 / timing.p50)


def test_max_seconds_stops_a_slow_call_before_min_runs() -> None:
    timing = time_calls(lambda: time.sleep(0.02), None, TimingRule(min_seconds=0.05, min_runs=1000, max_seconds=0.1))
    assert 3 <= timing.runs < 20
    assert timing.wall_seconds >= 0.1
    assert min(timing.samples) >= 0.019


def test_sync_runs_after_every_call() -> None:
    calls: list[str] = []
    timing = time_calls(lambda: calls.append("call"), lambda: calls.append("sync"),
                        TimingRule(min_seconds=0.01, min_runs=5, max_seconds=0.5))
    assert calls[:4] == ["call", "sync", "call", "sync"]
    assert calls.count("sync") == calls.count("call") == timing.runs


def test_warm_up_runs_at_least_the_rule_minimum() -> None:
    count = []
    seconds, runs = warm_up(lambda: count.append(1), None, TimingRule(warmup_seconds=0.0, warmup_runs=3))
    assert runs == len(count) == 3 and seconds >= 0


def test_percentile_interpolates() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0], 0) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    assert Timing((0.001, 0.003, 0.002), 0.006).p50 == pytest.approx(0.002)


def test_invalid_rule_is_refused() -> None:
    with pytest.raises(ValueError):
        TimingRule(min_seconds=2.0, max_seconds=1.0)
