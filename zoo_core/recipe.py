"""The training and inference contract a model plugin implements (torch-side).

A plugin subclasses :class:`Recipe`; the core constructs it with the model spec and the
resolved config and drives it: the engine calls the data, optimizer and step methods,
the runtimes call :meth:`Recipe.graph_module`, export calls the example-input methods.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from zoo_core.spec import GraphSpec, ModelSpec


def linear_decay(epochs: int, decay_epochs: int) -> Any:
    """A LambdaLR factor: the full rate, then a linear decay over the last ``decay_epochs`` epochs (the CycleGAN
    reference schedule; stepped once per epoch end by the engine)."""
    constant = epochs - decay_epochs

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - constant) / float(decay_epochs + 1)

    return factor


@dataclass(frozen=True)
class BestMetric:
    """The metric that selects ``best.safetensors``: a metric the recipe logs, and whether lower or higher is better.

    The engine reads it from an epoch's validation metrics when the run has held-out data, else from the
    epoch's mean training metrics.
    """

    name: str = "loss"
    mode: Literal["min", "max"] = "min"

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"BestMetric mode must be 'min' or 'max', got {self.mode!r}")

    def improves(self, value: float, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` (None: nothing to beat yet); NaN never improves."""
        if math.isnan(value):
            return False
        if best is None:
            return True
        return value < best if self.mode == "min" else value > best

    def describe(self) -> str:
        return f"{self.name}, {self.mode}"


@dataclass(frozen=True)
class DataSource:
    """Where the user pointed the data options; all ``None`` means the embedded default."""

    data: Path | None = None
    data_a: Path | None = None
    data_b: Path | None = None
    strict: bool = False
    val_split: float | None = None
    limit: int | None = None


@dataclass
class TrainingData:
    """What :meth:`Recipe.load_data` returns: the train and validation parts, any types the recipe batches."""

    train: Any
    val: Any
    description: str = ""

    def held_out(self) -> Any:
        """The validation part, or the training part when nothing was held out: what sample grids, tasks and
        export inputs show, so they show data the networks did not train on whenever there is some."""
        return self.val if self.val is not None and len(self.val) else self.train


