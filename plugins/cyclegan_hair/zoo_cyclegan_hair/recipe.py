"""The CycleGAN recipe: networks, data, the two-optimizer training step, graphs and example inputs.

The book's recipe (preset ``book``) and the CycleGAN paper's (``reference``) differ only in settings read
from the config: discriminator sigmoid, identity loss, image pool, update order, learning-rate schedule,
initialisation and crop. Every random draw (crop, flip, pool) comes from the run's generator.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo_core.api import (
    Batches,
    DataSource,
    Recipe,
    StepContext,
    TrainingData,
    UsageError,
    ZooError,
    linear_decay,
    to_float,
)
from zoo_cyclegan_hair.data import DomainPair, load_domains, pair_batches
from zoo_cyclegan_hair.shapes import MIN_DISCRIMINATOR_SIZE, size_problem

VALUE_RANGE = (-1.0, 1.0)
# graph name → (generator network, source domain)
GRAPHS = {"black_to_blond": ("G_AB", "a"), "blond_to_black": ("G_BA", "b")}
SAMPLE_ROWS = 4


def check_config(config: Mapping[str, Any]) -> None:
    """Refuse sizes and settings the networks cannot take, with one line naming the setting."""
    size, load = int(config["image_size"]), int(config["load_size"])
    problem = size_problem(size, size)
    if problem is not None:
        raise UsageError(f"image_size={size}: {problem}")
    if size < MIN_DISCRIMINATOR_SIZE:
        raise UsageError(f"image_size={size} is too small for the PatchGAN discriminator; use at least "
                         f"{MIN_DISCRIMINATOR_SIZE}")
    if load < size:
        raise UsageError(f"load_size={load} is smaller than image_size={size}; images are loaded at load_size and "
                         "randomly cropped to image_size, so use load_size >= image_size")
    if config["init"] not in ("default", "normal"):
        raise UsageError(f"init must be 'default' (PyTorch's, as the book's no-op call leaves it) or 'normal' "
                         f"(N(0, 0.02)), got {config['init']!r}")
    if int(config["decay_epochs"]) > int(config["epochs"]):
        raise UsageError(f"decay_epochs={config['decay_epochs']} exceeds epochs={config['epochs']}")
    for key in ("res_blocks", "pool_size", "decay_epochs"):
        if int(config[key]) < 0:
            raise UsageError(f"{key} must not be negative, got {config[key]}")
    for key in ("features", "d_features", "portraits"):
        if int(config[key]) < 1:
            raise UsageError(f"{key} must be at least 1, got {config[key]}")


class CycleGANRecipe(Recipe):
    """G_AB: black → blond, G_BA: blond → black, D_A judges black-hair images, D_B blond-hair images."""

    grid_columns = 6
    best_checkpoint = None  # a GAN's losses do not rank its weights: write and load last.safetensors only

    def __init__(self, spec: Any, config: Mapping[str, Any]) -> None:
        super().__init__(spec, config)
        check_config(self.config)
        self.image_size = int(self.config["image_size"])
        self.load_size = int(self.config["load_size"])

    # -- networks ---------------------------------------------------------------------------------------------
    def build_networks(self) -> dict[str, nn.Module]:
        # imported here: the exported runtimes build this recipe for data and must run without the network code
        from zoo_cyclegan_hair.networks import Discriminator, Generator, ImagePool, init_normal

        config = self.config
        networks: dict[str, nn.Module] = {}
        for name in ("G_AB", "G_BA"):
            networks[name] = Generator(features=int(config["features"]), residual_blocks=int(config["res_blocks"]))
        for name in ("D_A", "D_B"):
            networks[name] = Discriminator(features=int(config["d_features"]), sigmoid=bool(config["d_sigmoid"]))
        if config["init"] == "normal":
            for network in networks.values():
                init_normal(network)
        if int(config["pool_size"]) > 0:
            for name in ("D_A", "D_B"):  # each discriminator keeps the history of the fakes it judges
                pool = ImagePool(int(config["pool_size"]), (3, self.image_size, self.image_size))
                networks[name].add_module("pool", pool)
        return networks

    def graph_module(self, graph: str, networks: Mapping[str, nn.Module]) -> nn.Module:
        if graph not in GRAPHS:
            raise ZooError(f"cyclegan_hair has no graph {graph!r}; graphs: {', '.join(GRAPHS)}")
        return networks[GRAPHS[graph][0]]

    # -- data -------------------------------------------------------------------------------------------------
    def load_data(self, source: DataSource) -> TrainingData:
        return load_domains(source, self.config)

    def batches(self, data: Any, batch_size: int, generator: torch.Generator, train: bool) -> Batches:
        return pair_batches(data, batch_size, generator, train)

    def prepare_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        return {key: to_float(value.to(device, non_blocking=True), VALUE_RANGE) for key, value in batch.items()}

    def center(self, images: torch.Tensor) -> torch.Tensor:
        """The central ``image_size`` square of images loaded at ``load_size`` (what evaluation sees)."""
        offset = (images.shape[-1] - self.image_size) // 2
        return images[..., offset:offset + self.image_size, offset:offset + self.image_size]

    def augment(self, a: torch.Tensor, b: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Random crops (reference: 286 → 256) per image, then one flip decision per pair (the book's
        albumentations pipeline flips both images of a pair together)."""
        a, b = self._random_crop(a, generator), self._random_crop(b, generator)
        if self.config["flip"]:
            flip = (torch.rand(len(a), generator=generator) < 0.5).to(a.device).view(-1, 1, 1, 1)
            a, b = torch.where(flip, a.flip(-1), a), torch.where(flip, b.flip(-1), b)
        return a, b

    def _random_crop(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        spare = images.shape[-1] - self.image_size
        if spare == 0:
            return images
        corners = torch.randint(spare + 1, (len(images), 2), generator=generator).tolist()
        return torch.stack([image[:, top:top + self.image_size, left:left + self.image_size]
                            for image, (top, left) in zip(images, corners, strict=True)])

    # -- training ---------------------------------------------------------------------------------------------
    def build_optimizers(self, networks: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        config = self.config
        betas = (float(config["beta1"]), float(config["beta2"]))
        lr = float(config["lr"])
        generators = itertools.chain(networks["G_AB"].parameters(), networks["G_BA"].parameters())
        discriminators = itertools.chain(networks["D_A"].parameters(), networks["D_B"].parameters())
        return {"generators": torch.optim.Adam(generators, lr=lr, betas=betas),
                "discriminators": torch.optim.Adam(discriminators, lr=lr, betas=betas)}

    def build_schedulers(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> list[Any]:
        decay = int(self.config["decay_epochs"])
        if decay == 0:
            return []
        factor = linear_decay(int(self.config["epochs"]), decay)
        return [torch.optim.lr_scheduler.LambdaLR(optimizer, factor) for optimizer in optimizers.values()]

    def training_step(self, batch: dict[str, torch.Tensor], networks: Mapping[str, nn.Module],
                      step: StepContext) -> dict[str, torch.Tensor]:
        real_a, real_b = self.augment(batch["a"], batch["b"], step.generator)
        with step.autocast():
            fake_b, fake_a = networks["G_AB"](real_a), networks["G_BA"](real_b)
        if self.config["d_first"]:  # the book: discriminators, then generators, on the same fakes
            d_loss = self._discriminator_step(networks, real_a, real_b, fake_a, fake_b, step)
            g_metrics = self._generator_step(networks, real_a, real_b, fake_a, fake_b, step)
        else:  # the reference: generators first, then discriminators on (pooled) fakes
            g_metrics = self._generator_step(networks, real_a, real_b, fake_a, fake_b, step)
            d_loss = self._discriminator_step(networks, real_a, real_b, fake_a, fake_b, step)
        return {**g_metrics, "d_loss": d_loss}

    def _discriminator_step(self, networks: Mapping[str, nn.Module], real_a: torch.Tensor, real_b: torch.Tensor,
                            fake_a: torch.Tensor, fake_b: torch.Tensor, step: StepContext) -> torch.Tensor:
        shown_a = self._from_pool(networks["D_A"], fake_a.detach(), step.generator)
        shown_b = self._from_pool(networks["D_B"], fake_b.detach(), step.generator)
        with step.autocast():
            loss = (self.discriminator_loss(networks["D_A"], real_a, shown_a)
                    + self.discriminator_loss(networks["D_B"], real_b, shown_b)) / 2
        step.optimize("discriminators", loss)
        return loss.detach()

    def _generator_step(self, networks: Mapping[str, nn.Module], real_a: torch.Tensor, real_b: torch.Tensor,
                        fake_a: torch.Tensor, fake_b: torch.Tensor, step: StepContext) -> dict[str, torch.Tensor]:
        discriminators = [networks["D_A"], networks["D_B"]]
        for network in discriminators:  # the generator loss needs no discriminator gradients
            network.requires_grad_(False)
        try:
            with step.autocast():
                terms = self.generator_terms(networks, real_a, real_b, fake_a, fake_b)
                loss = terms["gan"] + terms["cycle"] + terms["identity"]
            step.optimize("generators", loss)
        finally:
            for network in discriminators:
                network.requires_grad_(True)
        return {"loss": loss.detach(), **{f"g_{k}": v.detach() for k, v in terms.items()}}

    @staticmethod
    def _from_pool(discriminator: nn.Module, fakes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        pool = getattr(discriminator, "pool", None)
        return fakes if pool is None else pool.query(fakes, generator)

    @staticmethod
    def discriminator_loss(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """``mse(D(real), 1) + mse(D(fake), 0)``: the book's loss for one discriminator (halved per pair of Ds)."""
        on_real, on_fake = discriminator(real), discriminator(fake)
        return F.mse_loss(on_real, torch.ones_like(on_real)) + F.mse_loss(on_fake, torch.zeros_like(on_fake))

    def generator_terms(self, networks: Mapping[str, nn.Module], real_a: torch.Tensor, real_b: torch.Tensor,
                        fake_a: torch.Tensor, fake_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Adversarial (least squares), cycle-consistency (L1) and identity (L1) terms, each weighted."""
        judged_b, judged_a = networks["D_B"](fake_b), networks["D_A"](fake_a)
        gan = F.mse_loss(judged_b, torch.ones_like(judged_b)) + F.mse_loss(judged_a, torch.ones_like(judged_a))
        cycle_a, cycle_b = networks["G_BA"](fake_b), networks["G_AB"](fake_a)
        cycle = float(self.config["cycle_weight"]) * (F.l1_loss(cycle_a, real_a) + F.l1_loss(cycle_b, real_b))
        identity_weight = float(self.config["identity_weight"])
        if identity_weight > 0:  # G_AB should leave blond hair blond, G_BA black hair black
            identity = identity_weight * (F.l1_loss(networks["G_AB"](real_b), real_b)
                                          + F.l1_loss(networks["G_BA"](real_a), real_a))
        else:
            identity = torch.zeros((), device=real_a.device)
        return {"gan": gan, "cycle": cycle, "identity": identity}

    def validation_metrics(self, batch: dict[str, torch.Tensor], networks: Mapping[str, nn.Module],
                           generator: torch.Generator) -> dict[str, torch.Tensor]:
        real_a, real_b = self.center(batch["a"]), self.center(batch["b"])
        fake_b, fake_a = networks["G_AB"](real_a), networks["G_BA"](real_b)
        terms = self.generator_terms(networks, real_a, real_b, fake_a, fake_b)
        d_loss = (self.discriminator_loss(networks["D_A"], real_a, fake_a)
                  + self.discriminator_loss(networks["D_B"], real_b, fake_b)) / 2
        count = len(real_a)
        cycle_l1 = (networks["G_BA"](fake_b) - real_a).abs().mean() + (networks["G_AB"](fake_a) - real_b).abs().mean()
        return {"loss": (terms["gan"] + terms["cycle"] + terms["identity"]) * count, "d_loss": d_loss * count,
                "cycle_l1": cycle_l1 / 2 * count}

    def sample_grid(self, networks: Mapping[str, nn.Module], data: Any, device: torch.device) -> torch.Tensor | None:
        pair = data.held_out()
        a, b = (self.source_images(pair, domain, SAMPLE_ROWS).to(device) for domain in ("a", "b"))
        rows = roundtrip_rows(lambda name, x: networks[GRAPHS[name][0]](x), a, b)
        return (rows + 1) / 2

    # -- inference and export ---------------------------------------------------------------------------------
    def source_images(self, pair: DomainPair, domain: str, count: int) -> torch.Tensor:
        """The first ``count`` images of a domain (cycled when it holds fewer), centred, as floats in [-1,1]."""
        images = pair.domain(domain).images
        if len(images) == 0:
            raise ZooError(f"domain {domain.upper()} has no images to translate")
        picked = images.index_select(0, torch.arange(count) % len(images))
        return self.center(to_float(picked, VALUE_RANGE))

    def data_inputs(self, graph: str, data: TrainingData, batch: int,
                    networks: Mapping[str, nn.Module]) -> tuple[torch.Tensor, ...] | None:
        """Real images of the graph's source domain (held-out ones when there are any)."""
        pair = data.held_out()
        return (self.source_images(pair, GRAPHS[graph][1], batch),)


def roundtrip_rows(run: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The book's round-trip figure as one tensor in [-1,1], six images per row:
    black, → blond, → back to black, blond, → black, → back to blond. ``run(graph, x)`` returns one tensor."""
    fake_b = run("black_to_blond", a)
    back_a = run("blond_to_black", fake_b)
    fake_a = run("blond_to_black", b)
    back_b = run("black_to_blond", fake_a)
    count = min(len(a), len(b))
    columns = [a[:count], fake_b[:count], back_a[:count], b[:count], fake_a[:count], back_b[:count]]
    return torch.stack([c.float().cpu() for c in columns], dim=1).flatten(0, 1)
