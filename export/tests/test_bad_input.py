"""Bad exports, bad batches and bad export commands: one clear line, a non-zero exit, nothing overwritten."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from zoo_export.manifest import MANIFEST
from zoo_export.runtime import OnnxRunner, open_export
from zoo_export.sessions import SessionSettings
from zoo_export_testing import MODEL, Exported, assert_one_line_error, manifest_of, zoo

from zoo_core.checkpoint import file_sha256
from zoo_core.errors import UsageError, ZooError


@pytest.fixture
def export_copy(tiny: Exported, tmp_path: Path) -> Path:
    """A private copy of the shared export, for a test to damage."""
    return Path(shutil.copytree(tiny.export, tmp_path / "export"))


@pytest.fixture
def previous_output(tmp_path: Path) -> Path:
    """An output a failed `zoo generate` must leave alone."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "samples.png").write_bytes(b"an earlier result")
    return out


def edit_manifest(directory: Path, change) -> None:
    manifest = manifest_of(directory)
    change(manifest)
    (directory / MANIFEST).write_text(json.dumps(manifest))


def generate_on(export: Path, out: Path, task: str = "sample"):
    return zoo("generate", MODEL, task, "--runtime", "onnxruntime", "--export", export, "--device", "cpu",
               "--out", out)


def test_truncated_onnx_is_one_line_and_leaves_output_alone(tiny: Exported, install_host, export_copy: Path,
                                                            previous_output: Path) -> None:
    install_host(tiny.host)
    path = export_copy / "decoder.onnx"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    edit_manifest(export_copy, lambda m: m["graphs"]["decoder"].update(sha256=file_sha256(path)))
    result = generate_on(export_copy, previous_output)
    assert_one_line_error(result, 1, "decoder.onnx: onnxruntime cannot load it", "export the model again")
    assert (previous_output / "samples.png").read_bytes() == b"an earlier result"


@pytest.mark.parametrize("damage", ["file", "manifest"])
def test_sha256_mismatch_is_refused_before_running(tiny: Exported, install_host, export_copy: Path,
                                                   previous_output: Path, damage: str) -> None:
    install_host(tiny.host)
    if damage == "file":
        path = export_copy / "encoder.onnx"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        edit_manifest(export_copy, lambda m: m["graphs"]["encoder"].update(sha256="0" * 64))
    result = generate_on(export_copy, previous_output)
    assert_one_line_error(result, 1, "encoder.onnx does not match the sha256 in manifest.json",
                          f"zoo export {MODEL}")
    assert (previous_output / "samples.png").read_bytes() == b"an earlier result"


def test_missing_file_is_named(tiny: Exported, install_host, export_copy: Path, tmp_path: Path) -> None:
    install_host(tiny.host)
    (export_copy / "decoder.fp16.onnx").unlink()
    assert_one_line_error(generate_on(export_copy, tmp_path / "out"), 1, "decoder.fp16.onnx is missing")


def test_missing_graph_is_named_when_a_task_needs_it(tiny: Exported, install_host, export_copy: Path,
                                                     tmp_path: Path) -> None:
    install_host(tiny.host)
    edit_manifest(export_copy, lambda m: m["graphs"].pop("encoder"))
    (export_copy / "encoder.onnx").unlink()
    result = generate_on(export_copy, tmp_path / "out", task="reconstruct")
    assert_one_line_error(result, 1, "has no graph 'encoder' (it holds decoder)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda m: m.update(format_version=2), "has export format 2, newer than the 1 this zoo-export reads"),
    (lambda m: m.update(format="something-else"), "is not a zoo export manifest"),
    (lambda m: m.update(model="ae_mnist"), "is an export of 'ae_mnist', not 'tiny_vae'"),
    (lambda m: m.pop("config"), "lacks config"),
])
def test_unusable_manifest_is_one_line(tiny: Exported, install_host, export_copy: Path, tmp_path: Path,
                                       change, fragment: str) -> None:
    install_host(tiny.host)
    edit_manifest(export_copy, change)
    assert_one_line_error(generate_on(export_copy, tmp_path / "out"), 1, fragment)


