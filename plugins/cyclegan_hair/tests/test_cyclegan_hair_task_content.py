"""What cyclegan_hair's pictures show, read back from the PNGs `zoo generate` writes: the held-out portraits, this
model's translations of them, and hair whose colour flipped, judged by the test behind the figures
(zoo_cyclegan_hair.haircolour: mean luma of the hair pixels against the threshold between the two palettes).

A grid of the wrong images, in the right size, fails here; so does an untrained model's (checked below)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from zoo_cyclegan_hair.haircolour import is_blond
from zoo_cyclegan_hair.tasks import ROUNDTRIP_COLUMNS

from zoo_core.api import (
    CAPTION_BAND,
    DataSource,
    RegisteredModel,
    RuntimeSource,
    TorchRunner,
    TrainOptions,
    build_networks,
    grid_scale,
    train,
)

# conftest's tiny run (18 steps) turns black hair blond but leaves blond hair at luma 0.39, a hair's breadth under
# the 0.40 threshold; 54 steps with a lighter identity loss (which holds colours back) bring it to about 0.34
TRAINED = {"image_size": 32, "load_size": 32, "features": 4, "res_blocks": 1, "d_features": 4, "portraits": 80,
           "batch_size": 4, "epochs": 3, "val_fraction": 0.1, "identity_weight": 1.0}
SIDE, PADDING, ROWS = 32, 2, 4
LEVEL = 0.5 / 255 + 1e-6  # uint8 rounding of a [0,1] value: at most half a level, plus float slack


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, cyclegan_model: RegisteredModel, zoo_cache: Path) -> Path:
    options = TrainOptions(preset="quick", overrides=dict(TRAINED), device="cpu", seed=0, progress=False,
                           out=tmp_path_factory.mktemp("trained") / "run")
    return train(cyclegan_model, options)  # one torch thread: conftest's autouse fixture


@pytest.fixture(scope="module")
def runner(cyclegan_model: RegisteredModel, trained_run: Path) -> TorchRunner:
    return TorchRunner(cyclegan_model, RuntimeSource(run=trained_run, device="cpu"))


def read_tiles(path: Path, rows: int, columns: int, top: int) -> torch.Tensor:
    """Tiles of a captioned make_grid picture: float [rows, columns, 3, 32, 32] in [0,1]."""
    scale = grid_scale(SIDE)
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    tiles = torch.empty(rows, columns, 3, SIDE, SIDE)
    for row in range(rows):
        for column in range(columns):
            y = top + scale * (PADDING + row * (SIDE + PADDING))
            x = scale * (PADDING + column * (SIDE + PADDING))
            block = pixels[y:y + scale * SIDE:scale, x:x + scale * SIDE:scale]
            tiles[row, column] = torch.from_numpy(block.copy()).permute(2, 0, 1)
    return tiles


def read_png(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1).float() / 255


def held_out(runner: TorchRunner) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ROWS held-out black and blond portraits in [-1,1], and their hair masks, as the task picks them."""
    recipe = runner.recipe
    pair = recipe.load_data(DataSource()).held_out()
    assert len(pair.a) >= ROWS and len(pair.b) >= ROWS
    return (recipe.source_images(pair, "a", ROWS), recipe.source_images(pair, "b", ROWS),
            recipe.center(pair.a.masks[:ROWS]), recipe.center(pair.b.masks[:ROWS]))


def flipped(to_blond: torch.Tensor, black_masks: torch.Tensor, to_black: torch.Tensor,
            blond_masks: torch.Tensor) -> bool:
    """Every black-haired portrait's translation has blond hair, and every blond one's has black hair."""
    return bool(is_blond(to_blond, black_masks).all()) and not bool(is_blond(to_black, blond_masks).any())


def test_roundtrip_shows_the_portraits_their_translations_and_flipped_hair(zoo, trained_run: Path,
                                                                          runner: TorchRunner, tmp_path: Path) -> None:
    out = tmp_path / "roundtrip.png"
    result = zoo("generate", "cyclegan_hair", "roundtrip", "--run", trained_run, "--n", str(ROWS), "--out", out)
    assert result.exit_code == 0, result.output
    assert len(ROUNDTRIP_COLUMNS) == 6
    tiles = read_tiles(out, ROWS, 6, top=CAPTION_BAND)  # black, → blond, → black again, blond, → black, → blond again
    black, blond, black_masks, blond_masks = held_out(runner)

    def shown(x: torch.Tensor) -> torch.Tensor:
        return (x.clamp(-1, 1) + 1) / 2

    fake_blond = runner.run("black_to_blond", black)[0]
    fake_black = runner.run("blond_to_black", blond)[0]
    expected = [black, fake_blond, runner.run("blond_to_black", fake_blond)[0], blond, fake_black,
                runner.run("black_to_blond", fake_black)[0]]
    for column, images in enumerate(expected):
        assert float((tiles[:, column] - shown(images)).abs().max()) <= LEVEL, ROUNDTRIP_COLUMNS[column]

    # the hair colour test, on the pixels of the picture: originals as labelled, translations flipped
    assert not bool(is_blond(tiles[:, 0], black_masks).any()) and bool(is_blond(tiles[:, 3], blond_masks).all())
    assert flipped(tiles[:, 1], black_masks, tiles[:, 4], blond_masks)


def test_an_untrained_model_fails_the_same_hair_check(runner: TorchRunner) -> None:
    """The check above has teeth: the networks the run started from do not flip both ways."""
    black, blond, black_masks, blond_masks = held_out(runner)
    networks = build_networks(runner.recipe, 0, torch.device("cpu"))
    with torch.no_grad():
        to_blond = runner.recipe.graph_module("black_to_blond", networks).eval()(black)
        to_black = runner.recipe.graph_module("blond_to_black", networks).eval()(blond)
    assert not flipped((to_blond + 1) / 2, black_masks, (to_black + 1) / 2, blond_masks)


def test_translate_writes_each_portrait_with_its_hair_flipped(zoo, trained_run: Path, runner: TorchRunner,
                                                              tmp_path: Path) -> None:
    black, blond, black_masks, blond_masks = held_out(runner)
    for direction, portraits, masks, want_blond in (("black2blond", black, black_masks, True),
                                                    ("blond2black", blond, blond_masks, False)):
        inputs = []
        for index, portrait in enumerate(portraits):
            path = tmp_path / direction / f"p{index}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(((portrait + 1) / 2 * 255 + 0.5).clamp(0, 255).byte().permute(1, 2, 0).numpy()).save(path)
            inputs.append(path)
        out = tmp_path / f"{direction}-out"
        result = zoo("generate", "cyclegan_hair", "translate", "--run", trained_run, "--direction", direction,
                     *inputs, "--out", out)
        assert result.exit_code == 0, result.output
        colour = "blond" if want_blond else "black"
        written = torch.stack([read_png(out / f"p{i}_{colour}.png") for i in range(ROWS)])
        assert bool((is_blond(written, masks) == want_blond).all()), direction
