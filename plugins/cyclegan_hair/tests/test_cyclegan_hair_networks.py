"""The book's generator and PatchGAN: sizes, refusals, initialisation and the reference image pool."""

from __future__ import annotations

import pytest
import torch
from zoo_cyclegan_hair.networks import Discriminator, Generator, ImagePool, init_normal, size_problem
from zoo_cyclegan_hair.recipe import CycleGANRecipe

from zoo_core.api import RegisteredModel, UsageError, ZooError, resolve_config


def test_generator_has_the_books_parameter_count_at_256() -> None:
    torch.manual_seed(0)
    generator = Generator()
    assert sum(p.numel() for p in generator.parameters()) == 11_378_179
    assert sum(p.numel() for p in Discriminator().parameters()) == 2_764_737


@pytest.mark.parametrize("size", [8, 12, 36, 44])
def test_generator_keeps_sizes_divisible_by_four(size: int) -> None:
    torch.manual_seed(0)
    generator = Generator(features=4, residual_blocks=1)
    with torch.no_grad():
        out = generator(torch.rand(2, 3, size, size) * 2 - 1)
    assert out.shape == (2, 3, size, size)
    assert float(out.abs().max()) <= 1.0


@pytest.mark.parametrize(("height", "width"), [(30, 32), (32, 34), (33, 33), (27, 64)])
def test_generator_refuses_sizes_not_divisible_by_four(height: int, width: int) -> None:
    generator = Generator(features=4, residual_blocks=1)
    with pytest.raises(ZooError) as error:
        generator(torch.zeros(1, 3, height, width))
    message = str(error.value)
    assert "\n" not in message
    assert f"image size {height}×{width} is not divisible by 4" in message
    assert "resize to a multiple of 4" in message


def test_too_small_images_are_refused() -> None:
    assert size_problem(4, 4) is not None and "at least 8" in size_problem(4, 4)
    assert size_problem(8, 8) is None


def test_discriminator_patch_map_and_sigmoid() -> None:
    with torch.device("meta"):
        assert Discriminator()(torch.empty(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    torch.manual_seed(0)
    with torch.no_grad():
        squashed = Discriminator(features=4, sigmoid=True)(torch.randn(2, 3, 32, 32) * 3)
        raw = Discriminator(features=4, sigmoid=False)(torch.randn(2, 3, 32, 32) * 3)
    assert squashed.shape == raw.shape == (2, 1, 2, 2)
    assert 0 <= float(squashed.min()) and float(squashed.max()) <= 1


def test_normal_init_reaches_every_convolution() -> None:
    torch.manual_seed(0)
    generator = Generator(features=16, residual_blocks=2)
    init_normal(generator)
    convs = [m for m in generator.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert len(convs) == 1 + 2 + 2 * 2 + 2 + 1
    for conv in convs:
        assert float(conv.weight.detach().std()) == pytest.approx(0.02, rel=0.2)
        assert float(conv.bias.detach().abs().max()) == 0.0


def test_image_pool_fills_then_swaps_half_the_time() -> None:
    pool = ImagePool(3, (1, 2, 2))
    generator = torch.Generator().manual_seed(0)
    first = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 2, 2)
    assert torch.equal(pool.query(first, generator), first)  # while filling, the new images pass through
    assert int(pool.count) == 3 and torch.equal(pool.images, first)
    fresh = torch.arange(10.0, 210.0).view(200, 1, 1, 1).expand(200, 1, 2, 2)
    shown = pool.query(fresh, generator)
    from_history = int((shown != fresh).any(dim=(1, 2, 3)).sum())
    assert 70 < from_history < 130  # about half come from the history
    assert int(pool.count) == 3 and bool((pool.images >= 10).all())  # and were replaced by new ones
    assert set(pool.state_dict()) == {"images", "count"}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"image_size": 30, "load_size": 30}, "image_size=30: image size 30×30 is not divisible by 4"),
    ({"image_size": 16, "load_size": 16}, "image_size=16 is too small for the PatchGAN discriminator"),
    ({"image_size": 64, "load_size": 60}, "load_size=60 is smaller than image_size=64"),
    ({"init": "xavier"}, "init must be 'default'"),
    ({"decay_epochs": 9}, "decay_epochs=9 exceeds epochs=8"),
])
def test_bad_settings_are_refused_in_one_line(cyclegan_model: RegisteredModel, overrides: dict[str, object],
                                              message: str) -> None:
    config = resolve_config(cyclegan_model.spec, "quick", overrides)
    with pytest.raises(UsageError) as error:
        CycleGANRecipe(cyclegan_model.spec, config)
    assert message in str(error.value) and "\n" not in str(error.value)
