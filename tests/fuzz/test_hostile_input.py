"""One regression test per defect of issue 12 (hostile input and data safety), numbered as in the issue."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from safetensors.torch import save

from zoo_core.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from zoo_core.cli import cli
from zoo_core.config import parse_assignment, resolve_config
from zoo_core.data.errors import DataError
from zoo_core.errors import UsageError, ZooError
from zoo_core.registry import registered_model
from zoo_core.testing import invoke

ZOO = str(Path(sys.executable).parent / "zoo")


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (the FIFO cases used to block forever)."""
    def expired(signum: int, frame: object) -> None:
        raise AssertionError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def one_error_line(result: object, code: int, *fragments: str) -> str:
    stderr = result.stderr  # type: ignore[attr-defined]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert result.exit_code == code, stderr  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("zoo: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def checkpoint_parts(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    ckpt = load_checkpoint(path)
    return dict(ckpt.tensors), dict(ckpt.meta)


def rewrite_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: object) -> None:
    path.write_bytes(save(tensors, metadata={"zoo": json.dumps(meta)}))


def png(path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 6), (10, 200, 30)).save(path)
    return path


# 1 ---------------------------------------------------------------------------------------------------------------
def idx(magic: int, dims: list[int], body: bytes) -> bytes:
    return magic.to_bytes(4, "big")[:3] + bytes([len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + body


def test_1_idx_dims_that_overflow_int64_and_gzip_bombs_are_refused(tmp_path: Path) -> None:
    from zoo_core.data.mnist import load_mnist, read_idx

    overflow = tmp_path / "overflow"
    overflow.write_bytes(idx(2051, [2**32 - 1, 2**32 - 1, 2**31], b""))  # the product wraps to 0 in int64
    with pytest.raises(DataError, match="declares dims"):
        read_idx(overflow, 2051)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(idx(2051, [2, 28, 28], b"")) + gzip.compress(b"\0" * (256 << 20)))  # 256 MiB behind 2 images
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx(2049, [2], b"\0\1"))
    with deadline(30), pytest.raises(DataError, match="truncated or corrupt"):
        load_mnist(tmp_path)


# 2 ---------------------------------------------------------------------------------------------------------------
def test_2_celeba_tables_with_binary_junk_or_paths_leaving_the_folder(tmp_path: Path) -> None:
    from zoo_core.data.folders import load_celeba

    png(tmp_path / "img_align_celeba" / "000001.jpg")
    png(tmp_path / "secret.jpg")
    table = tmp_path / "list_attr_celeba.txt"
    table.write_bytes(b"1\nEyeglasses Male\n000001.jpg \xff\xfe 1\n")
    with pytest.raises(DataError, match="not UTF-8"):
        load_celeba(tmp_path, 8, ["Eyeglasses"])
    table.write_text("2\nEyeglasses Male\n000001.jpg 1 -1\n../secret.jpg 1 1\n")
    with pytest.raises(DataError, match="leaves"):
        load_celeba(tmp_path, 8, ["Eyeglasses"])
    (tmp_path / "list_attr_celeba.txt").unlink()
    (tmp_path / "list_attr_celeba.csv").write_text("image_id,Eyeglasses\n000001.jpg,1\n/etc/passwd,1\n")
    with pytest.raises(DataError, match="leaves"):
        load_celeba(tmp_path, 8, ["Eyeglasses"])
    (tmp_path / "list_attr_celeba.csv").write_text("image_id,Eyeglasses\n000001.jpg,1\n000001.jpg,")  # found by fuzz
    with pytest.raises(DataError, match="a row has no values"):
        load_celeba(tmp_path, 8, ["Eyeglasses"])


