"""The two hair domains: A = black hair, B = blond hair, from CelebA, two folders or the embedded portraits.

Unequal domain sizes are handled as the book's ``LoadData`` does: an epoch is as long as the larger domain
and the smaller one is indexed modulo its length. Each domain is shuffled on its own every epoch, so the
pairs differ from epoch to epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo_core.api import (
    Batches,
    DataError,
    DataSource,
    ImageSet,
    TrainingData,
    UsageError,
    cached,
    detect_layout,
    load_celeba,
    load_image_folder,
)

CELEBA_A = "Black_Hair"
CELEBA_B = "Blond_Hair"
EMBEDDED_SEED = 0
DOMAIN_NAMES = ("black", "blond")


@dataclass
class DomainPair:
    """Images of domain A (black hair) and domain B (blond hair); its length is that of the larger domain."""

    a: ImageSet
    b: ImageSet

    def __len__(self) -> int:
        if len(self.a) == 0 or len(self.b) == 0:
            return 0
        return max(len(self.a), len(self.b))

    def domain(self, name: str) -> ImageSet:
        """``"a"``/``"black"`` or ``"b"``/``"blond"``."""
        return self.a if name in ("a", DOMAIN_NAMES[0]) else self.b


@dataclass
class PairBatches(Batches):
    """Batches of (A, B) pairs: ``order`` indexes domain A and ``b_order`` domain B, position by position."""

    b_order: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        span = slice(index * self.batch_size, (index + 1) * self.batch_size)
        a, b = self.tensors["a"], self.tensors["b"]
        return {"a": a.index_select(0, self.order[span].to(a.device)),
                "b": b.index_select(0, self.b_order[span].to(b.device))}


def pair_batches(pair: DomainPair, batch_size: int, generator: torch.Generator, train: bool) -> PairBatches:
    """One epoch of pairs: ``len(pair)`` positions; each domain shuffled (when training) and cycled modulo its size."""
    length = len(pair)
    positions = torch.arange(length)
    count_a, count_b = len(pair.a), len(pair.b)
    if train:
        order_a = torch.randperm(count_a, generator=generator)[positions % count_a] if length else positions
        order_b = torch.randperm(count_b, generator=generator)[positions % count_b] if length else positions
    else:
        order_a, order_b = (positions % max(count_a, 1)), (positions % max(count_b, 1))
    return PairBatches({"a": pair.a.images, "b": pair.b.images}, batch_size, order_a, b_order=order_b)


# -- loading --------------------------------------------------------------------------------------------------
def load_domains(source: DataSource, config: Mapping[str, Any]) -> TrainingData:
    """The two domains at ``load_size``, each split into train and validation parts."""
    size = int(config["load_size"])
    if (source.data_a is None) != (source.data_b is None):
        raise UsageError("--data-a and --data-b go together: give the black-hair folder and the blond-hair folder")
    if source.data_a is not None and source.data_b is not None:
        if source.data is not None:
            raise UsageError("give either --data (CelebA or a trainA/trainB folder) or --data-a/--data-b, not both")
        a, b = _two_folders(source.data_a, source.data_b, size, source)
        origin = f"folders {source.data_a} (A) and {source.data_b} (B)"
    elif source.data is not None:
        a, b, origin = _data_folder(source.data, size, source)
    else:
        a, b = embedded_domains(int(config["portraits"]), EMBEDDED_SEED, size, source.limit)
        origin = "embedded portraits"
    fraction = source.val_split if source.val_split is not None else float(config["val_fraction"])
    train_a, val_a = a.split(fraction)
    train_b, val_b = b.split(fraction)
    for name, part in (("A (black hair)", train_a), ("B (blond hair)", train_b)):
        if len(part) == 0:
            raise DataError(f"domain {name} has no training images in {origin}; add images of that domain")
    description = (f"{origin}: {len(train_a)} black + {len(train_b)} blond for training, "
                   f"{len(val_a)} + {len(val_b)} held out")
    return TrainingData(DomainPair(train_a, train_b), DomainPair(val_a, val_b), description)


def embedded_domains(count: int, seed: int, size: int, limit: int | None = None) -> tuple[ImageSet, ImageSet]:
    """Generated portraits split by their ``blond`` label (0 black, 1 blond); hair masks included."""
    portraits = cached("portraits", count, seed, size)
    if limit is not None:
        portraits = portraits.subset(slice(0, limit))
    return portraits.where(blond=0), portraits.where(blond=1)


def split_celeba(images: ImageSet) -> tuple[ImageSet, ImageSet]:
    """A = Black_Hair, B = Blond_Hair without Black_Hair: an image carrying both goes to A, as in the book."""
    return images.where(**{CELEBA_A: 1}), images.where(**{CELEBA_A: 0, CELEBA_B: 1})


def load_celeba_domains(directory: Path, size: int, strict: bool = False,
                        limit: int | None = None) -> tuple[ImageSet, ImageSet]:
    """CelebA rows with black or blond hair, read from the attribute table without moving any file."""
    images = load_celeba(directory, size, [CELEBA_A, CELEBA_B],
                         select=lambda row: row[CELEBA_A] == 1 or row[CELEBA_B] == 1,
                         strict=strict, limit=limit, mode="resize")  # the book resizes 178×218 to a square
    return split_celeba(images)


def _two_folders(folder_a: Path, folder_b: Path, size: int, source: DataSource) -> tuple[ImageSet, ImageSet]:
    return (load_image_folder(folder_a, size, mode="resize", strict=source.strict, limit=source.limit),
            load_image_folder(folder_b, size, mode="resize", strict=source.strict, limit=source.limit))


def _data_folder(directory: Path, size: int, source: DataSource) -> tuple[ImageSet, ImageSet, str]:
    """CelebA, or the CycleGAN data sets' trainA/ and trainB/ folders."""
    directory = Path(directory)
    if (directory / "trainA").is_dir() and (directory / "trainB").is_dir():
        a, b = _two_folders(directory / "trainA", directory / "trainB", size, source)
        return a, b, f"{directory}/trainA and trainB"
    try:
        layout = detect_layout(directory)
    except DataError:
        layout = "unknown"
    if layout != "celeba":
        raise DataError(f"--data {directory}: expected CelebA (img_align_celeba/ with list_attr_celeba.txt or .csv) "
                        "or trainA/ and trainB/ folders; for two plain folders use --data-a DIR --data-b DIR")
    a, b = load_celeba_domains(directory, size, source.strict, source.limit)
    return a, b, f"CelebA in {directory}"
