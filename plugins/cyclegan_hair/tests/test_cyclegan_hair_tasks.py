"""`zoo generate cyclegan_hair translate|roundtrip` through named graphs only; export's real inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from zoo_cyclegan_hair import tasks
from zoo_cyclegan_hair.haircolour import BLOND_LUMA_THRESHOLD, hair_luma, is_blond

from zoo_core.api import (
    CAPTION_BAND,
    DataSource,
    ImageInput,
    RecordingRunner,
    RegisteredModel,
    RuntimeSource,
    TaskContext,
    TorchRunner,
    build_recipe,
    make_portraits,
)

CELL = 32 + 2  # image plus grid padding
SCALE = 4      # 32-pixel images are enlarged to 128 in grids


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def write_faces(folder: Path, count: int, size: tuple[int, int] = (40, 50)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = folder / f"face{index}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_translate_writes_one_png_per_input_and_a_grid(zoo, tiny_run: Path, tmp_path: Path) -> None:
    faces = write_faces(tmp_path / "faces", 3)
    out = tmp_path / "out"
    result = zoo("generate", "cyclegan_hair", "translate", "--run", tiny_run, "--direction", "blond2black",
                 faces[0], tmp_path / "faces", "--out", out)
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.iterdir() if p.name != ".zoo-stream")  # the resume journal's folder
    # face0 is named twice (as a file and in its folder): the second copy is numbered, not overwritten
    assert written == ["face0_1_black.png", "face0_black.png", "face1_black.png", "face2_black.png",
                       "translate_grid.png"]
    assert png_size(out / "face1_black.png") == (40, 50)  # translated at its own size, not the preset's 32²
    assert png_size(out / "translate_grid.png") == (SCALE * (8 * CELL + 2), SCALE * (CELL + 2) + CAPTION_BAND)
    assert "wrote 4, skipped 0, failed 0" in result.stderr


def test_translate_refuses_a_file_as_out(zoo, tiny_run: Path, tmp_path: Path) -> None:
    faces = write_faces(tmp_path / "faces", 1)
    result = zoo("generate", "cyclegan_hair", "translate", "--run", tiny_run, faces[0], "--out", tmp_path / "x.png")
    assert result.exit_code != 0
    loaded, error = result.stderr.splitlines()  # which checkpoint loaded, then the one-line error
    assert loaded.startswith("zoo: loaded ") and "--out must be a folder" in error


def test_roundtrip_writes_six_columns_per_row(zoo, tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "roundtrip.png"
    result = zoo("generate", "cyclegan_hair", "roundtrip", "--run", tiny_run, "--n", "2", "--out", out)
    assert result.exit_code == 0, result.output
    # 40 portraits with 10% held out: 2 of each domain, so 2 rows of 6
    assert png_size(out) == (SCALE * (6 * CELL + 2), SCALE * (2 * CELL + 2) + CAPTION_BAND)  # captioned columns


def test_tasks_use_named_graphs_only(cyclegan_model: RegisteredModel, tiny_run: Path, tmp_path: Path,
                                     zoo_cache: Path) -> None:
    runner = RecordingRunner(TorchRunner(cyclegan_model, RuntimeSource(run=tiny_run, device="cpu")))
    recipe = build_recipe(cyclegan_model, runner.config)
    ctx = TaskContext(model=cyclegan_model, runner=runner, recipe=recipe, source=DataSource())
    roundtrip = tasks.roundtrip(ctx, n=1)
    assert runner.calls == ["black_to_blond", "blond_to_black", "blond_to_black", "black_to_blond"]
    face = write_faces(tmp_path / "faces", 2)[0]
    translated = tasks.translate(ctx, [ImageInput(face.stem, face)], "black2blond", batch_size=1)
    assert runner.calls[-1] == "black_to_blond"
    assert roundtrip.filename == "roundtrip.png" and translated.names == ["face0_blond.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces"]  # tasks write nothing


def test_data_inputs_are_real_images_of_the_source_domain(cyclegan_model: RegisteredModel, tiny_run: Path,
                                                          zoo_cache: Path) -> None:
    runner = TorchRunner(cyclegan_model, RuntimeSource(run=tiny_run, device="cpu"))
    recipe = runner.recipe
    data = recipe.load_data(DataSource())
    (black,) = recipe.data_inputs("black_to_blond", data, 3, runner.networks)
    (blond,) = recipe.data_inputs("blond_to_black", data, 3, runner.networks)
    assert black.shape == blond.shape == (3, 3, 32, 32) and black.dtype == torch.float32
    assert -1 <= float(black.min()) and float(black.max()) <= 1
    masks = data.val.a.masks[torch.arange(3) % len(data.val.a)]
    assert not bool(is_blond((black + 1) / 2, masks).any())
    assert bool(is_blond((blond + 1) / 2, data.val.b.masks[torch.arange(3) % len(data.val.b)]).all())


def test_hair_colour_test_sorts_every_original_portrait() -> None:
    portraits = make_portraits(64, seed=11, size=32)
    luma = hair_luma(portraits.images.float() / 255, portraits.masks)
    blond = portraits.labels["blond"] == 1
    assert torch.equal(luma > BLOND_LUMA_THRESHOLD, blond)
    assert float(luma[blond].min()) > BLOND_LUMA_THRESHOLD + 0.1  # a wide margin on both sides
    assert float(luma[~blond].max()) < BLOND_LUMA_THRESHOLD - 0.1


def test_hair_colour_needs_hair() -> None:
    with pytest.raises(ValueError, match="empty hair mask"):
        hair_luma(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.uint8))
