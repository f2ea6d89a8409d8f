"""`zoo generate ae_mnist reconstruct|decode`, and the real inputs each graph gets for export checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from zoo_ae_mnist import tasks

from zoo_core.api import (
    DataSource,
    RecordingRunner,
    RegisteredModel,
    RuntimeSource,
    TaskContext,
    TorchRunner,
    build_recipe,
)


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_reconstruct_writes_originals_above_reconstructions(zoo, tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    result = zoo("generate", "ae_mnist", "reconstruct", "--run", tiny_run, "--n", "20", "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote 20 originals above their reconstructions" in result.stderr
    # 16 pairs per row: two row pairs, each cell 28 + 2 padding, enlarged 3 times
    assert png_size(out) == (3 * (16 * 30 + 2), 3 * (4 * 30 + 2))


def test_decode_draws_codes_or_reads_them_from_a_file(zoo, tiny_run: Path, tmp_path: Path) -> None:
    result = zoo("generate", "ae_mnist", "decode", "--run", tiny_run, "--n", "5", "--seed", "3", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert png_size(tmp_path / "decoded.png") == (3 * (5 * 30 + 2), 3 * 32)
    codes = tmp_path / "z.npy"
    np.save(codes, np.zeros((3, 20), dtype=np.float64))
    result = zoo("generate", "ae_mnist", "decode", "--run", tiny_run, "--z", codes, "--out", tmp_path / "z.png")
    assert result.exit_code == 0, result.output
    assert png_size(tmp_path / "z.png") == (3 * (3 * 30 + 2), 3 * 32)


@pytest.mark.parametrize(("array", "message"), [
    (np.zeros((4, 7), dtype=np.float32), "codes must have shape [N,20] with N >= 1, got [4, 7]"),
    (np.zeros(20, dtype=np.float32), "codes must have shape [N,20] with N >= 1, got [20]"),
    (np.array([["a"] * 20]), "codes must be numbers, got dtype <U1"),
    (np.full((1, 20), np.nan), "codes contain NaN or infinity"),
    (np.array([None] * 20, dtype=object), "not a readable .npy array"),
])
def test_bad_code_files_are_one_line(zoo, tiny_run: Path, tmp_path: Path, array: np.ndarray, message: str) -> None:
    codes = tmp_path / "z.npy"
    np.save(codes, array, allow_pickle=True)
    result = zoo("generate", "ae_mnist", "decode", "--run", tiny_run, "--z", codes, "--out", tmp_path / "z.png")
    assert result.exit_code == 1
    loaded, error = result.stderr.splitlines()  # which checkpoint loaded, then the one-line error
    assert loaded.startswith("zoo: loaded ") and error.startswith(f"zoo: --z {codes}: ")
    assert message in result.stderr
    assert not (tmp_path / "z.png").exists()


def test_tasks_use_named_graphs_only(ae_model: RegisteredModel, tiny_run: Path, tmp_path: Path) -> None:
    runner = RecordingRunner(TorchRunner(ae_model, RuntimeSource(run=tiny_run, device="cpu")))
    ctx = TaskContext(model=ae_model, runner=runner, recipe=build_recipe(ae_model, runner.config))
    results = [tasks.reconstruct(ctx, n=4), tasks.decode(ctx, z_file=None, n=4)]
    assert runner.calls == ["autoencoder", "encoder", "decoder"]
    assert [r.filename for r in results] == ["reconstruction.png", "decoded.png"]
    assert [len(r.images) for r in results] == [4, 4] and list(tmp_path.iterdir()) == []  # tasks write nothing


def test_data_inputs_are_real_images_and_their_codes(ae_model: RegisteredModel, tiny_run: Path) -> None:
    runner = TorchRunner(ae_model, RuntimeSource(run=tiny_run, device="cpu"))
    recipe, networks = runner.recipe, runner.networks
    data = recipe.load_data(DataSource())
    (images,) = recipe.data_inputs("autoencoder", data, 5, networks)
    assert images.shape == (5, 1, 28, 28) and images.dtype == torch.float32
    assert torch.equal(images, data.val.images[:5].float() / 255)
    assert torch.equal(recipe.data_inputs("encoder", data, 5, networks)[0], images)
    (codes,) = recipe.data_inputs("decoder", data, 5, networks)
    assert torch.allclose(codes, runner.run("encoder", images)[0])


def test_reconstruct_real_mnist(zoo, tiny_run: Path, mnist_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "real.png"
    result = zoo("generate", "ae_mnist", "reconstruct", "--run", tiny_run, "--data", mnist_dir, "--n", "8",
                 "--out", out)
    assert result.exit_code == 0, result.output
    assert png_size(out) == (3 * (8 * 30 + 2), 3 * (2 * 30 + 2))