class StepContext:
    """Handed to :meth:`Recipe.training_step`: device, randomness, AMP and the optimizer step."""

    def __init__(self, device: torch.device, generator: torch.Generator, optimizers: dict[str, torch.optim.Optimizer],
                 scalers: dict[str, torch.amp.GradScaler], amp_dtype: torch.dtype | None) -> None:
        self.device = device
        self.generator = generator
        self.optimizers = optimizers
        self.scalers = scalers
        self.amp_dtype = amp_dtype
        self.epoch = 0
        self.step = 0

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision when ``amp`` is on: float16 (or the preset's amp_dtype) on CUDA, bfloat16 on a CPU with
        bfloat16 arithmetic; a no-op otherwise (the engine refuses or turns off amp where it cannot run)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        """Zero the gradients of optimizer ``name``'s parameters only (set to None; other optimizers keep theirs),
        backpropagate ``loss`` (scaled under fp16 AMP) and step that optimizer."""
        optimizer = self.optimizers[name]
        scaler = self.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def randn(self, *shape: int) -> torch.Tensor:
        """Standard normal noise drawn on the CPU from the run's generator (so a resumed run, on any device, draws
        the same numbers), returned on ``self.device``."""
        return torch.randn(*shape, generator=self.generator).to(self.device, non_blocking=True)

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform noise in [0, 1), drawn like :meth:`randn`, returned on ``self.device``."""
        return torch.rand(*shape, generator=self.generator).to(self.device, non_blocking=True)


@dataclass
class Batches:
    """A shuffled pass over in-memory tensors that share their first axis."""

    tensors: Mapping[str, torch.Tensor]
    batch_size: int
    order: torch.Tensor
    drop_last: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        count = len(self.order)
        return count // self.batch_size if self.drop_last else math.ceil(count / self.batch_size)

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        picked = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return {name: tensor.index_select(0, picked.to(tensor.device)) for name, tensor in self.tensors.items()}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for index in range(len(self)):
            yield self.batch(index)


class Recipe:
    """Base class of a model plugin's torch code. Subclasses override the methods marked required."""

    #: Which checkpoint is "best": ``BestMetric("loss", "min")`` (a validation metric, lower is better), or
    #: None (the default, and right for a GAN, whose losses do not rank weights): then the engine writes only
    #: ``last.safetensors`` and every command loads it.
    best_checkpoint: ClassVar[BestMetric | None] = None

    #: How ``training_step``'s loss reduces a batch: ``"mean"`` (the default) or ``"sum"`` (e.g. a summed squared
    #: error). Under DDP each process holds part of the global batch and the engine weighs its gradients by this, so
    #: they add up to one process's gradients on the whole batch. The metrics ``training_step`` returns are taken
    #: as means over the batch whatever this says.
    loss_reduction: ClassVar[Literal["mean", "sum"]] = "mean"

    def __init__(self, spec: ModelSpec, config: Mapping[str, Any]) -> None:
        self.spec = spec
        self.config = dict(config)

    # -- networks (required) -------------------------------------------------------
    def build_networks(self) -> dict[str, nn.Module]:
        """Every trained network by the name its :class:`NetworkSpec` uses, freshly initialised."""
        raise NotImplementedError

    def graph_module(self, graph: str, networks: Mapping[str, nn.Module]) -> nn.Module:
        """The module for graph ``graph``: positional inputs and outputs in the GraphSpec's order.

        It must be deterministic (no sampling inside): noise is an input or drawn outside.
        """
        raise NotImplementedError

    # -- data ----------------------------------------------------------------------
    def load_data(self, source: DataSource) -> TrainingData:
        """Decode the training data once into memory (required for training and data tasks)."""
        raise NotImplementedError

    def batches(self, data: Any, batch_size: int, generator: torch.Generator, train: bool) -> Batches:
        """One pass over ``data`` (an ImageSet by default), shuffled with ``generator`` when training."""
        tensors = {"images": data.images, **{f"label_{k}": v for k, v in data.labels.items()}}
        count = len(data.images)
        order = torch.randperm(count, generator=generator) if train else torch.arange(count)
        return Batches(tensors, batch_size, order)

    def prepare_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        """Move a batch to the device and convert it for the networks (uint8 → float in range)."""
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    # -- training (required for `zoo train`) ---------------------------------------
    def build_optimizers(self, networks: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def build_schedulers(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> list[Any]:
        """LR schedulers stepped once per epoch end (none by default)."""
        return []

    def training_step(self, batch: dict[str, torch.Tensor], networks: Mapping[str, nn.Module],
                      step: StepContext) -> dict[str, torch.Tensor]:
        """One optimisation step; return detached 0-d tensors of named metrics (``loss`` first)."""
        raise NotImplementedError

    def validation_metrics(self, batch: dict[str, torch.Tensor], networks: Mapping[str, nn.Module],
                           generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Metrics on a held-out batch, summed over its items (the engine divides by the count).

        :attr:`best_checkpoint` names the one that selects the ``best`` checkpoint, if any.
        """
        raise NotImplementedError

    def sample_grid(self, networks: Mapping[str, nn.Module], data: Any, device: torch.device) -> torch.Tensor | None:
        """A picture of progress (float [N,C,H,W] in [0,1] rows of ``grid_columns``), or None."""
        return None

    grid_columns: int = 8

    def items_in(self, batch: dict[str, torch.Tensor]) -> int:
        """How many items a batch holds, for the throughput shown in progress."""
        return len(next(iter(batch.values())))

    # -- inference and export ------------------------------------------------------
    def graph_spec(self, graph: str) -> GraphSpec:
        return self.spec.graph(graph)

    def example_inputs(self, graph: str, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Random inputs at this config's shapes: standard normal for NC/latent inputs without a value range,
        uniform in the declared range (or in [-1, 1] when there is none) for every other input."""
        inputs = []
        for tensor in self.graph_spec(graph).inputs:
            shape = tensor.resolve(self.config, batch)
            low, high = tensor.value_range if tensor.value_range is not None else (-1.0, 1.0)
            if tensor.value_range is None and tensor.layout in ("NC", "latent"):
                inputs.append(torch.randn(*shape, generator=generator))  # latents are unbounded normals
            else:
                inputs.append(torch.rand(*shape, generator=generator) * (high - low) + low)
        return tuple(inputs)

    def data_inputs(self, graph: str, data: TrainingData, batch: int,
                    networks: Mapping[str, nn.Module]) -> tuple[torch.Tensor, ...] | None:
        """Real inputs for ``graph`` from the model's data (a decoder may encode real images
        with ``networks`` to get them), or None when the graph has no such inputs."""
        return None
