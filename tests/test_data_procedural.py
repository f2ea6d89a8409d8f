"""Generated digits and portraits: deterministic, balanced, plausible; and the on-disk cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from zoo_core.data import procedural
from zoo_core.data.errors import DataError
from zoo_core.data.imageset import ImageSet
from zoo_core.data.procedural import cache_dir, cache_root, cached, make_digits, make_portraits


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    return make_digits(40, seed=1)


@pytest.fixture(scope="module")
def portraits() -> ImageSet:
    return make_portraits(24, seed=5, size=32)


def test_digits_shape_and_type(digits: ImageSet) -> None:
    assert digits.images.shape == (40, 1, 28, 28)
    assert digits.images.dtype == torch.uint8
    assert digits.labels["digit"].dtype == torch.int64
    assert digits.masks is None
    assert make_digits(3, seed=0, size=32).images.shape == (3, 1, 32, 32)


def test_digits_are_deterministic(digits: ImageSet) -> None:
    again = make_digits(40, seed=1)
    assert again.images.numpy().tobytes() == digits.images.numpy().tobytes()
    assert torch.equal(again.labels["digit"], digits.labels["digit"])
    other = make_digits(40, seed=2)
    assert not torch.equal(other.images, digits.images)


def test_digits_labels_are_balanced(digits: ImageSet) -> None:
    assert torch.bincount(digits.labels["digit"], minlength=10).tolist() == [4] * 10
    counts = torch.bincount(make_digits(23, seed=3).labels["digit"], minlength=10)
    assert int(counts.min()) == 2 and int(counts.max()) == 3


def test_digits_look_like_mnist(digits: ImageSet) -> None:
    pixels = digits.images.float()
    # White strokes on black: bright ink, a dark border, and about MNIST's share of ink (mean ~33).
    assert (pixels.amax(dim=(1, 2, 3)) > 200).all()
    assert 15.0 < pixels.mean().item() < 60.0
    assert pixels[:, :, :2, :].mean().item() < 2.0 and pixels[:, :, :, :2].mean().item() < 2.0
    # Anti-aliased: some grey edge pixels, not only black and white.
    grey = ((pixels > 30) & (pixels < 220)).float().mean().item()
    assert grey > 0.02


def test_digits_of_one_class_resemble_each_other_more_than_other_classes(digits: ImageSet) -> None:
    data = make_digits(200, seed=7)
    x = data.images.float().flatten(1)
    x = x / x.norm(dim=1, keepdim=True)
    labels = data.labels["digit"]
    means = torch.stack([x[labels == d].mean(0) for d in range(10)])
    # Nearest class mean (on held-out-free data) must beat chance (10%) by far if the digits are recognisable.
    accuracy = ((x @ means.T).argmax(1) == labels).float().mean().item()
    assert accuracy > 0.6


def test_portraits_shape_and_type(portraits: ImageSet) -> None:
    assert portraits.images.shape == (24, 3, 32, 32)
    assert portraits.images.dtype == torch.uint8
    assert portraits.masks is not None and portraits.masks.shape == (24, 1, 32, 32)
    assert portraits.masks.dtype == torch.uint8
    assert set(portraits.labels) == {"glasses", "male", "blond"}


def test_portraits_are_deterministic(portraits: ImageSet) -> None:
    again = make_portraits(24, seed=5, size=32)
    assert again.images.numpy().tobytes() == portraits.images.numpy().tobytes()
    assert again.masks is not None and portraits.masks is not None
    assert torch.equal(again.masks, portraits.masks)
    for name in portraits.labels:
        assert torch.equal(again.labels[name], portraits.labels[name])
    assert not torch.equal(make_portraits(24, seed=6, size=32).images, portraits.images)


def test_portrait_attributes_are_balanced_and_independent(portraits: ImageSet) -> None:
    for name in ("glasses", "male", "blond"):
        assert portraits.labels[name].sum().item() == 12, name
    combos = portraits.labels["glasses"] + 2 * portraits.labels["male"] + 4 * portraits.labels["blond"]
    assert torch.bincount(combos, minlength=8).tolist() == [3] * 8


def test_portrait_masks_mark_hair(portraits: ImageSet) -> None:
    masks = portraits.masks
    assert masks is not None
    assert set(masks.unique().tolist()) <= {0, 1}
    area = masks.float().mean(dim=(1, 2, 3))
    assert (area > 0.03).all() and (area < 0.6).all()  # every portrait has hair, none is all hair
    # Hair lies inside the picture, never along its top edge (the head sits below it).
    assert masks[:, :, 0, :].sum().item() == 0
    # The mask really covers the hair colour: blond hair is much brighter than black hair.
    brightness = portraits.images.float().mean(dim=1, keepdim=True)
    under = (brightness * masks).sum(dim=(1, 2, 3)) / masks.sum(dim=(1, 2, 3))
    blond = portraits.labels["blond"] == 1
    assert under[blond].min() > 120 and under[~blond].max() < 80


CANVAS = 96


def drawn_without_and_with(attribute: str, seed: int, **others: bool) -> dict[bool, tuple[np.ndarray, np.ndarray]]:
    """(image, hair mask) of one random stream drawn with ``attribute`` off and on, on a grey background."""
    background = np.full((CANVAS, CANVAS, 3), 128, np.uint8)
    drawn = {}
    for value in (False, True):
        flags = {"glasses": False, "male": False, "blond": False, **others, attribute: value}
        rng = np.random.Generator(np.random.PCG64(seed))
        drawn[value] = procedural._draw_portrait(CANVAS, rng, flags["glasses"], flags["male"], flags["blond"],
                                                 background)
    return drawn


@pytest.mark.parametrize("seed", range(6))
def test_every_man_has_a_dark_beard_outside_the_hair_mask(seed: int) -> None:
    # Drawn as a man and as a woman: same skin, hair and background; only the man has a dark chin (a beard
    # that a mean of men's encodings keeps), and it is facial hair, not head hair.
    drawn = drawn_without_and_with("male", seed, blond=seed % 2 == 1)
    chin = (slice(int(0.7 * CANVAS), int(0.76 * CANVAS)), slice(int(0.45 * CANVAS), int(0.55 * CANVAS)))
    brightness = {male: float(image[chin].mean()) for male, (image, _) in drawn.items()}
    assert brightness[True] < 0.75 * brightness[False]  # a blond beard on pale skin is the lightest: about 0.7
    assert not drawn[True][1][chin].any() and not drawn[False][1][chin].any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_glasses_are_tinted_lenses_over_the_eyes(seed: int) -> None:
    # Glasses are drawn last, so the same random stream with and without them differs only by the glasses.
    drawn = drawn_without_and_with("glasses", seed, male=seed == 1, blond=seed == 2)
    changed = np.abs(drawn[True][0].astype(int) - drawn[False][0].astype(int)).sum(axis=2) > 40
    rows, cols = np.nonzero(changed)
    assert changed.mean() > 0.02  # bold: tinted lenses in thick frames, about 200 canvas pixels at least
    assert rows.min() > 0.3 * CANVAS and rows.max() < 0.65 * CANVAS  # only around the eye line
    assert cols.min() > 0.15 * CANVAS and cols.max() < 0.85 * CANVAS  # and within the face
    # Lenses and frames hide any hair under them.
    assert not (drawn[True][1][changed] > 0).any()


def test_portraits_at_256() -> None:
    data = make_portraits(2, seed=0, size=256)
    assert data.images.shape == (2, 3, 256, 256)
    assert data.masks is not None and data.masks.sum().item() > 1000


def test_bad_sizes() -> None:
    with pytest.raises(DataError, match="make_digits"):
        make_digits(-1, 0)
    with pytest.raises(DataError, match="make_portraits"):
        make_portraits(2, 0, size=4)


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "zoo-cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "zoo-cache"
    monkeypatch.delenv("ZOO_CACHE_DIR")
    assert cache_root() == tmp_path / "xdg" / "zoo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "zoo"


def test_cache_dir_names_kind_n_seed_size_and_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    folder = cache_dir("portraits", 10, 3, 64)
    assert folder.is_relative_to(tmp_path)
    text = folder.relative_to(tmp_path).as_posix()
    assert "portraits" in text and f"v{procedural.GENERATOR_VERSION}" in text
    assert "n10" in text and "seed3" in text and "size64" in text
    assert cache_dir("portraits", 10, 4, 64) != folder and cache_dir("digits", 10, 3, 64) != folder


def _boom(n: int, seed: int, size: int) -> ImageSet:
    raise AssertionError("the generator ran although the cache was valid")


def test_cache_roundtrip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    first = cached("portraits", 8, 2, 32)
    fresh = make_portraits(8, 2, 32)
    assert torch.equal(first.images, fresh.images)
    folder = cache_dir("portraits", 8, 2, 32)
    assert (folder / "images.npy").is_file() and (folder / "masks.npy").is_file()
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no temp files
    monkeypatch.setitem(procedural.GENERATORS, "portraits", _boom)
    second = cached("portraits", 8, 2, 32)
    assert torch.equal(second.images, fresh.images)
    assert second.masks is not None and fresh.masks is not None and torch.equal(second.masks, fresh.masks)
    for name in fresh.labels:
        assert torch.equal(second.labels[name], fresh.labels[name])
    assert second.classes == fresh.classes


def test_cache_arrays_load_without_pickle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    cached("digits", 10, 0, 28)
    for path in cache_dir("digits", 10, 0, 28).glob("*.npy"):
        array = np.load(path, allow_pickle=False)
        assert array.dtype in (np.uint8, np.int64)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete", "meta"])
def test_corrupt_cache_is_regenerated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, damage: str) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    expected = cached("digits", 12, 4, 28)
    folder = cache_dir("digits", 12, 4, 28)
    images = folder / "images.npy"
    if damage == "truncate":
        images.write_bytes(images.read_bytes()[:300])
    elif damage == "garbage":
        images.write_bytes(b"not an npy file at all")
    elif damage == "delete":
        (folder / "label-digit.npy").unlink()
    else:
        (folder / "meta.json").write_text("{broken")
    calls = []

    def counting(n: int, seed: int, size: int) -> ImageSet:
        calls.append((n, seed, size))
        return make_digits(n, seed, size)

    monkeypatch.setitem(procedural.GENERATORS, "digits", counting)
    again = cached("digits", 12, 4, 28)
    assert calls == [(12, 4, 28)]
    assert torch.equal(again.images, expected.images)
    # The rewritten cache is whole again: the next call reads it without generating.
    monkeypatch.setitem(procedural.GENERATORS, "digits", _boom)
    assert torch.equal(cached("digits", 12, 4, 28).images, expected.images)


def test_cached_unknown_kind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"unknown procedural data set 'faces'.*digits, portraits"):
        cached("faces", 1, 0, 28)
