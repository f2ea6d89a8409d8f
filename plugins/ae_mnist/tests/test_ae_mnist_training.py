"""Training ae_mnist on the engine: metrics, sample grids, exact resume, and real MNIST IDX data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from zoo_ae_mnist.recipe import AutoencoderRecipe

from zoo_core.api import DataSource, RegisteredModel, TrainOptions, load_checkpoint, to_uint8, train


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_training_reports_per_image_loss_and_per_pixel_mse(tiny_run: Path) -> None:
    rows = metrics(tiny_run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert [r["step"] for r in rows] == [7, 14]  # 108 training digits in batches of 16
    last = rows[-1]
    assert set(last["val"]) == {"loss", "mse_per_pixel"}
    assert last["val"]["mse_per_pixel"] == pytest.approx(last["val"]["loss"] / 784)
    assert last["val"]["loss"] < rows[0]["val"]["loss"] < 784  # it learns, from a start below all-wrong
    assert (tiny_run / "loss.png").is_file()


def test_sample_grid_shows_held_out_originals_above_reconstructions(tiny_run: Path, ae_model: RegisteredModel,
                                                                   zoo_cache: Path) -> None:
    grid = np.asarray(Image.open(tiny_run / "samples" / "epoch_002.png").convert("L"))
    scale = 4  # 28-pixel digits are enlarged to at least 128 pixels
    assert grid.shape == (scale * (2 * 30 + 2), scale * (10 * 30 + 2))
    recipe = AutoencoderRecipe(ae_model.spec, json.loads((tiny_run / "config.json").read_text())["config"])
    held_out = recipe.load_data(DataSource()).val
    assert len(held_out) == 12
    first = grid[2 * scale:30 * scale:scale, 2 * scale:30 * scale:scale]  # top-left cell, one pixel per pixel
    assert np.array_equal(first, held_out.images[0, 0].numpy())
    below = grid[32 * scale:60 * scale:scale, 2 * scale:30 * scale:scale]
    assert not np.array_equal(below, first)  # a reconstruction, not a copy


def test_resume_mid_epoch_reproduces_the_uninterrupted_run(tiny_run: Path, ae_model: RegisteredModel,
                                                           tiny_settings: dict[str, int], tmp_path: Path) -> None:
    out = tmp_path / "run"
    options = {"device": "cpu", "progress": False}
    train(ae_model, TrainOptions(out=out, overrides=tiny_settings, max_steps=10, **options))
    assert load_checkpoint(out / "checkpoints" / "last.safetensors").meta["position"]["batch"] == 3
    train(ae_model, TrainOptions(resume=out, **options))
    strip = ("seconds", "items_per_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in metrics(out)] == \
        [{k: v for k, v in r.items() if k not in strip} for r in metrics(tiny_run)]
    ours = load_checkpoint(out / "checkpoints" / "last.safetensors").tensors
    theirs = load_checkpoint(tiny_run / "checkpoints" / "last.safetensors").tensors
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs if not k.startswith("extra/"))


def test_real_mnist_idx_smoke(ae_model: RegisteredModel, mnist_dir: Path, tmp_path: Path) -> None:
    data_dir = mnist_dir
    source = DataSource(data=data_dir, val_split=0.25, limit=256)
    out = train(ae_model, TrainOptions(out=tmp_path / "run", device="cpu", progress=False, source=source,
                                       overrides={"epochs": 1, "batch_size": 64}))
    record = json.loads((out / "config.json").read_text())
    assert record["data"]["data"] == str(data_dir)
    assert record["data_description"] == f"MNIST from {data_dir}: 192 to train, 64 held out (the last ones)"
    assert metrics(out)[0]["step"] == 3
    recipe = AutoencoderRecipe(ae_model.spec, record["config"])
    data = recipe.load_data(source)
    assert data.val.images.dtype == torch.uint8 and data.val.images.shape == (64, 1, 28, 28)
    prepared = recipe.prepare_batch({"images": data.val.images}, torch.device("cpu"))["images"]
    assert prepared.shape == (64, 784) and 0 <= float(prepared.min()) and float(prepared.max()) <= 1
    assert torch.equal(to_uint8(prepared).view(-1, 1, 28, 28), data.val.images)
