"""int8 exports: onnxruntime static QDQ quantization, kept only when the graph's task-quality bars hold.

For each graph, the fp32 ``.onnx`` goes through the quantizer's recommended pre-processing
(``quant_pre_process``: shape inference and graph optimisation), then ``quantize_static`` in QDQ
format with per-channel int8 weights and uint8 activations, calibrated on N inputs drawn from the
run's own training data (``recipe.data_inputs`` on the training part) or from ``--calibration-data
DIR``, with the MinMax, Entropy or Percentile method. Calibration feeds onnxruntime a few items at
a time (``CalibStridedMinMax``) so memory stays flat however many samples are asked for.

The candidate is then measured on held-out inputs against fp32 by every :class:`QualityBar` the
graph declares (PSNR against the fp32 outputs by default). When a bar misses, the quantization is
tried once more with the graph's first and last weighted layers left in fp32 (the input and output
layers are where an image model's quantization error shows most); when that misses too, no int8
file is written for the graph and one line says which figure missed.

Why uint8 activations: on x86 onnxruntime runs QDQ convolutions and matmuls with u8×s8 kernels
(VNNI); with int8 activations the 256² generator ran 21% slower at the same 34.5 dB (4.53 against
3.58 items/s at batch 1, 2 threads; benchmarks/scripts/int8_aoti_figures.py measures both).
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo_core.errors import UsageError, ZooError
from zoo_core.recipe import DataSource, TrainingData
from zoo_core.spec import GraphSpec, QualityBar, load_object
from zoo_export.onnx_export import quiet
from zoo_export.sessions import GraphSession, SessionSettings

METHODS = ("minmax", "entropy", "percentile")
ACTIVATIONS = ("uint8", "int8")
DEFAULT_SAMPLES = 256
HELD_OUT = 64  # held-out items each quality bar is measured on
CHUNK = 8  # calibration items per onnxruntime run
DATA_LIMIT = 2048  # data items loaded: enough held-out ones for a rate measured in points
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
PSNR_CAP = 200.0  # dB reported for outputs identical to fp32 (JSON has no infinity)


@dataclass(frozen=True)
class Int8Options:
    """What `zoo export --int8` was told."""

    samples: int = DEFAULT_SAMPLES
    method: str = "minmax"
    data: Path | None = None
    activations: str = "uint8"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"--calibration-method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.activations not in ACTIVATIONS:
            raise UsageError(f"int8 activations must be uint8 or int8, got {self.activations!r}")
        if not 1 <= self.samples <= 100_000:
            raise UsageError(f"--calibration-samples must lie in [1, 100000], got {self.samples}")


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
class Int8Outcome:
    """The int8 attempt for one graph: the file when kept, the figures, and what was left in fp32."""

    graph: str
    path: Path | None
    figures: list[QualityFigure] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def missed(self) -> list[QualityFigure]:
        return [f for f in self.figures if not f.passed]


def _finite(value: float) -> float | None:
    return min(value, PSNR_CAP) if math.isfinite(value) else None


class ChunkReader:
    """onnxruntime's CalibrationDataReader over in-memory inputs, CHUNK items per feed, range-selectable."""

    def __init__(self, names: Sequence[str], tensors: Sequence[torch.Tensor], chunk: int = CHUNK) -> None:
        count = int(tensors[0].shape[0])
        self.feeds = [{name: np.ascontiguousarray(t[start:start + chunk].numpy(), dtype=np.float32)
                       for name, t in zip(names, tensors, strict=True)} for start in range(0, count, chunk)]
        self.position, self.end = 0, len(self.feeds)

    def __len__(self) -> int:
        return len(self.feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.position, self.end = start_index, min(end_index, len(self.feeds))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= self.end:
            return None
        self.position += 1
        return self.feeds[self.position - 1]

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        while (feed := self.get_next()) is not None:
            yield feed


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


def quantize_file(source: Path, out: Path, input_names: Sequence[str], calibration: Sequence[torch.Tensor],
                  method: str, activations: str, exclude: Sequence[str] = ()) -> None:
    """Static QDQ quantization of ``source`` (already pre-processed) into ``out``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    reader = ChunkReader(input_names, calibration)
    extra = {"CalibStridedMinMax": 1}  # one chunk per collection: memory does not grow with the sample count
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    with quiet():
        try:
            quantize_static(str(source), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                            weight_type=QuantType.QInt8, calibrate_method=methods[method],
                            nodes_to_exclude=list(exclude), extra_options=extra)
        except Exception as error:
            raise ZooError(f"{source.name}: onnxruntime's quantizer failed ({type(error).__name__}: "
                           f"{' '.join(str(error).split())[:200]})") from None


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


def measure_quality(graph: GraphSpec, candidate: GraphSession, reference: Run, held_out: Sequence[torch.Tensor],
                    data: TrainingData | None, recipe: Any) -> list[QualityFigure]:
    """Every quality bar of ``graph`` for the int8 ``candidate``; ``reference(name, *inputs)`` runs fp32 graphs."""

    def run_candidate(name: str, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if name != graph.name:
            return reference(name, *inputs)
        return tuple(torch.from_numpy(np.asarray(o, dtype=np.float32)) for o in candidate.run_numpy(inputs))

    figures = []
    for bar in graph.quality_bars:
        if bar.metric == "psnr":
            value = psnr(candidate.run_numpy(held_out), reference(graph.name, *held_out), graph)
            figures.append(QualityFigure(graph.name, bar, value, None))
            continue
        if data is None:
            raise ZooError(f"graph {graph.name}: its int8 quality bar {bar.metric} needs the model's data, "
                           "which could not be loaded; pass --calibration-data DIR")
        metric = load_object(bar.function)
        with torch.no_grad():
            fp32 = float(metric(graph.name, reference, data, recipe))
            value = float(metric(graph.name, run_candidate, data, recipe))
        figures.append(QualityFigure(graph.name, bar, value, fp32))
    return figures


class Int8Data:
    """Calibration and held-out inputs of one model, from its data (loaded once) or random inputs."""

    def __init__(self, recipe: Any, networks: Any, options: Int8Options) -> None:
        self.recipe = recipe
        self.networks = networks
        self.options = options
        self.data: TrainingData | None = None
        self.problem: str | None = None
        source = DataSource(data=options.data) if options.data is not None else DataSource(
            limit=max(4 * options.samples, DATA_LIMIT))
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

    def _inputs(self, graph: str, data: TrainingData, count: int, seed: int) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            tensors = self.recipe.data_inputs(graph, data, count, self.networks)
        if tensors is None:
            return tuple(self.recipe.example_inputs(graph, count, torch.Generator().manual_seed(seed)))
        return tuple(t.detach().float().cpu().contiguous() for t in tensors)

    def calibration(self, graph: str) -> tuple[torch.Tensor, ...]:
        if self.data is None:
            return tuple(self.recipe.example_inputs(graph, self.options.samples, torch.Generator().manual_seed(11)))
        # the training part in both places: recipes pick held-out items from val when it has any
        training = TrainingData(train=self.data.train, val=self.data.train)
        return self._inputs(graph, training, self.options.samples, 11)

    def held_out(self, graph: str) -> tuple[torch.Tensor, ...]:
        if self.data is None:
            return tuple(self.recipe.example_inputs(graph, HELD_OUT, torch.Generator().manual_seed(12)))
        return self._inputs(graph, self.data, HELD_OUT, 12)


def int8_graph(graph: GraphSpec, fp32: Path, out: Path, calibration: Sequence[torch.Tensor],
               held_out: Sequence[torch.Tensor], reference: Run, data: TrainingData | None, recipe: Any,
               options: Int8Options, settings: SessionSettings | None = None) -> Int8Outcome:
    """Quantize ``fp32`` into ``out`` and keep it only if every quality bar holds (else ``out`` is removed)."""
    outcome = Int8Outcome(graph.name, None)
    settings = settings or SessionSettings(device="cpu", precision="int8")
    names = [t.name for t in graph.inputs]
    with tempfile.TemporaryDirectory(prefix="zoo-int8-") as folder:
        pre = Path(folder) / "pre.onnx"
        preprocess(fp32, pre)
        layers = weighted_nodes(pre)
        tries: list[list[str]] = [[]]
        if len(layers) > 2:
            tries.append([layers[0], layers[-1]])
        for exclude in tries:
            quantize_file(pre, out, names, calibration, options.method, options.activations, exclude)
            figures = measure_quality(graph, GraphSession(out, settings), reference, held_out, data, recipe)
            outcome.attempts.append({"excluded_nodes": exclude, "quality": [f.as_json() for f in figures]})
            outcome.figures, outcome.excluded = figures, exclude
            if not outcome.missed:
                outcome.path = out
                return outcome
    out.unlink(missing_ok=True)
    return outcome


def file_entry(outcome: Int8Outcome, record: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``int8`` entry of a graph (``record`` holds file, sha256, bytes, exporter, io_dtype)."""
    reason = None
    if outcome.excluded:
        first = outcome.attempts[0]["quality"]
        missed = [q["metric"] for q in first if not q["passed"]]
        reason = f"with every layer in int8 the quality bar {', '.join(missed)} missed"
    return {**record, "calibration": outcome.calibration, "excluded_nodes": outcome.excluded,
            "excluded_reason": reason, "quality": [f.as_json() for f in outcome.figures]}


def refusal_line(outcome: Int8Outcome) -> str:
    """One line saying which figure missed, for a graph not written as int8."""
    missed = "; ".join(f.describe() for f in outcome.missed)
    return f"int8 {outcome.graph} not written: {missed} on held-out inputs (fp32 file kept)"


def export_int8(stage: Path, graph: GraphSpec, fp32: Path, runner: Any, inputs: Int8Data, options: Int8Options,
                log: Callable[[str], None]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """``GRAPH.int8.onnx`` beside ``fp32`` in ``stage`` when its quality bars hold: (manifest entry or None,
    quality rows for the manifest's validation table)."""
    from zoo_core.checkpoint import file_sha256

    calibration = inputs.calibration(graph.name)
    outcome = int8_graph(graph, fp32, stage / f"{graph.name}.int8.onnx", calibration, inputs.held_out(graph.name),
                         runner.run, inputs.data, runner.recipe, options)
    outcome.calibration = {"samples": int(calibration[0].shape[0]), "source": inputs.source,
                           "method": options.method, "format": "QDQ", "weights": "int8 per-channel",
                           "activations": options.activations, "preprocessed": True,
                           "held_out": HELD_OUT if inputs.held_out_is_separate else 0}
    rows = [{**row, "kept": outcome.path is not None, "excluded_nodes": outcome.excluded}
            for row in (f.as_json() for f in outcome.figures)]
    if outcome.path is None:
        log(f"zoo: {refusal_line(outcome)}")
        return None, rows
    excluded = f", layers kept in fp32: {', '.join(outcome.excluded)}" if outcome.excluded else ""
    log(f"zoo: exported {graph.name} (int8, {options.method} calibration on {outcome.calibration['samples']} "
        f"samples{excluded}): " + "; ".join(f.describe() for f in outcome.figures))
    record = {"file": outcome.path.name, "sha256": file_sha256(outcome.path), "bytes": outcome.path.stat().st_size,
              "exporter": "onnxruntime.quantization", "exporter_note": None, "io_dtype": "float32"}
    return file_entry(outcome, record), rows
