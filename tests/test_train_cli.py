"""`zoo train` from the command line: bad input is one line and exit 2, flags reach the run, Ctrl-C is exit 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from zoo_core.checkpoint import load_checkpoint
from zoo_core.cli import cli
from zoo_core.engine import TrainOptions, train
from zoo_core.registry import registered_model
from zoo_core.testing import torch_threads

ae_plugin = pytest.importorskip("zoo_ae_mnist.plugin", reason="the ae_mnist plugin is not installed")

TINY = ("--set", "embedded_items=80", "--batch-size", "16", "--no-progress")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny networks run fastest on one thread, and far faster on a machine loaded by other work."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo-cache")


@pytest.fixture(autouse=True)
def ae_host(make_host, cache_dir: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Only the core and ae_mnist are registered; embedded digits are cached in a temp folder."""
    monkeypatch.setenv("ZOO_CACHE_DIR", str(cache_dir))
    return make_host((ae_plugin, "zoo-ae-mnist", "0.1.0"))


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="zoo")


@pytest.mark.parametrize(("args", "message"), [
    (("--epochs", "-1"), "'--epochs': -1 is not in the range x>=1"),
    (("--set", "epochs=-1"), "epochs must be at least 1, got -1"),
    (("--epochs", "0"), "'--epochs': 0 is not in the range"),
    (("--preset", "huge"), "model ae_mnist has no preset 'huge'; presets: book, quick"),
    (("--data", "no/such/dir"), "'--data': Directory 'no/such/dir' does not exist"),
    (("--set", "zdim=3"), "has no setting 'zdim' (did you mean z_dim?)"),
    (("--set", "batch_size=many"), "batch_size must be an integer like 64, got 'many'"),
    (("--set", "amp=maybe"), "amp must be true or false, got 'maybe'"),
    (("--set", "novalue"), "--set takes KEY=VALUE, got 'novalue'"),
    (("--lr", "0"), "'--lr': 0.0 is not in the range x>0"),
    (("--device", "tpu"), "'--device': 'tpu' is not one of"),
    (("--val-split", "1.5"), "'--val-split': 1.5 is not in the range"),
])
def test_bad_training_input_is_one_line_and_exit_2(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    result = invoke("train", "ae_mnist", *args, "--out", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("zoo: "), result.stderr
    assert message in result.stderr
    assert not (tmp_path / "run").exists()


def test_unknown_model_is_one_line_and_exit_2() -> None:
    result = invoke("train", "ae_mnst")
    assert result.exit_code == 2
    assert result.stderr == "zoo: unknown model 'ae_mnst'; did you mean ae_mnist?\n"


def test_resume_with_out_is_refused(tmp_path: Path) -> None:
    result = invoke("train", "ae_mnist", "--resume", str(tmp_path), "--out", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert result.stderr == "zoo: --resume continues a run in place; drop --out\n"


def test_a_folder_without_mnist_files_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = invoke("train", "ae_mnist", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "no MNIST IDX files in" in result.stderr
    assert not (tmp_path / "run").exists()


def test_flags_and_overrides_reach_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = invoke("train", "ae_mnist", *TINY, "--epochs", "1", "--lr", "0.002", "--seed", "5",
                    "--val-split", "0.25", "--set", "z_dim=8", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"run directory: {out}"
    record = json.loads((out / "config.json").read_text())
    assert record["preset"] == "quick" and record["seed"] == 5
    assert record["overrides"] == {"embedded_items": 80, "z_dim": 8, "epochs": 1, "batch_size": 16, "lr": 0.002}
    assert record["config"]["z_dim"] == 8 and record["config"]["lr"] == 0.002
    assert record["data"]["val_split"] == 0.25
    ckpt = load_checkpoint(out / "checkpoints" / "last.safetensors")
    assert ckpt.tensors["net/encoder/2.weight"].shape == (8, 200)
    assert ckpt.meta["position"]["global_step"] == 4  # 60 training items in batches of 16


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "ZOO_LOAD_PLUGINS": "zoo-ae-mnist", "ZOO_CACHE_DIR": str(cache_dir),
           "OMP_NUM_THREADS": "1"}
    command = [str(Path(sys.executable).parent / "zoo"), "train", "ae_mnist", *TINY, "--epochs", "100000",
               "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 90
        metrics = out / "metrics.jsonl"
        while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("zoo: interrupted at epoch ") and "checkpoint saved" in stderr
    assert f"zoo train ae_mnist --resume {out}" in stderr
    assert not list(out.rglob("*.tmp"))
    position = load_checkpoint(out / "checkpoints" / "last.safetensors").meta["position"]
    assert position["epoch"] >= 2
    # the checkpoint continues: two more steps from where Ctrl-C stopped
    train(registered_model("ae_mnist"), TrainOptions(resume=out, device="cpu", progress=False,
                                              max_steps=position["global_step"] + 2))
    after = load_checkpoint(out / "checkpoints" / "last.safetensors").meta["position"]
    assert after["global_step"] == position["global_step"] + 2
