"""Face data for the VAE: the glasses set, CelebA, any image folder, or the embedded portraits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from zoo_core.api import DataError, DataSource, ImageSet, TrainingData

# CelebA's attribute columns and the label names the tasks use for them (the book's glasses and men/women split).
CELEBA_LABELS = {"Eyeglasses": "glasses", "Male": "male"}


def load_faces(source: DataSource, config: Mapping[str, Any]) -> ImageSet:
    """Every image of the data set in its on-disk order (or the embedded portraits), at ``image_size``."""
    size = int(config["image_size"])
    if source.data_a is not None or source.data_b is not None:
        raise DataError("vae_faces reads one data set: pass it with --data, not --data-a/--data-b")
    if source.data is None:
        return _embedded(config, source.limit)
    from zoo_core.api import detect_layout, load_celeba, load_image_folder
    from zoo_vae_faces.glasses import glasses_layout, load_glasses

    layout = glasses_layout(source.data) or detect_layout(source.data)
    if layout in ("glasses-folders", "glasses-csv"):
        return load_glasses(source.data, size, strict=source.strict, limit=source.limit)
    if layout == "celeba":
        faces = load_celeba(source.data, size, list(CELEBA_LABELS), strict=source.strict, limit=source.limit)
        return _rename_labels(faces, CELEBA_LABELS)
    if layout == "image-folder":
        return load_image_folder(source.data, size, mode="center_crop", strict=source.strict, limit=source.limit)
    raise DataError(f"{source.data} holds {layout} data (digits), not faces; point --data at the glasses set, "
                    "CelebA or a folder of face images")


def _embedded(config: Mapping[str, Any], limit: int | None) -> ImageSet:
    from zoo_core.api import cached

    count = int(config["portraits"])
    if count < 1:
        raise DataError(f"portraits must be at least 1, got {count}; set it with --set portraits=4000")
    # --limit draws a smaller set rather than cutting a large one: export validation asks for 64 faces at 256².
    count = count if limit is None else min(count, limit)
    return cached("portraits", count, int(config["data_seed"]), int(config["image_size"]))


def _rename_labels(faces: ImageSet, names: Mapping[str, str]) -> ImageSet:
    return ImageSet(images=faces.images, labels={names.get(k, k): v for k, v in faces.labels.items()},
                    masks=faces.masks, names=faces.names,
                    classes={names.get(k, k): v for k, v in faces.classes.items()})


@dataclass
class FaceData(TrainingData):
    """Train and validation parts, plus the whole set in on-disk order (what data-set indices refer to)."""

    whole: ImageSet | None = None


def split_faces(faces: ImageSet, source: DataSource, config: Mapping[str, Any]) -> FaceData:
    """Every k-th item validates (``val_split`` of them; ``--val-split`` overrides the preset).

    Evenly spaced rather than the last fraction, because folder layouts list one class after the other.
    """
    fraction = float(source.val_split if source.val_split is not None else config["val_split"])
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"val_split must be in [0, 1), got {fraction}; e.g. 0.1 holds out every tenth image")
    count = len(faces)
    val_count = min(round(count * fraction), count - 1) if fraction > 0 and count >= 2 else 0
    if fraction > 0 and count >= 2:
        val_count = max(val_count, 1)
    is_val = torch.zeros(count, dtype=torch.bool)
    is_val[((torch.arange(val_count, dtype=torch.float64) + 0.5) * count / max(val_count, 1)).long()] = True
    where = str(source.data) if source.data is not None else f"embedded portraits (seed {config['data_seed']})"
    train, val = faces.subset(~is_val), faces.subset(is_val)
    return FaceData(train=train, val=val, whole=faces,
                    description=f"{where}: {len(train)} train, {len(val)} validation images")


def join(data: TrainingData) -> ImageSet:
    """The whole data set in on-disk order (indices refer to this); train then validation if it was not kept."""
    whole = getattr(data, "whole", None)
    if whole is not None:
        return whole
    train, val = data.train, data.val
    if val is None or len(val) == 0:
        return train
    masks = None if train.masks is None or val.masks is None else torch.cat([train.masks, val.masks])
    names = None if train.names is None or val.names is None else train.names + val.names
    return ImageSet(images=torch.cat([train.images, val.images]),
                    labels={k: torch.cat([v, val.labels[k]]) for k, v in train.labels.items()},
                    masks=masks, names=names, classes=train.classes)

