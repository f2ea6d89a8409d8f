"""vae_faces' tasks (`zoo generate vae_faces TASK`, ``zoo.load("vae_faces").sample(n=8)``): written against the
named graphs only, so any runtime runs them; each returns a TaskResult and writes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from zoo_core.api import (
    ImageInput,
    ImageSet,
    TaskContext,
    TaskResult,
    UsageError,
    caption_grid,
    grid_scale,
    load_tensor,
    make_grid,
    stack_rows,
    to_float,
    to_uint8_images,
    upscale,
)
from zoo_vae_faces.arithmetic import arithmetic_images, gather_terms, report_terms
from zoo_vae_faces.data import join
from zoo_vae_faces.expression import Expression, PathList, parse_expression


def _scale(ctx: TaskContext) -> int:
    return grid_scale(int(ctx.config["image_size"]))


def _encode(ctx: TaskContext, images: torch.Tensor) -> torch.Tensor:
    return ctx.run_batched("encoder", images)[0]


def _decode(ctx: TaskContext, z: torch.Tensor) -> torch.Tensor:
    return ctx.run_batched("decoder", z)[0]


def _grid(ctx: TaskContext, images: torch.Tensor, columns: int) -> np.ndarray:
    return upscale(make_grid(images, nrow=columns), _scale(ctx))


def sample(ctx: TaskContext, n: int = 18, columns: int = 6) -> TaskResult:
    """A grid of new faces: z ~ N(0, I) drawn with the seed, decoded."""
    z = torch.randn(n, int(ctx.config["latent_dim"]), generator=ctx.generator())
    faces = _decode(ctx, z)
    return TaskResult(images=to_uint8_images(faces), filename="samples.png", picture=_grid(ctx, faces, columns),
                      columns=columns, summary=f"{n} sampled faces", arrays={"z": z.numpy()})


def reconstruct(ctx: TaskContext, n: int = 8, columns: int = 8) -> TaskResult:
    """Held-out faces (drawn with the seed) above their reconstructions decoded from mu."""
    faces = ctx.data().held_out()
    picked = torch.randperm(len(faces), generator=ctx.generator())[:n]
    images = to_float(faces.images.index_select(0, picked))
    reconstructions = _decode(ctx, _encode(ctx, images))
    rows = []
    for start in range(0, len(images), columns):
        rows += [images[start:start + columns], reconstructions[start:start + columns]]
    grid = caption_grid(upscale(stack_rows(rows), _scale(ctx)), rows=["face", "decoded"] * (len(rows) // 2))
    return TaskResult(images=to_uint8_images(reconstructions), filename="reconstructions.png", picture=grid,
                      columns=columns, summary=f"{len(images)} faces and their reconstructions",
                      arrays={"faces": images.numpy(), "reconstructions": reconstructions.numpy()})


def _endpoint(ctx: TaskContext, text: ImageInput | str, name: str) -> torch.Tensor:
    """An image, or an index into the data set (train then validation, in on-disk order)."""
    if isinstance(text, ImageInput):
        return load_tensor([text], int(ctx.config["image_size"]))
    if text.isascii() and text.isdigit():  # "³".isdigit() holds, int("³") fails
        faces: ImageSet = join(ctx.data())
        index = int(text)
        if index >= len(faces):
            raise UsageError(f"interpolate: {name} index {index} is outside the data set (0..{len(faces) - 1})")
        return to_float(faces.images[index:index + 1])
    raise UsageError(f"interpolate: {name} {text!r} is neither an image file nor a data-set index; "
                     "give a path or a number like 0")


def _label(endpoint: ImageInput | str) -> str:
    if isinstance(endpoint, ImageInput):
        return str(endpoint.source) if isinstance(endpoint.source, Path) else endpoint.name
    return endpoint


def interpolate(ctx: TaskContext, a: ImageInput | str, b: ImageInput | str, steps: int = 6) -> TaskResult:
    """A, then decodes of w·z_A + (1−w)·z_B for w from 1 down to 0, then B (z = mu of each)."""
    image_a, image_b = _endpoint(ctx, a, "A"), _endpoint(ctx, b, "B")
    z_a, z_b = _encode(ctx, torch.cat([image_a, image_b]))
    weights = torch.linspace(1.0, 0.0, steps).unsqueeze(1)
    decoded = _decode(ctx, weights * z_a + (1 - weights) * z_b)
    row = torch.cat([image_a, decoded, image_b])
    return TaskResult(images=to_uint8_images(row), filename="interpolation.png", picture=_grid(ctx, row, len(row)),
                      columns=len(row), summary=f"{steps}-step interpolation between {_label(a)} and {_label(b)}",
                      captions=["A", *(f"w={w:.2f}" for w in weights.squeeze(1).tolist()), "B"],
                      arrays={"z": torch.cat([z_a[None], z_b[None]]).numpy(), "weights": weights.squeeze(1).numpy()})


def arithmetic(ctx: TaskContext, expression: str, group_size: int = 3, rows: int = 1) -> TaskResult:
    """Each term's decoded mean encoding, then the decoded signed sum; one row per random draw of the groups."""
    parsed = parse_expression(expression)
    needs_data = any(not isinstance(term.operand, PathList) for term in parsed.terms)
    faces = join(ctx.data()) if needs_data else None
    generator = ctx.generator()
    grids = []
    for row in range(rows):
        terms = gather_terms(parsed, faces, int(ctx.config["image_size"]), group_size, generator)
        if row == 0:
            report_terms(terms, group_size)
        grids.append(arithmetic_images(terms, lambda x: _encode(ctx, x), lambda z: _decode(ctx, z)))
    images = torch.cat(grids)
    captions = term_captions(parsed)
    grid = upscale(make_grid(images, nrow=len(parsed.terms) + 1), _scale(ctx))
    return TaskResult(images=to_uint8_images(images), filename="arithmetic.png",
                      picture=caption_grid(grid, columns=captions), columns=len(captions),
                      captions=captions * rows,
                      summary=f"{parsed} (each term's decoded mean, then the result; {rows} draw(s))")


def term_captions(parsed: Expression) -> list[str]:
    """One caption per grid column: each signed term (its decoded mean encoding), then "= result"."""
    captions = []
    for index, term in enumerate(parsed.terms):
        sign = "-" if term.sign < 0 else "+"
        captions.append(f"{sign} {term}" if index or term.sign < 0 else str(term))
    return [*captions, "= result"]
