"""Images of any size through fully convolutional graphs: padded to the multiple the network needs and cropped
back, or, past ``tile`` pixels a side, translated in overlapping tiles blended with linear ramps (memory bounded
by the tile, not the image)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

Run = Callable[[torch.Tensor], torch.Tensor]


def accepts_any_size(runner: Any, graph: str) -> bool:
    """Whether ``runner`` runs ``graph`` at any height and width (its spatial axes are declared dynamic)."""
    axes = getattr(runner, "dynamic_axes", None)
    return bool(axes(graph)) if callable(axes) else False


def padded(run: Run, images: torch.Tensor, multiple: int) -> torch.Tensor:
    """``run`` on NCHW ``images`` reflect-padded at the bottom and right to a multiple of ``multiple``, cropped back."""
    height, width = images.shape[-2:]
    bottom, right = -height % multiple, -width % multiple
    if not bottom and not right:
        return run(images)
    mode = "reflect" if bottom < height and right < width else "replicate"  # reflect needs a side longer than the pad
    return run(F.pad(images, (0, right, 0, bottom), mode=mode))[..., :height, :width]


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def _ramp(length: int, overlap: int, before: bool, after: bool) -> torch.Tensor:
    """1 inside, rising linearly over ``overlap`` pixels at the edges shared with a neighbouring tile."""
    weights = torch.ones(length)
    edge = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
    if before:
        weights[:overlap] = torch.minimum(weights[:overlap], edge[:length])
    if after:
        weights[-overlap:] = torch.minimum(weights[-overlap:], edge.flip(0)[-length:])
    return weights


def tiled(run: Run, image: torch.Tensor, multiple: int, tile: int, overlap: int) -> torch.Tensor:
    """One image [1,C,H,W] in overlapping ``tile``² windows, each padded to ``multiple``, blended where they meet."""
    _, _, height, width = image.shape
    step = max(1, tile - overlap)
    output: torch.Tensor | None = None
    weight = torch.zeros(1, 1, height, width)
    ys, xs = _starts(height, tile, step), _starts(width, tile, step)
    for y in ys:
        for x in xs:
            window = image[..., y:y + tile, x:x + tile]
            result = padded(run, window, multiple)
            h, w = result.shape[-2:]
            ramp = (_ramp(h, overlap, y > 0, y + h < height)[:, None] * _ramp(w, overlap, x > 0, x + w < width)[None])
            if output is None:
                output = torch.zeros(1, result.shape[1], height, width)
            output[..., y:y + h, x:x + w] += result * ramp
            weight[..., y:y + h, x:x + w] += ramp
    assert output is not None
    return output / weight


def any_size(run: Run, images: torch.Tensor, multiple: int, tile: int = 512, overlap: int = 32) -> torch.Tensor:
    """``run`` on same-sized NCHW images at their own size: whole when both sides fit in ``tile``, else in tiles."""
    if max(images.shape[-2:]) <= tile:
        return padded(run, images, multiple)
    return torch.cat([tiled(run, image[None], multiple, tile, overlap) for image in images])
