"""What ae_mnist's pictures show, read back from the PNGs `zoo generate` writes: the held-out digits, the trained
model's own reconstructions of them (closer than an untrained model gets), and the decodes of the given codes.

A grid of the wrong images, in the right size, fails here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from zoo_ae_mnist.tasks import SCALE

from zoo_core.api import DataSource, RegisteredModel, RuntimeSource, TorchRunner, build_networks

SIDE, PADDING = 28, 2
# uint8 rounding of a [0,1] value (x * 255 + 0.5, truncated): at most half a level, plus float slack
LEVEL = 0.5 / 255 + 1e-6


def read_tiles(path: Path, rows: int, columns: int, scale: int = SCALE) -> torch.Tensor:
    """Tiles of a make_grid/stack_rows picture enlarged ``scale`` times: float [rows, columns, 1, 28, 28] in [0,1]."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float32) / 255
    tiles = torch.empty(rows, columns, 1, SIDE, SIDE)
    for row in range(rows):
        for column in range(columns):
            top = scale * (PADDING + row * (SIDE + PADDING))
            left = scale * (PADDING + column * (SIDE + PADDING))
            block = pixels[top:top + scale * SIDE:scale, left:left + scale * SIDE:scale]  # one pixel per enlarged one
            tiles[row, column, 0] = torch.from_numpy(block.copy())
    return tiles


@pytest.fixture(scope="module")
def runner(ae_model: RegisteredModel, tiny_run: Path, zoo_cache: Path) -> TorchRunner:
    return TorchRunner(ae_model, RuntimeSource(run=tiny_run, device="cpu"))


def untrained_autoencoder(runner: TorchRunner, run: Path) -> torch.nn.Module:
    """The networks the run started from (its seed), before any step."""
    seed = int(json.loads((run / "config.json").read_text()).get("seed", 0))
    networks = build_networks(runner.recipe, seed, torch.device("cpu"))
    return runner.recipe.graph_module("autoencoder", networks).eval()


def test_reconstruct_shows_held_out_digits_above_the_models_reconstructions(zoo, tiny_run: Path, runner: TorchRunner,
                                                                             tmp_path: Path) -> None:
    out = tmp_path / "reconstruction.png"
    result = zoo("generate", "ae_mnist", "reconstruct", "--run", tiny_run, "--n", "8", "--out", out)
    assert result.exit_code == 0, result.output
    tiles = read_tiles(out, 2, 8)
    shown, reconstructions = tiles[0], tiles[1]
    held_out = runner.recipe.load_data(DataSource()).val.images[:8]
    assert torch.equal((shown * 255).round().to(torch.uint8), held_out)  # the held-out digits, in order
    (expected,) = runner.run("autoencoder", shown)
    assert float((reconstructions - expected).abs().max()) <= LEVEL  # this model's reconstructions of them

    # trained means closer than the untrained start: the bound is derived from the untrained error on the same digits
    trained_error = float((reconstructions - shown).pow(2).mean())
    with torch.no_grad():
        untrained_error = float((untrained_autoencoder(runner, tiny_run)(shown) - shown).pow(2).mean())
    assert trained_error < 0.5 * untrained_error, (trained_error, untrained_error)


def test_decode_shows_the_decodes_of_the_given_codes(zoo, tiny_run: Path, runner: TorchRunner,
                                                     tmp_path: Path) -> None:
    codes = torch.randn(5, int(runner.config["z_dim"]), generator=torch.Generator().manual_seed(7))
    np.save(tmp_path / "z.npy", codes.numpy())
    out = tmp_path / "decoded.png"
    result = zoo("generate", "ae_mnist", "decode", "--run", tiny_run, "--z", tmp_path / "z.npy", "--out", out)
    assert result.exit_code == 0, result.output
    (expected,) = runner.run("decoder", codes)
    shown = read_tiles(out, 1, 5)[0]
    assert float((shown - expected).abs().max()) <= LEVEL
    assert float((shown[0] - shown[1]).abs().max()) > 0.05  # distinct codes, distinct digits: not one image repeated
