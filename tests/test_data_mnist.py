"""The MNIST IDX reader: both layouts, gzipped or raw, and every way a file can be bad."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo_core.data.errors import DataError
from zoo_core.data.mnist import load_mnist

SHARED_T10K = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-t10k"


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_split(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, array, magic, idx in (("images", images, 2051, "idx3"), ("labels", labels, 2049, "idx1")):
        data = idx_bytes(array, magic)
        path = folder / f"{prefix}-{kind}-{idx}-ubyte{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(data) if gz else data)
        paths.append(path)
    return paths[0], paths[1]


def sample(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), rng.integers(0, 10, count, dtype=np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_plain_layout_reads_both_splits(tmp_path: Path, gz: bool) -> None:
    train_x, train_y = sample(6, 0)
    test_x, test_y = sample(4, 1)
    write_split(tmp_path, "train", train_x, train_y, gz)
    write_split(tmp_path, "t10k", test_x, test_y, gz)
    train = load_mnist(tmp_path, "train")
    assert train.images.shape == (6, 1, 28, 28) and train.images.dtype == torch.uint8
    assert torch.equal(train.images[:, 0], torch.from_numpy(train_x))
    assert train.labels["digit"].tolist() == train_y.tolist()
    assert train.labels["digit"].dtype == torch.int64
    assert train.classes["digit"] == [str(d) for d in range(10)]
    test = load_mnist(tmp_path, "test")
    assert torch.equal(test.images[:, 0], torch.from_numpy(test_x))
    assert len(load_mnist(tmp_path)) == 6  # auto prefers train


@pytest.mark.parametrize("gz", [False, True])
def test_torchvision_layout_and_auto_fallback_to_test(tmp_path: Path, gz: bool) -> None:
    test_x, test_y = sample(5, 2)
    write_split(tmp_path / "MNIST" / "raw", "t10k", test_x, test_y, gz)
    data = load_mnist(tmp_path)
    assert torch.equal(data.images[:, 0], torch.from_numpy(test_x))
    assert data.labels["digit"].tolist() == test_y.tolist()


def test_raw_file_preferred_over_gz_when_both_exist(tmp_path: Path) -> None:
    raw_x, raw_y = sample(3, 3)
    write_split(tmp_path, "train", raw_x, raw_y, gz=False)
    write_split(tmp_path, "train", *sample(2, 4), gz=True)  # torchvision keeps both; they are the same data there
    assert len(load_mnist(tmp_path, "train")) == 3


def _error(directory: Path, split: str = "auto") -> str:
    with pytest.raises(DataError) as caught:
        load_mnist(directory, split)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_bad_magic_names_the_file(tmp_path: Path) -> None:
    images, _ = write_split(tmp_path, "train", *sample(2, 0), gz=False)
    data = bytearray(images.read_bytes())
    data[2:4] = (2049).to_bytes(2, "big")  # a labels magic in the images file
    images.write_bytes(bytes(data))
    message = _error(tmp_path)
    assert str(images) in message and "magic number 2049" in message and "2051" in message


def test_labels_file_with_images_magic(tmp_path: Path) -> None:
    _, labels = write_split(tmp_path, "t10k", *sample(2, 0), gz=True)
    labels.write_bytes(gzip.compress(idx_bytes(np.zeros((2, 28, 28), np.uint8), 2051)))
    message = _error(tmp_path)
    assert str(labels) in message and "2049" in message


@pytest.mark.parametrize("gz", [False, True])
def test_wrong_length_names_the_file(tmp_path: Path, gz: bool) -> None:
    images, _ = write_split(tmp_path, "train", *sample(3, 0), gz=False)
    data = images.read_bytes()[:-100]  # the header still says 3 images
    if gz:
        images.unlink()
        images = images.with_name(images.name + ".gz")
        images.write_bytes(gzip.compress(data))
    else:
        images.write_bytes(data)
    message = _error(tmp_path)
    assert str(images) in message and "[3, 28, 28]" in message


def test_trailing_bytes_are_refused(tmp_path: Path) -> None:
    _, labels = write_split(tmp_path, "train", *sample(3, 0), gz=False)
    labels.write_bytes(labels.read_bytes() + b"\x00")
    message = _error(tmp_path)
    assert str(labels) in message and "[3]" in message


def test_count_mismatch(tmp_path: Path) -> None:
    images, labels = write_split(tmp_path, "train", *sample(3, 0), gz=False)
    labels.write_bytes(idx_bytes(np.arange(2, dtype=np.uint8), 2049))
    message = _error(tmp_path)
    assert "3 images" in message and "2 labels" in message and str(images) in message


def test_truncated_gzip(tmp_path: Path) -> None:
    images, _ = write_split(tmp_path, "train", *sample(20, 0), gz=True)
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    message = _error(tmp_path)
    assert str(images) in message and "gzip" in message


def test_corrupt_gzip(tmp_path: Path) -> None:
    _, labels = write_split(tmp_path, "train", *sample(20, 0), gz=True)
    data = bytearray(labels.read_bytes())
    data[12:20] = b"\xff" * 8
    labels.write_bytes(bytes(data))
    message = _error(tmp_path)
    assert str(labels) in message and "gzip" in message


def test_missing_directory(tmp_path: Path) -> None:
    message = _error(tmp_path / "nope")
    assert str(tmp_path / "nope") in message and "does not exist" in message


def test_no_idx_files_says_what_was_looked_for(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hi")
    message = _error(tmp_path)
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert str(tmp_path) in message


def test_requested_split_missing(tmp_path: Path) -> None:
    write_split(tmp_path, "t10k", *sample(2, 0), gz=False)
    message = _error(tmp_path, "train")
    assert "train-images-idx3-ubyte" in message


def test_images_without_labels(tmp_path: Path) -> None:
    _, labels = write_split(tmp_path, "train", *sample(2, 0), gz=False)
    labels.unlink()
    message = _error(tmp_path)
    assert "train-labels-idx1-ubyte" in message


def test_unknown_split(tmp_path: Path) -> None:
    assert "val" in _error(tmp_path, "val")


def test_labels_out_of_range(tmp_path: Path) -> None:
    images, _ = sample(2, 0)
    write_split(tmp_path, "train", images, np.array([3, 12], np.uint8), gz=False)
    assert "label 12" in _error(tmp_path)


def test_real_t10k() -> None:
    if not (SHARED_T10K / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST t10k not present at {SHARED_T10K}")
    data = load_mnist(SHARED_T10K)
    assert data.images.shape == (10000, 1, 28, 28)
    assert data.images.dtype == torch.uint8
    digits = data.labels["digit"]
    assert int(digits.min()) == 0 and int(digits.max()) == 9
    counts = torch.bincount(digits, minlength=10)
    assert counts.sum() == 10000 and int(counts.min()) > 850  # every digit well represented
    mean = data.images.float().mean().item()
    assert 25.0 < mean < 40.0  # MNIST's mean pixel is about 33.3 (0.1307 * 255)
    assert data.images[:, :, 0, :].float().mean() < 1.0  # the top row is background, as in every MNIST digit