# 3 ---------------------------------------------------------------------------------------------------------------
def test_3_pipes_inside_class_folders_are_skipped_and_counted(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from zoo_core.data.folders import image_files, load_image_folder

    png(tmp_path / "cats" / "a.png")
    png(tmp_path / "dogs" / "deep" / "b.png")
    os.mkfifo(tmp_path / "cats" / "pipe.png")
    os.mkfifo(tmp_path / "dogs" / "deep" / "pipe.jpg")
    (tmp_path / "dogs" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with deadline(30):
        images = load_image_folder(tmp_path, 8)
        assert len(images) == 2
        assert "skipped 1 entries in" in capsys.readouterr().err
        assert [p.name for p in image_files(tmp_path / "dogs")] == ["b.png"]
    assert "skipped 2 entries" in capsys.readouterr().err  # the pipe and the dangling link under dogs/


# 4 ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("damage", "fragment"), [
    (lambda meta: meta.update(config="not an object"), "config must be a JSON object"),
    (lambda meta: meta["config"].pop("h_dim"), "config lacks h_dim"),
    (lambda meta: meta["config"].update(z_dim=-1), "z_dim must be at least 1"),
    (lambda meta: meta["config"].update(h_dim=10**7), "h_dim must be at most"),
    (lambda meta: meta["config"].update(h_dim="big"), "config h_dim is 'big'"),
])
def test_4_checkpoint_metadata_is_checked_before_anything_is_built(tiny_run: Path, tmp_path: Path,
                                                                   damage, fragment: str) -> None:
    from zoo_core.models import load_model

    tensors, meta = checkpoint_parts(tiny_run / "checkpoints" / "last.safetensors")
    damage(meta)
    meta.pop("tensors_sha256")
    path = tmp_path / "c.safetensors"
    rewrite_checkpoint(path, tensors, meta)
    with pytest.raises(ZooError, match=fragment):
        load_model(registered_model("ae_mnist"), checkpoint=path, device="cpu", log=None)


def test_4_a_non_object_zoo_field_is_one_error(tiny_run: Path, tmp_path: Path) -> None:
    tensors, _ = checkpoint_parts(tiny_run / "checkpoints" / "last.safetensors")
    path = tmp_path / "c.safetensors"
    rewrite_checkpoint(path, tensors, [1, 2])
    with pytest.raises(ZooError, match="must be a JSON object"):
        load_checkpoint(path)


@pytest.mark.parametrize(("part", "fragment"), [
    ("config-truncated", "not valid JSON"),
    ("config-bytes", "not UTF-8"),
    ("config-seed", "seed must be an integer"),
    ("position", "position.batch must be a non-negative integer"),
])
def test_4_run_directories_are_checked_on_resume(tiny_run: Path, tmp_path: Path, part: str, fragment: str) -> None:
    from zoo_core.engine import TrainOptions, train

    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    config = run / "config.json"
    if part == "config-truncated":
        config.write_bytes(config.read_bytes()[:40])
    elif part == "config-bytes":
        config.write_bytes(b"\xff" + config.read_bytes())
    elif part == "config-seed":
        config.write_text(json.dumps({**json.loads(config.read_text()), "seed": -3}))
    else:
        tensors, meta = checkpoint_parts(run / "checkpoints" / "last.safetensors")
        meta["position"]["batch"] = -5
        rewrite_checkpoint(run / "checkpoints" / "last.safetensors", tensors, meta)
    with pytest.raises(ZooError, match=fragment):
        train(registered_model("ae_mnist"), TrainOptions(resume=run, max_steps=6, progress=False, device="cpu"))


def test_4_a_torn_last_metrics_line_is_dropped_other_damage_refused(tmp_path: Path) -> None:
    from zoo_core.validate import read_metrics

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"epoch": 1, "train": {"loss": 1.0}}\n{"epoch": 2, "tra')
    assert [row["epoch"] for row in read_metrics(metrics)] == [1]
    metrics.write_text('{"epoch": 1}\n[oops]\n{"epoch": 2}\n')
    with pytest.raises(ZooError, match=":2: not a metrics row"):
        read_metrics(metrics)


# 5 ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("edit", "fragment"), [
    (lambda m: m.update(graphs=[]), "graphs must be a non-empty object"),
    (lambda m: m["graphs"]["decoder"].pop("sha256"), "sha256 must be 64 lowercase hex digits"),
    (lambda m: m["graphs"]["decoder"]["outputs"][0].update(value_range=[None, None]), "value_range"),
    (lambda m: m["graphs"]["decoder"].update(file="../outside.onnx"), "must be a plain .onnx or .pt2 or .pte file name"),
    (lambda m: m["graphs"]["decoder"].update(file="/tmp/outside.onnx"), "must be a plain .onnx or .pt2 or .pte file name"),
])
def test_5_manifests_are_checked_against_their_schema(tiny_export: Path, tmp_path: Path, edit,
                                                      fragment: str) -> None:
    from zoo_export.manifest import load_export

    export = Path(shutil.copytree(tiny_export, tmp_path / "export"))
    manifest = json.loads((export / "manifest.json").read_text())
    edit(manifest)
    (export / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ZooError, match=fragment):
        load_export(export, "ae_mnist")


