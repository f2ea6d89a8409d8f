"""ae_mnist's tasks (`zoo generate ae_mnist reconstruct|decode`, ``zoo.load("ae_mnist").reconstruct()``):
written against named graphs, so any runtime runs them; each returns a TaskResult and writes nothing."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch

from zoo_core.api import TaskContext, TaskResult, ZooError, stack_rows, to_float, to_uint8_images, upscale

COLUMNS = 16
SCALE = 3
# Enough codes to fit a Gaussian to the data's code distribution, few enough to encode in a blink.
FIT_ITEMS = 2000


def data_images(ctx: TaskContext, count: int) -> torch.Tensor:
    """``count`` images, float in [0,1]: held-out ones first, then training ones when those run out."""
    data = ctx.data()
    held_out = data.val.images[:count] if data.val is not None else data.train.images[:0]
    return to_float(torch.cat([held_out, data.train.images[:count - len(held_out)]]))


def reconstruct(ctx: TaskContext, n: int = 16) -> TaskResult:
    """Originals above their reconstructions, ``COLUMNS`` pairs per row, through graph ``autoencoder``."""
    originals = data_images(ctx, n)
    (reconstructions,) = ctx.run_batched("autoencoder", originals)
    rows = []
    for start in range(0, len(originals), COLUMNS):
        rows += [originals[start:start + COLUMNS], reconstructions[start:start + COLUMNS]]
    return TaskResult(images=to_uint8_images(reconstructions), filename="reconstruction.png",
                      picture=upscale(stack_rows(rows), SCALE), columns=COLUMNS,
                      summary=f"{len(originals)} originals above their reconstructions",
                      arrays={"originals": originals.numpy(), "reconstructions": reconstructions.numpy()})


MAX_CODES = 10_000  # a grid of 10,000 digits is already a 2,800-pixel square at scale 1


def load_codes(path: Path | bytes, z_dim: int) -> torch.Tensor:
    """A float array [N,z_dim] from a .npy file (or its bytes); anything else is one clear ZooError."""
    try:
        # mapped, not read: a header claiming [1e11, 20] is refused here, before anything is allocated
        codes = _open_npy(path)
    # numpy parses the header with Python's tokenizer: a damaged one raises SyntaxError, TokenError, TypeError...
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ZooError(f"--z {path}: not a readable .npy array ({reason}); "
                       "save one with numpy.save(path, array)") from None
    if not isinstance(codes, np.ndarray) or codes.ndim != 2 or codes.shape[1] != z_dim or codes.shape[0] == 0:
        shape = list(codes.shape) if isinstance(codes, np.ndarray) else type(codes).__name__
        raise ZooError(f"--z {path}: codes must have shape [N,{z_dim}] with N >= 1, got {shape}")
    if codes.shape[0] > MAX_CODES:
        raise ZooError(f"--z {path}: {codes.shape[0]} codes, more than the {MAX_CODES} one grid can show")
    if not (np.issubdtype(codes.dtype, np.floating) or np.issubdtype(codes.dtype, np.integer)):
        raise ZooError(f"--z {path}: codes must be numbers, got dtype {codes.dtype}")
    if not np.isfinite(codes).all():
        raise ZooError(f"--z {path}: codes contain NaN or infinity")
    return torch.from_numpy(codes.astype(np.float32))


def _open_npy(source: Path | bytes) -> np.ndarray:
    """A .npy array, memory-mapped from a file; from bytes (an upload) only once its header fits the bytes."""
    if not isinstance(source, bytes):
        return np.load(source, allow_pickle=False, mmap_mode="r")
    stream = io.BytesIO(source)
    version = np.lib.format.read_magic(stream)
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = header(stream)
    # numpy allocates what the header declares before it reads: a header must not promise more than was sent
    if math.prod(shape) * dtype.itemsize > len(source) - stream.tell():
        raise ValueError(f"the header declares {list(shape)} {dtype}, more than the {len(source)} bytes sent")
    return np.load(io.BytesIO(source), allow_pickle=False)


def fit_gaussian(ctx: TaskContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of the codes of ``FIT_ITEMS`` real images (once per stream: it draws nothing)."""
    (codes,) = ctx.run_batched("encoder", data_images(ctx, FIT_ITEMS), batch_size=256)
    return codes.mean(0), (codes.std(0) if len(codes) > 1 else torch.ones(codes.shape[1]))


def fitted_codes(ctx: TaskContext, count: int) -> torch.Tensor:
    """``count`` draws from a diagonal Gaussian fitted to the codes of real images.

    An autoencoder's codes are not standard normal, so plain ``randn`` would decode mostly to blobs.
    """
    mean, std = ctx.once("fitted-gaussian", lambda: fit_gaussian(ctx))
    noise = torch.randn(count, len(mean), generator=ctx.generator())
    return mean + std * noise


def decode(ctx: TaskContext, z_file: Path | bytes | None = None, n: int = 16) -> TaskResult:
    """Decode codes from ``--z`` or ``n`` fitted draws into a grid of images, through graph ``decoder``."""
    z_dim = int(ctx.config["z_dim"])
    codes = load_codes(z_file, z_dim) if z_file is not None else fitted_codes(ctx, n)
    (images,) = ctx.run_batched("decoder", codes)
    columns = min(COLUMNS, len(images))
    picture = upscale(stack_rows([images[i:i + columns] for i in range(0, len(images), columns)]), SCALE)
    where = "an uploaded file" if isinstance(z_file, bytes) else z_file
    source = f"codes from {where}" if z_file is not None else f"codes drawn with seed {ctx.seed}"
    return TaskResult(images=to_uint8_images(images), filename="decoded.png", picture=picture, columns=columns,
                      summary=f"{len(images)} images decoded from {source}",
                      arrays={"codes": codes.numpy(), "images": images.numpy()})
