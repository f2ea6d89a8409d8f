"""Model loading: spec → recipe → networks on a device, from a run directory, a checkpoint or random weights.

Training, the runtimes, export, bench and serve all load models through this module; none of them
needs the training engine. Typical use::

    from zoo_core.models import load_model
    from zoo_core.registry import registered_model

    loaded = load_model(registered_model("vae_faces"), run=Path("runs/vae_faces/20260101-quick"), device="auto")
    # stderr: zoo: loaded runs/vae_faces/20260101-quick/checkpoints/best.safetensors (best by loss, min)
    loaded.recipe, loaded.networks["decoder"], loaded.config["z_dim"], loaded.checkpoint, loaded.device

    load_model(model)                              # the newest run under runs/MODEL
    load_model(model, checkpoint=Path("x.safetensors"), device="cpu", log=None)   # this file, quietly
    load_model(model, run=run, which="last")       # the run's last checkpoint even where a best exists
    build_model(model, config, device="cpu")       # random weights at a resolved config (benchmarks)

Which file a run directory loads: the recipe's declared selection metric
(:attr:`zoo_core.recipe.Recipe.best_checkpoint`) makes ``best.safetensors`` the default; a recipe
that declares none (a GAN) writes and loads ``last.safetensors`` only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from zoo_core.checkpoint import (
    BEST_CHECKPOINT,
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
    Checkpoint,
    load_checkpoint,
    restore_networks,
)
from zoo_core.errors import UsageError, ZooError
from zoo_core.plugins import RegisteredModel
from zoo_core.recipe import Recipe
from zoo_core.spec import load_object
from zoo_core.validate import check_checkpoint_meta

DEVICES = ("cpu", "cuda", "mps")

Which = Literal["best", "last"]


def log_to_stderr(line: str) -> None:
    """The default ``log`` of the loaders: one line on stderr."""
    print(line, file=sys.stderr, flush=True)


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def select_device(name: str = "auto", *, choices: tuple[str, ...] = DEVICES, must_exist: bool = True) -> torch.device:
    """The device for ``--device NAME``: ``auto`` picks CUDA, then MPS, then CPU among ``choices``.

    Asking for an absent device is a UsageError, unless ``must_exist`` is False (a benchmark that
    reports each of its cells as skipped instead).
    """
    if name == "auto":
        if "cuda" in choices and torch.cuda.is_available():
            return torch.device("cuda")
        if "mps" in choices and _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in choices:
        raise UsageError(f"--device must be auto, {', '.join(choices)}, got {name!r}")
    if must_exist and name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if must_exist and name == "mps" and not _mps_available():
        raise UsageError("--device mps: MPS is not available here; use --device cpu or auto")
    return torch.device(name)


def recipe_class(model: RegisteredModel) -> type[Recipe]:
    """The plugin's Recipe subclass (imported on first use)."""
    return load_object(model.spec.recipe)


def build_recipe(model: RegisteredModel, config: Mapping[str, Any]) -> Recipe:
    """The model's recipe at a resolved config."""
    return recipe_class(model)(model.spec, config)


def build_networks(recipe: Recipe, seed: int, device: torch.device) -> dict[str, torch.nn.Module]:
    """Every network the spec declares, initialised from ``seed`` alone, on ``device``."""
    torch.manual_seed(seed)  # initial weights depend on the seed alone
    networks = recipe.build_networks()
    expected = {n.name for n in recipe.spec.networks}
    if set(networks) != expected:
        raise ZooError(f"recipe of {recipe.spec.name} built networks {sorted(networks)}, "
                       f"its spec declares {sorted(expected)}")
    return {name: net.to(device) for name, net in networks.items()}


def checkpoint_file(run: Path, which: Which) -> Path:
    """Where a run directory keeps its ``last`` or ``best`` checkpoint."""
    return Path(run) / CHECKPOINT_DIR / (BEST_CHECKPOINT if which == "best" else LAST_CHECKPOINT)


def find_latest_run(model: str, root: Path = Path("runs")) -> Path | None:
    """The newest run directory of ``model`` under ``root`` that holds a last checkpoint."""
    folder = root / model
    if not folder.is_dir():
        return None
    runs = [p for p in folder.iterdir() if checkpoint_file(p, "last").exists()]
    return max(runs, key=lambda p: checkpoint_file(p, "last").stat().st_mtime, default=None)


@dataclass(frozen=True)
class CheckpointChoice:
    """A checkpoint file and, in words, why it was picked (printed when it loads)."""

    path: Path
    reason: str


