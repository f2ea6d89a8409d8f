"""`zoo export --int8`: every model's graphs quantized, kept only when their task-quality bars hold, and run.

Each first-party model (and the scaffolded template plugin) trains a tiny run, exports with --int8 through
the same code path as `zoo export`, and runs every task on the int8 graphs (``--precision int8``).
The calibration methods are spread over the models so that each is exercised once.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from test_first_party import MODELS, Model, host_for, installed
from zoo_export.manifest import MANIFEST, load_export
from zoo_export.pipeline import ExportOptions, export_model
from zoo_export.quantize import HELD_OUT, Int8Data, Int8Options, export_int8, psnr
from zoo_export_testing import (
    FIRST_PARTY_NETWORKS,
    Exported,
    assert_clean_exit,
    assert_one_line_error,
    train_tiny,
    zoo,
    zoo_with_modules_blocked,
)

from zoo_core.scaffold import write_plugin
from zoo_core.spec import GraphSpec, QualityBar, TensorSpec

METHODS = {"ae_mnist": "minmax", "vae_faces": "entropy", "cyclegan_hair": "percentile", "testplugin_tiny": "minmax",
           "int8_template": "entropy"}


@pytest.fixture(scope="module")
def template_model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """The plugin `zoo plugin new int8_template` writes, registered from its source tree."""
    package = write_plugin("int8_template", tmp_path_factory.mktemp("template") / "zoo-int8-template")
    return Model("zoo-int8-template", {}, {"reconstruct": lambda d: ["--count", "4"]}, source=package,
                 plugin_module="zoo_int8_template.plugin")


def _models(name: str, template_model: Model) -> Model:
    return template_model if name == "int8_template" else MODELS[name]


@pytest.mark.parametrize("name", [*MODELS, "int8_template"])
def test_int8_export_of_every_model_records_calibration_and_quality_and_runs_every_task(
        name: str, tmp_path: Path, install_host, template_model: Model) -> None:
    model = _models(name, template_model)
    if model.source is None and not installed(model.distribution):
        pytest.skip(f"{model.distribution} is not installed")
    host = host_for(name, model)
    install_host(host)
    registered = host.models[name]
    run = train_tiny(registered, tmp_path / "run", model.overrides)
    options = Int8Options(samples=16, method=METHODS[name], keep_slower=True)  # the tasks need the int8 files
    lines: list[str] = []
    export = export_model(registered, ExportOptions(run=run, out=tmp_path / "export", int8=options, log=lines.append))

    manifest = json.loads((export / MANIFEST).read_text())
    quality = manifest["validation"]["quality"]
    for graph in registered.spec.graphs:
        entry = manifest["graphs"][graph.name]["int8"]
        assert entry is not None, f"{name} {graph.name} was not kept as int8: {lines}"
        assert (export / entry["file"]).is_file()
        assert entry["calibration"]["samples"] == 16 and entry["calibration"]["method"] == METHODS[name]
        assert entry["calibration"]["activations"] == "uint8" and entry["calibration"]["format"] == "QDQ"
        rows = [row for row in quality if row["graph"] == graph.name]
        assert [row["metric"] for row in rows] == [bar.metric for bar in graph.quality_bars]
        assert all(row["passed"] and row["kept"] for row in rows), rows
    load_export(export, name)  # the int8 files are listed with their sha256

    commands = [["generate", name, task.name, *model.task_args.get(task.name, lambda folder: [])(tmp_path / task.name),
                 "--runtime", "onnxruntime", "--precision", "int8", "--export", export, "--device", "cpu",
                 "--out", tmp_path / task.name / "out"] for task in registered.spec.tasks]
    if name in FIRST_PARTY_NETWORKS:  # installed plugins: in a fresh process that cannot import their networks
        done = zoo_with_modules_blocked({FIRST_PARTY_NETWORKS[name]}, commands)
        assert done.returncode == 0 and "imported: []" in done.stdout, done.stderr[-2000:]
        assert done.stderr.count("int8 on cpu") == len(commands), done.stderr
    else:
        for command in commands:
            result = zoo(*command)
            assert_clean_exit(result)
            assert "int8 on cpu" in result.stderr
    for task in registered.spec.tasks:
        assert list((tmp_path / task.name / "out").rglob("*.png")), f"{name} {task.name} wrote no PNG"


def test_declared_quality_bars_are_the_issue_s(install_host) -> None:
    from zoo_export_testing import make_host

    host = make_host(entry_points=True)
    bars = {name: {g.name: [(b.metric, b.rule, b.limit) for b in g.quality_bars] for g in m.spec.graphs}
            for name, m in host.models.items()}
    if "ae_mnist" in bars:
        assert set(map(tuple, bars["ae_mnist"].values())) == {(("reconstruction_mse", "relative_rise", 0.05),)}
    if "vae_faces" in bars:
        assert bars["vae_faces"]["decoder"] == [("psnr", "at_least", 30.0)]
    if "cyclegan_hair" in bars:
        assert bars["cyclegan_hair"]["black_to_blond"] == [("psnr", "at_least", 30.0), ("hair_success", "drop", 0.02)]


class ZeroCalibration(Int8Data):
    """One calibration sample of zeros: a deliberately bad quantization."""

    def calibration(self, graph: str) -> tuple[torch.Tensor, ...]:
        return tuple(torch.zeros_like(x[:1]) for x in super().calibration(graph))


def test_a_quantization_calibrated_on_one_sample_of_zeros_is_refused(tiny: Exported, tmp_path: Path) -> None:
    from zoo_core.runtime import RuntimeSource, TorchRunner

    runner = TorchRunner(tiny.model, RuntimeSource(run=tiny.run, device="cpu"))
    options = Int8Options(samples=16)
    inputs = ZeroCalibration(runner.recipe, runner.networks, options)
    graph = tiny.model.spec.graph("encoder")
    lines: list[str] = []
    entry, rows, search = export_int8(tmp_path, graph, tiny.export / "encoder.onnx", runner, inputs, options,
                                      lines.append)
    assert entry is None and not (tmp_path / "encoder.int8.onnx").exists()
    assert rows and not any(row["kept"] for row in rows) and not all(row["passed"] for row in rows)
    assert lines[-1].startswith("zoo: int8 encoder not written: psnr"), lines
    assert search["candidates"] and not any(c["passed"] for c in search["candidates"]) and search["winner"] is None
    good = Int8Data(runner.recipe, runner.networks, dataclasses.replace(options, keep_slower=True))
    entry, rows, _ = export_int8(tmp_path, graph, tiny.export / "encoder.onnx", runner, good, good.options,
                                 lambda line: None)
    assert entry is not None and all(row["passed"] for row in rows)


def test_psnr_uses_the_declared_range_and_the_worst_output() -> None:
    graph = GraphSpec("g", "", (), (TensorSpec("a", ("N", 4), value_range=(0.0, 1.0)), TensorSpec("b", ("N", 4))), 0.0)
    reference = (torch.zeros(2, 4), torch.linspace(-1, 1, 8).view(2, 4))
    close = (reference[0].numpy() + 0.01, reference[1].numpy())
    assert psnr(close, reference, graph) == pytest.approx(40.0)
    far = (reference[0].numpy(), reference[1].numpy() + 0.2)  # spread 2: 20 log10(2 / 0.2) = 20 dB
    assert psnr(far, reference, graph) == pytest.approx(20.0)


def test_quality_bar_rules_are_checked() -> None:
    with pytest.raises(ValueError, match="rule"):
        QualityBar("psnr", "more_or_less", 1.0)
    with pytest.raises(ValueError, match="function"):
        QualityBar("hair_success", "drop", 0.02)


def test_cli_int8_export_and_its_options(tiny: Exported, tmp_path: Path, install_host,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    install_host(tiny.host)
    out = tmp_path / "export"
    result = zoo("export", tiny.model.name, "--run", tiny.run, "--out", out, "--int8", "--calibration-samples", "8",
                 "--calibration-method", "percentile", "--int8-keep-slower")
    assert_clean_exit(result)
    entry = json.loads((out / MANIFEST).read_text())["graphs"]["decoder"]["int8"]
    assert entry["calibration"]["method"] == "percentile" and entry["calibration"]["samples"] == 8
    assert entry["calibration"]["held_out"] == 0 or 8 <= entry["calibration"]["held_out"] <= HELD_OUT
    assert_one_line_error(zoo("export", tiny.model.name, "--run", tiny.run, "--out", tmp_path / "x",
                              "--calibration-data", tmp_path), 2, "add --int8")
    monkeypatch.setenv("ZOO_ORT_PRECISION", "int8")  # tiny's shared export has no int8 files
    result = zoo("generate", tiny.model.name, "sample", "--runtime", "onnxruntime", "--export", tiny.export,
                 "--device", "cpu", "--out", tmp_path / "sample")
    assert_one_line_error(result, 1, "no int8 file", "--int8")


def test_a_graph_that_misses_keeps_its_most_sensitive_layer_in_fp32(tiny: Exported, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo_export.quantize

    from zoo_core.runtime import RuntimeSource, TorchRunner

    calls = []

    def success(graph: str, run: object, data: object, recipe: object) -> float:
        calls.append(graph)  # fp32 once, then both placements with every layer int8 miss; any fp32 layer passes
        return 1.0 if len(calls) == 1 or len(calls) > 3 else 0.5

    monkeypatch.setattr(zoo_export.quantize, "load_object", lambda reference: success)
    runner = TorchRunner(tiny.model, RuntimeSource(run=tiny.run, device="cpu"))
    graph = dataclasses.replace(tiny.model.spec.graph("encoder"),
                                quality=(QualityBar("success", "drop", 0.02, function="tests:success"),))
    options = Int8Options(samples=8, method="minmax", timer=lambda paths, inputs: [1.0] + [2.0] * (len(paths) - 1))
    lines: list[str] = []
    entry, rows, search = export_int8(tmp_path, graph, tiny.export / "encoder.onnx", runner,
                                      Int8Data(runner.recipe, runner.networks, options), options, lines.append)
    assert entry is not None and entry["excluded_nodes"] == [search["sensitivity"][0]["layer"]], search
    assert "success" in entry["excluded_reason"] and entry["quality"][0]["passed"]
    assert [row["excluded_nodes"] for row in rows] == [entry["excluded_nodes"]] and rows[0]["kept"]
    assert "layers kept in fp32: " + ", ".join(entry["excluded_nodes"]) in lines[-1]
    assert entry["speedup"] == 2.0 and "2.00× fp32" in entry["why"]
    assert "int8 encoder (fp32 1.0 items/s" in lines[0]  # the candidates table with the speed measured
