"""`zoo generate cyclegan_hair translate|roundtrip`: written against the named graphs only (any runtime)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from zoo_core.api import (
    TaskContext,
    UsageError,
    caption_grid,
    expand_image_paths,
    grid_scale,
    load_images,
    make_grid,
    save_png,
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


def output_names(paths: Sequence[Path], suffix: str) -> list[str]:
    """``<stem>_<suffix>.png`` per input, numbered where two inputs share a stem."""
    names, seen = [], set()
    for index, path in enumerate(paths):
        name = f"{path.stem}_{suffix}.png"
        if name in seen:
            name = f"{path.stem}_{index}_{suffix}.png"
        seen.add(name)
        names.append(name)
    return names


def _as_array(image: torch.Tensor) -> np.ndarray:
    """One image in [-1,1] as HWC uint8."""
    return to_uint8(image, VALUE_RANGE).permute(1, 2, 0).numpy()


def translate(ctx: TaskContext, inputs: tuple[Path, ...], direction: str, batch_size: int) -> None:
    """Translate each input image; writes one PNG per input and ``translate_grid.png`` into the --out folder."""
    if ctx.out.suffix:
        raise UsageError(f"--out {ctx.out}: translate writes one PNG per input, so --out must be a folder")
    graph, target = DIRECTIONS[direction]
    size = int(ctx.config["image_size"])
    paths = expand_image_paths(inputs)
    originals = load_images(paths, size) * 2 - 1  # [0,1] → [-1,1]
    translated = ctx.run_batched(graph, originals, batch_size=batch_size)[0]
    translated = torch.as_tensor(translated).float().clamp(*VALUE_RANGE)
    ctx.out.mkdir(parents=True, exist_ok=True)
    for name, image in zip(output_names(paths, target), translated, strict=True):
        save_png(_as_array(image), ctx.out / name)
    side_by_side = torch.stack([originals, translated], dim=1).flatten(0, 1)
    grid = make_grid((side_by_side + 1) / 2, nrow=2 * min(PAIRS_PER_GRID_ROW, len(paths)))
    captions = ("original", target) * min(PAIRS_PER_GRID_ROW, len(paths))
    grid = caption_grid(upscale(grid, grid_scale(size)), columns=captions)
    grid_path = save_png(grid, ctx.out / "translate_grid.png")
    ctx.done(ctx.out, f"{len(paths)} {direction} translations and {grid_path.name}")


def roundtrip(ctx: TaskContext, n: int) -> None:
    """Rows of black, → blond, → black again, blond, → black, → blond again, from held-out data when there is."""
    data = ctx.data()
    pair = data.held_out()
    recipe = ctx.recipe
    a = recipe.source_images(pair, "a", min(n, len(pair.a)))
    b = recipe.source_images(pair, "b", min(n, len(pair.b)))
    rows = roundtrip_rows(lambda graph, x: _run(ctx, graph, x), a, b)
    path = save_roundtrip_grid(rows, ctx.output("roundtrip.png"))
    ctx.done(path, f"a round-trip grid of {len(rows) // 6} rows (black → blond → black | blond → black → blond)")


def save_roundtrip_grid(rows: torch.Tensor, path: Path) -> Path:
    """Six captioned columns per row (see :func:`zoo_cyclegan_hair.recipe.roundtrip_rows`), enlarged when small."""
    grid = make_grid((rows.clamp(*VALUE_RANGE) + 1) / 2, nrow=6)
    return save_png(caption_grid(upscale(grid, grid_scale(rows.shape[-1])), columns=ROUNDTRIP_COLUMNS), path)
