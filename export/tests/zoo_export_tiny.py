"""A third-party model that zoo-export knows nothing about, registered in-process by the tests.

A tiny convolutional VAE on smooth random images: the encoder has two outputs (mu, logvar),
the decoder uses the layers that matter for ONNX export (ReflectionPad → Pad, InstanceNorm,
ConvTranspose). Two tasks write PNGs through named graphs, so they run on any runtime. The networks
live in ``zoo_export_tiny_networks``, imported only when networks are built, so the exported runtimes
can be tested with that module blocked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import click
import torch
import torch.nn.functional as F
from torch import nn

from zoo_core import hookimpl
from zoo_core.images import save_grid, save_png, stack_rows
from zoo_core.recipe import Batches, DataSource, Recipe, StepContext, TrainingData
from zoo_core.spec import GraphSpec, ModelSpec, NetworkSpec, Preset, TaskSpec, TensorSpec
from zoo_core.tasks import TaskContext

MODEL = "tiny_vae"
DISTRIBUTION = "zoo-tiny"
VERSION = "0.1"
IMAGE = TensorSpec("image", ("N", 1, "image_size", "image_size"), value_range=(0.0, 1.0), layout="NCHW")
MU = TensorSpec("mu", ("N", "latent"), layout="latent")
LOGVAR = TensorSpec("logvar", ("N", "latent"), layout="latent")
Z = TensorSpec("z", ("N", "latent"), layout="latent")
QUICK = {"image_size": 8, "latent": 4, "width": 4, "items": 40, "batch_size": 8, "epochs": 1, "lr": 1e-3}

SPEC = ModelSpec(
    name=MODEL,
    summary="Tiny conv VAE on smooth noise (zoo-export test fixture)",
    recipe="zoo_export_tiny:TinyVAERecipe",
    networks=(NetworkSpec("encoder", "conv, instance norm, strided conv, two linear heads", params=716),
              NetworkSpec("decoder", "linear, reflection-padded conv, instance norm, transposed conv", params=541)),
    graphs=(GraphSpec("encoder", "image → (mu, logvar)", (IMAGE,), (MU, LOGVAR), gflops_per_item=0.0),
            GraphSpec("decoder", "z → image", (Z,), (IMAGE,), gflops_per_item=0.0, tolerance={"fp16": 2e-2})),
    presets=(Preset("quick", "seconds on a CPU", QUICK),
             Preset("book", "the card's size", {**QUICK, "image_size": 16, "latent": 8, "width": 8})),
    card_preset="quick",
    tasks=(TaskSpec("sample", "decode Gaussian codes into a grid", ("decoder",), "zoo_export_tiny:sample",
                    (click.Option(["--count"], type=int, default=8, show_default=True),)),
           TaskSpec("reconstruct", "validation images above their reconstructions", ("encoder", "decoder"),
                    "zoo_export_tiny:reconstruct")),
    source="zoo-export tests",
    tags=("test",),
)


@hookimpl
def zoo_register_models(register: Callable[[ModelSpec], None]) -> None:
    register(SPEC)


def smooth_images(count: int, size: int, seed: int) -> torch.Tensor:
    """uint8 [count,1,size,size]: 3x3 noise upsampled bilinearly, so images have structure to learn."""
    coarse = torch.rand(count, 1, 3, 3, generator=torch.Generator().manual_seed(seed))
    return (F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True) * 255).round().to(torch.uint8)


class TinyVAERecipe(Recipe):
    def _sizes(self) -> tuple[int, int, int]:
        return int(self.config["image_size"]), int(self.config["width"]), int(self.config["latent"])

    def build_networks(self) -> dict[str, nn.Module]:
        # imported here, as a plugin should: the exported runtimes build this recipe for data and never need it
        from zoo_export_tiny_networks import Encoder, decoder

        return {"encoder": Encoder(*self._sizes()), "decoder": decoder(*self._sizes())}

    def graph_module(self, graph: str, networks: Mapping[str, nn.Module]) -> nn.Module:
        return networks[graph]

    def load_data(self, source: DataSource) -> TrainingData:
        images = smooth_images(int(self.config["items"]), int(self.config["image_size"]), seed=7)
        if source.limit is not None:
            images = images[:source.limit]
        held = max(1, len(images) // 4)
        return TrainingData(train=images[:-held], val=images[-held:], description=f"{len(images)} smooth images")

    def batches(self, data: Any, batch_size: int, generator: torch.Generator, train: bool) -> Batches:
        order = torch.randperm(len(data), generator=generator) if train else torch.arange(len(data))
        return Batches({"images": data}, batch_size, order)

    def prepare_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        return {"images": batch["images"].to(device).float() / 255.0}

    def build_optimizers(self, networks: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        parameters = [p for net in networks.values() for p in net.parameters()]
        return {"vae": torch.optim.Adam(parameters, lr=float(self.config["lr"]))}

    def _loss(self, images: torch.Tensor, networks: Mapping[str, nn.Module], noise: torch.Tensor) -> torch.Tensor:
        mu, logvar = networks["encoder"](images)
        decoded = networks["decoder"](mu + noise * (0.5 * logvar).exp())
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        return (decoded - images).pow(2).flatten(1).sum(1) + kl

    def training_step(self, batch: dict[str, torch.Tensor], networks: Mapping[str, nn.Module],
                      step: StepContext) -> dict[str, torch.Tensor]:
        images = batch["images"]
        loss = self._loss(images, networks, step.randn(len(images), int(self.config["latent"]))).mean()
        step.optimize("vae", loss)
        return {"loss": loss.detach()}

    def validation_metrics(self, batch: dict[str, torch.Tensor], networks: Mapping[str, nn.Module],
                           generator: torch.Generator) -> dict[str, torch.Tensor]:
        images = batch["images"]
        noise = torch.randn(len(images), int(self.config["latent"]), generator=generator)
        return {"loss": self._loss(images, networks, noise).sum()}

    def data_inputs(self, graph: str, data: TrainingData, batch: int,
                    networks: Mapping[str, nn.Module]) -> tuple[torch.Tensor, ...] | None:
        images = data.val[:batch].float() / 255.0
        if graph == "encoder":
            return (images,)
        with torch.no_grad():
            return (networks["encoder"](images)[0],)


def sample(ctx: TaskContext, count: int) -> None:
    codes = torch.randn(count, int(ctx.config["latent"]), generator=ctx.generator())
    (images,) = ctx.run("decoder", codes)
    path = save_grid(images, ctx.output("samples.png"), nrow=4)
    ctx.done(path, f"{count} samples")


def reconstruct(ctx: TaskContext) -> None:
    images = ctx.data().val[:8].float() / 255.0
    mu, _ = ctx.run("encoder", images)
    (decoded,) = ctx.run("decoder", mu)
    path = save_png(stack_rows([images, decoded]), ctx.output("reconstruct.png"))
    ctx.done(path, "reconstructions")
