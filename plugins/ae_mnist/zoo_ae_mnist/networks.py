"""The book's fully connected autoencoder (ch. 7): 784 → 200 → 20 → 200 → 784.

The networks work on flat vectors, as in the book; the graph modules wrap them so that
every exported graph takes and returns images shaped [N,1,28,28].
"""

from __future__ import annotations

import torch
from torch import nn

from zoo_ae_mnist.plugin import IMAGE_SIZE

INPUT_DIM = IMAGE_SIZE * IMAGE_SIZE


class Encoder(nn.Sequential):
    """Flat image [N,784] in [0,1] → code [N,z_dim]: Linear, ReLU, Linear."""

    def __init__(self, input_dim: int = INPUT_DIM, h_dim: int = 200, z_dim: int = 20) -> None:
        super().__init__(nn.Linear(input_dim, h_dim), nn.ReLU(), nn.Linear(h_dim, z_dim))


class Decoder(nn.Sequential):
    """Code [N,z_dim] → flat image [N,784] in [0,1]: Linear, ReLU, Linear, sigmoid."""

    def __init__(self, input_dim: int = INPUT_DIM, h_dim: int = 200, z_dim: int = 20) -> None:
        super().__init__(nn.Linear(z_dim, h_dim), nn.ReLU(), nn.Linear(h_dim, input_dim), nn.Sigmoid())


class EncoderGraph(nn.Module):
    """Graph ``encoder``: image [N,1,28,28] → z [N,z_dim]."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(image.flatten(1))


class DecoderGraph(nn.Module):
    """Graph ``decoder``: z [N,z_dim] → image [N,1,28,28] in [0,1]."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, 1, IMAGE_SIZE, IMAGE_SIZE)


class AutoencoderGraph(nn.Module):
    """Graph ``autoencoder``: image [N,1,28,28] → reconstruction [N,1,28,28]."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(image.flatten(1))).view(-1, 1, IMAGE_SIZE, IMAGE_SIZE)


def build_networks(h_dim: int, z_dim: int) -> dict[str, nn.Module]:
    return {"encoder": Encoder(INPUT_DIM, h_dim, z_dim), "decoder": Decoder(INPUT_DIM, h_dim, z_dim)}
