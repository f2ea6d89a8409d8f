"""The suite's settings and its BENCHMARKS.md write-up (the timing itself is covered by test_harness)."""

from __future__ import annotations

from zoo_bench.bench import BenchReport, CellResult, ModelRun
from zoo_bench.measure import Peak
from zoo_bench.suite import render_benchmarks, startup_section, suite_options, targets_section


def test_suite_keeps_the_cpu_small_and_sweeps_cuda() -> None:
    cpu = suite_options("cpu")
    assert cpu.batch_sizes == (1, 8) and cpu.precisions == ("fp32",) and cpu.device == "cpu"
    assert cpu.rule.min_seconds >= 1 and cpu.rule.min_runs >= 50
    cuda = suite_options("cuda")
    assert cuda.batch_sizes == (1, 8, 64) and set(cuda.precisions) == {"fp32", "fp16"}
    assert "onnxruntime-cuda-graph" in cuda.runtimes


def anchor_report(torch_rate: float, ort_rate: float, ort_share: float) -> BenchReport:
    machine = {"cpu": "Test CPU", "cores": 2, "os": "Linux", "date": "2026-11-26 12:00 UTC", "versions": {"torch": "x"}}
    report = BenchReport("cpu", 2, {"min_seconds": 1.0, "min_runs": 50, "max_seconds": 3.0}, machine,
                         {"fp32": Peak("fp32", 2048, 170.0, 10)})
    report.models = [ModelRun("ae_mnist", "zoo-ae-mnist", "0.1", "book", {},
                              {"autoencoder": {"gflops_per_item": 0.00064, "gflops_source": "card", "summary": "ae"}}),
                     ModelRun("cyclegan_hair", "zoo-cyclegan-hair", "0.1", "book", {},
                              {"black_to_blond": {"gflops_per_item": 99.1, "gflops_source": "card", "summary": "G"}})]
    latency = {"p50": 1.0, "p90": 1.0, "p99": 1.0, "mean": 1.0, "min": 1.0}
    report.cells = [
        CellResult("ae_mnist", "autoencoder", 8, "torch", "fp32", "ok", items_per_s=torch_rate, latency_ms=latency),
        CellResult("ae_mnist", "autoencoder", 8, "onnxruntime", "fp32", "ok", items_per_s=ort_rate,
                   latency_ms=latency),
        CellResult("cyclegan_hair", "black_to_blond", 8, "onnxruntime", "fp32", "ok", items_per_s=1.5,
                   latency_ms=latency, gflops_per_s=170.0 * ort_share, peak_share=ort_share),
        CellResult("cyclegan_hair", "black_to_blond", 8, "torch-compile", "fp32", "skipped",
                   reason="torch.compile on CPU needs a C++ compiler"),
    ]
    return report


def test_targets_compare_with_the_anchors() -> None:
    met = targets_section(anchor_report(40_000, 190_000, 0.85))
    assert "4.75×" in met and "≥ 4.05× (ANCHORS 4.5×: 190,831 / 42,681)" in met and "85%" in met
    assert "**no**" not in met
    missed = targets_section(anchor_report(60_000, 190_000, 0.5))
    assert missed.count("**no**") == 2


def test_benchmarks_md_has_startup_devices_tables_and_charts() -> None:
    report = anchor_report(40_000, 190_000, 0.85)
    startup = {"what": "wall time of a fresh `zoo` subprocess", "runs": 10, "budget_s": 1.5,
               "machine": {"cpus": 2, "load_average_1m": 0.1}, "plugins": [{"name": "zoo-core"}],
               "results": {"zoo --help": {"median_s": 0.21, "min_s": 0.2, "max_s": 0.3},
                           "zoo list": {"median_s": 1.7, "min_s": 1.6, "max_s": 1.9}}}
    text = render_benchmarks({"cpu-test-cpu-2c": report}, startup,
                             {"cpu-test-cpu-2c": {"ae_mnist": "benchmarks/results/cpu-test-cpu-2c-ae_mnist.png"}})
    assert text.startswith("# Benchmarks\n")
    assert "## Start-up of the `zoo` command" in text
    assert "| zoo --help | 0.210 | 0.200 | 0.300 | yes |" in text
    assert "| zoo list | 1.700 | 1.600 | 1.900 | **no** |" in text
    assert "## CPU: Test CPU, 2 cores" in text and "measured peak: fp32 170 GFLOP/s (2048² matmul)" in text
    assert "### ae_mnist (preset book, random weights)" in text
    assert "| autoencoder | 8 | onnxruntime | fp32 | 190,000 |" in text
    assert "![ae_mnist on cpu-test-cpu-2c](benchmarks/results/cpu-test-cpu-2c-ae_mnist.png)" in text
    assert "torch-compile fp32: **skipped**, torch.compile on CPU needs a C++ compiler" in text


def test_missing_startup_results_say_how_to_make_them() -> None:
    assert "startup.py" in startup_section(None)
    assert "| zoo list | 0.3 |" in startup_section({"records": [{"command": "zoo list", "seconds": 0.3}]})

