"""Weights by name: the card's declarations, --weights NAME|PATH|hf://, zoo pull, zoo info/list, and ae_mnist's shipped
weights (no training: reconstruct works, and the held-out figure on real MNIST is what the card says)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from zoo_core.errors import UsageError, ZooError
from zoo_core.spec import ModelSpec, Preset
from zoo_core.testing import invoke, isolated_host, torch_threads
from zoo_core.weights import DEFAULT_NAME, Weights, declared, resolve_weights

ae_plugin = pytest.importorskip("zoo_ae_mnist.plugin")
from zoo_core.plugins import RegisteredModel  # noqa: E402

MODEL = RegisteredModel(ae_plugin.SPEC, "zoo-ae-mnist", "0.0.0+test")
SHIPPED = Path(ae_plugin.__file__).parent / "weights" / "mnist.safetensors"
MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-t10k"
HELD_OUT_LIMIT = 0.021


def weights(**changes: object) -> Weights:
    values: dict[str, object] = {"name": "w", "summary": "s", "sha256": "a" * 64, "size": 10, "preset": "p",
                                 "data": "d", "urls": ("https://example.org/w.safetensors",)}
    return Weights(**{**values, **changes})  # type: ignore[arg-type]


def spec(*declared_weights: Weights) -> ModelSpec:
    return ModelSpec(name="m", summary="", recipe="x:Y", networks=(), graphs=(),
                     presets=(Preset("p", "", {}),), card_preset="p", default_preset="p", gpu_preset="p",
                     weights=declared_weights)


def test_declarations_are_checked_when_the_card_is_built() -> None:
    for bad, message in ((dict(sha256="abc"), "sha256 must be 64"), (dict(size=0), "size must be a positive"),
                         (dict(urls=(), file=""), "give urls or a shipped file"),
                         (dict(urls=("ftp://x",)), "is not http"), (dict(file="no-colon"), "package:relative"),
                         (dict(file="pkg:../up"), "package:relative"), (dict(name="a b"), "not a safe identifier"),
                         (dict(name=DEFAULT_NAME), "means the default"), (dict(metrics={"m": "high"}), "a number")):
        with pytest.raises(ValueError, match=message):
            weights(**bad)
    with pytest.raises(ValueError, match="duplicate weights names"):
        spec(weights(), weights())
    with pytest.raises(ValueError, match="name preset 'q', which is not a preset"):
        spec(weights(preset="q"))
    with pytest.raises(ValueError, match="more than one weights marked default"):
        spec(weights(name="a", default=True), weights(name="b", default=True))


def test_default_and_named_lookups() -> None:
    one, two = weights(name="one"), weights(name="two", default=True)
    assert declared(spec(one), None) is one  # the only weights are the default
    assert declared(spec(one, two), DEFAULT_NAME) is two
    with pytest.raises(UsageError, match="marks no weights default; name one of: one, two"):
        declared(spec(one, weights(name="two")), None)
    with pytest.raises(UsageError, match="declares no weights"):
        declared(spec(), None)


def test_a_name_the_default_a_file_and_a_folder_resolve_to_a_checked_checkpoint(tmp_path: Path) -> None:
    assert resolve_weights(MODEL, "mnist") == SHIPPED
    assert resolve_weights(MODEL, DEFAULT_NAME) == SHIPPED
    copy = tmp_path / "copy.safetensors"
    shutil.copy(SHIPPED, copy)
    assert resolve_weights(MODEL, str(copy)) == copy
    folder = tmp_path / "hub"
    folder.mkdir()
    shutil.copy(SHIPPED, folder / "model.safetensors")
    assert resolve_weights(MODEL, str(folder)) == folder / "model.safetensors"
    from zoo_core.weights import read_metadata

    config = read_metadata(SHIPPED)["config"]
    (folder / "config.json").write_text(json.dumps({"model": "ae_mnist", "config": {**config, "z_dim": 3}}))
    with pytest.raises(ZooError, match="does not describe"):
        resolve_weights(MODEL, str(folder))


def test_what_is_not_a_checkpoint_of_this_model_is_refused_in_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ZooError, match="is not a zoo checkpoint"):
        resolve_weights(MODEL, str(junk))
    other = RegisteredModel(ModelSpec(name="other", summary="", recipe="x:Y", networks=(), graphs=(),
                                      presets=(Preset("book", "", {}),), default_preset="book"), "d", "1")
    with pytest.raises(ZooError, match="holds weights of 'ae_mnist', not 'other'"):
        resolve_weights(other, str(SHIPPED))
    with pytest.raises(UsageError, match=r"no such file or folder, and not a weights name of ae_mnist \(its weights: "
                                         r"mnist\)"):
        resolve_weights(MODEL, "mnits")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZooError, match=r"model\.safetensors is missing"):
        resolve_weights(MODEL, str(tmp_path / "empty"))


def test_a_damaged_shipped_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    damaged = tmp_path / "mnist.safetensors"
    damaged.write_bytes(SHIPPED.read_bytes()[:-1] + b"\x00")
    monkeypatch.setattr("zoo_core.weights.shipped_file", lambda w: damaged)
    with pytest.raises(ZooError, match=r"has sha256 .*, expected c8fce2e3"):
        resolve_weights(MODEL, "mnist")


def test_hub_references_go_through_huggingface_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = pytest.importorskip("huggingface_hub")
    folder = tmp_path / "snapshot"
    folder.mkdir()
    shutil.copy(SHIPPED, folder / "model.safetensors")
    asked: list[tuple[str, dict[str, object]]] = []

    def snapshot_download(repo: str, **options: object) -> str:
        asked.append((repo, options))
        return str(folder)

    monkeypatch.setattr(hub, "snapshot_download", snapshot_download)
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    assert resolve_weights(MODEL, "hf://someone/ae-mnist@v1") == folder / "model.safetensors"
    assert asked[0][0] == "someone/ae-mnist" and asked[0][1]["revision"] == "v1"
    assert asked[0][1]["local_files_only"] is bool(hub.constants.HF_HUB_OFFLINE)
    for bad in ("hf://just-a-name", "hf://a/b/c", "hf://a/b@", "hf://../x"):
        with pytest.raises(UsageError, match="a Hub repository is hf://ORG/NAME"):
            resolve_weights(MODEL, bad)


def test_hub_offline_with_nothing_cached_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    with isolated_host((ae_plugin, "zoo-ae-mnist")):
        result = invoke("generate", "ae_mnist", "reconstruct", "--weights", "hf://nobody/nothing")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("zoo: --weights hf://nobody/nothing: offline") and "Hub cache" in result.stderr


def test_info_list_and_pull_show_the_declared_weights(tmp_path: Path) -> None:
    with isolated_host((ae_plugin, "zoo-ae-mnist")):
        card = json.loads(invoke("info", "ae_mnist", "--json").stdout)
        listed = json.loads(invoke("list", "--json").stdout)
        table = invoke("info", "ae_mnist").stdout
        pulled = invoke("pull", "ae_mnist")
        named = invoke("pull", "ae_mnist:mnist")
    (entry,) = card["weights"]
    assert entry["name"] == "mnist" and entry["default"] and entry["preset"] == "book"
    assert entry["sha256"] == ae_plugin.MNIST.sha256 and entry["size"] == SHIPPED.stat().st_size
    assert entry["metrics"]["heldout_mse_per_pixel"] <= HELD_OUT_LIMIT and "ship_weights.py" in entry["measured_by"]
    assert entry["license"] == "MIT" and entry["file"] == "zoo_ae_mnist:weights/mnist.safetensors"
    assert next(m for m in listed if m["name"] == "ae_mnist")["weights"] == ["mnist"]
    assert "weights (--weights NAME" in table and "mnist (default)" in table
    assert pulled.exit_code == 0 and pulled.stdout.strip() == str(SHIPPED) == named.stdout.strip()


def test_reconstruct_with_the_shipped_weights_needs_no_training(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # no runs/ here: only --weights can supply the model
    digits = tmp_path / "digits"  # eight MNIST-format digits, so the task draws no embedded set first
    digits.mkdir()
    (digits / "t10k-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 8, 0, 0, 0, 28, 0, 0, 0, 28])
                                                   + bytes(range(256)) * 24 + bytes(8 * 784 - 256 * 24))
    (digits / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 8]) + bytes(range(8)))
    with isolated_host((ae_plugin, "zoo-ae-mnist")), torch_threads(1):
        result = invoke("generate", "ae_mnist", "reconstruct", "--weights", "mnist", "--n", "8",
                        "--data", digits, "--out", tmp_path / "r.png")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "runs").exists()


def test_the_shipped_weights_reach_the_held_out_figure_on_real_mnist() -> None:
    if not MNIST_DIR.is_dir():
        pytest.skip(f"real MNIST not available at {MNIST_DIR} (the shared data is absent)")
    import torch

    from zoo_core.data.imageset import to_float
    from zoo_core.data.mnist import load_mnist
    from zoo_core.models import load_model

    loaded = load_model(MODEL, checkpoint=resolve_weights(MODEL, "mnist"), device="cpu", log=None)
    images = to_float(load_mnist(MNIST_DIR, split="test").images[9000:])  # the 1,000 digits training never saw
    assert len(images) == 1000
    with torch.inference_mode(), torch_threads(1):
        reconstruction = loaded.graph_module("autoencoder")(images)
    mse = float(((reconstruction - images) ** 2).mean())
    assert mse <= HELD_OUT_LIMIT
    assert mse == pytest.approx(ae_plugin.MNIST.metrics["heldout_mse_per_pixel"], abs=2e-4)  # what the card says


@pytest.mark.parametrize("plugin_module", ["zoo_ae_mnist.plugin", "zoo_vae_faces.plugin", "zoo_cyclegan_hair.plugin"])
def test_every_shipped_weights_file_matches_its_declaration_and_loads(plugin_module: str) -> None:
    plugin = pytest.importorskip(plugin_module)
    from zoo_core.models import load_model
    from zoo_core.weights import shipped_file

    model = RegisteredModel(plugin.SPEC, plugin_module.split(".")[0], "0.0.0+test")
    for declared_weights in model.spec.weights:
        path = shipped_file(declared_weights)
        assert path is not None and path.stat().st_size == declared_weights.size < 10 * 1024 * 1024
        assert resolve_weights(model, declared_weights.name) == path  # sha256 and config checked
        loaded = load_model(model, checkpoint=path, device="cpu", log=None)
        assert loaded.config["preset"] == declared_weights.preset
        assert not any(key.startswith("opt/") for key in __import__("safetensors").safe_open(
            str(path), "pt").keys())  # inference weights only
