"""Runtimes run a model's named graphs; tasks are written against this interface only.

The ``torch`` runtime lives here; ``onnxruntime`` comes from the export distribution.
Every runtime takes and returns CPU float tensors in the graph's declared order, and
checks inputs against the graph spec, so a task runs unchanged on either.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from zoo_core.errors import ZooError
from zoo_core.plugins import RegisteredModel
from zoo_core.spec import BATCH, GraphSpec

RANGE_SLACK = 1e-3


@dataclass(frozen=True)
class RuntimeSource:
    """Where a runtime loads a model from, as the user gave it."""

    run: Path | None = None
    checkpoint: Path | None = None
    export: Path | None = None
    device: str = "auto"


class GraphRunner(Protocol):
    """What a runtime loader returns."""

    runtime: str
    config: Mapping[str, Any]
    description: str

    def run(self, graph: str, *inputs: Any) -> tuple[Any, ...]:
        """Run graph ``graph`` on CPU float tensors; returns CPU float tensors."""
        ...


def check_inputs(graph: GraphSpec, config: Mapping[str, Any], inputs: tuple[Any, ...]) -> None:
    """Refuse inputs of the wrong count, shape, dtype or value range with one clear line."""
    if len(inputs) != len(graph.inputs):
        raise ZooError(f"graph {graph.name} takes {len(graph.inputs)} inputs "
                       f"({', '.join(t.name for t in graph.inputs)}), got {len(inputs)}")
    for tensor, value in zip(graph.inputs, inputs, strict=True):
        expected = tensor.resolve(config)
        shape = tuple(value.shape)
        if len(shape) != len(expected) or any(e != BATCH and e != s for e, s in zip(expected, shape, strict=False)):
            raise ZooError(f"graph {graph.name}: input {tensor.name} must have shape "
                           f"[{','.join(map(str, expected))}], got [{','.join(map(str, shape))}]")
        dtype = str(value.dtype).replace("torch.", "")
        if dtype != tensor.dtype:
            raise ZooError(f"graph {graph.name}: input {tensor.name} must be {tensor.dtype}, got {dtype}")
        size = value.numel() if hasattr(value, "numel") else value.size
        if tensor.value_range is not None and size:
            low, high = tensor.value_range
            vmin, vmax = float(value.min()), float(value.max())
            if vmin < low - RANGE_SLACK or vmax > high + RANGE_SLACK:
                raise ZooError(f"graph {graph.name}: input {tensor.name} must lie in [{low:g},{high:g}], "
                               f"got values in [{vmin:.4g},{vmax:.4g}]")


def find_latest_run(model: str, root: Path = Path("runs")) -> Path | None:
    """The newest run directory of ``model`` that holds a checkpoint."""
    folder = root / model
    if not folder.is_dir():
        return None
    runs = [p for p in folder.iterdir() if (p / "checkpoints" / "last.safetensors").exists()]
    return max(runs, key=lambda p: (p / "checkpoints" / "last.safetensors").stat().st_mtime, default=None)


def checkpoint_path(model: str, source: RuntimeSource) -> Path:
    """``--checkpoint``, else the run's best (or last) checkpoint, else the newest run's."""
    if source.checkpoint is not None:
        return source.checkpoint
    run = source.run
    if run is None:
        run = find_latest_run(model)
        if run is None:
            raise ZooError(f"no trained {model} found: pass --run RUN_DIR or --checkpoint FILE, "
                           f"or train one with `zoo train {model}`")
        print(f"zoo: using the newest run, {run}", file=sys.stderr)
    for name in ("best.safetensors", "last.safetensors"):
        if (run / "checkpoints" / name).exists():
            return run / "checkpoints" / name
    raise ZooError(f"{run} holds no checkpoint (looked for checkpoints/best.safetensors and last.safetensors)")


class TorchRunner:
    """Graphs as eager PyTorch modules on one device, built from a checkpoint."""

    runtime = "torch"

    def __init__(self, model: RegisteredModel, source: RuntimeSource) -> None:
        import torch

        from zoo_core.checkpoint import load_checkpoint, restore_networks
        from zoo_core.engine import build_networks, build_recipe, select_device

        self.model = model
        self.device = select_device(source.device)
        path = checkpoint_path(model.name, source)
        ckpt = load_checkpoint(path)
        if ckpt.meta.get("model") != model.name:
            raise ZooError(f"{path} is a checkpoint of {ckpt.meta.get('model')!r}, not {model.name!r}")
        self.config = ckpt.config
        self.recipe = build_recipe(model, self.config)
        self.networks = build_networks(self.recipe, 0, torch.device("cpu"))
        restore_networks(self.networks, ckpt)
        for net in self.networks.values():
            net.to(self.device).eval()
        self.modules: dict[str, Any] = {}
        self.checkpoint = path
        self.description = f"torch on {self.device}, {path}"

    def module(self, graph: str) -> Any:
        if graph not in self.modules:
            spec = self.model.spec
            if graph not in {g.name for g in spec.graphs}:
                raise ZooError(f"{spec.name} has no graph {graph!r}; graphs: {', '.join(g.name for g in spec.graphs)}")
            self.modules[graph] = self.recipe.graph_module(graph, self.networks).eval()
        return self.modules[graph]

    def run(self, graph: str, *inputs: Any) -> tuple[Any, ...]:
        import torch

        check_inputs(self.model.spec.graph(graph), self.config, inputs)
        module = self.module(graph)
        with torch.inference_mode():
            outputs = module(*(x.to(self.device, non_blocking=True) for x in inputs))
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return tuple(o.float().cpu() for o in outputs)


def load_torch_runner(model: RegisteredModel, source: RuntimeSource) -> TorchRunner:
    return TorchRunner(model, source)
