"""Image files and grids: the one decoder training data and tasks share, PNG output, grid scale and captions."""

from __future__ import annotations

import functools
import io
import os
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from zoo_core import io as zio
from zoo_core.errors import ZooError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# One filter for every resize, so a model sees the same pixels in training and in `zoo generate`.
RESIZE_FILTER = Image.Resampling.BICUBIC
RESIZE_MODES = ("resize", "center_crop")
GRID_PIXELS = 128  # small tiles are enlarged to about this size in saved grids
CAPTION_PIXELS = 12
CAPTION_BAND = CAPTION_PIXELS + 8  # height of the band caption_grid adds above captioned columns


def is_image_file(path: Path) -> bool:
    """An image by its suffix, and not hidden: macOS "._x.jpg" resource forks look like images but are not."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def decode_image(path: str | os.PathLike[str], size: int | tuple[int, int], mode: str = "resize",
                 channels: int = 3) -> np.ndarray:
    """One image file as uint8 [H,W,channels] (``channels`` 3 for RGB, 1 for grey), resized to ``size``
    (``center_crop``: the central square first). Raises whatever PIL raises for a bad file."""
    height, width = (size, size) if isinstance(size, int) else size
    colour = "L" if channels == 1 else "RGB"
    with Image.open(path) as image:
        # JPEG can decode straight at 1/2, 1/4 or 1/8 scale: much faster for CelebA at small sizes.
        image.draft(colour, (width, height))
        image = image.convert(colour)
        box = None
        if mode == "center_crop":
            side = min(image.size)
            box = ((image.width - side) / 2, (image.height - side) / 2, (image.width + side) / 2,
                   (image.height + side) / 2)
        array = np.asarray(image.resize((width, height), RESIZE_FILTER, box=box))
    return array[..., None] if channels == 1 else array


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


def grid_scale(tile: int, target: int = GRID_PIXELS) -> int:
    """The whole factor that enlarges ``tile``-pixel images to about ``target`` pixels (1 for large ones)."""
    return max(1, target // max(1, int(tile)))


# Liberation Sans 2.1.5 (SIL OFL 1.1, fonts/OFL.txt), shipped with zoo_core: Pillow's default font has no arrows
# ("→ blond" drew a missing-glyph box) and a system font may be absent; this one covers Latin, Greek, Cyrillic,
# arrows and the ellipsis.
CAPTION_FONT = "fonts/LiberationSans-Regular.ttf"


@functools.cache
def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(io.BytesIO(resources.files("zoo_core").joinpath(CAPTION_FONT).read_bytes()),
                              CAPTION_PIXELS)


@functools.cache
def _has_glyph(char: str) -> bool:
    """Whether the caption font draws ``char`` itself rather than its missing-glyph box (glyph 0)."""
    font = _font()
    missing = font.getmask("\ue000")  # a private-use code point: no font maps it, so this is glyph 0
    drawn = font.getmask(char)
    return char.isspace() or drawn.size != missing.size or bytes(drawn) != bytes(missing)


def _drawable(text: str) -> str:
    """``text`` with the characters the caption font lacks (a user's file name in another script) as "?"."""
    return "".join(char if _has_glyph(char) else "?" for char in text)


def _fit(draw: ImageDraw.ImageDraw, text: str, width: float, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> str:
    """``text`` cut with an ellipsis until it fits ``width`` pixels."""
    text = _drawable(text)
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 1 else ""
    return text


def caption_grid(grid: np.ndarray, columns: Sequence[str] = (), rows: Sequence[str] = ()) -> np.ndarray:
    """``grid`` (HWC uint8 from make_grid/stack_rows, any scale) with a caption above each column (a white band
    ``CAPTION_BAND`` pixels high) and/or to the left of each row, so a picture explains itself without the
    terminal. Captions too long for their cell are cut with an ellipsis."""
    font = _font()
    height, width = grid.shape[:2]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = 0
    if rows:
        left = int(max(probe.textlength(_drawable(r), font=font) for r in rows)) + 8
        left = min(left, max(width // 2, 40))
    top = CAPTION_BAND if columns else 0
    canvas = Image.new("RGB", (width + left, height + top), "white")
    canvas.paste(Image.fromarray(grid).convert("RGB"), (left, top))
    draw = ImageDraw.Draw(canvas)
    for index, text in enumerate(columns):
        cell = width / len(columns)
        text = _fit(draw, text, cell - 4, font)
        x = left + (index + 0.5) * cell - draw.textlength(text, font=font) / 2
        draw.text((x, 3), text, fill="black", font=font)
    for index, text in enumerate(rows):
        cell = height / len(rows)
        text = _fit(draw, text, left - 6, font)
        draw.text((3, top + (index + 0.5) * cell - CAPTION_PIXELS / 2), text, fill="black", font=font)
    return np.asarray(canvas)


def save_png(array: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write an HWC uint8 array as PNG, atomically."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    zio.write_bytes(path, buffer.getvalue())
    return Path(path)


def save_grid(images: torch.Tensor, path: str | os.PathLike[str], nrow: int = 8, scale: int = 1) -> Path:
    return save_png(upscale(make_grid(images, nrow=nrow), scale), path)


def load_images(paths: Sequence[Path], size: int | tuple[int, int], channels: int = 3,
                mode: str = "resize") -> torch.Tensor:
    """Decode image files into float [N,C,H,W] in [0,1] with :func:`decode_image` (the decoder training data
    uses too); a bad file is a ZooError naming it."""
    tensors = []
    for path in paths:
        try:
            array = decode_image(path, size, mode, channels)
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise ZooError(f"cannot read image {path}: {error}") from None
        tensors.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
    return torch.stack(tensors).float() / 255.0


def expand_image_paths(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files as given, folders expanded to their images (sorted, hidden ones skipped); other files in a folder
    are skipped with one line on stderr saying how many; nothing found is a ZooError."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            images = [p for p in files if is_image_file(p)]
            if len(images) < len(files):
                others = [p for p in files if not is_image_file(p)]
                print(f"zoo: skipped {len(others)} non-image file(s) in {path} (e.g. {others[0].name}); images "
                      f"end in {', '.join(IMAGE_SUFFIXES)}", file=sys.stderr)
            paths.extend(images)
        elif path.is_file():
            paths.append(path)
        else:
            raise ZooError(f"no such file or folder: {path}")
    if not paths:
        raise ZooError("no images found in " + ", ".join(str(i) for i in inputs))
    return paths
