"""The timing loop: one runtime call per iteration on inputs already bound, nothing else.

The loop body is the call, an optional device synchronisation and two clock reads; the
samples go into a list whose ``append`` is bound once. Garbage collection is paused while
timing so a collection never lands inside a sample.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TimingRule:
    """How long a cell is warmed up and timed.

    Timing stops once ``min_seconds`` have been timed and either ``min_runs`` runs are done or
    ``max_seconds`` have passed (so a one-image-per-second graph gets a few runs, not fifty),
    but never before ``floor_runs`` runs, so the median is a median. Warm-up runs follow the
    first call until ``warmup_seconds`` have passed, at least ``warmup_runs`` of them.
    """

    min_seconds: float = 1.0
    min_runs: int = 50
    max_seconds: float = 10.0
    warmup_seconds: float = 0.5
    warmup_runs: int = 1
    floor_runs: int = 3

    def __post_init__(self) -> None:
        if (self.min_seconds <= 0 or self.min_runs < 1 or self.max_seconds < self.min_seconds
                or self.floor_runs < 1):
            raise ValueError(f"invalid timing rule {self}: need min_seconds > 0, min_runs >= 1, floor_runs >= 1, "
                             "max_seconds >= min_seconds")


@dataclass(frozen=True)
class Timing:
    """Per-run latencies of one cell, in seconds."""

    samples: tuple[float, ...]
    wall_seconds: float

    @property
    def runs(self) -> int:
        return len(self.samples)

    def percentile(self, q: float) -> float:
        return percentile(self.samples, q)

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p90(self) -> float:
        return self.percentile(90)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples)

    def items_per_second(self, batch: int) -> float:
        """Throughput at the median latency (the timm convention)."""
        return batch / self.p50


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` in [0, 100] of a non-empty sample."""
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def warm_up(call: Callable[[], Any], sync: Callable[[], Any] | None, rule: TimingRule) -> tuple[float, int]:
    """Run ``call`` until the rule's warm-up is done; returns the seconds it took and the runs."""
    clock = time.perf_counter
    start = clock()
    runs = 0
    while runs < rule.warmup_runs or clock() - start < rule.warmup_seconds:
        call()
        if sync is not None:
            sync()
        runs += 1
    return clock() - start, runs


def time_calls(call: Callable[[], Any], sync: Callable[[], Any] | None, rule: TimingRule) -> Timing:
    """Time ``call`` (then ``sync``, when given) once per sample until ``rule`` is satisfied."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    record = samples.append
    min_ns = int(rule.min_seconds * 1e9)
    max_ns = int(rule.max_seconds * 1e9)
    min_runs = rule.min_runs
    floor_runs = min(rule.floor_runs, min_runs)
    collecting = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        # Two loops rather than a branch per iteration: on CPU there is nothing to synchronise.
        if sync is None:
            while True:
                before = clock()
                call()
                after = clock()
                record(after - before)
                elapsed = after - start
                count = len(samples)
                if elapsed >= min_ns and count >= floor_runs and (count >= min_runs or elapsed >= max_ns):
                    break
        else:
            while True:
                before = clock()
                call()
                sync()
                after = clock()
                record(after - before)
                elapsed = after - start
                count = len(samples)
                if elapsed >= min_ns and count >= floor_runs and (count >= min_runs or elapsed >= max_ns):
                    break
    finally:
        if collecting:
            gc.enable()
    return Timing(tuple(s / 1e9 for s in samples), elapsed / 1e9)