def test_5_a_swapped_graph_file_with_a_matching_sha_is_one_line(tiny_export: Path, tmp_path: Path) -> None:
    from zoo_export.runtime import open_export
    from zoo_export.sessions import SessionSettings

    export = Path(shutil.copytree(tiny_export, tmp_path / "export"))
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["graphs"]["decoder"].update(file="encoder.onnx", sha256=file_sha256(export / "encoder.onnx"))
    (export / "manifest.json").write_text(json.dumps(manifest))
    runner = open_export(export, "ae_mnist", SessionSettings(device="cpu"))
    with pytest.raises(ZooError, match="the file was swapped or edited"):
        runner.run("decoder", torch.zeros(2, 4))


# 6 and 8 ---------------------------------------------------------------------------------------------------------
def test_6_8_export_out_never_replaces_what_zoo_did_not_write(tiny_run: Path, tiny_export: Path,
                                                              tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    one_error_line(invoke("export", "ae_mnist", "--run", tiny_run, "--out", a_file), 2, "is a file")
    one_error_line(invoke("export", "ae_mnist", "--run", tiny_run, "--out", "/dev/null"), 2, "is a file")
    one_error_line(invoke("export", "ae_mnist", "--run", tiny_run, "--out", a_file / "below"), 2,
                   "is not a directory")
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "mine.txt").write_text("mine")
    one_error_line(invoke("export", "ae_mnist", "--run", tiny_run, "--out", tmp_path / "new" / ".." / "existing"),
                   2, "not a zoo export")
    only_manifest = tmp_path / "only-manifest"
    only_manifest.mkdir()
    (only_manifest / "manifest.json").write_text("{}")
    (only_manifest / "mine.txt").write_text("mine")
    one_error_line(invoke("export", "ae_mnist", "--run", tiny_run, "--out", only_manifest), 2,
                   "not a valid zoo export manifest")
    previous = Path(shutil.copytree(tiny_export, tmp_path / "previous"))
    one_error_line(invoke("export", "ae_mnist", "--run", tiny_run, "--out", previous, "--no-validate"), 2,
                   "pass --force")
    (previous / "notes.txt").write_text("mine")
    one_error_line(invoke("export", "ae_mnist", "--run", tiny_run, "--out", previous, "--no-validate", "--force"), 2,
                   "notes.txt")
    assert a_file.read_text() == "mine" and (existing / "mine.txt").read_text() == "mine"
    assert (only_manifest / "mine.txt").read_text() == "mine" and (previous / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "new").exists()


def test_8_train_out_never_overwrites_an_existing_run(tiny_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    (run / "checkpoints" / "last.safetensors").unlink()  # a run killed before its first checkpoint
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    one_error_line(invoke("train", "ae_mnist", "--out", run, "--max-steps", "1", "--device", "cpu"), 2,
                   "is not empty")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


# 7 ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("assignment", ["epochs=null", "lr=null", "z_dim=1e30", "embedded_items=1e8", "h_dim=-1",
                                        "lr=1e999", "batch_size=[1]"])
def test_7_every_number_from_the_user_has_a_range(assignment: str) -> None:
    with pytest.raises(UsageError):
        resolve_config(registered_model("ae_mnist").spec, "quick", dict([parse_assignment(assignment)]))


@pytest.mark.parametrize("seed", ["-1", "1" * 25])
def test_7_seeds_out_of_range_are_usage_errors(seed: str, tmp_path: Path) -> None:
    one_error_line(invoke("train", "ae_mnist", "--seed", seed, "--out", tmp_path / "r"), 2, "--seed")


def test_7_a_z_file_claiming_a_huge_shape_is_refused_unread(tmp_path: Path) -> None:
    from zoo_ae_mnist.tasks import load_codes

    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 20), }".ljust(117) + "\n"
    path = tmp_path / "codes.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(80))
    with pytest.raises(ZooError, match=r"not a readable \.npy array"):
        load_codes(path, 20)


