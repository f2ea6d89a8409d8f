"""Training and inference of the face VAE: the book's loss, optimizer and data, on any device."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from zoo_core.api import (
    BestMetric,
    DataSource,
    ImageSet,
    ModelSpec,
    Recipe,
    StepContext,
    TrainingData,
    UsageError,
    linear_decay,
    to_float,
)
from zoo_vae_faces.data import join, load_faces, split_faces
from zoo_vae_faces.shapes import bottleneck_side

GRID_ITEMS = 8
GRID_SAMPLES = 16


@contextlib.contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm running statistics) and no grad, restoring each module's mode afterwards."""
    modes = [module.training for module in modules]
    for module in modules:
        module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, mode in zip(modules, modes, strict=True):
            module.train(mode)


class VaeFacesRecipe(Recipe):
    """Encoder and decoder trained together with one Adam on summed squared error + KL."""

    grid_columns = GRID_ITEMS
    best_checkpoint = BestMetric("loss", "min")  # held-out reconstruction + KL per image
    loss_reduction = "sum"  # the book's loss, summed over the batch (the logged one is per image)

    def __init__(self, spec: ModelSpec, config: Mapping[str, Any]) -> None:
        super().__init__(spec, config)
        bottleneck_side(self.config["image_size"])  # refuse an impossible size before any work
        self.image_size = int(self.config["image_size"])
        self.latent_dim = int(self.config["latent_dim"])
        # A fraction, not a count, so that `--set epochs=N` keeps the schedule's shape. .get: runs saved before
        # it existed kept the rate constant.
        fraction = float(self.config.get("lr_decay_fraction", 0.0))
        if not 0.0 <= fraction <= 1.0:
            raise UsageError(f"lr_decay_fraction must be between 0 and 1 (the share of the epochs over which the "
                             f"rate falls to zero), got {fraction}")
        self.lr_decay_epochs = round(int(self.config["epochs"]) * fraction)

    # -- networks --------------------------------------------------------------------
    def build_networks(self) -> dict[str, nn.Module]:
        # network code is imported where it is used: the exported runtimes build this recipe for data only
        from zoo_vae_faces.networks import Decoder, Encoder

        return {"encoder": Encoder(self.image_size, self.latent_dim), "decoder": Decoder(self.image_size,
                                                                                         self.latent_dim)}

    def graph_module(self, graph: str, networks: Mapping[str, nn.Module]) -> nn.Module:
        from zoo_vae_faces.networks import EncoderGraph

        if graph == "encoder":
            return EncoderGraph(networks["encoder"])
        if graph == "decoder":
            return networks["decoder"]
        raise KeyError(graph)

    # -- data ------------------------------------------------------------------------
    def load_data(self, source: DataSource) -> TrainingData:
        return split_faces(load_faces(source, self.config), source, self.config)

    def prepare_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        prepared = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        prepared["images"] = to_float(prepared["images"])
        return prepared

    # -- training --------------------------------------------------------------------
    def build_optimizers(self, networks: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        params = itertools.chain(networks["encoder"].parameters(), networks["decoder"].parameters())
        return {"vae": torch.optim.Adam(params, lr=float(self.config["lr"]),
                                        weight_decay=float(self.config["weight_decay"]))}

    def build_schedulers(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> list[Any]:
        if self.lr_decay_epochs == 0:
            return []
        factor = linear_decay(int(self.config["epochs"]), self.lr_decay_epochs)
        return [torch.optim.lr_scheduler.LambdaLR(optimizer, factor) for optimizer in optimizers.values()]

    def _losses(self, images: torch.Tensor, networks: Mapping[str, nn.Module],
                noise: torch.Tensor | None, autocast: Any = None) -> dict[str, torch.Tensor]:
        """Summed-over-the-batch squared error and KL; ``noise`` None draws nothing and decodes mu."""
        from zoo_vae_faces.networks import kl_per_item, reparameterise, squared_error_per_item

        with autocast if autocast is not None else contextlib.nullcontext():
            mu, log_std = networks["encoder"](images)
            z = mu if noise is None else reparameterise(mu, log_std, noise.to(mu.dtype))
            reconstructions = networks["decoder"](z)
        recon = squared_error_per_item(images, reconstructions.float()).sum()
        kl = kl_per_item(mu.float(), log_std.float()).sum()
        # .get: runs saved before recon_weight existed weighted the squared error by 1
        loss = float(self.config.get("recon_weight", 1.0)) * recon + float(self.config["kl_weight"]) * kl
        return {"loss": loss, "recon": recon, "kl": kl}

    def training_step(self, batch: dict[str, torch.Tensor], networks: Mapping[str, nn.Module],
                      step: StepContext) -> dict[str, torch.Tensor]:
        images = batch["images"]
        noise = step.randn(len(images), self.latent_dim)
        losses = self._losses(images, networks, noise, step.autocast())
        step.optimize("vae", losses["loss"])  # the book's loss: summed over the batch
        count = len(images)
        return {name: value.detach() / count for name, value in losses.items()}

    def validation_metrics(self, batch: dict[str, torch.Tensor], networks: Mapping[str, nn.Module],
                           generator: torch.Generator) -> dict[str, torch.Tensor]:
        images = batch["images"]
        noise = torch.randn(len(images), self.latent_dim, generator=generator).to(images.device)
        losses = self._losses(images, networks, noise)
        pixels = images[0].numel()
        return {**losses, "mse": losses["recon"] / pixels}

    def sample_grid(self, networks: Mapping[str, nn.Module], data: Any, device: torch.device) -> torch.Tensor | None:
        """Held-out faces, their reconstructions (from mu), then decodes of fixed latent draws."""
        faces: ImageSet = data.held_out()
        images = to_float(faces.images[:GRID_ITEMS]).to(device)
        z = torch.randn(GRID_SAMPLES, self.latent_dim, generator=torch.Generator().manual_seed(0)).to(device)
        encoder, decoder = networks["encoder"], networks["decoder"]
        with evaluating(encoder, decoder):
            reconstructions = decoder(encoder(images)[0])
            samples = decoder(z)
        return torch.cat([images, reconstructions, samples]).float().cpu()

    # -- inference and export --------------------------------------------------------
    def data_inputs(self, graph: str, data: TrainingData, batch: int,
                    networks: Mapping[str, nn.Module]) -> tuple[torch.Tensor, ...] | None:
        """Real faces for ``encoder``; their encodings (mu) for ``decoder``."""
        faces: ImageSet = data.held_out()
        faces = faces if len(faces) >= batch else join(data)
        images = to_float(faces.images[:batch])
        if graph == "encoder":
            return (images,)
        if graph == "decoder":
            encoder = networks["encoder"]
            device = next(encoder.parameters()).device
            with evaluating(encoder):
                mu = encoder(images.to(device))[0]
            return (mu.float().cpu(),)
        return None
