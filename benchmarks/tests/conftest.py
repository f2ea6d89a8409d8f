"""Fixtures of the zoo-bench tests: the tiny model registered alone, and a direct ONNX exporter."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from zoo_bench.bench import BenchOptions
from zoo_bench.timing import TimingRule

from zoo_core.plugins import PluginHost, RegisteredModel, reset_host
from zoo_core.registry import registered_model

TESTS = Path(__file__).parent
# Short cells, one thread (the machine is shared) and a small peak matmul keep each run to about a second.
FAST_RULE = TimingRule(min_seconds=0.05, min_runs=5, max_seconds=0.2, warmup_seconds=0.0)


def make_fast_options(**changes: Any) -> BenchOptions:
    values: dict[str, Any] = {"runtimes": ("torch", "onnxruntime"), "batch_sizes": (1, 4), "threads": 1,
                              "rule": FAST_RULE, "peak_size": 256, "device": "cpu"}
    values.update(changes)
    return BenchOptions(**values)


@pytest.fixture(scope="session")
def fast_options() -> Callable[..., BenchOptions]:
    """``fast_options(**changes)``: BenchOptions for a run of about a second on the tiny model."""
    return make_fast_options


@contextlib.contextmanager
def tiny_registered() -> Iterator[RegisteredModel]:
    """The tiny_bench model as the only registered model (its recipe imports as tiny_bench_model)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(TESTS))
        sys.modules.pop("tiny_bench_model", None)
        import tiny_bench_model

        host = PluginHost()
        host.register(tiny_bench_model, "tiny-bench", "0.0.1", "tiny")
        host.collect()
        reset_host(host)
        try:
            yield registered_model("tiny_bench")
        finally:
            reset_host(None)


@pytest.fixture
def tiny_model() -> Iterator[RegisteredModel]:
    with tiny_registered() as model:
        yield model


@pytest.fixture(scope="module")
def tiny_model_for_module() -> Iterator[RegisteredModel]:
    with tiny_registered() as model:
        yield model


@pytest.fixture(scope="session")
def export_directly() -> Callable[[Any, torch.nn.Module, str, Path], Callable[[str], Path]]:
    """An ``onnx_factory`` for Benchmark that needs no zoo_export."""
    return direct_onnx_factory


def direct_onnx_factory(recipe: Any, module: torch.nn.Module, graph: str, workdir: Path) -> Callable[[str], Path]:
    """ONNX files written by torch.onnx.export itself (the TorchScript exporter: fast), fp32 only."""
    spec = recipe.spec.graph(graph)

    def path(precision: str) -> Path:
        if precision != "fp32":
            raise LookupError(f"the test exporter writes fp32 only, not {precision}")
        target = workdir / f"{graph}.onnx"
        if not target.exists():
            names = [t.name for t in (*spec.inputs, *spec.outputs)]
            inputs = recipe.example_inputs(graph, 2, torch.Generator().manual_seed(0))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, inputs, str(target), dynamo=False, opset_version=18,
                                  input_names=[t.name for t in spec.inputs],
                                  output_names=[t.name for t in spec.outputs],
                                  dynamic_axes={name: {0: "N"} for name in names})
        return target

    return path