def choose_checkpoint(model: RegisteredModel, run: Path | None = None, checkpoint: Path | None = None,
                      which: Which | None = None) -> CheckpointChoice:
    """``checkpoint``, else ``run``'s (or the newest run's) best or last checkpoint.

    ``which=None`` loads ``best`` when the recipe declares a selection metric and the run has one,
    else ``last``; asking for ``best`` where there is none is an error, not a silent fallback.
    """
    if checkpoint is not None:
        if run is not None:
            raise UsageError("pass either --run or --checkpoint, not both")
        return CheckpointChoice(Path(checkpoint), "--checkpoint")
    newest = ""
    if run is None:
        run = find_latest_run(model.name)
        if run is None:
            raise ZooError(f"no trained {model.name} found under runs/{model.name}: pass --run RUN_DIR or "
                           f"--checkpoint FILE, or train one with `zoo train {model.name}`")
        newest = "the newest run; "
    metric = recipe_class(model).best_checkpoint
    best, last = checkpoint_file(run, "best"), checkpoint_file(run, "last")
    if which == "best" or (which is None and metric is not None and best.exists()):
        if not best.exists():
            declared = f"the recipe selects by {metric.describe()}" if metric else "the recipe declares no best metric"
            raise ZooError(f"{run} has no {BEST_CHECKPOINT} ({declared}); load its last checkpoint instead")
        reason = f"best by {metric.describe()}" if metric else "best"
        return CheckpointChoice(best, newest + reason)
    if not last.exists():
        raise ZooError(f"{run} holds no checkpoint (looked for {CHECKPOINT_DIR}/{LAST_CHECKPOINT}); "
                       "is it a zoo run directory?")
    if which == "last" or metric is None:
        reason = "last" if which == "last" else "last; the recipe declares no best metric"
    else:
        reason = f"last; no {BEST_CHECKPOINT} yet"
    return CheckpointChoice(last, newest + reason)


@dataclass
class LoadedModel:
    """A model ready to run: its recipe and networks (eval mode) on ``device``, and where the weights came from.

    ``checkpoint`` is None for random weights; ``meta`` is the checkpoint's JSON metadata (empty then).
    """

    model: RegisteredModel
    recipe: Recipe
    networks: dict[str, torch.nn.Module]
    config: dict[str, Any]
    device: torch.device
    checkpoint: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def graph_module(self, graph: str) -> torch.nn.Module:
        """The module of ``graph`` in eval mode; an unknown graph name is one clear line."""
        spec = self.model.spec
        if graph not in {g.name for g in spec.graphs}:
            raise ZooError(f"{spec.name} has no graph {graph!r}; graphs: {', '.join(g.name for g in spec.graphs)}")
        return self.recipe.graph_module(graph, self.networks).eval()


def read_checkpoint(model: RegisteredModel, path: Path) -> Checkpoint:
    """A checkpoint file of ``model``; one of another model is refused."""
    ckpt = load_checkpoint(path)
    if ckpt.meta.get("model") != model.name:
        raise ZooError(f"{path} is a checkpoint of {ckpt.meta.get('model')!r}, not {model.name!r}")
    check_checkpoint_meta(model.spec, ckpt.meta, Path(path))  # before its config sizes any network
    return ckpt


def load_model(model: RegisteredModel, run: Path | None = None, checkpoint: Path | None = None,
               device: str | torch.device = "auto", which: Which | None = None,
               log: Callable[[str], None] | None = log_to_stderr, origin: str | None = None) -> LoadedModel:
    """Build ``model`` at its checkpoint's config and load the weights (see :func:`choose_checkpoint`).

    ``log`` gets one line naming the file loaded and why (default: stderr; None: quiet); ``origin`` is the why
    when the caller knows better than "--checkpoint" (``--weights mnist``).
    """
    target = device if isinstance(device, torch.device) else select_device(device)
    choice = choose_checkpoint(model, run, checkpoint, which)
    ckpt = read_checkpoint(model, choice.path)
    config = dict(ckpt.config)
    recipe = build_recipe(model, config)
    networks = build_networks(recipe, 0, torch.device("cpu"))
    restore_networks(networks, ckpt)
    for net in networks.values():
        net.to(target).eval()
    if log is not None:
        log(f"zoo: loaded {choice.path} ({origin or choice.reason})")
    return LoadedModel(model, recipe, networks, config, target, choice.path, ckpt.meta)


def build_model(model: RegisteredModel, config: Mapping[str, Any], device: str | torch.device = "cpu",
                seed: int = 0) -> LoadedModel:
    """``model`` with random weights from ``seed`` at a resolved ``config`` (timing does not need trained values)."""
    target = device if isinstance(device, torch.device) else select_device(device)
    recipe = build_recipe(model, config)
    networks = build_networks(recipe, seed, torch.device("cpu"))
    for net in networks.values():
        net.to(target).eval()
    return LoadedModel(model, recipe, networks, dict(config), target)
