"""Combinations that cannot run here are skipped with their reason, never timed or failed."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from zoo_bench import ort_backend
from zoo_bench.backends import TorchCompile, TorchEager
from zoo_bench.bench import Benchmark
from zoo_bench.ort_backend import OnnxRuntime

CPU = torch.device("cpu")
CUDA = torch.device("cuda")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA; the test needs its absence")


def test_onnxruntime_skips_fp16_on_cpu_and_bf16() -> None:
    runtime = OnnxRuntime(threads=1)
    assert runtime.skip_reason(CPU, "fp32") is None
    assert "lacks fp16 kernels" in runtime.skip_reason(CPU, "fp16")
    assert "no bf16 ONNX models" in runtime.skip_reason(CPU, "bf16")


def test_onnxruntime_without_zoo_export_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort_backend, "export_installed", lambda: False)
    assert "zoo-export is not installed" in OnnxRuntime(threads=1).skip_reason(CPU, "fp32")


def test_torch_compile_without_a_compiler_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._inductor.cpp_builder as cpp_builder

    def missing() -> str:
        raise RuntimeError("no g++")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", missing)
    assert "needs a C++ compiler" in TorchCompile().skip_reason(CPU, "fp32")
    assert TorchEager().skip_reason(CPU, "fp32") is None


@no_cuda
def test_cuda_absent_skips_every_cell_with_the_reason(tiny_model: Any, fast_options: Any) -> None:
    options = fast_options(device="cuda", runtimes=("torch", "torch-compile", "onnxruntime"),
                           precisions=("fp32", "fp16"), batch_sizes=(2,), graphs=("conv",))
    with Benchmark(options) as bench:
        results = bench.run_model(tiny_model)
    assert len(results) == 6
    assert {r.status for r in results} == {"skipped"}
    assert all("CUDA is not available" in r.reason for r in results)
    assert bench.report.peaks == {}


def test_skipped_cells_keep_their_place_in_the_report(tiny_model: Any, fast_options: Any,
                                                      export_directly: Any) -> None:
    options = fast_options(runtimes=("onnxruntime",), precisions=("fp32", "fp16"), batch_sizes=(1,),
                           graphs=("mlp",))
    with Benchmark(options, onnx_factory=export_directly) as bench:
        results = bench.run_model(tiny_model)
    assert [(r.runtime, r.precision, r.status) for r in results] == [
        ("torch", "fp32", "ok"), ("onnxruntime", "fp32", "ok"), ("onnxruntime", "fp16", "skipped")]
    assert results[2].items_per_s is None and "fp16" in results[2].reason
