"""cyclegan_hair's tasks (`zoo generate cyclegan_hair translate|roundtrip`, ``zoo.load("cyclegan_hair")
.translate(images)``): written against the named graphs only (any runtime); each returns a TaskResult."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from zoo_core.api import (
    ImageInput,
    TaskContext,
    TaskResult,
    caption_grid,
    grid_scale,
    load_tensor,
    make_grid,
    to_uint8,
    upscale,
)
from zoo_cyclegan_hair.recipe import VALUE_RANGE, roundtrip_rows

DIRECTIONS = {"black2blond": ("black_to_blond", "blond"), "blond2black": ("blond_to_black", "black")}
# The columns of roundtrip_rows, captioned in the picture.
ROUNDTRIP_COLUMNS = ("black", "→ blond", "→ black again", "blond", "→ black", "→ blond again")
PAIRS_PER_GRID_ROW = 4


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
              batch_size: int = 16) -> TaskResult:
    """Translate each input image: one image per input (named ``<stem>_<colour>.png`` when saved) and a
    side-by-side grid of the first few."""
    graph, target = DIRECTIONS[direction]
    size = int(ctx.config["image_size"])
    originals = load_tensor(images, size) * 2 - 1  # [0,1] → [-1,1]
    translated = ctx.run_batched(graph, originals, batch_size=batch_size)[0]
    translated = torch.as_tensor(translated).float().clamp(*VALUE_RANGE)
    side_by_side = torch.stack([originals, translated], dim=1).flatten(0, 1)
    grid = make_grid((side_by_side + 1) / 2, nrow=2 * min(PAIRS_PER_GRID_ROW, len(images)))
    captions = ("original", target) * min(PAIRS_PER_GRID_ROW, len(images))
    grid = caption_grid(upscale(grid, grid_scale(size)), columns=captions)
    return TaskResult(images=[_as_array(image) for image in translated],
                      names=output_names([i.name for i in images], target), filename="translate_grid.png",
                      picture=grid, columns=2 * PAIRS_PER_GRID_ROW, captions=[target] * len(images),
                      summary=f"{len(images)} {direction} translations and translate_grid.png")


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
