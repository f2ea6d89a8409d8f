"""The book's convolutional face VAE (ch. 7), parameterised by image size and deterministic.

The encoder returns ``(mu, log_std)``; the book's ``std = exp(Linear(h))`` makes ``log_std``
that linear layer's output. Sampling ``z = mu + std * eps`` happens outside the networks, with
noise the caller draws, so no exported graph ever holds a random node.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo_vae_faces.shapes import (  # noqa: F401 (re-exported: the sides are part of the networks' API)
    bottleneck_side,
    decoder_sides,
    encoder_sides,
)

CHANNELS = (8, 16, 32)
HIDDEN = 1024


class Encoder(nn.Module):
    """image [N,3,S,S] in [0,1] → (mu, log_std), each [N,latent_dim]."""

    def __init__(self, image_size: int = 256, latent_dim: int = 100) -> None:
        super().__init__()
        side = bottleneck_side(image_size)
        c1, c2, c3 = CHANNELS
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=0), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c3 * side * side, HIDDEN), nn.ReLU(),
        )
        self.mu = nn.Linear(HIDDEN, latent_dim)
        self.log_std = nn.Linear(HIDDEN, latent_dim)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.features(images)
        return self.mu(hidden), self.log_std(hidden)


class Decoder(nn.Module):
    """z [N,latent_dim] → image [N,3,S,S] in [0,1] (sigmoid)."""

    def __init__(self, image_size: int = 256, latent_dim: int = 100) -> None:
        super().__init__()
        side = bottleneck_side(image_size)
        c1, c2, c3 = CHANNELS
        self.layers = nn.Sequential(
            nn.Linear(latent_dim, HIDDEN), nn.ReLU(),
            nn.Linear(HIDDEN, c3 * side * side), nn.ReLU(),
            nn.Unflatten(1, (c3, side, side)),
            nn.ConvTranspose2d(c3, c2, 3, stride=2, padding=0, output_padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.ConvTranspose2d(c1, 3, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)


class EncoderGraph(nn.Module):
    """The exported ``encoder`` graph: image → (mu, logvar), with logvar = 2·log_std."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_std = self.encoder(images)
        return mu, 2.0 * log_std


def reparameterise(mu: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """z = mu + std·ε with ε drawn by the caller."""
    return mu + torch.exp(log_std) * noise


def kl_per_item(mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """The book's KL(q‖N(0,1)) summed over the latent: σ²/2 + μ²/2 − log σ − ½, per item [N]."""
    return (torch.exp(2.0 * log_std) / 2 + mu.pow(2) / 2 - log_std - 0.5).sum(dim=1)


def squared_error_per_item(images: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
    """Summed squared error over every pixel and channel, per item [N]."""
    return (reconstructions - images).pow(2).flatten(1).sum(dim=1)
