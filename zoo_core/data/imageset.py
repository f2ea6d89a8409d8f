"""ImageSet: a whole data set decoded once into uint8 tensors, plus labels, masks and names."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from zoo_core.data.errors import DataError


@dataclass
class ImageSet:
    """Images as uint8 [N,C,H,W] on the CPU; every label tensor is int64 [N]."""

    images: torch.Tensor
    labels: dict[str, torch.Tensor]
    masks: torch.Tensor | None = None
    names: list[str] | None = None
    classes: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Catch shape and dtype mistakes where the set is built, not deep inside a training step.
        if self.images.ndim != 4 or self.images.dtype != torch.uint8:
            raise DataError(f"ImageSet images must be uint8 [N,C,H,W], got {self.images.dtype} "
                            f"{tuple(self.images.shape)}; convert with to_uint8 first")
        self.images = self.images.cpu().contiguous()
        count = self.images.shape[0]
        for name, values in self.labels.items():
            if values.shape != (count,):
                raise DataError(f"ImageSet label {name!r} has shape {tuple(values.shape)}, expected ({count},); "
                                "give one label per image")
        self.labels = {name: values.to(torch.int64).cpu().contiguous() for name, values in self.labels.items()}
        if self.masks is not None:
            expected = (count, 1, *self.images.shape[2:])
            if tuple(self.masks.shape) != expected or self.masks.dtype != torch.uint8:
                raise DataError(f"ImageSet masks must be uint8 {expected}, got {self.masks.dtype} "
                                f"{tuple(self.masks.shape)}")
            self.masks = self.masks.cpu().contiguous()
        if self.names is not None and len(self.names) != count:
            raise DataError(f"ImageSet has {len(self.names)} names for {count} images; give one name per image")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: torch.Tensor | slice) -> ImageSet:
        """The items at ``index`` (a slice, int64 indices or a bool mask), as a new independent set."""
        if isinstance(index, slice):
            positions = torch.arange(len(self))[index]
        else:
            positions = torch.as_tensor(index)
            if positions.dtype == torch.bool:
                if positions.shape != (len(self),):
                    raise DataError(f"subset mask has shape {tuple(positions.shape)}, expected ({len(self)},)")
                positions = positions.nonzero().flatten()
            positions = positions.to(torch.int64).flatten()
        names = None if self.names is None else [self.names[i] for i in positions.tolist()]
        return ImageSet(
            images=self.images.index_select(0, positions),
            labels={name: values.index_select(0, positions) for name, values in self.labels.items()},
            masks=None if self.masks is None else self.masks.index_select(0, positions),
            names=names,
            classes={name: list(values) for name, values in self.classes.items()},
        )

    def split(self, val_fraction: float) -> tuple[ImageSet, ImageSet]:
        """(train, validation): the last round(N * val_fraction) items validate, so no seed is involved."""
        if not 0.0 <= val_fraction < 1.0:
            raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}; e.g. 0.1 keeps the last 10% aside")
        count = len(self)
        if val_fraction == 0.0:
            return self, self.subset(slice(count, count))
        val_count = round(count * val_fraction)
        # A requested validation set is never silently empty, nor allowed to swallow the whole training set.
        val_count = min(max(val_count, 1), count - 1) if count >= 2 else 0
        return self.subset(slice(0, count - val_count)), self.subset(slice(count - val_count, count))

    def where(self, **conditions: int) -> ImageSet:
        """Items whose labels equal all the given values, e.g. ``where(glasses=1, male=0)``."""
        keep = torch.ones(len(self), dtype=torch.bool)
        for name, value in conditions.items():
            if name not in self.labels:
                available = ", ".join(sorted(self.labels)) or "none"
                raise DataError(f"unknown label {name!r} in where(); this set has labels: {available}")
            keep &= self.labels[name] == int(value)
        return self.subset(keep)


def to_float(images_uint8: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """uint8 [0,255] to float32 in ``value_range``; (-1, 1) gives exactly x/127.5 - 1."""
    low, high = value_range
    # Divide by 255/(high-low) rather than multiply by its inverse so that [0,1] is exactly x/255.
    return images_uint8.to(torch.float32) / (255.0 / (high - low)) + low


def to_uint8(images: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """The inverse of :func:`to_float`: clamp to ``value_range``, scale to [0,255] and round."""
    low, high = value_range
    scaled = (images.detach().to(torch.float32) - low) * (255.0 / (high - low))
    return scaled.clamp(0.0, 255.0).round().to(torch.uint8)
