"""Bounded int8 calibration: activation ranges collected chunk by chunk, in memory that does not grow with samples.

onnxruntime's calibrators keep every intermediate output of a whole stride (its histogram calibrators: of the
whole data set) before reducing them; at 256² that held 10.5 GB. Here the graph is augmented with every float
tensor the quantizer may need as an output, run on ``chunk`` items at a time, and each output is reduced at
once to a running min/max (first pass) and, for the entropy and percentile methods, to a fixed-range histogram
(second pass over the same items). What is held: one chunk's intermediate outputs, sized by a byte budget
(``ACTIVATION_BUDGET``) from a first one-item run, plus ``BINS`` counts per tensor.

The three methods' ranges come out of the same two passes, so the accuracy search can try them all for the
price of one calibration. The ranges are handed to onnxruntime's quantizer as its calibration cache.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

METHODS = ("minmax", "entropy", "percentile")
ACTIVATION_BUDGET = 256 << 20  # bytes of intermediate outputs held per chunk
MAX_CHUNK = 16
BINS = 2048  # histogram bins per tensor (the entropy and percentile methods)
PERCENTILE = 99.999  # the percentile method keeps this share of each tensor's values (both tails cut evenly)
ENTROPY_KEEP = 0.999  # the entropy method keeps at least this share of each side's values
ENTROPY_LEVELS = 128  # quantized levels the entropy method compares each candidate clipping against
SAMPLE_ELEMENTS = 1 << 22  # the sample rule: about 4M input values seen, see sample_rule
MIN_SAMPLES, MAX_SAMPLES = 16, 256
MIN_HISTOGRAM_VALUES = 1 << 14  # fewer values seen than this: a clipping rule has too little to go on, keep min/max


def sample_rule(input_elements_per_item: int) -> int:
    """Calibration items for a graph whose inputs hold ``input_elements_per_item`` values per item:
    ``clamp(2**22 / elements, 16, 256)``, i.e. enough items to see about four million input values (a 64² RGB
    image: 256 items; 256²: 21; a latent vector: 256). Larger inputs give more values per activation channel
    per item, so fewer items settle the ranges, and calibration time stays near-constant across sizes."""
    return int(min(MAX_SAMPLES, max(MIN_SAMPLES, SAMPLE_ELEMENTS // max(1, input_elements_per_item))))


class Source(Protocol):
    """Calibration inputs, read a slice at a time (so a source may generate or load them lazily)."""

    count: int

    def batch(self, start: int, stop: int) -> list[np.ndarray]: ...


@dataclass
class ArraySource:
    """Calibration inputs held as arrays (their size is bounded by the sample rule)."""

    arrays: Sequence[np.ndarray]
    count: int = field(init=False)

    def __post_init__(self) -> None:
        self.count = int(self.arrays[0].shape[0])

    def batch(self, start: int, stop: int) -> list[np.ndarray]:
        return [np.ascontiguousarray(a[start:stop], dtype=np.float32) for a in self.arrays]


Tick = Callable[[int], None]


def _float_tensors(model: Any) -> list[tuple[str, Any]]:
    """(name, value info) of every float32 tensor a node reads or writes, initializers left out, in graph order."""
    import onnx

    graph = model.graph
    infos = {v.name: v for v in [*graph.input, *graph.value_info, *graph.output]}
    constants = {i.name for i in graph.initializer}
    seen: dict[str, Any] = {}
    for node in graph.node:
        for name in [*node.input, *node.output]:
            info = infos.get(name)
            if (not name or name in constants or name in seen or info is None
                    or info.type.tensor_type.elem_type != onnx.TensorProto.FLOAT):
                continue
            seen[name] = info
    return list(seen.items())


def augmented(model_path: Path) -> tuple[bytes, list[str]]:
    """The model with every float tensor as an output (serialized), and those tensors' names."""
    import onnx

    model = onnx.load(str(model_path))
    tensors = _float_tensors(model)
    existing = {o.name for o in model.graph.output}
    for name, info in tensors:
        if name not in existing:
            model.graph.output.append(info)
    return model.SerializeToString(), [name for name, _ in tensors]


