"""Training on the CPU alone and every `zoo generate` task producing its PNG, at 32x32 with a few steps."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import Result
from PIL import Image
from zoo_vae_faces.expression import parse_expression
from zoo_vae_faces.networks import kl_per_item, reparameterise
from zoo_vae_faces.recipe import VaeFacesRecipe
from zoo_vae_faces.tasks import term_captions

from zoo_core.api import (
    CAPTION_BAND,
    DataSource,
    RegisteredModel,
    StepContext,
    UsageError,
    resolve_config,
    to_float,
)

Zoo = Callable[..., Result]


def test_a_cpu_run_writes_checkpoints_metrics_and_samples(tiny_run: Path, size: int) -> None:
    run_dir = tiny_run
    assert (run_dir / "checkpoints" / "last.safetensors").is_file()
    record = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["epoch"] == 1 and record["step"] == 6  # 43 training portraits in batches of 8
    assert set(record["val"]) == {"loss", "recon", "kl", "mse"}
    val = record["val"]
    kl_weight = json.loads((run_dir / "config.json").read_text())["config"]["kl_weight"]
    assert kl_weight == pytest.approx(1 / 16)  # quick: the book's balance of the two terms per pixel at 64²
    assert val["loss"] == pytest.approx(val["recon"] + kl_weight * val["kl"], rel=1e-5)
    assert val["mse"] == pytest.approx(val["recon"] / (3 * size * size), rel=1e-5)
    assert Image.open(run_dir / "samples" / "epoch_001.png").size[0] > 0
    assert json.loads((run_dir / "config.json").read_text())["device"] == "cpu"


def test_a_step_optimises_the_books_loss_in_both_networks(vae_model: RegisteredModel) -> None:
    model = vae_model.spec
    recipe = VaeFacesRecipe(model, resolve_config(model, "book", {"image_size": 16}))
    torch.manual_seed(0)
    networks = recipe.build_networks()
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in networks.items()}
    images = torch.rand(4, 3, 16, 16)
    # The expected loss with the noise the step will draw from the same generator state.
    noise = torch.randn(4, 100, generator=torch.Generator().manual_seed(7))
    mu, log_std = networks["encoder"](images)
    out = networks["decoder"](reparameterise(mu, log_std, noise))
    expected = (out - images).pow(2).sum() + kl_per_item(mu, log_std).sum()
    step = StepContext(torch.device("cpu"), torch.Generator().manual_seed(7), recipe.build_optimizers(networks),
                       {"vae": torch.amp.GradScaler("cpu", enabled=False)}, None)
    metrics = recipe.training_step({"images": images}, networks, step)
    assert float(metrics["loss"]) * 4 == pytest.approx(float(expected.detach()), rel=1e-5)  # reported per item
    assert float(metrics["loss"]) == pytest.approx(float(metrics["recon"] + metrics["kl"]), rel=1e-6)
    for name, net in networks.items():
        changed = [not torch.equal(a, b) for a, b in zip(before[name], net.parameters(), strict=True)]
        assert all(changed), f"{name}: {changed.count(False)} parameters were not updated"


def test_recon_weight_scales_the_squared_error_in_the_loss(vae_model: RegisteredModel) -> None:
    model = vae_model.spec
    metrics = {}
    for weight in (1.0, 16.0):
        recipe = VaeFacesRecipe(model, resolve_config(model, "book", {"image_size": 16, "recon_weight": weight}))
        torch.manual_seed(0)
        networks = recipe.build_networks()
        for net in networks.values():
            net.eval()
        images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            metrics[weight] = recipe.validation_metrics({"images": images}, networks, torch.Generator().manual_seed(2))
    light, heavy = metrics[1.0], metrics[16.0]
    assert torch.allclose(light["recon"], heavy["recon"]) and torch.allclose(light["kl"], heavy["kl"])
    assert torch.allclose(heavy["loss"], 16 * heavy["recon"] + heavy["kl"])
    assert torch.allclose(light["loss"], light["recon"] + light["kl"])


def generate(zoo: Zoo, run_dir: Path, *args: str | Path) -> tuple[int, str]:
    result = zoo("generate", "vae_faces", *args, "--run", run_dir, "--device", "cpu")
    return result.exit_code, result.output


@pytest.mark.parametrize(("task", "args", "tiles", "captions"), [
    ("sample", ["--n", "5", "--columns", "5"], (1, 5), None),
    ("reconstruct", ["--n", "3"], (2, 3), "rows"),
    ("interpolate", ["0", "7", "--steps", "4"], (1, 6), None),
    ("arithmetic", ["glasses&male - glasses&~male + ~glasses&~male", "--group-size", "2", "--rows", "2"], (2, 4),
     "columns"),
])
def test_each_task_writes_a_png(zoo: Zoo, tiny_run: Path, tmp_path: Path, task: str, args: list[str],
                                tiles: tuple[int, int], captions: str | None, size: int) -> None:
    out = tmp_path / f"{task}.png"
    code, output = generate(zoo, tiny_run, task, *args, "--out", out)
    assert code == 0, output
    rows, columns = tiles
    scale = 128 // size
    width, height = scale * (columns * (size + 2) + 2), scale * (rows * (size + 2) + 2)
    written = Image.open(out).size
    if captions == "columns":  # a caption band above the columns: the terms, then "= result"
        assert written == (width, height + CAPTION_BAND)
    elif captions == "rows":  # captions left of the rows: face, decoded
        assert written[0] > width and written[1] == height
    else:
        assert written == (width, height)


def test_sample_per_image_writes_each_face_and_its_first_block_is_the_plain_sample(zoo: Zoo, tiny_run: Path,
                                                                                  tmp_path: Path, size: int) -> None:
    code, output = generate(zoo, tiny_run, "sample", "--n", "20", "--per-image", "--seed", "4", "--out",
                            tmp_path / "faces")
    assert code == 0, output
    files = sorted((tmp_path / "faces").glob("sample_*.png"))
    assert [f.name for f in files] == [f"sample_{i:06d}.png" for i in range(20)]
    code, output = generate(zoo, tiny_run, "sample", "--n", "16", "--columns", "16", "--seed", "4", "--out",
                            tmp_path / "plain.png")
    assert code == 0, output
    plain = np.asarray(Image.open(tmp_path / "plain.png"))
    scale = 128 // size
    for index in (0, 15):  # tile i of the plain grid (2-pixel padding, upscaled) is file i, upscaled
        face = np.asarray(Image.open(files[index]))
        left, top = scale * (2 + index * (size + 2)), scale * 2
        tile = plain[top:top + scale * size:scale, left:left + scale * size:scale]
        assert np.array_equal(tile, face), index


def test_arithmetic_columns_are_captioned_with_their_terms() -> None:
    parsed = parse_expression("glasses&male - glasses&~male + [a.png,b.png]")
    assert term_captions(parsed) == ["glasses&male", "- glasses&~male", "+ [a.png,b.png]", "= result"]
    assert term_captions(parse_expression("-male"))[0] == "- male"


def test_tasks_accept_image_files(zoo: Zoo, tiny_run: Path, tmp_path: Path, size: int) -> None:
    face = tmp_path / "a.png"
    code, output = generate(zoo, tiny_run, "sample", "--n", "2", "--out", face)
    assert code == 0, output
    code, output = generate(zoo, tiny_run, "interpolate", face, "1", "--out", tmp_path / "i.png")
    assert code == 0, output
    code, output = generate(zoo, tiny_run, "arithmetic", f"[{face},{face}] - male + [{face}]", "--out",
                            tmp_path / "x.png")
    assert code == 0, output
    assert Image.open(tmp_path / "x.png").size[0] == 4 * (4 * (size + 2) + 2)


@pytest.mark.parametrize(("args", "message"), [
    (["arithmetic", "glases&male"], 'unknown attribute "glases" at position 1'),
    (["arithmetic", "beard"], "available: glasses, male, blond"),
    (["arithmetic", "glasses&~glasses"], "matches none of the 48 images"),
    (["arithmetic", "glasses & & male"], "at position 11"),
    (["arithmetic", "[missing.png]"], "no such file or folder: missing.png"),
    (["interpolate", "0", "480"], "index 480 is outside the data set (0..47)"),
    (["interpolate", "face.png", "0"], "'face.png' is neither an image file nor a data-set index"),
])
def test_bad_task_input_is_one_line(zoo: Zoo, tiny_run: Path, tmp_path: Path, args: list[str],
                                    message: str) -> None:
    code, output = generate(zoo, tiny_run, *args, "--out", tmp_path)
    assert code != 0
    loaded, error = output.splitlines()  # which checkpoint loaded, then the one-line error
    assert loaded.startswith("zoo: loaded ") and message in error and "Traceback" not in output


def test_data_inputs_are_real_faces_and_their_encodings(vae_model: RegisteredModel, tiny_run: Path,
                                                       size: int) -> None:
    from zoo_core.api import RuntimeSource, TorchRunner

    runner = TorchRunner(vae_model, RuntimeSource(run=tiny_run, device="cpu"))
    data = runner.recipe.load_data(DataSource())
    (images,) = runner.recipe.data_inputs("encoder", data, 4, runner.networks)
    assert images.shape == (4, 3, size, size) and 0 <= float(images.min()) and float(images.max()) <= 1
    assert torch.equal(images, to_float(data.val.images[:4]))  # held-out faces first
    (z,) = runner.recipe.data_inputs("decoder", data, 4, runner.networks)
    mu, _ = runner.run("encoder", images)
    assert torch.allclose(z, mu, atol=1e-5)
    assert runner.run("decoder", z)[0].shape == (4, 3, size, size)
    (more,) = runner.recipe.data_inputs("encoder", data, len(data.val) + 3, runner.networks)
    assert len(more) == len(data.val) + 3


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # no training here
@pytest.mark.parametrize(("epochs", "expected"), [(6, [1, 1, 1, 1, 2 / 3, 1 / 3]), (1, [1]), (3, [1, 1, 1 / 2])])
def test_the_rate_falls_linearly_over_the_last_share_of_the_epochs(vae_model: RegisteredModel, epochs: int,
                                                                    expected: list[float]) -> None:
    model = vae_model.spec
    config = resolve_config(model, "quick", {"image_size": 16, "epochs": epochs, "lr": 1.0})
    assert config["lr_decay_fraction"] == pytest.approx(1 / 3)
    recipe = VaeFacesRecipe(model, config)
    optimizers = recipe.build_optimizers(recipe.build_networks())
    schedulers = recipe.build_schedulers(optimizers)
    rates = []
    for _ in range(epochs):
        rates.append(optimizers["vae"].param_groups[0]["lr"])
        for scheduler in schedulers:
            scheduler.step()
    assert rates == pytest.approx(expected)


def test_book_keeps_a_constant_rate_and_a_bad_decay_is_refused(vae_model: RegisteredModel) -> None:
    model = vae_model.spec
    book = VaeFacesRecipe(model, resolve_config(model, "book", {"image_size": 16}))
    assert book.build_schedulers(book.build_optimizers(book.build_networks())) == []
    with pytest.raises(UsageError, match="lr_decay_fraction must be between 0 and 1"):
        VaeFacesRecipe(model, resolve_config(model, "quick", {"image_size": 16, "lr_decay_fraction": 1.5}))
