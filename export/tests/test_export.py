"""`zoo export` on a third-party model (tiny_vae, registered in-process): files, manifest, validation, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn
from zoo_export import onnx_export, validation
from zoo_export.manifest import FORMAT, FORMAT_VERSION, MANIFEST, load_export
from zoo_export.onnx_export import ExportedFile, export_graph, export_module
from zoo_export.pipeline import ExportOptions, export_model
from zoo_export.runtime import open_export
from zoo_export.sessions import SessionSettings
from zoo_export_testing import MODEL, Exported, assert_clean_exit, manifest_of, task_parity, zoo

from zoo_core.checkpoint import file_sha256, load_checkpoint
from zoo_core.errors import ZooError
from zoo_core.runtime import RuntimeSource, TorchRunner
from zoo_core.spec import GraphSpec, TensorSpec


def test_manifest_records_graphs_sources_and_validation(tiny: Exported) -> None:
    manifest = manifest_of(tiny.export)
    assert (manifest["format"], manifest["format_version"]) == (FORMAT, FORMAT_VERSION)
    assert manifest["model"] == MODEL
    assert manifest["plugin"] == {"distribution": "zoo-tiny", "version": "0.1"}
    assert manifest["opset"] == 18
    checkpoint = tiny.run / "checkpoints" / "last.safetensors"
    assert manifest["source"]["sha256"] == file_sha256(checkpoint)
    assert manifest["config"] == load_checkpoint(checkpoint).config
    assert {"torch", "onnx", "onnxruntime-gpu", "zoo", "zoo-export"} <= set(manifest["versions"])
    assert list(manifest["graphs"]) == ["encoder", "decoder"]
    encoder = manifest["graphs"]["encoder"]
    assert encoder["inputs"][0]["shape"] == ["N", 1, 8, 8]
    assert encoder["inputs"][0]["declared_shape"] == ["N", 1, "image_size", "image_size"]
    assert encoder["inputs"][0]["value_range"] == [0.0, 1.0]
    assert [o["name"] for o in encoder["outputs"]] == ["mu", "logvar"]
    assert [o["shape"] for o in encoder["outputs"]] == [["N", 4], ["N", 4]]
    for name, entry in manifest["graphs"].items():
        assert entry["exporter"] == "dynamo" and entry["exporter_note"] is None
        assert entry["sha256"] == file_sha256(tiny.export / f"{name}.onnx")
        assert entry["fp16"]["file"] == f"{name}.fp16.onnx"
        assert entry["fp16"]["sha256"] == file_sha256(tiny.export / f"{name}.fp16.onnx")
    assert sorted(p.name for p in tiny.export.iterdir()) == sorted(
        [MANIFEST, "encoder.onnx", "encoder.fp16.onnx", "decoder.onnx", "decoder.fp16.onnx"])


def test_validation_covers_random_and_data_inputs_at_two_batches(tiny: Exported) -> None:
    results = manifest_of(tiny.export)["validation"]["results"]
    assert {(r["graph"], r["precision"], r["provider"]) for r in results} >= {
        (g, p, "CPUExecutionProvider") for g in ("encoder", "decoder") for p in ("fp32", "fp16")}
    for result in results:
        assert result["passed"], result
        assert {(c["inputs"], c["batch"]) for c in result["checks"]} == {
            ("random", 1), ("random", 7), ("data", 1), ("data", 7)}
        assert result["tolerance"] == {"fp32": 1e-4, "fp16": 2e-2 if result["graph"] == "decoder" else 1e-2}[
            result["precision"]]
        assert 0 <= result["rel_l2"] <= result["tolerance"] and result["max_abs"] >= 0
        assert result["cpu_nodes"] is None  # recorded for CUDA sessions only


def test_onnx_files_are_single_checked_and_stamped(tiny: Exported) -> None:
    manifest = manifest_of(tiny.export)
    for name in ("encoder", "decoder"):
        path = tiny.export / f"{name}.onnx"
        onnx.checker.check_model(str(path), full_check=True)
        model = onnx.load(str(path), load_external_data=False)
        assert all(not t.external_data for t in model.graph.initializer)
        assert {o.domain: o.version for o in model.opset_import}[""] == 18
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
        props = {p.key: p.value for p in model.metadata_props}
        assert props["zoo_plugin"] == "zoo-tiny" and props["zoo_plugin_version"] == "0.1"
        assert props["zoo_version"] == manifest["zoo_version"] and props["zoo_model"] == MODEL
        stamped = json.loads(props["zoo_graph"])
        assert stamped == {k: manifest["graphs"][name][k] for k in stamped}
        assert stamped["name"] == name and stamped["inputs"] == manifest["graphs"][name]["inputs"]
    decoder = onnx.load(str(tiny.export / "decoder.onnx"))
    assert {"Pad", "InstanceNormalization", "ConvTranspose"} <= {n.op_type for n in decoder.graph.node}


def test_fp16_files_hold_half_weights_and_keep_float_io(tiny: Exported) -> None:
    model = onnx.load(str(tiny.export / "decoder.fp16.onnx"))
    floats = [t for t in model.graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    assert floats and all(t.data_type == onnx.TensorProto.FLOAT16 for t in floats)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnxruntime_runner_matches_torch(tiny: Exported, precision: str) -> None:
    runner = open_export(tiny.export, MODEL, SessionSettings(precision=precision))
    reference = TorchRunner(tiny.model, RuntimeSource(run=tiny.run, device="cpu"))
    assert runner.runtime == "onnxruntime" and runner.config == reference.config
    assert precision in runner.description and "cpu" in runner.description
    images = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    for graph, inputs in (("encoder", (images,)), ("decoder", (torch.randn(5, 4),))):
        got, want = runner.run(graph, *inputs), reference.run(graph, *inputs)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == torch.float32 and g.shape == w.shape
            assert validation.compare([g.numpy()], [w])[1] <= {"fp32": 1e-4, "fp16": 2e-2}[precision]


def test_generate_runs_every_task_on_both_runtimes_alike(tiny: Exported, install_host, tmp_path: Path) -> None:
    install_host(tiny.host)
    for task in tiny.model.spec.tasks:
        problems = task_parity(MODEL, task.name, [], tiny.run, tiny.export, tmp_path / task.name)
        assert not problems, f"{task.name}: {problems}"


def test_cli_exports_newest_run_to_exports_model_by_default(tiny: Exported, install_host, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    install_host(tiny.host)
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny.run, tmp_path / "runs" / MODEL / "20250101-quick")
    result = zoo("export", MODEL, "--graphs", "decoder", "--no-validate")
    assert_clean_exit(result)
    assert "export directory: exports/tiny_vae" in result.stdout
    manifest = manifest_of(tmp_path / "exports" / MODEL)
    assert list(manifest["graphs"]) == ["decoder"]
    assert manifest["validation"] == {"performed": False, "results": [], "notes": []}
    assert manifest["source"]["checkpoint"].startswith("runs/tiny_vae/20250101-quick/checkpoints/")


@pytest.fixture
def reuse_exported_files(tiny: Exported, monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the slow exporter in tests of the directory handling: copy the module's exported file instead."""

    def copy_file(module, inputs, spec, path, opset, properties, precision="fp32", float_io=True,
                  spatial=()) -> ExportedFile:
        shutil.copyfile(tiny.export / path.name, path)
        return ExportedFile(path, "dynamo", None, "float32")

    monkeypatch.setattr(onnx_export, "export_graph", copy_file)  # under export_model_graph


