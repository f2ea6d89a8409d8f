"""What a run measures besides the cells: the device's matmul peak and a graph's FLOPs."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zoo_bench.backends import AUTOCAST_DTYPES
from zoo_bench.timing import TimingRule, time_calls

# The largest square matmul per device: big enough to reach the GEMM peak, small enough to time in ~1 s.
MAX_PEAK_SIZE = {"cpu": 2048, "cuda": 8192}
PROBE_SIZE = 512
MAX_PEAK_CALL_SECONDS = 1.0


@dataclass(frozen=True)
class Peak:
    """A measured ceiling: a square matmul of ``size`` in ``precision``, median GFLOP/s."""

    precision: str
    size: int
    gflops: float
    runs: int

    def as_json(self) -> dict[str, Any]:
        return {"precision": self.precision, "matmul_size": self.size, "gflops": self.gflops, "runs": self.runs}


def measure_peak(device: torch.device, precision: str, seconds: float = 1.0, max_size: int | None = None) -> Peak:
    """Median GFLOP/s of an n×n matmul in ``precision`` on ``device`` (2 FLOPs per multiply-add).

    n is the device's maximum; in fp16/bf16 it halves while a probe at 512² says one call would
    take over a second (fp16 on a CPU without fp16 arithmetic). fp32 always uses the maximum, so
    peaks measured on a loaded machine stay comparable.
    """
    dtype = AUTOCAST_DTYPES.get(precision, torch.float32)
    size = max_size or MAX_PEAK_SIZE.get(device.type, 2048)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    with torch.inference_mode():
        probe = min(PROBE_SIZE, size)
        seconds_at_probe = _best_of(3, _matmul(probe, dtype, device), sync)
        while precision != "fp32" and size > probe and seconds_at_probe * (size / probe) ** 3 > MAX_PEAK_CALL_SECONDS:
            size //= 2
        call = _matmul(size, dtype, device)
        once = _best_of(1, call, sync)
        rule = TimingRule(min_seconds=seconds, min_runs=5, max_seconds=max(seconds, 5 * once), warmup_seconds=0,
                          warmup_runs=0)
        timing = time_calls(call, sync, rule)
    return Peak(precision, size, 2 * size**3 / timing.p50 / 1e9, timing.runs)


def _matmul(size: int, dtype: torch.dtype, device: torch.device) -> Callable[[], Any]:
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    return functools.partial(torch.mm, a, b)


def _best_of(runs: int, call: Callable[[], Any], sync: Callable[[], Any] | None) -> float:
    """The fastest of ``runs`` calls, after one that pays for library initialisation."""
    call()
    if sync:
        sync()
    best = math.inf
    for _ in range(runs):
        start = time.perf_counter()
        call()
        if sync:
            sync()
        best = min(best, time.perf_counter() - start)
    return best


def count_gflops(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> float:
    """GFLOPs per item of ``module`` on a batch of ``inputs`` (torch.utils.flop_counter: 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        module(*inputs)
    return counter.get_total_flops() / 1e9 / len(inputs[0])


def config_differs(config: Mapping[str, Any], card: Mapping[str, Any]) -> bool:
    """Whether a resolved config differs from the card preset's values (ignoring the preset's name)."""
    strip = {"preset"}
    return {k: v for k, v in config.items() if k not in strip} != {k: v for k, v in card.items() if k not in strip}
