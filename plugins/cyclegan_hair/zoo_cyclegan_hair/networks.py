"""The CycleGAN networks of the book (ch. 6, ``utils/ch06util.py``) and the reference recipe's image pool.

Generator: ResNet generator with reflect padding and InstanceNorm (11,378,179 parameters at 64 features and
9 residual blocks, whatever the image size). Discriminator: the 70×70 PatchGAN (30×30 map at 256²).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from zoo_core.api import ZooError
from zoo_cyclegan_hair.shapes import (  # noqa: F401 (re-exported: the sizes are part of the networks' API)
    MIN_DISCRIMINATOR_SIZE,
    MIN_GENERATOR_SIZE,
    SIZE_MULTIPLE,
    size_problem,
)


def _conv_norm_relu(in_channels: int, out_channels: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, padding, padding_mode="reflect"),
        nn.InstanceNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """``x + IN(Conv3×3(ReLU(IN(Conv3×3(x)))))`` at constant width."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            _conv_norm_relu(channels, channels, 3, 1, 1),
            nn.Conv2d(channels, channels, 3, 1, 1, padding_mode="reflect"),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class Generator(nn.Module):
    """image[N,3,S,S] in [-1,1] → image[N,3,S,S] in [-1,1]; S must be a multiple of 4."""

    def __init__(self, channels: int = 3, features: int = 64, residual_blocks: int = 9) -> None:
        super().__init__()
        self.initial = _conv_norm_relu(channels, features, 7, 1, 3)
        self.down = nn.Sequential(
            _conv_norm_relu(features, features * 2, 3, 2, 1),
            _conv_norm_relu(features * 2, features * 4, 3, 2, 1),
        )
        self.residuals = nn.Sequential(*[ResidualBlock(features * 4) for _ in range(residual_blocks)])
        self.up = nn.Sequential(
            nn.ConvTranspose2d(features * 4, features * 2, 3, 2, 1, output_padding=1),
            nn.InstanceNorm2d(features * 2),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(features * 2, features, 3, 2, 1, output_padding=1),
            nn.InstanceNorm2d(features),
            nn.ReLU(inplace=True),
        )
        self.last = nn.Conv2d(features, channels, 7, 1, 3, padding_mode="reflect")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling():  # int() of a traced size would pin it: exports keep H and W free
            problem = size_problem(int(x.shape[-2]), int(x.shape[-1]))
            if problem is not None:
                raise ZooError(f"cyclegan generator: {problem}")
        x = self.initial(x)
        x = self.down(x)
        x = self.residuals(x)
        x = self.up(x)
        return torch.tanh(self.last(x))


class Discriminator(nn.Module):
    """PatchGAN: image[N,3,S,S] → realness map [N,1,S/8-2,S/8-2]; ``sigmoid`` as in the book."""

    def __init__(self, channels: int = 3, features: int = 64, sigmoid: bool = True) -> None:
        super().__init__()
        widths = [features, features * 2, features * 4, features * 8]
        layers: list[nn.Module] = [
            nn.Conv2d(channels, widths[0], 4, 2, 1, padding_mode="reflect"),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for in_width, out_width in itertools.pairwise(widths):
            stride = 1 if out_width == widths[-1] else 2
            layers += [
                nn.Conv2d(in_width, out_width, 4, stride, 1, padding_mode="reflect"),
                nn.InstanceNorm2d(out_width),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 1, padding_mode="reflect"))
        self.model = nn.Sequential(*layers)
        self.sigmoid = sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return torch.sigmoid(out) if self.sigmoid else out


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """The reference CycleGAN's initialisation: conv weights ~ N(0, std), biases 0 (affine-less norms untouched)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class ImagePool(nn.Module):
    """The reference recipe's history of generated images (Shrivastava et al.), held in buffers.

    Buffers are part of the owning network's state dict, so the pool travels in every checkpoint
    and a resumed run draws from exactly the images it had stored.
    """

    def __init__(self, size: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *image_shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    def query(self, fakes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Images to show the discriminator: while filling, the new ones; then half the time an older one,
        which the new image replaces in the pool."""
        chosen = []
        stored = int(self.count)
        for image in fakes.detach():
            if stored < self.size:
                self.images[stored] = image.float()
                stored += 1
                chosen.append(image)
            elif float(torch.rand((), generator=generator)) < 0.5:
                index = int(torch.randint(self.size, (), generator=generator))
                chosen.append(self.images[index].clone().to(image.dtype))
                self.images[index] = image.float()
            else:
                chosen.append(image)
        self.count.fill_(stored)
        return torch.stack(chosen)
