"""zoo card / zoo push: a run becomes a Hugging Face model repository that huggingface_hub reads and --weights loads
back; the upload goes through HfApi (replaced here by a recorder: the Hub is never called)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from zoo_core.testing import invoke, isolated_host, private_cache, torch_threads
from zoo_core.weights import read_metadata, resolve_weights

ae_plugin = pytest.importorskip("zoo_ae_mnist.plugin")
hub = pytest.importorskip("huggingface_hub")
from zoo_core.plugins import RegisteredModel  # noqa: E402

MODEL = RegisteredModel(ae_plugin.SPEC, "zoo-ae-mnist", "0.0.0+test")
TINY = {"embedded_items": 120, "epochs": 2, "batch_size": 16}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two epochs of ae_mnist on 120 embedded digits."""
    from zoo_core.engine import TrainOptions, train

    with private_cache(tmp_path_factory.mktemp("cache")), torch_threads(1):
        yield train(MODEL, TrainOptions(out=tmp_path_factory.mktemp("runs") / "run", device="cpu", progress=False,
                                        overrides=dict(TINY)))


def zoo(*args: object) -> object:
    with isolated_host((ae_plugin, "zoo-ae-mnist")), torch_threads(1):
        return invoke(*args)


def test_the_card_folder_is_a_hub_model_repository_that_loads_back(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    result = zoo("card", run, "--out", out, "--dataset", "mnist")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = hub.ModelCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "zoo" and data["license"] == "mit" and data["datasets"] == ["mnist"]
    assert {"zoo", "zoo-ae_mnist", "autoencoder"} <= set(data["tags"])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert data["metrics"] == [f"val_{k}" for k in rows[-1]["val"]]
    (result_entry,) = card.data.eval_results[:1]
    assert result_entry.metric_value == pytest.approx(rows[-1]["val"]["loss"], rel=1e-5)
    assert "zoo generate ae_mnist reconstruct --weights hf://ORG/REPO" in card.text
    config = json.loads((out / "config.json").read_text())
    assert config["library_name"] == "zoo" and config["model"] == "ae_mnist"
    assert config["config"]["embedded_items"] == 120
    meta = read_metadata(out / "model.safetensors")
    assert "optimizers" not in meta and meta["config"] == config["config"]  # inference weights only
    assert resolve_weights(MODEL, str(out)) == out / "model.safetensors"
    generated = zoo("generate", "ae_mnist", "reconstruct", "--weights", out, "--n", "4", "--out", tmp_path / "r.png")
    assert generated.exit_code == 0, generated.stderr


def test_the_weights_are_the_runs_and_half_precision_halves_them(run: Path, tmp_path: Path) -> None:
    import torch

    from zoo_core.checkpoint import load_checkpoint

    zoo("card", run, "--out", tmp_path / "fp32")
    zoo("card", run, "--out", tmp_path / "fp16", "--dtype", "float16", "--which", "last")
    best = load_checkpoint(run / "checkpoints" / "best.safetensors")
    fp32 = load_checkpoint(tmp_path / "fp32" / "model.safetensors")
    assert set(fp32.tensors) == {k for k in best.tensors if k.startswith("net/")}
    assert all(torch.equal(fp32.tensors[k], best.tensors[k]) for k in fp32.tensors)
    half = (tmp_path / "fp16" / "model.safetensors").stat().st_size
    assert half < 0.55 * (tmp_path / "fp32" / "model.safetensors").stat().st_size


def test_card_never_replaces_what_it_did_not_write(run: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = zoo("card", run, "--out", mine, "--force")
    assert result.exit_code == 2 and "zoo replaces only a folder it wrote" in result.stderr
    assert (mine / "notes.txt").read_text() == "keep me"
    out = tmp_path / "repo"
    assert zoo("card", run, "--out", out).exit_code == 0
    again = zoo("card", run, "--out", out)
    assert again.exit_code == 2 and "add --force" in again.stderr
    assert zoo("card", run, "--out", out, "--force").exit_code == 0
    not_a_run = zoo("card", tmp_path, "--out", tmp_path / "x")
    assert not_a_run.exit_code == 2 and not_a_run.stderr.count("\n") == 1


class RecordingApi:
    """Stands in for huggingface_hub.HfApi: records the calls, uploads nothing."""

    calls: ClassVar[list[tuple[str, dict[str, object]]]] = []

    def create_repo(self, repo_id: str, **options: object) -> None:
        self.calls.append(("create_repo", {"repo_id": repo_id, **options}))

    def upload_folder(self, **options: object) -> object:
        folder = Path(str(options["folder_path"]))
        self.calls.append(("upload_folder", {**options, "files": sorted(p.name for p in folder.iterdir()),
                                             "card": (folder / "README.md").read_text()}))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{options['repo_id']}/commit/1"})()


def test_push_writes_the_card_and_uploads_it_with_hfapi(run: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    RecordingApi.calls = []
    monkeypatch.setattr(hub, "HfApi", RecordingApi)
    result = zoo("push", run, "hf://someone/ae-mnist-tiny", "--private", "--dataset", "mnist")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "https://huggingface.co/someone/ae-mnist-tiny/commit/1"
    (create, create_options), (upload, upload_options) = RecordingApi.calls
    assert create == "create_repo" and create_options["repo_id"] == "someone/ae-mnist-tiny"
    assert create_options["private"] is True and create_options["exist_ok"] is True
    assert upload == "upload_folder" and upload_options["repo_id"] == "someone/ae-mnist-tiny"
    assert upload_options["files"] == ["README.md", "config.json", "model.safetensors"]
    assert upload_options["card"].count("--weights hf://someone/ae-mnist-tiny") == 1
    # a folder zoo card wrote is pushed as it is
    RecordingApi.calls = []
    assert zoo("card", run, "--out", tmp_path / "repo").exit_code == 0
    assert zoo("push", tmp_path / "repo", "hf://someone/ae-mnist-tiny@main").exit_code == 0
    assert RecordingApi.calls[1][1]["folder_path"] == str(tmp_path / "repo")
    assert RecordingApi.calls[1][1]["revision"] == "main"
    bad = zoo("push", run, "hf://not a repo")
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1


def test_card_publishes_an_export_of_the_same_checkpoint_only(run: Path, tmp_path: Path) -> None:
    from zoo_core.checkpoint import file_sha256
    from zoo_core.weights import read_metadata

    export = tmp_path / "export"  # the manifest fields the card checks; the exporter is tested in export/tests
    export.mkdir()
    best = run / "checkpoints" / "best.safetensors"
    manifest = {"format": "zoo-export", "model": "ae_mnist", "config": read_metadata(best)["config"],
                "source": {"checkpoint": str(best), "sha256": file_sha256(best)}}
    (export / "manifest.json").write_text(json.dumps(manifest))
    (export / "decoder.onnx").write_bytes(b"onnx bytes")
    (export / ".decoder.onnx.1234abcd.tmp").write_bytes(b"a killed write")
    result = zoo("card", run, "--out", tmp_path / "repo", "--export", export)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "repo" / "export").iterdir()) == ["decoder.onnx", "manifest.json"]
    assert json.loads((tmp_path / "repo" / "config.json").read_text())["export"] == "export"
    assert "--runtime onnxruntime --export export" in (tmp_path / "repo" / "README.md").read_text()
    other = zoo("card", run, "--out", tmp_path / "other", "--export", export, "--which", "last")
    assert other.exit_code == 2 and "made from another checkpoint" in other.stderr
    assert not (tmp_path / "other").exists()
