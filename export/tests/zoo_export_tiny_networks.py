"""tiny_vae's networks, apart from its recipe and tasks: the exported runtimes must run without importing them."""

from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    def __init__(self, size: int, width: int, latent: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.InstanceNorm2d(width, affine=True),
                                      nn.ReLU(), nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Flatten())
        flat = width * (size // 2) ** 2
        self.mu = nn.Linear(flat, latent)
        self.logvar = nn.Linear(flat, latent)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(image)
        return self.mu(features), self.logvar(features)


def decoder(size: int, width: int, latent: int) -> nn.Module:
    half = size // 2
    return nn.Sequential(nn.Linear(latent, width * half * half), nn.Unflatten(1, (width, half, half)),
                         nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3), nn.InstanceNorm2d(width, affine=True),
                         nn.ReLU(), nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1), nn.Sigmoid())
