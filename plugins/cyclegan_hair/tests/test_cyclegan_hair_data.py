"""Domains from CelebA attributes (.txt and .csv), two folders, trainA/trainB and the embedded portraits; pairing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from zoo_cyclegan_hair.data import DomainPair, load_domains, pair_batches

from zoo_core.api import DataError, DataSource, ImageSet, UsageError

CONFIG = {"load_size": 16, "portraits": 40, "val_fraction": 0.0}
ATTRIBUTES = ["Bald", "Black_Hair", "Blond_Hair", "Male"]
# file → (Black_Hair, Blond_Hair); 000003 has both, 000004 neither
ROWS = {"000001.jpg": (1, 0), "000002.jpg": (0, 1), "000003.jpg": (1, 1), "000004.jpg": (0, 0),
        "000005.jpg": (1, 0), "000006.jpg": (0, 1)}


def write_image(path: Path, value: int, size: tuple[int, int] = (18, 22)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(path)


def write_celeba(root: Path, suffix: str) -> Path:
    """A tiny CelebA: six 18×22 JPEGs (grey level 40·i) and the attribute table in the official or Kaggle form."""
    for index, name in enumerate(ROWS, start=1):
        write_image(root / "img_align_celeba" / name, 40 * index)
    lines = []
    for name, (black, blond) in ROWS.items():
        values = [-1, 2 * black - 1, 2 * blond - 1, 1]
        lines.append((name, values))
    if suffix == ".txt":
        text = f"{len(lines)}\n{' '.join(ATTRIBUTES)}\n"
        text += "".join(f"{name} {' '.join(f'{v:2d}' for v in values)}\n" for name, values in lines)
    else:
        text = "image_id," + ",".join(ATTRIBUTES) + "\n"
        text += "".join(f"{name},{','.join(map(str, values))}\n" for name, values in lines)
    (root / f"list_attr_celeba{suffix}").write_text(text)
    return root


@pytest.mark.parametrize("suffix", [".txt", ".csv"])
def test_celeba_domains_from_the_attribute_table(tmp_path: Path, suffix: str) -> None:
    root = write_celeba(tmp_path / "celeba", suffix)
    data = load_domains(DataSource(data=root), CONFIG)
    assert data.train.a.names == ["000001.jpg", "000003.jpg", "000005.jpg"]  # both attributes → A, as the book
    assert data.train.b.names == ["000002.jpg", "000006.jpg"]  # neither-attribute 000004 is left out
    assert data.train.a.images.shape == (3, 3, 16, 16)  # resized to a square, as the book does
    assert [int(v) for v in data.train.a.images[:, 0, 8, 8]] == [40, 120, 200]
    assert len(data.train) == 3 and len(data.val) == 0
    assert sorted(p.name for p in (root / "img_align_celeba").iterdir()) == sorted(ROWS)  # nothing moved
    assert "CelebA" in data.description


def test_celeba_hold_out_takes_the_last_of_each_domain(tmp_path: Path) -> None:
    root = write_celeba(tmp_path / "celeba", ".txt")
    data = load_domains(DataSource(data=root, val_split=0.4), CONFIG)
    assert data.val.a.names == ["000005.jpg"] and data.val.b.names == ["000006.jpg"]


def test_two_folders(tmp_path: Path) -> None:
    for index in range(3):
        write_image(tmp_path / "black" / f"{index}.png", 10 + index)
    for index in range(5):
        write_image(tmp_path / "blond" / f"b{index}.jpg", 200 + index)
    data = load_domains(DataSource(data_a=tmp_path / "black", data_b=tmp_path / "blond"), CONFIG)
    assert (len(data.train.a), len(data.train.b), len(data.train)) == (3, 5, 5)
    assert data.train.a.images.shape == (3, 3, 16, 16)
    assert int(data.train.b.images[4, 0, 0, 0]) == 204


def test_train_a_train_b_layout(tmp_path: Path) -> None:
    write_image(tmp_path / "h2z" / "trainA" / "a.png", 1)
    write_image(tmp_path / "h2z" / "trainB" / "b.png", 2)
    data = load_domains(DataSource(data=tmp_path / "h2z"), CONFIG)
    assert (len(data.train.a), len(data.train.b)) == (1, 1)


def test_bad_data_options_are_one_line(tmp_path: Path) -> None:
    write_image(tmp_path / "black" / "0.png", 1)
    with pytest.raises(UsageError, match="--data-a and --data-b go together"):
        load_domains(DataSource(data_a=tmp_path / "black"), CONFIG)
    with pytest.raises(DataError) as error:
        load_domains(DataSource(data=tmp_path / "black"), CONFIG)
    assert "expected CelebA" in str(error.value) and "--data-a DIR --data-b DIR" in str(error.value)
    (tmp_path / "empty").mkdir()
    write_image(tmp_path / "blond" / "0.png", 1)
    data_a_only_black = DataSource(data_a=tmp_path / "black", data_b=tmp_path / "empty")
    with pytest.raises(DataError, match="no image files"):
        load_domains(data_a_only_black, CONFIG)


def test_embedded_portraits_split_by_the_blond_label(zoo_cache: Path) -> None:
    data = load_domains(DataSource(), {**CONFIG, "val_fraction": 0.1})
    for part in (data.train, data.val):
        assert part.a.masks is not None and part.b.masks is not None
        assert bool((part.a.labels["blond"] == 0).all()) and bool((part.b.labels["blond"] == 1).all())
    assert len(data.train.a) + len(data.val.a) + len(data.train.b) + len(data.val.b) == 40
    assert len(data.val.a) == 2 and len(data.val.b) == 2


def _domain(count: int, offset: int) -> ImageSet:
    images = (torch.arange(count) + offset).to(torch.uint8).view(count, 1, 1, 1).expand(count, 3, 2, 2)
    return ImageSet(images=images.contiguous(), labels={})


def test_unequal_domains_take_the_longer_length_and_cycle_the_shorter() -> None:
    pair = DomainPair(_domain(7, 0), _domain(3, 100))
    generator = torch.Generator().manual_seed(0)
    first = pair_batches(pair, 2, generator, train=True)
    assert len(first) == 4  # ceil(7 / 2)
    a = torch.cat([b["a"][:, 0, 0, 0] for b in first]).tolist()
    b = torch.cat([b["b"][:, 0, 0, 0] for b in first]).tolist()
    assert sorted(a) == list(range(7))  # every A image once
    assert sorted(b[:3]) == [100, 101, 102] and b[3:6] == b[:3]  # B cycled modulo its length
    second = pair_batches(pair, 2, generator, train=True)
    a2 = torch.cat([b["a"][:, 0, 0, 0] for b in second]).tolist()
    assert a2 != a and sorted(a2) == sorted(a)  # reshuffled each epoch
    ordered = pair_batches(pair, 7, generator, train=False).batch(0)
    assert ordered["a"][:, 0, 0, 0].tolist() == list(range(7))
    assert ordered["b"][:, 0, 0, 0].tolist() == [100, 101, 102, 100, 101, 102, 100]


def test_an_empty_domain_makes_an_empty_pair() -> None:
    pair = DomainPair(_domain(3, 0), _domain(0, 0))
    assert len(pair) == 0 and len(pair_batches(pair, 1, torch.Generator(), train=False)) == 0
