"""int8 exports: onnxruntime static QDQ quantization, searched for the fastest graph that keeps the task's quality.

For each graph, the fp32 ``.onnx`` goes through the quantizer's recommended pre-processing
(``quant_pre_process``), then:

1. **Calibration** (zoo_export.int8_calibration): activation ranges collected a chunk at a time, so peak memory
   does not grow with the number of samples; one pass gives MinMax ranges, a second pass (histograms) the
   Entropy and Percentile ones. Samples: ``--calibration-samples``, else the size rule
   ``clamp(2**22 / input values per item, 16, 256)`` (64² RGB: 256, 256² RGB: 21). Inputs come from the run's
   own training data (``recipe.data_inputs`` on the training part) or ``--calibration-data DIR``.
2. **Candidates**: every calibration method (or the one ``--calibration-method`` names) with every quantizer
   placement (``PLACEMENTS``), all weighted layers in int8, each checked against every :class:`QualityBar`
   of the graph on held-out inputs (PSNR against fp32 by default).
3. **Mixed precision**, when no candidate holds the bars: each weighted layer's sensitivity is measured (the
   PSNR against fp32 when only that layer is quantized) and the most sensitive layers are kept in fp32, the
   fewest that make the bars hold (doubling, then bisection on the count), then the other methods are tried
   with that set. The search stops at ``budget_s`` seconds with what it has.
4. **Speed**: the passing candidates and the fp32 file are timed here, interleaved (``SpeedTimer``; the
   tests inject one); the fastest candidate is kept if it runs at least ``MIN_SPEEDUP`` × fp32, else no int8
   file is written and one line says so (``keep_slower`` writes it anyway).

The manifest's ``int8_search`` lists every candidate's figures, the fp32 layers and why the kept one won.
A progress bar (stderr) runs over calibration, quality checks, sensitivity and timing.

Why uint8 activations: on x86 onnxruntime runs QDQ convolutions and matmuls with u8×s8 kernels
(VNNI); with int8 activations the 256² generator ran 21% slower at the same 34.5 dB (4.53 against
3.58 items/s at batch 1, 2 threads; benchmarks/scripts/int8_aoti_figures.py measures both).
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo_core.extend import DataSource, GraphSpec, QualityBar, TrainingData, UsageError, ZooError, load_object
from zoo_export.int8_calibration import METHODS, ArraySource, Ranges, collect_ranges, ranges_json, sample_rule
from zoo_export.int8_progress import Int8Progress
from zoo_export.onnx_export import quiet
from zoo_export.sessions import GraphSession, SessionSettings

ACTIVATIONS = ("uint8", "int8")
HELD_OUT = 64  # held-out items each PSNR bar is measured on (fewer for large inputs: held_out_rule)
DATA_LIMIT = 2048  # data items loaded: enough held-out ones for a rate measured in points
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
PSNR_CAP = 200.0  # dB reported for outputs identical to fp32 (JSON has no infinity)
# What the quantizer wraps in Q/DQ: None is onnxruntime's default (every op it knows, InstanceNormalization
# included); "weighted" quantizes only the layers with weights and the element-wise ops between them, so an
# InstanceNormalization or ConvTranspose reads its fp32 input without a QuantizeLinear/DequantizeLinear pair.
PLACEMENTS: dict[str, tuple[str, ...] | None] = {
    "all": None,
    "weighted": ("Conv", "Gemm", "MatMul", "Add", "Mul", "Relu", "Sigmoid", "Reshape", "Flatten"),
}
MIN_SPEEDUP = 1.05  # int8 is kept when it runs at least this much faster than fp32 (below: timing noise)
DEFAULT_BUDGET = 150.0  # seconds of accuracy search per graph after calibration
SPEED_SECONDS = 1.5  # per file, split over interleaved rounds
SPEED_ROUNDS = 3
LARGE_INPUT = 1 << 16  # input values per item above which speed is timed at batch 1, else at batch 8

# ``timer(paths, inputs)``: items/s of each ONNX file on ``inputs`` (the first path is the fp32 file)
SpeedTimer = Callable[[Sequence[Path], Sequence[np.ndarray]], list[float]]


def held_out_rule(input_elements_per_item: int) -> int:
    """Held-out items a PSNR bar is measured on: ``clamp(2**20 / input values per item, 8, 64)``."""
    return int(min(HELD_OUT, max(8, (1 << 20) // max(1, input_elements_per_item))))


def speed_batch(input_elements_per_item: int) -> int:
    return 1 if input_elements_per_item > LARGE_INPUT else 8


@dataclass(frozen=True)
class Int8Options:
    """What `zoo export --int8` was told."""

    samples: int | None = None  # None: sample_rule of the graph's input size
    method: str | None = None  # None: the search tries every method, minmax first
    data: Path | None = None
    activations: str = "uint8"
    budget_s: float = DEFAULT_BUDGET
    keep_slower: bool = False  # write the int8 file even where it is not faster than fp32 here
    timer: SpeedTimer | None = field(default=None, compare=False)  # None: measure_speed
    progress: bool = True

    def __post_init__(self) -> None:
        if self.method is not None and self.method not in METHODS:
            raise UsageError(f"--calibration-method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.activations not in ACTIVATIONS:
            raise UsageError(f"int8 activations must be uint8 or int8, got {self.activations!r}")
        if self.samples is not None and not 1 <= self.samples <= 100_000:
            raise UsageError(f"--calibration-samples must lie in [1, 100000], got {self.samples}")
        if not 0 < self.budget_s <= 86_400:
            raise UsageError(f"the int8 search budget must lie in (0, 86400] seconds, got {self.budget_s}")

    @property
    def methods(self) -> tuple[str, ...]:
        return (self.method,) if self.method else METHODS


@dataclass(frozen=True)
class QualityFigure:
    """One quality bar measured on one int8 candidate."""

    graph: str
    bar: QualityBar
    int8: float
    fp32: float | None  # None for psnr, which compares with fp32 directly

    @property
    def passed(self) -> bool:
        if not math.isfinite(self.int8):
            return False
        if self.bar.rule == "at_least":
            return self.int8 >= self.bar.limit
        assert self.fp32 is not None
        if self.bar.rule == "relative_rise":
            return self.int8 <= self.fp32 * (1 + self.bar.limit) + 1e-12
        return self.int8 >= self.fp32 - self.bar.limit

    def describe(self) -> str:
        unit = " dB" if self.bar.metric == "psnr" else ""
        reference = "" if self.fp32 is None else f" (fp32 {self.fp32:.4g})"
        verdict = "meets" if self.passed else "misses"
        return f"{self.bar.metric} {self.int8:.4g}{unit}{reference} {verdict} the bar: {self.bar.describe()}"

    def as_json(self) -> dict[str, Any]:
        return {"graph": self.graph, "precision": "int8", "metric": self.bar.metric, "rule": self.bar.rule,
                "limit": self.bar.limit, "int8": _finite(self.int8), "fp32": self.fp32, "passed": self.passed}


@dataclass
class Candidate:
    """One quantization tried: its calibration method, Q/DQ placement and fp32 layers, and what it measured."""

    index: int
    method: str
    placement: str
    fp32_layers: list[str]
    path: Path
    figures: list[QualityFigure] = field(default_factory=list)
    psnr_db: float = -math.inf
    seconds: float = 0.0
    items_per_s: float | None = None
    speedup: float | None = None

    @property
    def passed(self) -> bool:
        return bool(self.figures) and all(f.passed for f in self.figures)

    def label(self) -> str:
        layers = f", {len(self.fp32_layers)} fp32 layers" if self.fp32_layers else ""
        return f"{self.method}, {self.placement} ops{layers}"

    def as_json(self) -> dict[str, Any]:
        return {"candidate": self.index, "method": self.method, "placement": self.placement,
                "fp32_layers": self.fp32_layers, "psnr_db": _finite(self.psnr_db), "passed": self.passed,
                "quality": [f.as_json() for f in self.figures], "seconds": round(self.seconds, 2),
                "items_per_s": None if self.items_per_s is None else round(self.items_per_s, 4),
                "speedup": None if self.speedup is None else round(self.speedup, 4)}


@dataclass
class Int8Outcome:
    """The int8 search for one graph: the file when kept, the winner's figures, and every candidate tried."""

    graph: str
    path: Path | None
    figures: list[QualityFigure] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    winner: Candidate | None = None
    why: str = ""
    fp32_items_per_s: float | None = None
    speed_batch: int = 8
    slower: bool = False  # every passing candidate ran slower than MIN_SPEEDUP × fp32
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def missed(self) -> list[QualityFigure]:
        return [f for f in self.figures if not f.passed]

    def search_json(self) -> dict[str, Any]:
        return {"candidates": [c.as_json() for c in self.candidates],
                "winner": None if self.winner is None else self.winner.index, "why": self.why,
                "kept": self.path is not None, "fp32_items_per_s": self.fp32_items_per_s,
                "speed_batch": self.speed_batch, "min_speedup": MIN_SPEEDUP, "sensitivity": self.sensitivity}


