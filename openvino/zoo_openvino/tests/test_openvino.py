"""The ``openvino`` runtime on zoo exports: graphs against onnxruntime, every task of a third-party model with its
networks module blocked, one-line refusals, and the `zoo bench` rows. The first-party models' tasks run through
``--runtime openvino`` in export/tests/test_executorch.py, on the export that test makes anyway (one export per
model for both edge runtimes keeps the suite short)."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import torch

pytest.importorskip("openvino", reason="openvino is not installed (pip install zoo-openvino)")

from zoo_export.pipeline import ExportOptions, export_model
from zoo_export.runtime import open_export as open_onnx_export
from zoo_export.sessions import SessionSettings
from zoo_export_testing import (
    assert_one_line_error,
    blocked_process,
    compare_pngs,
    generate,
    zoo,
)
from zoo_openvino_testing import TinyExport

from zoo_core.extend import file_sha256
from zoo_openvino.runtime import compile_config, open_export


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double() - want.double()).norm() / want.double().norm().clamp_min(1e-30))


def test_fp32_is_compiled_in_strict_f32_not_the_cpu_s_bf16_default() -> None:
    assert compile_config()["INFERENCE_PRECISION_HINT"] == "f32"
    assert compile_config(3)["INFERENCE_NUM_THREADS"] == 3


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_every_graph_matches_onnxruntime_on_the_same_file(tiny_int8: TinyExport, precision: str) -> None:
    """fp32 within the export's tolerance of onnxruntime; int8 (same QDQ file, other int8 kernels) close to it."""
    openvino = open_export(tiny_int8.export, tiny_int8.model.name, precision)
    onnx = open_onnx_export(tiny_int8.export, tiny_int8.model.name, SessionSettings(device="cpu", precision=precision))
    graphs = [g for g in tiny_int8.model.spec.graphs if precision == "fp32" or onnx.export.graph_entry(g.name)["int8"]]
    assert graphs, tiny_int8.log
    for graph in graphs:
        for batch in (1, 5, 5, 3):  # a repeated shape reuses its compiled request, a new one compiles
            inputs = tiny_int8.model.spec.graph(graph.name).inputs
            tensors = tuple(torch.rand(batch, *t.resolve(openvino.config)[1:], generator=torch.Generator()
                                       .manual_seed(batch)) for t in inputs)
            for got, want in zip(openvino.run(graph.name, *tensors), onnx.run(graph.name, *tensors), strict=True):
                assert got.shape == want.shape and got.dtype == torch.float32
                assert _relative(got, want) <= (1e-4 if precision == "fp32" else 0.05), (graph.name, batch)


def _openvino_commands(tiny_int8: TinyExport, precision: str, out: Path) -> list[list[str | Path]]:
    return [["generate", tiny_int8.model.name, task.name, "--runtime", "openvino", "--precision", precision,
             "--export", tiny_int8.export, "--device", "cpu", "--seed", "3", "--out", out / task.name]
            for task in tiny_int8.model.spec.tasks]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_every_task_runs_through_openvino_without_the_networks_module(tiny_int8: TinyExport, tmp_path: Path,
                                                                      install_host, precision: str) -> None:
    """In a fresh process that cannot import tiny_vae's networks; fp32 writes the pictures torch writes."""
    commands = [[str(a) for a in command] for command in _openvino_commands(tiny_int8, precision, tmp_path / "ov")]
    script = textwrap.dedent(f"""
        import zoo_export_tiny
        import zoo_openvino, zoo_openvino.plugin
        from zoo_core import plugins
        from zoo_core.cli import cli
        from zoo_export_testing import make_host

        host = make_host((zoo_export_tiny, zoo_export_tiny.DISTRIBUTION, zoo_export_tiny.VERSION),
                         (zoo_openvino.plugin, "zoo-openvino", zoo_openvino.__version__))
        plugins.reset_host(host)
        host.add_commands(cli)
        for arguments in {commands!r}:
            try:
                cli(arguments, prog_name="zoo")
            except SystemExit as exit:
                if exit.code:
                    raise
        print("imported:", sorted(name for name in sys.modules if name in BLOCKED))
    """)
    done = blocked_process({"zoo_export_tiny_networks"}, script)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "imported: []" in done.stdout, done.stdout
    assert done.stderr.count(f"{precision} on cpu") == len(commands), done.stderr
    if precision == "fp32":
        install_host(tiny_int8.host)
        for task in tiny_int8.model.spec.tasks:
            generate(tiny_int8.model.name, task.name, [], ["--runtime", "torch", "--run", tiny_int8.run],
                     tmp_path / "torch" / task.name)
            assert not compare_pngs(tmp_path / "torch" / task.name, tmp_path / "ov" / task.name), task.name