def test_unreadable_manifest_and_missing_export(tiny: Exported, install_host, export_copy: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    install_host(tiny.host)
    (export_copy / MANIFEST).write_text("{ not json")
    assert_one_line_error(generate_on(export_copy, tmp_path / "out"), 1, "is not readable JSON")
    (export_copy / MANIFEST).unlink()
    assert_one_line_error(generate_on(export_copy, tmp_path / "out"), 1, "has no manifest.json")
    monkeypatch.chdir(tmp_path)
    result = zoo("generate", MODEL, "sample", "--runtime", "onnxruntime", "--device", "cpu")
    assert_one_line_error(result, 1, "no export directory at exports/tiny_vae", f"run `zoo export {MODEL}`")


def test_onnxruntime_with_a_run_directory_points_at_export(tiny: Exported, install_host, tmp_path: Path) -> None:
    install_host(tiny.host)
    result = zoo("generate", MODEL, "sample", "--runtime", "onnxruntime", "--run", tiny.run, "--out", tmp_path)
    assert_one_line_error(result, 1, "runs an export, not a run or checkpoint", "--export DIR")


def test_bad_runtime_settings_are_usage_errors(tiny: Exported, install_host, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    install_host(tiny.host)
    monkeypatch.setenv("ZOO_ORT_PRECISION", "fp8")
    assert_one_line_error(generate_on(tiny.export, tmp_path / "out"), 2, "precision must be fp32, fp16 or int8")
    monkeypatch.setenv("ZOO_ORT_PRECISION", "fp16")
    monkeypatch.setenv("ZOO_ORT_THREADS", "many")
    assert_one_line_error(generate_on(tiny.export, tmp_path / "out"), 2, "ZOO_ORT_THREADS must be a whole number")


def test_fp16_asked_of_an_export_without_fp16(tiny: Exported, export_copy: Path) -> None:
    edit_manifest(export_copy, lambda m: m["graphs"]["decoder"].update(fp16=None))
    runner = open_export(export_copy, MODEL, SessionSettings(precision="fp16"))
    with pytest.raises(ZooError, match=r"no fp16 file for graph 'decoder'.*--fp16"):
        runner.run("decoder", torch.zeros(2, 4))


@pytest.fixture(scope="module")
def runner(tiny: Exported) -> OnnxRunner:
    return open_export(tiny.export, MODEL, SessionSettings())


@pytest.mark.parametrize(("inputs", "fragment"), [
    (lambda: (torch.rand(2, 1, 8, 9),), "input image must have shape [N,1,8,8], got [2,1,8,9]"),
    (lambda: (torch.rand(2, 8, 8),), "input image must have shape [N,1,8,8], got [2,8,8]"),
    (lambda: (torch.rand(2, 1, 8, 8, dtype=torch.float64),), "input image must be float32, got float64"),
    (lambda: (torch.rand(2, 1, 8, 8) * 255,), "input image must lie in [0,1]"),
    (lambda: (torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)), "takes 1 inputs (image), got 2"),
])
def test_bad_batches_are_refused(runner: OnnxRunner, inputs, fragment: str) -> None:
    with pytest.raises(ZooError) as caught:
        runner.run("encoder", *inputs())
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_unknown_graph_is_refused(runner: OnnxRunner) -> None:
    with pytest.raises(ZooError, match="has no graph 'generator'"):
        runner.run("generator", torch.zeros(1, 4))


def test_device_other_than_cpu_or_cuda_is_refused() -> None:
    with pytest.raises(UsageError, match="cpu or cuda"):
        SessionSettings.resolve("mps")


# -- zoo export ------------------------------------------------------------------------------------------------
def test_export_refuses_unknown_graph(tiny: Exported, install_host, tmp_path: Path) -> None:
    install_host(tiny.host)
    result = zoo("export", MODEL, "--run", tiny.run, "--out", tmp_path / "x", "--graphs", "decoder,generator")
    assert_one_line_error(result, 2, "has no graph 'generator'", "its graphs: encoder, decoder")
    assert not (tmp_path / "x").exists()


def test_export_never_replaces_a_directory_that_is_not_an_export(tiny: Exported, install_host,
                                                                 tmp_path: Path) -> None:
    install_host(tiny.host)
    (tmp_path / "mine.txt").write_text("precious")
    result = zoo("export", MODEL, "--run", tiny.run, "--out", tmp_path)
    assert_one_line_error(result, 2, "not a zoo export", "choose another --out")
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_export_refuses_run_and_checkpoint_together(tiny: Exported, install_host, tmp_path: Path) -> None:
    install_host(tiny.host)
    checkpoint = tiny.run / "checkpoints" / "last.safetensors"
    result = zoo("export", MODEL, "--run", tiny.run, "--checkpoint", checkpoint, "--out", tmp_path / "x")
    assert_one_line_error(result, 2, "either --run or --checkpoint")


def test_export_without_a_trained_run(tiny: Exported, install_host, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    install_host(tiny.host)
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(zoo("export", MODEL), 1, "no trained tiny_vae found", "--run RUN_DIR")
    assert list(tmp_path.iterdir()) == []


def test_export_of_a_truncated_checkpoint(tiny: Exported, install_host, tmp_path: Path) -> None:
    install_host(tiny.host)
    checkpoint = tmp_path / "last.safetensors"
    source = (tiny.run / "checkpoints" / "last.safetensors").read_bytes()
    checkpoint.write_bytes(source[: len(source) // 3])
    result = zoo("export", MODEL, "--checkpoint", checkpoint, "--out", tmp_path / "x")
    assert_one_line_error(result, 1, "not a readable safetensors checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors"]
