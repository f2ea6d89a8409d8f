"""`zoo bench` rows for onnxruntime int8 and the aoti runtime: checked against torch fp32 before they are timed,
with the int8 peak measured in the same run (one AOTInductor compile of the tiny conv graph: ~15 s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import zoo_bench.sources
from zoo_bench.bench import Benchmark


def test_int8_and_aoti_rows_are_checked_timed_and_set_against_their_peaks(tiny_model: Any, fast_options: Any) -> None:
    options = fast_options(runtimes=("torch", "onnxruntime", "aoti"), precisions=("fp32", "int8"), graphs=("conv",))
    with Benchmark(options) as bench:
        results = bench.run_model(tiny_model)
    cells = {(r.runtime, r.precision, r.batch): r for r in results}
    for batch in (1, 4):
        int8 = cells[("onnxruntime", "int8", batch)]
        assert int8.status == "ok", int8.reason
        assert 0 < int8.rel_error <= int8.tolerance == 0.15 and "int8 model" in int8.notes
        assert int8.items_per_s > 0 and int8.peak_share > 0
        aoti = cells[("aoti", "fp32", batch)]
        assert aoti.status == "ok", aoti.reason
        assert aoti.rel_error <= aoti.tolerance == 1e-4 and any("compiled in" in n for n in aoti.notes)
        assert cells[("torch", "int8", batch)].status == "skipped"
        assert cells[("aoti", "int8", batch)].status == "skipped"
    assert bench.report.peaks["int8"].gflops > 0 and bench.report.peaks["int8"].precision == "int8"


def test_an_int8_graph_far_from_fp32_is_reported_wrong_and_not_timed(tiny_model: Any, fast_options: Any,
                                                                    monkeypatch: Any) -> None:
    from zoo_export.quantize import preprocess, quantize_file

    def zero_calibrated(recipe: Any, graph: str, fp32: Path, workdir: Path) -> Path:
        """One calibration sample of zeros: every activation range collapses."""
        spec = recipe.spec.graph(graph)
        pre, out = workdir / "pre.onnx", workdir / "zero.int8.onnx"
        preprocess(fp32, pre)
        zeros = tuple(torch.zeros(1, *t.resolve(recipe.config)[1:]) for t in spec.inputs)
        quantize_file(pre, out, [t.name for t in spec.inputs], zeros, "minmax", "uint8")
        return out

    monkeypatch.setattr(zoo_bench.sources, "int8_file", zero_calibrated)
    options = fast_options(runtimes=("onnxruntime",), precisions=("int8",), graphs=("conv",), batch_sizes=(4,))
    with Benchmark(options) as bench:
        (cell,) = [r for r in bench.run_model(tiny_model) if r.runtime == "onnxruntime"]
    assert cell.status == "wrong" and cell.runs == 0 and cell.items_per_s is None
    assert "relative L2 error" in cell.reason