def test_failed_validation_prints_table_exits_1_and_keeps_previous_export(
        tiny: Exported, install_host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reuse_exported_files) -> None:
    install_host(tiny.host)
    out = tmp_path / "export"
    shutil.copytree(tiny.export, out)
    before = {p.name: file_sha256(p) for p in out.iterdir()}
    monkeypatch.setattr(validation, "compare", lambda outputs, references: (0.5, 0.25))  # ORT disagrees
    result = zoo("export", MODEL, "--run", tiny.run, "--out", out, "--graphs", "decoder", "--force")
    assert_clean_exit(result, 1)
    assert "FAILED" in result.stderr and "rel L2" in result.stderr
    assert "export validation failed for decoder (fp32, CPUExecutionProvider)" in result.stderr
    assert f"{out} is unchanged" in result.stderr
    assert {p.name: file_sha256(p) for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no partial or backup directory left


def test_failed_first_export_writes_nothing(tiny: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           reuse_exported_files) -> None:
    monkeypatch.setattr(validation, "compare", lambda outputs, references: (0.5, 0.25))
    with pytest.raises(ZooError, match="nothing was written"):
        export_model(tiny.model, ExportOptions(run=tiny.run, out=tmp_path / "new", graphs=["decoder"],
                                               log=lambda line: None))
    assert list(tmp_path.iterdir()) == []


def test_successful_export_replaces_previous_one(tiny: Exported, tmp_path: Path, reuse_exported_files) -> None:
    out = tmp_path / "export"
    shutil.copytree(tiny.export, out)
    (out / "decoder.onnx").write_bytes(b"stale")
    export_model(tiny.model, ExportOptions(run=tiny.run, out=out, graphs=["decoder"], force=True,
                                           log=lambda line: None))
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, "decoder.onnx"])
    assert load_export(out, MODEL).graph_names == ["decoder"]  # the hashes of the new files check out
    assert all(r["passed"] for r in manifest_of(out)["validation"]["results"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


class Noisy(nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + torch.randn_like(z)


class DataDependent(nn.Module):
    """Branches on a value, which torch.export cannot trace; the TorchScript tracer records one branch."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.abs().sum() >= 0:
            return z * 2
        return z


LATENT_GRAPH = GraphSpec("g", "z → y", (TensorSpec("z", ("N", 3)),), (TensorSpec("y", ("N", 3)),), 0.0)


def test_random_node_in_a_graph_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match=r"random nodes .*RandomNormalLike.*pass noise in as an input"):
        export_graph(Noisy(), (torch.zeros(2, 3),), LATENT_GRAPH, tmp_path / "g.onnx", 18, {})


def test_torchscript_exporter_is_the_recorded_fallback(tmp_path: Path) -> None:
    exporter, note = export_module(DataDependent(), (torch.ones(2, 3),), LATENT_GRAPH, tmp_path / "g.onnx", 18)
    assert exporter == "torchscript"
    assert note.startswith("dynamo exporter failed: ") and len(note) < 400 and "\x1b" not in note
    from zoo_export.sessions import GraphSession

    session = GraphSession(tmp_path / "g.onnx")
    (out,) = session.run_numpy([np.ones((5, 3), dtype=np.float32)])
    np.testing.assert_allclose(out, 2 * np.ones((5, 3)))


def test_fp16_io_export_takes_and_returns_half_tensors(tiny: Exported, tmp_path: Path) -> None:
    out = export_model(tiny.model, ExportOptions(run=tiny.run, out=tmp_path / "export", graphs=["decoder"],
                                                 fp16=True, fp16_io=True, log=lambda line: None))
    model = onnx.load(str(out / "decoder.fp16.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    entry = manifest_of(out)["graphs"]["decoder"]
    assert entry["io_dtype"] == "float32" and entry["fp16"]["io_dtype"] == "float16"
    assert [r["passed"] for r in manifest_of(out)["validation"]["results"]] == [True, True]
    (image,) = open_export(out, MODEL, SessionSettings(precision="fp16")).run("decoder", torch.zeros(3, 4))
    assert image.dtype == torch.float32 and image.shape == (3, 1, 8, 8)
