"""The benchmark harness on the tiny model: timed numbers, the correctness gate, FLOPs and failures."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from zoo_bench.backends import GraphCase, Prepared, TorchEager
from zoo_bench.bench import Benchmark, CellResult, relative_errors

from zoo_core.errors import UsageError


class OffByHalf(TorchEager):
    """A runtime that computes the wrong function: torch's output plus 0.5."""

    name = "off-by-half"

    def prepare(self, case: GraphCase, inputs: tuple[torch.Tensor, ...], output_shapes: Any,
                precision: str) -> Prepared:
        prepared = super().prepare(case, inputs, output_shapes, precision)
        right = prepared.call
        prepared.call = lambda: right() + 0.5
        return prepared


class Crashing(TorchEager):
    name = "crashing"

    def prepare(self, case: GraphCase, inputs: tuple[torch.Tensor, ...], output_shapes: Any,
                precision: str) -> Prepared:
        raise RuntimeError("no kernel for\nthis graph")


def test_cells_are_timed_checked_and_wrong_runtimes_refused(tiny_model: Any, fast_options: Any,
                                                           export_directly: Any) -> None:
    options = fast_options(runtimes=("torch", "onnxruntime", "off-by-half", "crashing"), graphs=("mlp",))
    with Benchmark(options, backends={"off-by-half": OffByHalf(), "crashing": Crashing()},
                   onnx_factory=export_directly) as bench:
        results = bench.run_model(tiny_model)
    by_key = {(r.runtime, r.batch): r for r in results}
    assert set(by_key) == {(r, b) for r in ("torch", "onnxruntime", "off-by-half", "crashing") for b in (1, 4)}
    for batch in (1, 4):
        for runtime in ("torch", "onnxruntime"):
            cell = by_key[(runtime, batch)]
            assert cell.status == "ok", cell.reason
            assert cell.items_per_s > 0 and cell.runs >= 5 and cell.timed_s >= 0.05
            assert 0 < cell.latency_ms["p50"] <= cell.latency_ms["p90"] <= cell.latency_ms["p99"]
            assert cell.rel_error <= cell.tolerance == 1e-4
            assert cell.gflops_per_s > 0 and cell.peak_share > 0
            assert cell.first_call_s > 0 and cell.warmup_cost_s >= 0
        assert by_key[("torch", batch)].speedup == 1.0
        assert by_key[("onnxruntime", batch)].speedup > 0
        assert "CPU EP" in by_key[("onnxruntime", batch)].notes
        wrong = by_key[("off-by-half", batch)]
        assert wrong.status == "wrong" and wrong.runs == 0 and wrong.items_per_s is None
        assert "relative L2 error" in wrong.reason and wrong.rel_error > 1e-4
        crashed = by_key[("crashing", batch)]
        assert crashed.status == "failed" and crashed.reason == "RuntimeError: no kernel for this graph"
    assert bench.report.peaks["fp32"].gflops > 0


def test_flops_are_recounted_away_from_the_card_preset(tiny_model: Any, fast_options: Any) -> None:
    from tiny_bench_model import mlp_gflops

    for preset, hidden, source in (("book", 32, "card"), ("quick", 8, "counted at this config")):
        with Benchmark(fast_options(runtimes=("torch",), graphs=("mlp",), batch_sizes=(1,), preset=preset)) as bench:
            bench.run_model(tiny_model)
        graph = bench.report.models[0].graphs["mlp"]
        assert graph["gflops_per_item"] == pytest.approx(mlp_gflops(hidden))
        assert graph["gflops_source"] == source


def test_relative_errors_catch_shape_and_nan() -> None:
    ref = (torch.ones(2, 3),)
    assert relative_errors((torch.ones(2, 3),), ref) == (0.0, 0.0)
    assert relative_errors((torch.ones(3, 2),), ref)[0] == float("inf")
    assert relative_errors((torch.full((2, 3), float("nan")),), ref)[0] == float("inf")
    rel, worst = relative_errors((torch.full((2, 3), 1.5),), ref)
    assert rel == pytest.approx(0.5) and worst == pytest.approx(0.5)
    wrong = CellResult("m", "g", 1, "r", "fp32", "wrong", rel_error=float("inf"), max_abs_error=float("nan"))
    assert wrong.as_json()["rel_error"] is None and wrong.as_json()["max_abs_error"] is None  # JSON has no inf


@pytest.mark.parametrize(("changes", "message"), [
    ({"runtimes": ("torch", "tensorrt")}, "unknown runtime 'tensorrt'"),
    ({"precisions": ("fp8",)}, "unknown precision 'fp8'"),
    ({"batch_sizes": (0,)}, "positive"),
])
def test_bad_options_are_one_clear_line(changes: dict[str, Any], message: str, fast_options: Any) -> None:
    with pytest.raises(UsageError, match=message):
        Benchmark(fast_options(**changes))


def test_unknown_graph_names_the_graphs(tiny_model: Any, fast_options: Any) -> None:
    with Benchmark(fast_options(graphs=("decoder",))) as bench, pytest.raises(UsageError, match="graphs: mlp, conv"):
        bench.run_model(tiny_model)
