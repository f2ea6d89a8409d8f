"""What a run writes: the JSON schema, the Markdown table, the PNG chart and the `zoo bench` command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from zoo_bench.bench import SCHEMA, Benchmark, BenchReport
from zoo_bench.command import bench_command
from zoo_bench.report import COLUMNS, markdown_report, read_json, write_json, write_markdown, write_plot

from zoo_core.cli import ZooGroup

CELL_KEYS = {"model", "graph", "batch", "runtime", "precision", "status", "reason", "items_per_s", "latency_ms",
             "runs", "speedup", "gflops_per_item", "gflops_per_s", "peak_share", "warmup_cost_s", "rel_error",
             "tolerance", "notes"}


@pytest.fixture(scope="module")
def report(tiny_model_for_module: Any, fast_options: Any, export_directly: Any) -> Iterator[BenchReport]:
    options = fast_options(precisions=("fp32", "fp16"), batch_sizes=(1, 2))
    with Benchmark(options, onnx_factory=export_directly) as bench:
        bench.run_model(tiny_model_for_module)
    yield bench.report


def test_json_schema_round_trips(report: BenchReport, tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_json(report, path)
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA
    assert {"device", "threads", "settings", "machine", "peaks", "models", "cells"} <= set(data)
    assert data["machine"]["cpu"] and data["machine"]["cores"] >= 1 and "torch" in data["machine"]["versions"]
    assert data["peaks"]["fp32"]["gflops"] > 0
    assert data["models"][0]["name"] == "tiny_bench" and set(data["models"][0]["graphs"]) == {"mlp", "conv"}
    assert len(data["cells"]) == 2 * 2 * 4  # graphs × batches × (torch fp32/fp16, onnxruntime fp32/fp16)
    for cell in data["cells"]:
        assert CELL_KEYS <= set(cell)
        if cell["status"] == "ok":
            assert set(cell["latency_ms"]) == {"p50", "p90", "p99", "mean", "min"}
    assert read_json(path).as_json() == data


def test_markdown_has_a_table_row_per_timed_cell(report: BenchReport, tmp_path: Path) -> None:
    path = tmp_path / "results.md"
    write_markdown(report, path)
    text = path.read_text()
    assert text.startswith("# zoo bench\n")
    assert "| " + " | ".join(COLUMNS) + " |" in text
    timed = [c for c in report.cells if c.status == "ok"]
    rows = [line for line in text.splitlines() if line.startswith("| mlp") or line.startswith("| conv")]
    assert len(rows) == len(timed) == 12  # torch fp16 runs on CPU (autocast); onnxruntime fp16 does not
    assert "onnxruntime fp16: **skipped**" in text
    assert markdown_report(report) in text


def test_plot_is_a_png(report: BenchReport, tmp_path: Path) -> None:
    path = tmp_path / "chart.png"
    write_plot(report, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    from PIL import Image

    with Image.open(path) as image:
        assert image.width > 500 and image.height > 300


def bench(*args: str) -> Any:
    group = ZooGroup(name="zoo", commands=[bench_command])
    return CliRunner().invoke(group, ["bench", *args], prog_name="zoo")


FAST = ["--threads", "1", "--peak-size", "512", "--min-seconds", "0.05", "--min-runs", "5", "--max-seconds", "0.2",
        "--warmup-seconds", "0", "--no-progress"]


def test_command_prints_the_table_and_writes_every_format(tiny_model: Any, tmp_path: Path) -> None:
    result = bench("tiny_bench", "--runtimes", "torch", "--graphs", "mlp", "--batch-sizes", "1,2", "--device", "cpu",
                   "--preset", "quick", "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md"),
                   "--plot", str(tmp_path / "r.png"), *FAST)
    assert result.exit_code == 0, result.output
    assert "zoo bench tiny_bench (preset quick, random weights)" in result.output and "items/s" in result.output
    assert "measured peak: fp32" in result.output
    assert all((tmp_path / name).stat().st_size > 0 for name in ("r.json", "r.md", "r.png"))
    assert [c["batch"] for c in json.loads((tmp_path / "r.json").read_text())["cells"]] == [1, 2]


@pytest.mark.parametrize(("args", "message"), [
    (["--runtimes", "torch,nope"], "unknown runtime 'nope'"),
    (["--batch-sizes", "1,x"], "--batch-sizes takes comma-separated positive integers"),
    (["--graphs", "mlp,,conv"], "--graphs takes comma-separated names"),
    (["--preset", "huge"], "no preset 'huge'"),
    (["--min-seconds", "2", "--max-seconds", "1"], "--max-seconds (1) must be at least --min-seconds (2)"),
])
def test_command_refuses_bad_input_in_one_line(tiny_model: Any, args: list[str], message: str) -> None:
    result = bench("tiny_bench", "--device", "cpu", *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: ") and message in lines[0]
