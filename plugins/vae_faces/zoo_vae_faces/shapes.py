"""The feature-map sides of the face VAE, torch-free: the recipe checks a config with them without importing the
networks, so the exported runtimes (onnxruntime, aoti) never load the network code."""

from __future__ import annotations

from zoo_core.api import UsageError


def _conv_out(size: int, padding: int) -> int:
    """Output side of a k3 s2 convolution."""
    return (size + 2 * padding - 3) // 2 + 1


def _deconv_out(size: int, padding: int) -> int:
    """Output side of a k3 s2 transposed convolution with output_padding 1."""
    return (size - 1) * 2 - 2 * padding + 3 + 1


def encoder_sides(image_size: int) -> tuple[int, int, int, int]:
    """Spatial sides through the encoder: image, conv1 (p1), conv2 (p1), conv3 (p0)."""
    first = _conv_out(image_size, 1)
    second = _conv_out(first, 1)
    return image_size, first, second, _conv_out(second, 0)


def decoder_sides(bottleneck: int) -> tuple[int, int, int, int]:
    """Spatial sides through the decoder: bottleneck, deconv1 (p0), deconv2 (p1), deconv3 (p1)."""
    first = _deconv_out(bottleneck, 0)
    second = _deconv_out(first, 1)
    return bottleneck, first, second, _deconv_out(second, 1)


def bottleneck_side(image_size: int) -> int:
    """The encoder's last feature-map side (31 at 256, 7 at 64); refuses sizes the decoder cannot invert."""
    if not isinstance(image_size, int) or isinstance(image_size, bool):
        raise UsageError(f"image_size must be an integer, got {image_size!r}")
    down = encoder_sides(image_size)
    up = decoder_sides(down[-1]) if down[-1] >= 1 else ()
    if down[-1] < 1 or up[-1] != image_size:
        path = "→".join(str(side) for side in down)
        back = f"the decoder maps back {'→'.join(str(side) for side in up)}" if up else "nothing is left to decode"
        raise UsageError(f"image_size {image_size} does not work: the encoder maps {path} and {back}; "
                         "use a multiple of 8 that is at least 16 (e.g. 32, 64, 128, 256)")
    return down[-1]