def _session(model: bytes, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False  # an arena keeps the largest chunk's memory after it is freed
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@dataclass
class Ranges:
    """Activation ranges by calibration method: {method: {tensor: (low, high)}}, and how they were collected."""

    by_method: dict[str, dict[str, tuple[float, float]]]
    samples: int
    chunk: int
    passes: int
    seconds: float

    def write_cache(self, method: str, path: Path) -> None:
        """onnxruntime's calibration-cache JSON for ``method`` (read by quantize_static's calibration_cache_path)."""
        from onnxruntime.quantization import CalibrationMethod
        from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

        kind = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile}[method]
        data = {name: TensorData(lowest=np.array(low, dtype=np.float32), highest=np.array(high, dtype=np.float32))
                for name, (low, high) in self.by_method[method].items()}
        save_tensors_data(TensorsData(kind, data), path)


def _chunks(count: int, chunk: int) -> Iterator[tuple[int, int]]:
    for start in range(0, count, chunk):
        yield start, min(count, start + chunk)


def _side_width(counts: np.ndarray) -> int:
    """Bins to keep of one side's histogram (ordered outward from zero): the clipping whose ``ENTROPY_LEVELS``-level
    quantization loses the least information (KL divergence, clipped mass folded into the last bin; TensorRT's rule)."""
    size = len(counts)
    counts = counts.copy()
    counts[0] = 0  # the bin at zero: a Relu's exact zeros are kept at any clipping and would skew the comparison
    if size <= ENTROPY_LEVELS or counts.sum() == 0:
        return size
    # never clip more than ENTROPY_KEEP of a side's values: on a sharp peak the KL rule alone cuts into the tail
    narrowest = max(ENTROPY_LEVELS, int(np.searchsorted(np.cumsum(counts), ENTROPY_KEEP * counts.sum())) + 1)
    best, best_width = math.inf, size
    for width in np.unique(np.linspace(min(narrowest, size), size, 64).astype(int)):
        kept = counts[:width].astype(np.float64)
        reference = kept.copy()
        reference[-1] += counts[width:].sum()
        starts = np.linspace(0, width, ENTROPY_LEVELS + 1).astype(int)
        filled = kept > 0
        sums = np.add.reduceat(kept, starts[:-1])
        nonzero = np.add.reduceat(filled.astype(np.float64), starts[:-1])
        quantized = np.where(filled, np.repeat(sums / np.maximum(nonzero, 1), np.diff(starts)), 0.0)
        p = reference / reference.sum()
        q = quantized / max(quantized.sum(), 1e-300)
        mask = p > 0
        divergence = float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))
        if divergence < best:
            best, best_width = divergence, int(width)
    return best_width