@pytest.mark.parametrize("threads", ["99999", "1000", "²", "-1"])
def test_7_ort_threads_have_a_range(threads: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo_export.sessions import SessionSettings

    monkeypatch.setenv("ZOO_ORT_THREADS", threads)
    with pytest.raises(UsageError, match="ZOO_ORT_THREADS"):
        SessionSettings.from_env("cpu")


# 9 ---------------------------------------------------------------------------------------------------------------
def test_9_resume_removes_what_killed_saves_left(tiny_run: Path, tmp_path: Path) -> None:
    from zoo_core.engine import TrainOptions, train

    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    leftovers = [run / "checkpoints" / ".last.safetensors.x1y2z3w4.tmp", run / "checkpoints" / ".tmpAbC123",
                 run / ".config.json.abcdefgh.tmp"]
    for path in leftovers:
        path.write_bytes(b"half a save")
    (run / "checkpoints" / "keep.me").write_bytes(b"not zoo's")
    train(registered_model("ae_mnist"), TrainOptions(resume=run, max_steps=6, progress=False, device="cpu"))
    assert not any(path.exists() for path in leftovers)
    assert (run / "checkpoints" / "keep.me").exists()


def test_9_the_next_export_removes_a_killed_exports_stage_and_restores_its_backup(
        tiny_run: Path, tiny_export: Path, tmp_path: Path) -> None:
    stage = tmp_path / ".export.partial-abcd1234"
    stage.mkdir()
    (stage / "decoder.onnx").write_bytes(b"half")
    backup = tmp_path / ".export.old-abcd1234"
    shutil.copytree(tiny_export, backup / "export")  # the previous export, moved aside just before the kill
    result = invoke("export", "ae_mnist", "--run", tiny_run, "--out", tmp_path / "export", "--no-validate")
    assert "restored the previous export" in result.stderr
    one_error_line_after(result, 2, "pass --force")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    assert (tmp_path / "export" / "manifest.json").read_bytes() == (tiny_export / "manifest.json").read_bytes()


def one_error_line_after(result: object, code: int, fragment: str) -> None:
    """The last stderr line is the one error (informational lines may come first)."""
    assert result.exit_code == code, result.stderr  # type: ignore[attr-defined]
    assert fragment in result.stderr.strip().splitlines()[-1]  # type: ignore[attr-defined]


# 10 --------------------------------------------------------------------------------------------------------------
def test_10_checkpoints_follow_the_umask_like_other_run_files(tmp_path: Path) -> None:
    saved = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "c.safetensors", {"net": torch.nn.Linear(2, 2)}, {"model": "m"})
        (tmp_path / "other.json").write_text("{}")
    finally:
        os.umask(saved)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "other.json").stat().st_mode) == 0o644


# 11 and 15 -------------------------------------------------------------------------------------------------------
def test_11_bench_with_a_broken_graph_exits_non_zero(tiny_export: Path, tmp_path: Path) -> None:
    export = Path(shutil.copytree(tiny_export, tmp_path / "export"))
    (export / "decoder.onnx").write_bytes(b"not onnx")
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["graphs"]["decoder"]["sha256"] = file_sha256(export / "decoder.onnx")
    (export / "manifest.json").write_text(json.dumps(manifest))
    done = subprocess.run([ZOO, "bench", "ae_mnist", "--export", str(export), "--graphs", "decoder",
                           "--runtimes", "torch,onnxruntime", "--batch-sizes", "2", "--device", "cpu",
                           "--min-seconds", "0.01", "--max-seconds", "0.05", "--min-runs", "1",
                           "--warmup-seconds", "0", "--peak-size", "512", "--no-progress"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("zoo: 1 of the cells failed")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_15_bench_on_an_absent_cuda_is_a_usage_error() -> None:
    one_error_line(invoke("bench", "ae_mnist", "--device", "cuda"), 2, "no CUDA device")


def test_15_a_failed_download_says_why_and_leaves_no_empty_folders(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision
    from zoo_ae_mnist.download import download_mnist

    def offline(root: str, train: bool, download: bool) -> None:
        raw = Path(root) / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        (raw / "train-images-idx3-ubyte.gz").write_bytes(b"")
        try:
            raise OSError("[Errno -3] Temporary failure in name resolution")
        except OSError as error:
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:") from error

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataError, match="name resolution"):
        download_mnist(tmp_path / "mnist")
    assert list(tmp_path.iterdir()) == []


# 12 --------------------------------------------------------------------------------------------------------------
def test_12_bit_flipped_tensor_data_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    data = bytearray((tiny_run / "checkpoints" / "last.safetensors").read_bytes())
    data[-3] ^= 0x10  # the last tensor's bytes: the header (and its metadata) stay intact
    path = tmp_path / "flipped.safetensors"
    path.write_bytes(bytes(data))
    with pytest.raises(ZooError, match="does not match the checksum"):
        load_checkpoint(path)


# 13 --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../evil", "a/b", "", ".hidden", "x" * 65, "sp ace"])
def test_13_plugin_names_must_be_safe_identifiers(name: str) -> None:
    from zoo_core.spec import GraphSpec, ModelSpec, NetworkSpec, Preset, TensorSpec

    preset = Preset("quick", "", {"epochs": 1})
    graph = GraphSpec("g", "", (TensorSpec("x", ("N", 2)),), (TensorSpec("y", ("N", 2)),), 0.0)
    with pytest.raises(ValueError, match="not a safe identifier"):
        ModelSpec(name, "", "m:R", (NetworkSpec("n", "", 1),), (graph,), (preset,), card_preset="quick",
                  gpu_preset="quick")
    with pytest.raises(ValueError, match="not a safe identifier"):
        ModelSpec("fine", "", "m:R", (NetworkSpec("n", "", 1),), (graph,), (Preset(name, "", {}), preset),
                  card_preset="quick", gpu_preset="quick")


def test_13_a_plugin_with_a_bad_name_is_a_load_error_of_that_plugin_only() -> None:
    from zoo_core import hookimpl, plugins
    from zoo_core.spec import GraphSpec, ModelSpec, NetworkSpec, Preset, TensorSpec

    class Evil:
        @hookimpl
        def zoo_register_models(self, register: object) -> None:
            graph = GraphSpec("g", "", (TensorSpec("x", ("N", 2)),), (TensorSpec("y", ("N", 2)),), 0.0)
            register(ModelSpec("../../evil", "", "m:R", (NetworkSpec("n", "", 1),), (graph,),
                               (Preset("quick", "", {}),), card_preset="quick", gpu_preset="quick"))

    lines: list[str] = []
    host = plugins.PluginHost(warn=lines.append)
    host.register(Evil(), "zoo-evil", "1.0")
    host.collect()
    assert "../../evil" not in host.models
    assert any("zoo-evil" in line and "not a safe identifier" in line for line in lines)


# 14 --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raised", [AttributeError("partially initialized module 'torch._dynamo'"),
                                    KeyboardInterrupt()])
