"""The image sizes the CycleGAN networks take, torch-free: recipes check configs with it without importing the
networks, so the exported runtimes (onnxruntime, aoti) never load the network code."""

from __future__ import annotations

SIZE_MULTIPLE = 4      # two stride-2 convolutions down and two transposed ones up
MIN_GENERATOR_SIZE = 8  # the 1/4-scale bottleneck must be at least 2 pixels for reflect padding
MIN_DISCRIMINATOR_SIZE = 32  # four k4 reflect-padded layers after three halvings need at least 2 pixels


def size_problem(height: int, width: int) -> str | None:
    """Why the generator cannot take an image of this size, or None when it can."""
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        return (f"image size {height}×{width} is not divisible by {SIZE_MULTIPLE} (the generator halves it twice "
                f"and doubles it twice); resize to a multiple of {SIZE_MULTIPLE}, e.g. "
                f"{_round_up(height)}×{_round_up(width)}")
    if min(height, width) < MIN_GENERATOR_SIZE:
        return f"image size {height}×{width} is too small; the generator needs at least {MIN_GENERATOR_SIZE}×" \
               f"{MIN_GENERATOR_SIZE}"
    return None


def _round_up(value: int) -> int:
    return max(MIN_GENERATOR_SIZE, -(-value // SIZE_MULTIPLE) * SIZE_MULTIPLE)
