"""The torch side of the test plugin: networks, random-rectangle data and an L1 training step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from zoo_core.errors import UsageError
from zoo_core.recipe import Batches, DataSource, Recipe, StepContext, TrainingData


def rectangles(count: int, size: int, seed: int) -> torch.Tensor:
    """``count`` uint8 [count,1,size,size] images, each one bright axis-aligned rectangle."""
    generator = torch.Generator().manual_seed(seed)
    corners = torch.randint(0, size // 2, (count, 2), generator=generator)
    extents = torch.randint(2, size // 2 + 1, (count, 2), generator=generator)
    rows = torch.arange(size).view(1, size, 1)
    cols = torch.arange(size).view(1, 1, size)
    top, left = corners[:, 0].view(-1, 1, 1), corners[:, 1].view(-1, 1, 1)
    bottom, right = top + extents[:, 0].view(-1, 1, 1), left + extents[:, 1].view(-1, 1, 1)
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    return (inside.to(torch.uint8) * 255).unsqueeze(1)


class TinyRecipe(Recipe):
    def build_networks(self) -> dict[str, nn.Module]:
        size, width = int(self.config["image_size"]), int(self.config["channels"])
        latent = int(self.config["latent_dim"])
        flat = 2 * width * (size // 4) ** 2
        encoder = nn.Sequential(
            nn.Conv2d(1, width, 3, 2, 1), nn.ReLU(), nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(flat, latent))
        decoder = nn.Sequential(
            nn.Linear(latent, flat), nn.ReLU(), nn.Unflatten(1, (2 * width, size // 4, size // 4)),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(width, 1, 4, 2, 1),
            nn.Sigmoid())
        return {"encoder": encoder, "decoder": decoder}

    def graph_module(self, graph: str, networks: Mapping[str, nn.Module]) -> nn.Module:
        return networks["encoder" if graph == "encode" else "decoder"]

    def load_data(self, source: DataSource) -> TrainingData:
        if source.data is not None:
            raise UsageError(f"{self.spec.name} reads no --data; drop --data {source.data}")
        images = rectangles(int(self.config["items"]), int(self.config["image_size"]), seed=1234)
        if source.limit is not None:
            images = images[:source.limit]
        fraction = source.val_split if source.val_split is not None else float(self.config["val_fraction"])
        held = round(len(images) * fraction)
        return TrainingData(train=images[:len(images) - held], val=images[len(images) - held:],
                            description=f"{len(images)} random rectangles")

    def batches(self, data: Any, batch_size: int, generator: torch.Generator, train: bool) -> Batches:
        order = torch.randperm(len(data), generator=generator) if train else torch.arange(len(data))
        return Batches({"images": data}, batch_size, order)

    def prepare_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        return {"images": batch["images"].to(device).float() / 255.0}

    def build_optimizers(self, networks: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        parameters = [p for net in networks.values() for p in net.parameters()]
        return {"autoencoder": torch.optim.Adam(parameters, lr=float(self.config["lr"]))}

    def training_step(self, batch: dict[str, torch.Tensor], networks: Mapping[str, nn.Module],
                      step: StepContext) -> dict[str, torch.Tensor]:
        with step.autocast():
            loss = (networks["decoder"](networks["encoder"](batch["images"])) - batch["images"]).abs().mean()
        step.optimize("autoencoder", loss)
        return {"loss": loss.detach()}

    def validation_metrics(self, batch: dict[str, torch.Tensor], networks: Mapping[str, nn.Module],
                           generator: torch.Generator) -> dict[str, torch.Tensor]:
        images = batch["images"]
        error = (networks["decoder"](networks["encoder"](images)) - images).abs().flatten(1).mean(1)
        return {"loss": error.sum()}

    def sample_grid(self, networks: Mapping[str, nn.Module], data: TrainingData,
                    device: torch.device) -> torch.Tensor | None:
        images = data.val[:8].to(device).float() / 255.0
        return torch.cat([images, networks["decoder"](networks["encoder"](images))])

    def data_inputs(self, graph: str, data: TrainingData, batch: int,
                    networks: Mapping[str, nn.Module]) -> tuple[torch.Tensor, ...] | None:
        images = data.val[:batch].float() / 255.0
        if graph == "encode":
            return (images,)
        with torch.no_grad():
            return (networks["encoder"](images),)
