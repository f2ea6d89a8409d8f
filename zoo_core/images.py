"""Image grids and PNG I/O shared by training samples and generation tasks."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from zoo_core import io as zio
from zoo_core.errors import ZooError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def make_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile ``images`` (float [N,C,H,W] in [0,1], C 1 or 3) into an HWC uint8 array, ``nrow`` per row."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"make_grid takes [N,1|3,H,W] images, got {tuple(images.shape)}")
    images = images.detach().float().cpu().clamp(0, 1)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    count, _, height, width = images.shape
    cols = max(1, min(nrow, count))
    rows = (count + cols - 1) // cols
    grid = torch.full((3, rows * (height + padding) + padding, cols * (width + padding) + padding), pad_value)
    for index in range(count):
        top = padding + (index // cols) * (height + padding)
        left = padding + (index % cols) * (width + padding)
        grid[:, top:top + height, left:left + width] = images[index]
    return (grid.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def stack_rows(rows: Sequence[torch.Tensor], padding: int = 2) -> np.ndarray:
    """One grid row per tensor (e.g. originals above reconstructions), all rows the same length."""
    width = max(len(r) for r in rows)
    filler = [torch.ones((width - len(r), *r.shape[1:])) for r in rows]
    images = torch.cat([torch.cat([r.float().cpu(), f]) for r, f in zip(rows, filler, strict=True)])
    return make_grid(images, nrow=width, padding=padding)


def upscale(array: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement so 28-pixel digits stay crisp in a viewer."""
    return array.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else array


def save_png(array: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write an HWC uint8 array as PNG, atomically."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    zio.write_bytes(path, buffer.getvalue())
    return Path(path)


def save_grid(images: torch.Tensor, path: str | os.PathLike[str], nrow: int = 8, scale: int = 1) -> Path:
    return save_png(upscale(make_grid(images, nrow=nrow), scale), path)


def load_images(paths: Sequence[Path], size: int | tuple[int, int], channels: int = 3) -> torch.Tensor:
    """Decode image files into float [N,C,H,W] in [0,1], resized to ``size``; bad files are a ZooError."""
    height, width = (size, size) if isinstance(size, int) else size
    mode = "L" if channels == 1 else "RGB"
    tensors = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image = image.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
        except (OSError, ValueError) as error:
            raise ZooError(f"cannot read image {path}: {error}") from None
        tensor = torch.from_numpy(array.copy())
        tensors.append(tensor.unsqueeze(0) if channels == 1 else tensor.permute(2, 0, 1))
    return torch.stack(tensors).float() / 255.0


def expand_image_paths(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files as given, folders expanded to their images (sorted); nothing found is a ZooError."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            paths.append(path)
        else:
            raise ZooError(f"no such file or folder: {path}")
    if not paths:
        raise ZooError("no images found in " + ", ".join(str(i) for i in inputs))
    return paths
