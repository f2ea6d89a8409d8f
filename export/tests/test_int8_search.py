"""The int8 search on generated ONNX graphs: bounded calibration, the sensitivity search, the speed fall-back
and the progress output. Graphs are built with onnx.helper (no training, no exporter), so each test is seconds."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from rich.console import Console
from zoo_export import int8_calibration
from zoo_export.int8_calibration import collect_ranges, sample_rule
from zoo_export.int8_progress import Int8Progress
from zoo_export.quantize import Int8Options, int8_graph, weighted_nodes

from zoo_core.spec import GraphSpec, QualityBar, TensorSpec

CHANNELS = 8


def conv_chain(path: Path, layers: int = 4, size: int = 16, fragile: int | None = None, seed: int = 0) -> Path:
    """Conv → Relu blocks on [N, 8, size, size]. Layer ``fragile`` reads an input channel that is always zero
    (its producer's channel 0: zero weights, negative bias, Relu) through weights 1000× its others: harmless in
    fp32, but int8's per-channel weight scale (set by those) rounds every other weight of the layer to zero."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current = "x"
    for index in range(layers):
        weight = (rng.standard_normal((CHANNELS, CHANNELS, 3, 3)) * 0.2).astype(np.float32)
        bias = np.zeros(CHANNELS, np.float32)
        if fragile is not None and index == fragile - 1:
            weight[0], bias[0] = 0.0, -1.0  # output channel 0 is always zero after the Relu
        if index == fragile:
            weight[:, 0, 1, 1] = 200.0  # huge taps on that zero channel
        inits += [numpy_helper.from_array(weight, f"w{index}"), numpy_helper.from_array(bias, f"b{index}")]
        nodes.append(helper.make_node("Conv", [current, f"w{index}", f"b{index}"], [f"c{index}"], name=f"conv{index}",
                                      pads=[1, 1, 1, 1]))
        last = index == layers - 1
        nodes.append(helper.make_node("Tanh" if last else "Relu", [f"c{index}"], ["y" if last else f"r{index}"],
                                      name=f"act{index}"))
        current = f"r{index}"
    graph = helper.make_graph(nodes, "chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", CHANNELS, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", CHANNELS, size, size])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def spec(size: int = 16, bar: float = 30.0) -> GraphSpec:
    return GraphSpec("chain", "generated", (TensorSpec("x", ("N", CHANNELS, size, size)),),
                     (TensorSpec("y", ("N", CHANNELS, size, size), value_range=(-1.0, 1.0)),), 0.0,
                     quality=(QualityBar("psnr", "at_least", bar),))


class LazySource:
    """Calibration inputs generated a slice at a time: nothing grows with ``count`` but the loop."""

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size = count, size

    def batch(self, start: int, stop: int) -> list[np.ndarray]:
        rng = np.random.default_rng(start)
        return [rng.standard_normal((stop - start, CHANNELS, self.size, self.size)).astype(np.float32)]


def peak_traced(model: Path, source: LazySource, methods: tuple[str, ...]) -> int:
    tracemalloc.start()
    try:
        collect_ranges(model, source, methods, threads=1)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("methods", [("minmax",), ("minmax", "entropy", "percentile")])
def test_calibration_memory_does_not_grow_with_the_sample_count(tmp_path: Path, methods: tuple[str, ...],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    model = conv_chain(tmp_path / "chain.onnx", layers=6, size=32)
    # a small budget: 2 items per chunk (one item's 13 outputs are 13 × 32 KiB)
    monkeypatch.setattr(int8_calibration, "ACTIVATION_BUDGET", 2 * 13 * CHANNELS * 32 * 32 * 4)
    few = peak_traced(model, LazySource(8, 32), methods)
    many = peak_traced(model, LazySource(128, 32), methods)
    per_item_outputs = 13 * CHANNELS * 32 * 32 * 4
    # holding every item's outputs (what a per-sample calibrator does) would add 120 items × 416 KiB = 49 MiB
    assert many - few < 4 * per_item_outputs, (few, many)
    assert many < 16 * per_item_outputs, many


def test_the_three_methods_give_nested_ranges_from_two_passes(tmp_path: Path) -> None:
    model = conv_chain(tmp_path / "chain.onnx", layers=3)
    ticks: list[int] = []
    ranges = collect_ranges(model, LazySource(24, 16), ("minmax", "entropy", "percentile"), tick=ticks.append)
    assert sum(ticks) == 2 * 24 and ranges.passes == 2 and ranges.samples == 24
    for name, (low, high) in ranges.by_method["minmax"].items():
        for method in ("entropy", "percentile"):
            other = ranges.by_method[method][name]
            assert low - 1e-5 <= other[0] <= 0.0 <= other[1] <= high + 1e-5, (method, name, other, (low, high))


def test_entropy_and_percentile_clip_a_lone_outlier() -> None:
    values = np.append(np.random.default_rng(0).standard_normal(200_000), 50.0)
    edges = np.linspace(values.min(), values.max(), int8_calibration.BINS + 1)
    counts = np.histogram(values, edges)[0]
    for method in (int8_calibration._entropy_range, int8_calibration._percentile_range):
        low, high = method(counts, edges)
        assert -6.0 < low < -2.0 and 2.0 < high < 10.0, (method.__name__, low, high)


def test_the_sample_rule() -> None:
    assert sample_rule(3 * 64 * 64) == 256 and sample_rule(3 * 256 * 256) == 21 and sample_rule(100) == 256
    assert sample_rule(3 * 1024 * 1024) == 16


def _run_chain(path: Path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(name: str, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(o) for o in session.run(None, {"x": inputs[0].numpy()}))

    return run


def _search(tmp_path: Path, model: Path, graph: GraphSpec, size: int = 16, **options: object):
    rng = np.random.default_rng(5)
    calibration = (torch.from_numpy(rng.standard_normal((32, CHANNELS, size, size)).astype(np.float32)),)
    held_out = (torch.from_numpy(rng.standard_normal((16, CHANNELS, size, size)).astype(np.float32)),)
    lines = io.StringIO()
    progress = Int8Progress(graph.name, Console(file=lines, force_terminal=False))
    settings = {"method": "minmax", "timer": lambda paths, inputs: [100.0] + [200.0] * (len(paths) - 1), **options}
    outcome = int8_graph(graph, model, tmp_path / "chain.int8.onnx", calibration, held_out, _run_chain(model), None,
                         None, Int8Options(**settings), progress=progress)
    return outcome


def test_one_fragile_layer_is_found_and_kept_in_fp32(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    model = conv_chain(tmp_path / "chain.onnx", layers=5, fragile=2)
    outcome = _search(tmp_path, model, spec())
    full = outcome.candidates[0]
    assert not full.fp32_layers and not full.passed, full.as_json()
    assert outcome.path is not None and outcome.excluded == ["conv2"], [c.as_json() for c in outcome.candidates]
    assert outcome.sensitivity[0]["layer"] == "conv2"
    assert outcome.figures[0].passed and outcome.winner is not None and outcome.winner.speedup == pytest.approx(2.0)
    assert "only one" in outcome.why or "fastest" in outcome.why
    err = capfd.readouterr().err
    for stage in ("calibration (32 samples, 1 pass)", "quality checks", "sensitivity 5/5", "mixed precision", "speed"):
        assert f"zoo: int8 chain: {stage}" in err, err


def test_a_graph_without_a_fragile_layer_keeps_every_layer_in_int8(tmp_path: Path) -> None:
    model = conv_chain(tmp_path / "chain.onnx", layers=4)
    outcome = _search(tmp_path, model, spec())
    assert outcome.path is not None and outcome.excluded == [] and not outcome.sensitivity
    assert weighted_nodes(model) == [f"conv{i}" for i in range(4)]


def test_int8_slower_than_fp32_is_not_written(tmp_path: Path) -> None:
    model = conv_chain(tmp_path / "chain.onnx", layers=4)
    slower = _search(tmp_path, model, spec(), timer=lambda paths, inputs: [100.0] + [90.0] * (len(paths) - 1))
    assert slower.path is None and not (tmp_path / "chain.int8.onnx").exists()
    assert slower.slower and slower.winner is not None and "no int8 file" in slower.why
    kept = _search(tmp_path, model, spec(), keep_slower=True,
                   timer=lambda paths, inputs: [100.0] + [90.0] * (len(paths) - 1))
    assert kept.path is not None and kept.path.is_file()


def test_the_real_timer_measures_both_files(tmp_path: Path) -> None:
    """The default timer on a graph too small for int8 to pay: whatever it decides, it states the measured ratio."""
    model = conv_chain(tmp_path / "chain.onnx", layers=2, size=4)
    outcome = _search(tmp_path, model, spec(size=4), size=4, timer=None)
    assert outcome.fp32_items_per_s and outcome.fp32_items_per_s > 0
    assert outcome.winner is not None and outcome.winner.speedup is not None and outcome.winner.speedup > 0
    assert (outcome.path is None) == (outcome.winner.speedup < 1.05)


def test_progress_draws_a_bar_on_a_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    with Int8Progress("g", console) as progress:
        progress.start("calibration", 4)
        for _ in range(4):
            progress.advance()
        progress.start("quality checks", 2)
        progress.advance(2)
    text = buffer.getvalue()
    assert "int8 g: calibration" in text and "4/4" in text
    assert "zoo: int8 g: calibration 4/4 in" in text and "zoo: int8 g: quality checks 2/2 in" in text