@pytest.mark.parametrize("damage", ["truncated", "truncated with its sha256 updated"])
def test_a_damaged_onnx_file_is_one_line(tiny_int8: TinyExport, tmp_path: Path, install_host, damage: str) -> None:
    install_host(tiny_int8.host)
    export = tmp_path / "export"
    shutil.copytree(tiny_int8.export, export)
    graph = export / "decoder.onnx"
    graph.write_bytes(graph.read_bytes()[:300])
    if damage.endswith("updated"):
        manifest = json.loads((export / "manifest.json").read_text())
        manifest["graphs"]["decoder"]["sha256"] = file_sha256(graph)
        (export / "manifest.json").write_text(json.dumps(manifest))
    result = zoo("generate", tiny_int8.model.name, "sample", "--runtime", "openvino", "--export", export,
                 "--device", "cpu", "--out", tmp_path / "out")
    assert_one_line_error(result, 1, "decoder.onnx", "OpenVINO cannot read it" if damage.endswith("updated")
                          else "sha256")


@pytest.mark.parametrize(("arguments", "code", "fragments"), [
    (["--precision", "fp16"], 2, ("--runtime openvino runs fp32 or int8", "fp16")),
    (["--device", "cuda"], 2, ("runs on the CPU", "--device cuda")),
    (["--precision", "int8", "--export", None], 1, ("no int8 file", "--int8")),
    (["--run", "RUN"], 1, ("runs an export, not a run",)),
])
def test_what_the_runtime_cannot_run_is_one_line(tiny_int8: TinyExport, tmp_path: Path, install_host,
                                                 arguments: list[str | None], code: int,
                                                 fragments: tuple[str, ...]) -> None:
    install_host(tiny_int8.host)
    fp32_only = tmp_path / "fp32-only"
    if None in arguments:
        export_model(tiny_int8.model, ExportOptions(run=tiny_int8.run, out=fp32_only, validate=False,
                                                    log=lambda line: None))
    given = [str(fp32_only) if a is None else str(tiny_int8.run) if a == "RUN" else a for a in arguments]
    export = [] if "--export" in given or "--run" in given else ["--export", str(tiny_int8.export)]
    result = zoo("generate", tiny_int8.model.name, "sample", "--runtime", "openvino", *export, *given,
                 "--out", tmp_path / "out")
    assert_one_line_error(result, code, *fragments)


def test_zoo_bench_finds_the_backend_and_times_fp32_and_int8(tiny_int8: TinyExport) -> None:
    """Registered through the zoo.bench_backends entry point group: no line of zoo bench names openvino."""
    from zoo_bench.bench import Benchmark, BenchOptions
    from zoo_bench.timing import TimingRule

    rule = TimingRule(min_seconds=0.05, min_runs=3, max_seconds=1.0, warmup_seconds=0, warmup_runs=1)
    options = BenchOptions(runtimes=("onnxruntime", "openvino"), precisions=("fp32", "int8"), device="cpu",
                           batch_sizes=(2,), threads=1, rule=rule)
    with Benchmark(options) as bench:
        assert type(bench.backends["openvino"]).__module__ == "zoo_openvino.bench"
        results = bench.run_model(tiny_int8.model)
    rows = {(r.graph, r.runtime, r.precision): r for r in results}
    for graph in tiny_int8.model.spec.graphs:
        for precision in ("fp32", "int8"):
            row = rows[(graph.name, "openvino", precision)]
            assert row.status == "ok", (row.status, row.reason)
            assert row.items_per_s and row.items_per_s > 0 and row.rel_error <= row.tolerance
