"""One decoder for training data and tasks, folders expanded without hidden files, grid scale and captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo_core.data.folders import load_image_folder
from zoo_core.images import caption_grid, expand_image_paths, grid_scale, load_images, make_grid


def write_image(path: Path, seed: int, size: tuple[int, int] = (37, 23)) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_tasks_and_training_see_the_same_pixels(tmp_path: Path) -> None:
    for seed in range(3):
        write_image(tmp_path / f"face{seed}.png", seed)
    trained_on = load_image_folder(tmp_path, 16).images.float() / 255
    generated_from = load_images(sorted(tmp_path.glob("*.png")), 16)
    assert torch.equal(trained_on, generated_from)


def test_grey_images_keep_one_channel(tmp_path: Path) -> None:
    assert load_images([write_image(tmp_path / "a.png", 0)], (8, 12), channels=1).shape == (1, 1, 8, 12)


def test_folders_skip_hidden_files_and_say_which_others_they_skip(tmp_path: Path, capsys) -> None:
    write_image(tmp_path / "b.png", 1)
    (tmp_path / "sub").mkdir()
    write_image(tmp_path / "sub" / "a.jpg", 2)
    (tmp_path / "._b.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (tmp_path / "notes.txt").write_text("not a picture")
    assert expand_image_paths([tmp_path]) == [tmp_path / "b.png", tmp_path / "sub" / "a.jpg"]
    assert capsys.readouterr().err == f"zoo: skipped 1 non-image file(s) in {tmp_path} (e.g. notes.txt); images " \
                                      "end in .png, .jpg, .jpeg, .bmp, .webp\n"


@pytest.mark.parametrize(("tile", "factor"), [(28, 4), (64, 2), (128, 1), (256, 1), (16, 8)])
def test_grid_scale_enlarges_small_tiles_to_about_128_pixels(tile: int, factor: int) -> None:
    assert grid_scale(tile) == factor


def test_captions_add_a_band_with_text_above_columns_and_left_of_rows() -> None:
    grid = make_grid(torch.zeros(6, 3, 32, 32), nrow=3)
    captioned = caption_grid(grid, columns=["glasses", "- no glasses", "= result"], rows=["draw 1", "draw 2"])
    height, width = grid.shape[:2]
    assert captioned.shape[0] > height and captioned.shape[1] > width
    band = captioned[: captioned.shape[0] - height]
    assert (band < 128).any(), "no caption text drawn above the columns"
    left = captioned[:, : captioned.shape[1] - width]
    assert (left < 128).any(), "no caption text drawn left of the rows"
    assert np.array_equal(captioned[-height:, -width:], grid)