def _finite(value: float) -> float | None:
    return min(value, PSNR_CAP) if math.isfinite(value) else None


def preprocess(fp32: Path, out: Path) -> None:
    """The quantizer's recommended pre-processing (symbolic shape inference and ORT graph optimisation)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with quiet():
        try:
            quant_pre_process(str(fp32), str(out))
        except Exception as error:  # shape inference fails on some graphs; quantize the plain file then
            logging.getLogger(__name__).debug("pre-processing failed: %s", error)
            out.write_bytes(fp32.read_bytes())


def weighted_nodes(path: Path) -> list[str]:
    """Names of the graph's weighted layers (Conv, ConvTranspose, Gemm, MatMul) in graph order."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return [node.name for node in model.graph.node if node.op_type in WEIGHTED_OPS]


def quantize_with_ranges(source: Path, out: Path, ranges: Ranges, method: str, activations: str,
                         exclude: Sequence[str] = (), placement: str = "all",
                         only: Sequence[str] | None = None) -> None:
    """Static QDQ quantization of ``source`` (pre-processed) into ``out`` with ranges already collected.

    ``exclude`` stays fp32; ``only`` (when given) are the sole nodes quantized (the sensitivity measurement).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    kinds = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}
    op_types = PLACEMENTS[placement]
    with tempfile.TemporaryDirectory(prefix="zoo-int8-ranges-") as folder, quiet():
        cache = Path(folder) / "ranges.json"
        ranges.write_cache(method, cache)
        try:
            quantize_static(str(source), str(out), None, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                            weight_type=QuantType.QInt8, calibrate_method=kinds[method],
                            op_types_to_quantize=list(op_types) if op_types else None,
                            nodes_to_quantize=list(only) if only is not None else None,
                            nodes_to_exclude=list(exclude), calibration_cache_path=str(cache))
        except Exception as error:
            raise ZooError(f"{source.name}: onnxruntime's quantizer failed ({type(error).__name__}: "
                           f"{' '.join(str(error).split())[:200]})") from None


def quantize_file(source: Path, out: Path, input_names: Sequence[str], calibration: Sequence[torch.Tensor],
                  method: str, activations: str, exclude: Sequence[str] = (), placement: str = "all") -> None:
    """Calibrate (bounded, chunk by chunk) and quantize ``source`` (already pre-processed) into ``out``."""
    ranges = collect_ranges(source, ArraySource([t.numpy() for t in calibration]), (method,))
    quantize_with_ranges(source, out, ranges, method, activations, exclude, placement)


def psnr(outputs: Sequence[np.ndarray], references: Sequence[torch.Tensor], graph: GraphSpec) -> float:
    """The worst PSNR over the graph's outputs; the peak is the output's value range, else the fp32 spread."""
    worst = math.inf
    for output, reference, spec in zip(outputs, references, graph.outputs, strict=True):
        want = reference.detach().double().numpy()
        got = np.asarray(output, dtype=np.float64)
        if got.shape != want.shape or not np.all(np.isfinite(got)):
            return -math.inf
        low, high = spec.value_range if spec.value_range else (float(want.min()), float(want.max()))
        peak = max(high - low, 1e-12)
        mse = float(np.mean((got - want) ** 2))
        worst = min(worst, PSNR_CAP if mse == 0.0 else 10.0 * math.log10(peak * peak / mse))
    return worst


Run = Callable[..., tuple[torch.Tensor, ...]]


class Judge:
    """The quality bars of one graph, measured on candidates; fp32 outputs and fp32 metric values computed once."""

    def __init__(self, graph: GraphSpec, reference: Run, held_out: Sequence[torch.Tensor],
                 data: TrainingData | None, recipe: Any, settings: SessionSettings) -> None:
        self.graph, self.reference, self.held_out = graph, reference, held_out
        self.data, self.recipe, self.settings = data, recipe, settings
        with torch.no_grad():
            self.expected = reference(graph.name, *held_out)
        self.fp32: dict[str, float] = {}

    def psnr_of(self, path: Path, count: int | None = None) -> float:
        inputs = self.held_out if count is None else [t[:count] for t in self.held_out]
        expected = self.expected if count is None else tuple(t[:count] for t in self.expected)
        return psnr(GraphSession(path, self.settings).run_numpy(inputs), expected, self.graph)

    def figures(self, path: Path) -> tuple[float, list[QualityFigure]]:
        """(PSNR against fp32, the bars' figures); the bars after a missed one are not measured (no time spent)."""
        session = GraphSession(path, self.settings)
        value = psnr(session.run_numpy(self.held_out), self.expected, self.graph)
        figures: list[QualityFigure] = []
        for bar in self.graph.quality_bars:
            if figures and not figures[-1].passed:
                break
            if bar.metric == "psnr":
                figures.append(QualityFigure(self.graph.name, bar, value, None))
                continue
            figures.append(self._metric(bar, session))
        return value, figures

    def _metric(self, bar: QualityBar, session: GraphSession) -> QualityFigure:
        if self.data is None:
            raise ZooError(f"graph {self.graph.name}: its int8 quality bar {bar.metric} needs the model's data, "
                           "which could not be loaded; pass --calibration-data DIR")
        graph, reference = self.graph, self.reference

        def run_candidate(name: str, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            if name != graph.name:
                return reference(name, *inputs)
            return tuple(torch.from_numpy(np.asarray(o, dtype=np.float32)) for o in session.run_numpy(inputs))

        metric = load_object(bar.function)
        with torch.no_grad():
            if bar.metric not in self.fp32:
                self.fp32[bar.metric] = float(metric(graph.name, reference, self.data, self.recipe))
            value = float(metric(graph.name, run_candidate, self.data, self.recipe))
        return QualityFigure(graph.name, bar, value, self.fp32[bar.metric])


def measure_speed(paths: Sequence[Path], inputs: Sequence[np.ndarray], settings: SessionSettings,
                  seconds: float = SPEED_SECONDS) -> list[float]:
    """Items/s of each file on ``inputs``, measured in interleaved rounds (the best round of each counts)."""
    sessions = [GraphSession(path, settings) for path in paths]
    items = int(inputs[0].shape[0])
    for session in sessions:
        session.run_numpy(inputs)  # warm-up: first-run allocations and kernel selection
    best = [0.0] * len(sessions)
    for _ in range(SPEED_ROUNDS):
        for index, session in enumerate(sessions):
            runs, started = 0, time.perf_counter()
            while True:
                session.run_numpy(inputs)
                runs += 1
                elapsed = time.perf_counter() - started
                if elapsed >= seconds / SPEED_ROUNDS:
                    break
            best[index] = max(best[index], runs * items / elapsed)
    return best


def _elements_per_item(tensors: Sequence[torch.Tensor]) -> int:
    return int(sum(t[0].numel() for t in tensors)) if tensors and len(tensors[0]) else 1


class Int8Data:
    """Calibration and held-out inputs of one model, from its data (loaded once) or random inputs."""

    def __init__(self, recipe: Any, networks: Any, options: Int8Options) -> None:
        self.recipe = recipe
        self.networks = networks
        self.options = options
        self.data: TrainingData | None = None
        self.problem: str | None = None
        wanted = options.samples or sample_rule(1)
        source = DataSource(data=options.data) if options.data is not None else DataSource(
            limit=max(4 * wanted, DATA_LIMIT))
        try:
            self.data = recipe.load_data(source)
        except NotImplementedError:
            self.problem = "the recipe has no load_data"
        except ZooError as error:
            if options.data is not None:
                raise ZooError(f"--calibration-data {options.data}: {error}") from None
            self.problem = str(error)
        except Exception as error:  # calibration goes on with random inputs, and says why
            if options.data is not None:
                raise ZooError(f"--calibration-data {options.data}: {type(error).__name__}: {error}") from None
            self.problem = f"its data could not be loaded ({type(error).__name__}: {error})"

    @property
    def source(self) -> str:
        if self.data is None:
            return f"random inputs in the declared ranges ({self.problem})"
        if self.options.data is not None:
            return f"--calibration-data {self.options.data}"
        return "the run's training data (embedded default or its --data)"

    @property
    def held_out_is_separate(self) -> bool:
        return self.data is not None and self.data.val is not None and len(self.data.val) > 0

    def item_elements(self, graph: str) -> int:
        """Input values per item of ``graph`` (what the sample and held-out rules scale with)."""
        return _elements_per_item(self.recipe.example_inputs(graph, 1, torch.Generator().manual_seed(0)))

    def samples(self, graph: str) -> int:
        return self.options.samples or sample_rule(self.item_elements(graph))

    def _inputs(self, graph: str, data: TrainingData, count: int, seed: int) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            tensors = self.recipe.data_inputs(graph, data, count, self.networks)
        if tensors is None:
            return tuple(self.recipe.example_inputs(graph, count, torch.Generator().manual_seed(seed)))
        return tuple(t.detach().float().cpu().contiguous() for t in tensors)

    def calibration(self, graph: str) -> tuple[torch.Tensor, ...]:
        count = self.samples(graph)
        if self.data is None:
            return tuple(self.recipe.example_inputs(graph, count, torch.Generator().manual_seed(11)))
        # the training part in both places: recipes pick held-out items from val when it has any
        training = TrainingData(train=self.data.train, val=self.data.train)
        return self._inputs(graph, training, count, 11)

    def held_out(self, graph: str) -> tuple[torch.Tensor, ...]:
        count = held_out_rule(self.item_elements(graph))
        if self.data is None:
            return tuple(self.recipe.example_inputs(graph, count, torch.Generator().manual_seed(12)))
        return self._inputs(graph, self.data, count, 12)


def _speed_inputs(held_out: Sequence[torch.Tensor], batch: int) -> list[np.ndarray]:
    arrays = []
    for tensor in held_out:
        repeats = -(-batch // max(1, len(tensor)))
        arrays.append(np.ascontiguousarray(torch.cat([tensor] * repeats)[:batch].numpy(), dtype=np.float32))
    return arrays


class Search:
    """The accuracy-aware search of one graph (see the module docstring)."""

    def __init__(self, graph: GraphSpec, pre: Path, fp32: Path, folder: Path, ranges: Ranges, judge: Judge,
                 options: Int8Options, settings: SessionSettings, progress: Int8Progress) -> None:
        self.graph, self.pre, self.fp32, self.folder = graph, pre, fp32, folder
        self.ranges, self.judge, self.options, self.settings = ranges, judge, options, settings
        self.progress = progress
        self.candidates: list[Candidate] = []
        self.deadline = time.perf_counter() + options.budget_s
        self.layers = weighted_nodes(pre)

    def out_of_time(self) -> bool:
        return time.perf_counter() > self.deadline

    def tried(self, method: str, placement: str, layers: Sequence[str]) -> Candidate | None:
        for candidate in self.candidates:
            if (candidate.method, candidate.placement, candidate.fp32_layers) == (method, placement, list(layers)):
                return candidate
        return None

    def attempt(self, method: str, placement: str, layers: Sequence[str]) -> Candidate:
        known = self.tried(method, placement, layers)
        if known is not None:
            return known
        started = time.perf_counter()
        candidate = Candidate(len(self.candidates) + 1, method, placement, list(layers),
                              self.folder / f"candidate-{len(self.candidates) + 1}.onnx")
        quantize_with_ranges(self.pre, candidate.path, self.ranges, method, self.options.activations, layers,
                             placement)
        candidate.psnr_db, candidate.figures = self.judge.figures(candidate.path)
        candidate.seconds = time.perf_counter() - started
        self.candidates.append(candidate)
        self.progress.advance()
        return candidate

    def sensitivity(self, method: str, placement: str) -> list[tuple[str, float]]:
        """(layer, PSNR when only it is quantized), most sensitive first."""
        count = max(2, min(16, len(self.judge.held_out[0]) // 2))
        self.progress.start("sensitivity", len(self.layers))
        found = []
        for index, layer in enumerate(self.layers):
            path = self.folder / f"only-{index}.onnx"
            quantize_with_ranges(self.pre, path, self.ranges, method, self.options.activations, (), placement,
                                 only=[layer])
            found.append((layer, self.judge.psnr_of(path, count)))
            path.unlink(missing_ok=True)
            self.progress.advance()
        return sorted(found, key=lambda item: item[1])

    def run(self) -> list[dict[str, Any]]:
        """Every candidate within the budget; returns the sensitivity table when one was measured."""
        methods = self.options.methods
        self.progress.start("quality checks", len(methods) * len(PLACEMENTS))
        for method in methods:
            for placement in PLACEMENTS:
                if self.candidates and self.out_of_time():
                    return []
                self.attempt(method, placement, [])
        if any(c.passed for c in self.candidates) or not self.layers or self.out_of_time():
            return []
        best = max(self.candidates, key=lambda c: c.psnr_db)
        order = self.sensitivity(best.method, best.placement)
        table = [{"layer": layer, "psnr_db": _finite(value)} for layer, value in order]
        ranked = [layer for layer, _ in order][:len(order) - 1]  # every layer in fp32 would be no int8 graph
        if not ranked:
            return table
        self.progress.start("mixed precision", len(ranked))
        failed, passed = 0, None
        count = 1
        while not self.out_of_time():  # doubling: the first count of fp32 layers that holds the bars
            if self.attempt(best.method, best.placement, ranked[:count]).passed:
                passed = count
                break
            failed = count
            if count == len(ranked):
                break
            count = min(2 * count, len(ranked))
        if passed is None:
            return table
        while passed - failed > 1 and not self.out_of_time():  # bisection: the fewest that hold
            middle = (failed + passed) // 2
            if self.attempt(best.method, best.placement, ranked[:middle]).passed:
                passed = middle
            else:
                failed = middle
        for method in methods:  # the other methods with that set: one may be as good and faster
            if self.out_of_time():
                break
            self.attempt(method, best.placement, ranked[:passed])
        return table


def _choose(outcome: Int8Outcome, search: Search, fp32: Path, held_out: Sequence[torch.Tensor], batch: int,
            options: Int8Options, progress: Int8Progress) -> None:
    """Time the passing candidates against fp32 and pick the fastest (or none, when int8 is not faster)."""
    passing = [c for c in search.candidates if c.passed]
    if not passing:
        best = max(search.candidates, key=lambda c: c.psnr_db)
        outcome.figures, outcome.excluded = best.figures, best.fp32_layers
        outcome.why = "no candidate met the quality bars" + (" within the search budget" if search.out_of_time()
                                                             else "")
        return
    progress.start("speed", len(passing) + 1)
    inputs = _speed_inputs(held_out, batch)
    timer = options.timer or (lambda paths, feeds: measure_speed(paths, feeds, search.settings))
    speeds = timer([fp32, *[c.path for c in passing]], inputs)
    progress.advance(len(passing) + 1)
    outcome.fp32_items_per_s = speeds[0]
    for candidate, speed in zip(passing, speeds[1:], strict=True):
        candidate.items_per_s, candidate.speedup = speed, speed / max(speeds[0], 1e-12)
    winner = max(passing, key=lambda c: c.items_per_s or 0.0)
    outcome.winner, outcome.figures, outcome.excluded = winner, winner.figures, winner.fp32_layers
    others = (f" (the fastest of {len(passing)} that met the bars)" if len(passing) > 1
              else " (the only one that met the bars)")
    outcome.why = (f"candidate {winner.index} ({winner.label()}): {winner.speedup:.2f}× fp32 at batch {batch} "
                   f"on this CPU{others}")
    outcome.slower = (winner.speedup or 0.0) < MIN_SPEEDUP
    if outcome.slower:
        outcome.why += f"; below {MIN_SPEEDUP}× fp32" + (", written anyway (keep_slower)" if options.keep_slower
                                                         else ", so no int8 file is written")


def int8_graph(graph: GraphSpec, fp32: Path, out: Path, calibration: Sequence[torch.Tensor],
               held_out: Sequence[torch.Tensor], reference: Run, data: TrainingData | None, recipe: Any,
               options: Int8Options, settings: SessionSettings | None = None,
               progress: Int8Progress | None = None) -> Int8Outcome:
    """Search the int8 versions of ``fp32`` and write the fastest that holds the bars to ``out`` when it is
    faster than fp32 here (else ``out`` is not written)."""
    outcome = Int8Outcome(graph.name, None)
    settings = settings or SessionSettings(device="cpu", precision="int8")
    progress = progress or Int8Progress(graph.name, enabled=options.progress)
    outcome.speed_batch = speed_batch(_elements_per_item(held_out))
    with progress, tempfile.TemporaryDirectory(prefix="zoo-int8-") as folder:
        pre = Path(folder) / "pre.onnx"
        preprocess(fp32, pre)
        source = ArraySource([t.numpy() for t in calibration])
        passes = 2 if any(m != "minmax" for m in options.methods) else 1
        progress.start(f"calibration ({source.count} samples, {passes} pass{'es' if passes > 1 else ''})",
                       source.count * passes)
        ranges = collect_ranges(pre, source, options.methods, tick=progress.advance)
        outcome.calibration = ranges_json(ranges)
        judge = Judge(graph, reference, held_out, data, recipe, settings)
        search = Search(graph, pre, fp32, Path(folder), ranges, judge, options, settings, progress)
        outcome.sensitivity = search.run()
        outcome.candidates = search.candidates
        _choose(outcome, search, fp32, held_out, outcome.speed_batch, options, progress)
        if outcome.winner is not None and (not outcome.slower or options.keep_slower):
            shutil.copyfile(outcome.winner.path, out)
            outcome.path = out
        else:
            out.unlink(missing_ok=True)
    return outcome


def candidates_table(outcome: Int8Outcome) -> str:
    """The export's int8 table: every candidate's quality and the int8/fp32 speed measured on this machine."""
    fp32 = f"{outcome.fp32_items_per_s:,.1f}" if outcome.fp32_items_per_s else "–"
    rows = [f"int8 {outcome.graph} (fp32 {fp32} items/s at batch {outcome.speed_batch} here)",
            f"  {'#':>2}  {'method':<10} {'ops':<8} {'fp32 layers':>11} {'PSNR dB':>8}  {'bars':<7} "
            f"{'items/s':>9} {'×fp32':>6}  kept"]
    for c in outcome.candidates:
        speed = f"{c.items_per_s:,.1f}" if c.items_per_s is not None else "–"
        ratio = f"{c.speedup:.2f}" if c.speedup is not None else "–"
        kept = "yes" if outcome.path is not None and c is outcome.winner else ""
        rows.append(f"  {c.index:>2}  {c.method:<10} {c.placement:<8} {len(c.fp32_layers):>11} "
                    f"{min(c.psnr_db, PSNR_CAP):>8.1f}  {'met' if c.passed else 'missed':<7} {speed:>9} {ratio:>6}"
                    f"  {kept}")
    return "\n".join(rows)


def file_entry(outcome: Int8Outcome, record: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``int8`` entry of a graph (``record`` holds file, sha256, bytes, exporter, io_dtype)."""
    reason = None
    if outcome.excluded:
        full = [c for c in outcome.candidates if not c.fp32_layers]
        missed = sorted({f.bar.metric for c in full for f in c.figures if not f.passed})
        reason = (f"with every layer in int8 the quality bar {', '.join(missed) or 'check'} missed; these layers "
                  "were the most sensitive (PSNR when only each is quantized)")
    winner = outcome.winner
    return {**record, "calibration": outcome.calibration, "excluded_nodes": outcome.excluded,
            "excluded_reason": reason, "quality": [f.as_json() for f in outcome.figures],
            "speedup": None if winner is None or winner.speedup is None else round(winner.speedup, 4),
            "speed_batch": outcome.speed_batch, "why": outcome.why}


def refusal_line(outcome: Int8Outcome) -> str:
    """One line saying why a graph was not written as int8."""
    if outcome.winner is not None:
        return (f"int8 {outcome.graph} not written: int8 runs at {outcome.winner.speedup:.2f}× fp32 on this CPU "
                f"(batch {outcome.speed_batch}; its quality bars met), not faster, so the fp32 file is kept")
    missed = "; ".join(f.describe() for f in outcome.missed) or "no candidate measured"
    return f"int8 {outcome.graph} not written: {missed} on held-out inputs (fp32 file kept)"


def export_int8(stage: Path, graph: GraphSpec, fp32: Path, runner: Any, inputs: Int8Data, options: Int8Options,
                log: Callable[[str], None]) -> tuple[dict[str, Any] | None, list[dict[str, Any]], dict[str, Any]]:
    """``GRAPH.int8.onnx`` beside ``fp32`` in ``stage`` when a candidate holds the quality bars and is faster:
    (manifest entry or None, quality rows for the manifest's validation table, the search record)."""
    from zoo_core.extend import file_sha256

    calibration = inputs.calibration(graph.name)
    held_out = inputs.held_out(graph.name)
    outcome = int8_graph(graph, fp32, stage / f"{graph.name}.int8.onnx", calibration, held_out,
                         runner.run, inputs.data, runner.recipe, options)
    winner = outcome.winner
    outcome.calibration = {**outcome.calibration, "samples": int(calibration[0].shape[0]), "source": inputs.source,
                           "method": winner.method if winner else (options.method or "search"),
                           "placement": winner.placement if winner else None, "format": "QDQ",
                           "weights": "int8 per-channel", "activations": options.activations, "preprocessed": True,
                           "held_out": len(held_out[0]) if inputs.held_out_is_separate else 0}
    search = {**outcome.search_json(), "calibration": outcome.calibration}
    rows = [{**row, "kept": outcome.path is not None, "excluded_nodes": outcome.excluded}
            for row in (f.as_json() for f in outcome.figures)]
    log(candidates_table(outcome))
    if outcome.path is None:
        log(f"zoo: {refusal_line(outcome)}")
        return None, rows, search
    excluded = f", layers kept in fp32: {', '.join(outcome.excluded)}" if outcome.excluded else ""
    log(f"zoo: exported {graph.name} (int8, {winner.method if winner else '?'} calibration on "
        f"{outcome.calibration['samples']} samples{excluded}; {outcome.why}): "
        + "; ".join(f.describe() for f in outcome.figures))
    record = {"file": outcome.path.name, "sha256": file_sha256(outcome.path), "bytes": outcome.path.stat().st_size,
              "exporter": "onnxruntime.quantization", "exporter_note": None, "io_dtype": "float32"}
    return file_entry(outcome, record), rows, search