def test_14_only_conversion_errors_fall_back_to_torchscript(tiny_run: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            raised: BaseException) -> None:
    from zoo_export import onnx_export

    def interrupted(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(onnx_export, "_export_dynamo", interrupted)
    monkeypatch.setattr(onnx_export, "_export_torchscript", lambda *a, **k: pytest.fail("fell back"))
    result = invoke("export", "ae_mnist", "--run", tiny_run, "--out", tmp_path / "export", "--no-validate")
    if isinstance(raised, KeyboardInterrupt):
        assert result.exit_code == 130, result.stderr
    else:
        assert isinstance(result.exception, AttributeError)  # a bug surfaces as one, it is not papered over
    assert list(tmp_path.iterdir()) == []  # no export, no staged directory


# 16 --------------------------------------------------------------------------------------------------------------
def test_16_a_state_dict_mismatch_names_the_keys(tmp_path: Path) -> None:
    from zoo_core.checkpoint import restore_networks

    path = save_checkpoint(tmp_path / "c.safetensors", {"net": torch.nn.Linear(2, 3)}, {"model": "m"})
    with pytest.raises(ZooError, match=r"shape of weight \[3, 2\] vs \[4, 2\]"):
        restore_networks({"net": torch.nn.Linear(2, 4)}, load_checkpoint(path))
    with pytest.raises(ZooError, match=r"missing 0\.weight"):
        restore_networks({"net": torch.nn.Sequential(torch.nn.Linear(2, 3))}, load_checkpoint(path))


def test_16_warnings_add_no_line_to_an_error_and_input_is_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    @click.command("warn-then-fail")
    @click.argument("text")
    def warn_then_fail(text: str) -> None:
        warnings.warn("numpy said something", RuntimeWarning, stacklevel=1)
        np.zeros(1) / 0  # a real library warning, too
        raise ZooError(f"bad input {text}")

    # registered for this test only: the global `cli` must not carry it into later tests
    monkeypatch.setitem(cli.commands, "warn-then-fail", warn_then_fail)
    one_error_line(invoke("warn-then-fail", "two\nlines\x1b[31m"), 1, "bad input two\\nlines\\x1b[31m")
    one_error_line(invoke("info", "evil\nname"), 2, "evil\\nname")


def test_16_the_test_command_left_the_cli_as_it_was() -> None:
    """Runs after the test above (file order): the command it registered is gone from the global `cli`."""
    assert "warn-then-fail" not in cli.commands
    assert invoke("warn-then-fail", "x").exit_code == 2  # click's "No such command"


def test_16_a_tiny_peak_matmul_is_refused() -> None:
    one_error_line(invoke("bench", "ae_mnist", "--peak-size", "64"), 2, "--peak-size")
