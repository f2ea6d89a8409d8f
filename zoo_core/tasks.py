"""What a `zoo generate` task receives: the runner for named graphs, the recipe and the output."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo_core.plugins import RegisteredModel
from zoo_core.recipe import DataSource, Recipe, TrainingData
from zoo_core.runtime import GraphRunner


@dataclass
class TaskContext:
    """Tasks call :meth:`run` on named graphs, so the same task runs on every runtime."""

    model: RegisteredModel
    runner: GraphRunner
    recipe: Recipe
    out: Path
    seed: int = 0
    source: DataSource = field(default_factory=DataSource)
    _data: TrainingData | None = None

    @property
    def config(self) -> dict[str, Any]:
        return self.recipe.config

    def run(self, graph: str, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.runner.run(graph, *inputs)

    def run_batched(self, graph: str, *inputs: torch.Tensor, batch_size: int = 64) -> tuple[torch.Tensor, ...]:
        """Run a graph over many items in chunks, concatenating the outputs."""
        chunks = [self.run(graph, *(x[i:i + batch_size] for x in inputs)) for i in range(0, len(inputs[0]), batch_size)]
        return tuple(torch.cat(parts) for parts in zip(*chunks, strict=True))

    def data(self) -> TrainingData:
        """The model's data (``--data`` or the embedded default), decoded once per task."""
        if self._data is None:
            self._data = self.recipe.load_data(self.source)
        return self._data

    def generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed + offset)

    def output(self, default_name: str) -> Path:
        """``--out`` as given, or ``default_name`` inside it when it names a folder. Only the path: nothing is
        created here; save_png/save_grid create missing folders when they write."""
        if self.out.suffix == "" or self.out.is_dir():
            return self.out / default_name
        return self.out

    def done(self, path: Path, what: str) -> None:
        """Report on stderr ``zoo: wrote WHAT to PATH (RUNNER)``; it names the runtime itself, so ``what`` says
        only what was written."""
        print(f"zoo: wrote {what} to {path} ({self.runner.description})", file=sys.stderr)
