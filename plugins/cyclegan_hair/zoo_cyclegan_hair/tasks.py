"""cyclegan_hair's tasks (`zoo generate cyclegan_hair translate|roundtrip`, ``zoo.load("cyclegan_hair")
.translate(images)``): written against the named graphs only (any runtime); each returns a TaskResult."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo_core.api import (
    ImageInput,
    TaskContext,
    TaskResult,
    accepts_any_size,
    caption_grid,
    grid_scale,
    make_grid,
    to_uint8,
    upscale,
    wants_picture,
)
from zoo_core.api import any_size as any_size_run
from zoo_cyclegan_hair.recipe import VALUE_RANGE, roundtrip_rows

DIRECTIONS = {"black2blond": ("black_to_blond", "blond"), "blond2black": ("blond_to_black", "black")}
# The columns of roundtrip_rows, captioned in the picture.
ROUNDTRIP_COLUMNS = ("black", "→ blond", "→ black again", "blond", "→ black", "→ blond again")
PAIRS_PER_GRID_ROW = 4
GRID_INPUTS = 16  # the summary grid shows the first 16 inputs (4 rows), however many are translated
MULTIPLE = 4      # two stride-2 convolutions: sides are padded to a multiple of 4
TILE, OVERLAP = 512, 32  # larger images are translated in 512² tiles overlapping by 32 pixels


def _run(ctx: TaskContext, graph: str, images: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(ctx.run(graph, images.contiguous())[0]).float()


def output_names(stems: Sequence[str], suffix: str) -> list[str]:
    """``<stem>_<suffix>.png`` per input, numbered where two inputs share a stem."""
    names, seen = [], set()
    for index, stem in enumerate(stems):
        name = f"{stem}_{suffix}.png"
        if name in seen:
            name = f"{stem}_{index}_{suffix}.png"
        seen.add(name)
        names.append(name)
    return names


def _as_array(image: torch.Tensor) -> np.ndarray:
    """One image in [-1,1] as HWC uint8."""
    return to_uint8(image, VALUE_RANGE).permute(1, 2, 0).numpy()


def translate(ctx: TaskContext, images: list[ImageInput], direction: str = "black2blond",
              batch_size: int = 16, size: int = 0) -> TaskResult:
    """Translate each input image: one image per input (named ``<stem>_<colour>.png`` when saved) and a
    side-by-side grid of the first :data:`GRID_INPUTS`.

    ``size`` 0 translates each image at its own size and aspect ratio (the generators are fully convolutional:
    padded to a multiple of 4, cropped back, in overlapping tiles past :data:`TILE` pixels a side); on a runtime
    whose graphs have fixed spatial axes the image is resized to the preset's size and the result back. ``size``
    N resizes every input to N×N first (N = the preset's ``image_size`` is what translate did before 0.2)."""
    graph, target = DIRECTIONS[direction]
    image_size = int(ctx.config["image_size"])
    run = lambda x: _run(ctx, graph, x)  # noqa: E731 - one graph, many shapes
    any_size = size != image_size and accepts_any_size(ctx.runner, graph)
    arrays: list[np.ndarray] = [np.empty(0, np.uint8)] * len(images)
    decoded = [image.decode(size or None) for image in images]
    shown: list[tuple[torch.Tensor, torch.Tensor]] = []
    for shape in dict.fromkeys(array.shape for array in decoded):  # groups of one size, in input order
        members = [i for i, array in enumerate(decoded) if array.shape == shape]
        for start in range(0, len(members), batch_size):
            part = members[start:start + batch_size]
            originals = _to_tensor([decoded[i] for i in part])
            if any_size:
                translated = any_size_run(run, originals, MULTIPLE, tile=TILE, overlap=OVERLAP)
            elif tuple(originals.shape[-2:]) == (image_size, image_size):
                translated = run(originals)
            else:  # a fixed-size graph: translated at its size, resized back to the input's
                small = F.interpolate(originals, size=(image_size, image_size), mode="bicubic", antialias=True)
                translated = F.interpolate(run(small.clamp(*VALUE_RANGE)), size=tuple(originals.shape[-2:]),
                                           mode="bicubic")
            translated = translated.clamp(*VALUE_RANGE)
            for index, original, image in zip(part, originals, translated, strict=True):
                arrays[index] = _as_array(image)
                if index < GRID_INPUTS:
                    shown.append((index, original, image))  # type: ignore[arg-type]
    picture = _translate_grid(shown, image_size, target) if wants_picture(ctx) and shown else None
    return TaskResult(images=arrays, names=output_names([i.name for i in images], target),
                      filename="translate_grid.png", picture=picture, columns=2 * PAIRS_PER_GRID_ROW,
                      captions=[target] * len(images),
                      summary=f"{len(images)} {direction} translations and translate_grid.png")


def _to_tensor(arrays: list[np.ndarray]) -> torch.Tensor:
    """uint8 HWC images as float NCHW in [-1,1], computed as load_tensor does (so outputs keep their bytes)."""
    batch = torch.stack([torch.from_numpy(a.copy()).permute(2, 0, 1) for a in arrays]).float() / 255.0
    return batch * 2 - 1


def _translate_grid(shown: list[Any], image_size: int, target: str) -> np.ndarray:
    """Originals beside translations, the first GRID_INPUTS inputs, tiles at the preset's size."""
    shown = sorted(shown, key=lambda entry: entry[0])
    tiles = []
    for _, original, image in shown:
        for tile in (original, image):
            if tuple(tile.shape[-2:]) != (image_size, image_size):
                tile = F.interpolate(tile[None], size=(image_size, image_size), mode="bilinear", antialias=True)[0]
            tiles.append(tile)
    side_by_side = torch.stack(tiles)
    pairs = min(PAIRS_PER_GRID_ROW, len(shown))
    grid = make_grid((side_by_side + 1) / 2, nrow=2 * pairs)
    return caption_grid(upscale(grid, grid_scale(image_size)), columns=("original", target) * pairs)


def roundtrip(ctx: TaskContext, n: int = 4) -> TaskResult:
    """Rows of black, → blond, → black again, blond, → black, → blond again, from held-out data when there is."""
    data = ctx.data()
    pair = data.held_out()
    recipe = ctx.recipe
    a = recipe.source_images(pair, "a", min(n, len(pair.a)))
    b = recipe.source_images(pair, "b", min(n, len(pair.b)))
    rows = roundtrip_rows(lambda graph, x: _run(ctx, graph, x), a, b)
    return TaskResult(images=[_as_array(image) for image in rows.clamp(*VALUE_RANGE)], filename="roundtrip.png",
                      picture=roundtrip_grid(rows), columns=6, captions=list(ROUNDTRIP_COLUMNS) * (len(rows) // 6),
                      summary=f"a round-trip grid of {len(rows) // 6} rows (black → blond → black | blond → black → "
                              "blond)")


def roundtrip_grid(rows: torch.Tensor) -> np.ndarray:
    """Six captioned columns per row (see :func:`zoo_cyclegan_hair.recipe.roundtrip_rows`), enlarged when small."""
    grid = make_grid((rows.clamp(*VALUE_RANGE) + 1) / 2, nrow=6)
    return caption_grid(upscale(grid, grid_scale(rows.shape[-1])), columns=ROUNDTRIP_COLUMNS)
