"""ImageSet selection and splitting, and the uint8 <-> float conversions."""

from __future__ import annotations

import pytest
import torch

from zoo_core.data.errors import DataError
from zoo_core.data.imageset import ImageSet, to_float, to_uint8


def _set(count: int = 10) -> ImageSet:
    images = torch.arange(count, dtype=torch.uint8).view(count, 1, 1, 1).expand(count, 3, 4, 4).contiguous()
    return ImageSet(
        images=images,
        labels={"glasses": torch.arange(count) % 2, "male": (torch.arange(count) // 2) % 2},
        masks=(images[:, :1] % 3 == 0).to(torch.uint8),
        names=[f"img{i}.png" for i in range(count)],
        classes={"glasses": ["no", "yes"]},
    )


def test_data_error_is_a_value_error() -> None:
    assert issubclass(DataError, ValueError)


def test_split_keeps_the_last_items_for_validation() -> None:
    data = _set(10)
    train, val = data.split(0.1)
    assert (len(train), len(val)) == (9, 1)
    assert train.images[:, 0, 0, 0].tolist() == list(range(9))
    assert val.images[:, 0, 0, 0].tolist() == [9]
    assert val.names == ["img9.png"]
    assert val.labels["glasses"].tolist() == [1]


def test_split_rounds_the_validation_count() -> None:
    train, val = _set(10).split(0.25)  # 2.5 rounds to 2 (banker's rounding in Python)
    assert (len(train), len(val)) == (8, 2)
    train, val = _set(10).split(0.33)
    assert (len(train), len(val)) == (7, 3)


def test_split_zero_gives_the_whole_set_and_an_empty_one() -> None:
    data = _set(6)
    train, val = data.split(0.0)
    assert train is data
    assert len(val) == 0
    assert val.images.shape == (0, 3, 4, 4)
    assert set(val.labels) == {"glasses", "male"}


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_split_refuses_a_bad_fraction(fraction: float) -> None:
    with pytest.raises(DataError, match="val_fraction"):
        _set().split(fraction)


def test_where_filters_on_all_conditions() -> None:
    data = _set(10)
    picked = data.where(glasses=1, male=0)
    # glasses = i % 2, male = (i // 2) % 2 -> i in {1, 5, 9}
    assert picked.images[:, 0, 0, 0].tolist() == [1, 5, 9]
    assert picked.names == ["img1.png", "img5.png", "img9.png"]
    assert picked.masks is not None and picked.masks.shape == (3, 1, 4, 4)
    assert picked.classes == {"glasses": ["no", "yes"]}


def test_where_unknown_label_lists_the_available_ones() -> None:
    with pytest.raises(DataError, match=r"unknown label 'blond'.*glasses, male") as caught:
        _set().where(blond=1)
    assert "\n" not in str(caught.value)


def test_subset_by_indices_slice_and_mask() -> None:
    data = _set(10)
    by_index = data.subset(torch.tensor([7, 2]))
    assert by_index.images[:, 0, 0, 0].tolist() == [7, 2]
    assert by_index.labels["male"].tolist() == [1, 1]
    assert by_index.names == ["img7.png", "img2.png"]
    by_slice = data.subset(slice(2, 8, 3))
    assert by_slice.images[:, 0, 0, 0].tolist() == [2, 5]
    mask = torch.zeros(10, dtype=torch.bool)
    mask[[0, 4]] = True
    by_mask = data.subset(mask)
    assert by_mask.images[:, 0, 0, 0].tolist() == [0, 4]
    assert by_mask.masks is not None and by_mask.masks[:, 0, 0, 0].tolist() == [1, 0]


def test_subset_is_independent_of_the_original() -> None:
    data = _set(4)
    part = data.subset(torch.tensor([0, 1]))
    part.images[0].fill_(200)
    assert int(data.images[0, 0, 0, 0]) == 0


def test_constructor_refuses_wrong_types_and_shapes() -> None:
    with pytest.raises(DataError, match="uint8"):
        ImageSet(images=torch.zeros(2, 3, 4, 4), labels={})
    with pytest.raises(DataError, match="label 'digit'"):
        ImageSet(images=torch.zeros(2, 1, 4, 4, dtype=torch.uint8), labels={"digit": torch.zeros(3)})
    with pytest.raises(DataError, match="masks"):
        ImageSet(images=torch.zeros(2, 3, 4, 4, dtype=torch.uint8), labels={},
                 masks=torch.zeros(2, 1, 5, 5, dtype=torch.uint8))
    with pytest.raises(DataError, match="names"):
        ImageSet(images=torch.zeros(2, 3, 4, 4, dtype=torch.uint8), labels={}, names=["a"])


def test_labels_become_int64() -> None:
    labels = {"d": torch.tensor([1, 2], dtype=torch.uint8)}
    data = ImageSet(images=torch.zeros(2, 1, 4, 4, dtype=torch.uint8), labels=labels)
    assert data.labels["d"].dtype == torch.int64


def test_to_float_ranges() -> None:
    pixels = torch.tensor([0, 1, 127, 128, 255], dtype=torch.uint8)
    unit = to_float(pixels)
    assert unit.dtype == torch.float32
    assert torch.equal(unit, pixels.float() / 255)
    signed = to_float(pixels, (-1.0, 1.0))
    assert torch.allclose(signed, pixels.float() / 127.5 - 1, atol=0, rtol=0)
    assert signed[0].item() == -1.0 and signed[-1].item() == 1.0


@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-1.0, 1.0)])
def test_to_uint8_inverts_to_float(value_range: tuple[float, float]) -> None:
    pixels = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    back = to_uint8(to_float(pixels, value_range), value_range)
    assert back.dtype == torch.uint8
    assert torch.equal(back, pixels)


def test_to_uint8_clamps_and_rounds() -> None:
    values = torch.tensor([-3.0, -1.0, 0.0, 0.4 / 255, 0.6 / 255, 1.0, 7.0])
    assert to_uint8(values).tolist() == [0, 0, 0, 0, 1, 255, 255]
    assert to_uint8(torch.tensor([-2.0, 0.0, 2.0]), (-1.0, 1.0)).tolist() == [0, 128, 255]
