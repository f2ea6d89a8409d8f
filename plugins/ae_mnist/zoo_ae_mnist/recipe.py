"""Training and inference for ae_mnist: the book's loop (ch. 7, cells 4–14) on the shared engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from zoo_ae_mnist.plugin import IMAGE_SIZE
from zoo_core.api import (
    Batches,
    BestMetric,
    DataError,
    DataSource,
    ImageSet,
    Recipe,
    StepContext,
    TrainingData,
    UsageError,
    to_float,
)

# The embedded digits are drawn with a fixed seed, so every run (whatever its --seed) shares one cached set.
EMBEDDED_SEED = 0
SAMPLE_COLUMNS = 10


class AutoencoderRecipe(Recipe):
    """Summed squared error, one Adam over both networks, images flattened to 784 in [0,1]."""

    grid_columns = SAMPLE_COLUMNS
    best_checkpoint = BestMetric("loss", "min")  # held-out reconstruction error per image
    loss_reduction = "sum"  # the book's squared error, summed over the batch (the logged loss is per image)

    # -- networks --------------------------------------------------------------------
    def build_networks(self) -> dict[str, nn.Module]:
        # network code is imported where it is used: the exported runtimes build this recipe for data only
        from zoo_ae_mnist.networks import build_networks

        return build_networks(int(self.config["h_dim"]), int(self.config["z_dim"]))

    def graph_module(self, graph: str, networks: Mapping[str, nn.Module]) -> nn.Module:
        from zoo_ae_mnist.networks import AutoencoderGraph, DecoderGraph, EncoderGraph

        if graph == "encoder":
            return EncoderGraph(networks["encoder"])
        if graph == "decoder":
            return DecoderGraph(networks["decoder"])
        if graph == "autoencoder":
            return AutoencoderGraph(networks["encoder"], networks["decoder"])
        raise KeyError(f"ae_mnist has no graph {graph!r}")

    # -- data ------------------------------------------------------------------------
    def load_data(self, source: DataSource) -> TrainingData:
        if source.data_a is not None or source.data_b is not None:
            raise UsageError("ae_mnist reads a single MNIST folder: pass --data DIR, not --data-a/--data-b")
        if source.data is None:
            from zoo_core.api import cached

            count = int(self.config["embedded_items"])
            data = cached("digits", count, EMBEDDED_SEED, IMAGE_SIZE)
            origin = f"{count} embedded procedural digits"
        else:
            from zoo_core.api import load_mnist

            data = load_mnist(source.data)
            origin = f"MNIST from {source.data}"
        _check_images(data, origin)
        if source.limit is not None:
            data = data.subset(slice(0, source.limit))
        fraction = source.val_split if source.val_split is not None else float(self.config.get("val_split", 0.0))
        train, val = data.split(fraction)
        return TrainingData(train=train, val=val,
                            description=f"{origin}: {len(train)} to train, {len(val)} held out (the last ones)")

    def batches(self, data: ImageSet, batch_size: int, generator: torch.Generator, train: bool) -> Batches:
        # Images only: the digit labels play no part in training, so they are not gathered each step.
        count = len(data)
        order = torch.randperm(count, generator=generator) if train else torch.arange(count)
        return Batches({"images": data.images}, batch_size, order)

    def prepare_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        # to_float's x / 255 for the [0,1] range, with one kernel fewer: this runs every step
        images = batch["images"].to(device, non_blocking=True).flatten(1)
        return {"images": images.to(torch.float32).div_(255.0)}

    # -- training --------------------------------------------------------------------
    def build_optimizers(self, networks: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        parameters = [*networks["encoder"].parameters(), *networks["decoder"].parameters()]
        return {"adam": torch.optim.Adam(parameters, lr=float(self.config["lr"]))}

    def training_step(self, batch: dict[str, torch.Tensor], networks: Mapping[str, nn.Module],
                      step: StepContext) -> dict[str, torch.Tensor]:
        images = batch["images"]
        with step.autocast():
            reconstruction = networks["decoder"](networks["encoder"](images))
        loss = ((reconstruction.float() - images) ** 2).sum()  # the book's loss: summed over the batch
        step.optimize("adam", loss)
        # Reported per image, so train and validation losses share a scale whatever the batch size.
        return {"loss": loss.detach() / images.shape[0]}

    def validation_metrics(self, batch: dict[str, torch.Tensor], networks: Mapping[str, nn.Module],
                           generator: torch.Generator) -> dict[str, torch.Tensor]:
        images = batch["images"]
        reconstruction = networks["decoder"](networks["encoder"](images))
        squared_error = ((reconstruction.float() - images) ** 2).sum()
        return {"loss": squared_error, "mse_per_pixel": squared_error / images.shape[1]}

    def sample_grid(self, networks: Mapping[str, nn.Module], data: TrainingData,
                    device: torch.device) -> torch.Tensor | None:
        originals = to_float(data.held_out().images[:SAMPLE_COLUMNS]).to(device)
        reconstruction = networks["decoder"](networks["encoder"](originals.flatten(1)))
        return torch.cat([originals, reconstruction.view_as(originals)]).cpu()

    # -- export ----------------------------------------------------------------------
    def data_inputs(self, graph: str, data: TrainingData, batch: int,
                    networks: Mapping[str, nn.Module]) -> tuple[torch.Tensor, ...] | None:
        images = to_float(data.held_out().images[:batch])
        if graph in ("encoder", "autoencoder"):
            return (images,)
        if graph == "decoder":
            encoder = networks["encoder"]
            device = next(encoder.parameters()).device
            with torch.no_grad():
                return (encoder(images.flatten(1).to(device)).cpu(),)
        return None


def _check_images(data: ImageSet, origin: str) -> None:
    if tuple(data.images.shape[1:]) != (1, IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{origin}: images are {list(data.images.shape[1:])}, ae_mnist needs [1,28,28] "
                        "grey digits; point --data at an MNIST folder")
    if len(data) == 0:
        raise DataError(f"{origin}: no images")


def reconstruction_mse(graph: str, run: Any, data: TrainingData, recipe: Recipe, limit: int = 256) -> float:
    """Mean squared error per pixel of held-out reconstructions made through ``graph`` (the int8 quality bar):
    the autoencoder graph alone, else encoder then decoder, ``run(name, *inputs)`` running each."""
    images = to_float(data.held_out().images[:limit])
    if graph == "autoencoder":
        reconstruction = run("autoencoder", images)[0]
    else:
        reconstruction = run("decoder", *run("encoder", images))[0]
    return float(((reconstruction.float() - images) ** 2).mean())
