"""The user cache zoo keeps derived data in (generated data sets, downloaded weights): where it is, and how an
image set is stored there so that a half-written copy is never read back as whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from zoo_core import io as zio
from zoo_core.data.imageset import ImageSet


def cache_root() -> Path:
    """$ZOO_CACHE_DIR, else $XDG_CACHE_HOME/zoo, else ~/.cache/zoo."""
    if os.environ.get("ZOO_CACHE_DIR"):
        return Path(os.environ["ZOO_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "zoo"
    return Path.home() / ".cache" / "zoo"


def _save_npy(path: Path, array: np.ndarray) -> None:
    with zio.atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a file handle: np.save would append .npy
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)


def write_image_set(folder: Path, data: ImageSet, version: int) -> None:
    """Write ``data`` into ``folder`` as .npy arrays and a meta.json written last (its presence says every array
    beside it is complete); ``version`` names the code that made the data."""
    files = {"images.npy": data.images.numpy()}
    files.update({f"label-{name}.npy": values.numpy() for name, values in data.labels.items()})
    if data.masks is not None:
        files["masks.npy"] = data.masks.numpy()
    for name, array in files.items():
        _save_npy(folder / name, array)
    meta = {"version": version, "count": len(data), "labels": list(data.labels),
            "classes": data.classes, "masks": data.masks is not None, "shape": list(data.images.shape)}
    zio.write_json(folder / "meta.json", meta)


def read_image_set(folder: Path, version: int) -> ImageSet:
    """The set written by :func:`write_image_set` with ``version``, or an exception of any kind when a file is
    missing, truncated or inconsistent (the caller rebuilds it)."""
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    if meta["version"] != version:
        raise ValueError("stale generator version")
    images = np.load(folder / "images.npy", allow_pickle=False)
    if list(images.shape) != meta["shape"] or images.dtype != np.uint8:
        raise ValueError("images do not match meta.json")
    labels = {}
    for name in meta["labels"]:
        values = np.load(folder / f"label-{name}.npy", allow_pickle=False)
        if values.shape != (meta["count"],) or values.dtype != np.int64:
            raise ValueError(f"label {name} does not match meta.json")
        labels[name] = torch.from_numpy(values)
    masks = torch.from_numpy(np.load(folder / "masks.npy", allow_pickle=False)) if meta["masks"] else None
    return ImageSet(images=torch.from_numpy(images), labels=labels, masks=masks,
                    classes={name: list(values) for name, values in meta["classes"].items()})