def _entropy_range(counts: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    """Each side of zero clipped by the KL rule of :func:`_side_width` (a side's outliers go, its bulk stays)."""
    if counts.sum() == 0:
        return min(float(edges[0]), 0.0), max(float(edges[-1]), 0.0)
    zero = int(np.clip(np.searchsorted(edges, 0.0), 0, len(counts)))
    high = float(edges[zero + _side_width(counts[zero:])]) if zero < len(counts) else float(edges[-1])
    low = float(edges[zero - _side_width(counts[:zero][::-1])]) if zero > 0 else float(edges[0])
    return min(low, 0.0), max(high, 0.0)


def _percentile_range(counts: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    cumulative = np.cumsum(counts)
    total = cumulative[-1]
    if total == 0:
        return float(edges[0]), float(edges[-1])
    cut = total * (100.0 - PERCENTILE) / 200.0
    first = int(np.searchsorted(cumulative, cut, side="right"))
    last = int(np.searchsorted(cumulative, total - cut, side="left"))
    return min(float(edges[first]), 0.0), max(float(edges[min(last + 1, len(edges) - 1)]), 0.0)


def collect_ranges(model_path: Path, source: Source, methods: Sequence[str] = ("minmax",), threads: int = 0,
                   tick: Tick | None = None) -> Ranges:
    """Ranges of every float tensor of ``model_path`` over ``source`` for each of ``methods``.

    Peak memory: the model, one chunk of intermediate outputs (at most ``ACTIVATION_BUDGET`` bytes unless one
    item alone is larger) and ``BINS`` counts per tensor; it does not depend on ``source.count``. ``tick(n)`` is
    called after every ``n`` items of a pass (for a progress bar).
    """
    import time

    started = time.perf_counter()
    model, names = augmented(model_path)
    import onnx

    plain = onnx.load(str(model_path), load_external_data=False).graph
    ends = {v.name for v in [*plain.input, *plain.output]}
    del plain
    session = _session(model, threads)
    outputs = [o.name for o in session.get_outputs()]
    inputs = [i.name for i in session.get_inputs()]
    wanted = [outputs.index(n) for n in names if n in outputs]
    del model

    def run(start: int, stop: int) -> list[np.ndarray]:
        feeds = dict(zip(inputs, source.batch(start, stop), strict=True))
        return session.run(None, feeds)

    low = {n: math.inf for n in names}
    high = {n: -math.inf for n in names}
    first = run(0, 1)  # one item: its outputs' size sets the chunk
    per_item = sum(first[i].nbytes for i in wanted)
    chunk = int(max(1, min(MAX_CHUNK, ACTIVATION_BUDGET // max(per_item, 1))))

    def reduce_minmax(values: list[np.ndarray]) -> None:
        for i in wanted:
            name, array = outputs[i], values[i]
            if array.size:
                low[name] = min(low[name], float(array.min()))
                high[name] = max(high[name], float(array.max()))

    reduce_minmax(first)
    del first
    if tick:
        tick(1)
    for start, stop in _chunks(source.count - 1, chunk):
        values = run(start + 1, stop + 1)
        reduce_minmax(values)
        del values
        if tick:
            tick(stop - start)
    spans = {n: (low[n] if math.isfinite(low[n]) else 0.0, high[n] if math.isfinite(high[n]) else 0.0)
             for n in names}
    by_method: dict[str, dict[str, tuple[float, float]]] = {}
    if "minmax" in methods:
        by_method["minmax"] = {n: (min(lo, 0.0), max(hi, 0.0)) for n, (lo, hi) in spans.items()}
    passes = 1
    if any(m in methods for m in ("entropy", "percentile")):
        passes = 2
        edges = {n: np.linspace(lo, hi if hi > lo else lo + 1e-6, BINS + 1) for n, (lo, hi) in spans.items()}
        counts = {n: np.zeros(BINS, dtype=np.int64) for n in names}
        minmax = {n: (min(lo, 0.0), max(hi, 0.0)) for n, (lo, hi) in spans.items()}
        for start, stop in _chunks(source.count, chunk):
            values = run(start, stop)
            for i in wanted:
                name = outputs[i]
                lo, hi = edges[name][0], edges[name][-1]
                # one bincount per tensor: np.histogram sorts, which costs more than the forward pass here
                index = ((values[i].ravel() - lo) * (BINS / (hi - lo))).astype(np.int64)
                np.clip(index, 0, BINS - 1, out=index)
                counts[name] += np.bincount(index, minlength=BINS)
            del values
            if tick:
                tick(stop - start)
        # the graph's own inputs and outputs keep their whole range: clipping an output is an error the user sees
        full = {n for n in names if n in ends or counts[n].sum() < MIN_HISTOGRAM_VALUES}
        if "percentile" in methods:
            by_method["percentile"] = {n: minmax[n] if n in full else _percentile_range(counts[n], edges[n])
                                       for n in names}
        if "entropy" in methods:
            by_method["entropy"] = {n: minmax[n] if n in full else _entropy_range(counts[n], edges[n])
                                    for n in names}
    return Ranges(by_method, source.count, chunk, passes, time.perf_counter() - started)


def ranges_json(ranges: Ranges) -> dict[str, Any]:
    """How the ranges were collected, for the manifest."""
    return {"samples": ranges.samples, "chunk": ranges.chunk, "passes": ranges.passes,
            "seconds": round(ranges.seconds, 2), "methods": sorted(ranges.by_method)}

