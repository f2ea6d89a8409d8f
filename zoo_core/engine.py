"""The shared training engine: one loop for every model plugin.

The engine owns what every recipe would otherwise repeat: device choice, seeding,
shuffling, AMP scaling, progress, metrics, sample grids, atomic checkpoints and exact
resume. The recipe owns the networks, the data and the step.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo_core import __version__
from zoo_core import io as zio
from zoo_core.checkpoint import (
    Checkpoint,
    load_checkpoint,
    remove_stale_temporaries,
    restore_networks,
    restore_training_state,
    save_checkpoint,
)
from zoo_core.config import resolve_config
from zoo_core.distributed import RUN_STAMP_ENV, Group, join_from_env, leave, lost_the_group, wrap_networks
from zoo_core.errors import UsageError, ZooError
from zoo_core.models import BEST_CHECKPOINT as BEST
from zoo_core.models import CHECKPOINT_DIR, build_networks, build_recipe, checkpoint_file, select_device
from zoo_core.models import LAST_CHECKPOINT as LAST
from zoo_core.plugins import RegisteredModel
from zoo_core.recipe import Batches, DataSource, StepContext, TrainingData
from zoo_core.validate import check_checkpoint_meta, read_metrics, read_run_record

RESUMABLE_OVERRIDES = {"epochs"}


class Interrupted(ZooError):
    """Ctrl-C during training: the checkpoint is written, the exit code is the shell's 130."""

    exit_code = 130


def derive_seed(seed: int, *parts: int) -> int:
    """Independent, reproducible seeds for each epoch's shuffle and step noise."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def versions() -> dict[str, str]:
    return {"zoo": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "numpy": np.__version__}


@dataclass
class TrainOptions:
    """Everything `zoo train` was told, already parsed."""

    preset: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    source: DataSource = field(default_factory=DataSource)
    device: str = "auto"
    out: Path | None = None
    resume: Path | None = None
    max_steps: int | None = None
    save_every: int | None = None
    seed: int = 0
    progress: bool = True


@dataclass
class Position:
    """Where a run stands; saved in every checkpoint so resume continues exactly."""

    epoch: int = 0            # epochs completed
    batch: int = 0            # batches completed in the current epoch
    global_step: int = 0
    best_metric: float | None = None  # the best value so far of the recipe's selection metric
    sums: dict[str, float] = field(default_factory=dict)
    items: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "global_step": self.global_step,
                "best_metric": self.best_metric,
                "sums": self.sums, "items": self.items, "seconds": self.seconds}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Position:
        best = value.get("best_metric", value.get("best_loss"))  # best_loss: checkpoints of zoo 0.1
        return cls(epoch=value["epoch"], batch=value["batch"], global_step=value["global_step"],
                   best_metric=best, sums=dict(value.get("sums", {})),
                   items=value.get("items", 0), seconds=value.get("seconds", 0.0))


@dataclass
class TrainingState:
    """What a run trains and carries from one epoch to the next."""

    networks: dict[str, torch.nn.Module]
    data: TrainingData
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: list[Any]
    scalers: dict[str, torch.amp.GradScaler]
    generator: torch.Generator
    position: Position
    step: StepContext
    device_cache: dict[int, torch.Tensor] = field(default_factory=dict)
    trained: dict[str, torch.nn.Module] | None = None  # what training_step gets: DDP replicas under torchrun


@dataclass
class EpochOutcome:
    """How far one pass over an epoch got, and its metric sums."""

    epoch: int
    batches: int
    done: int
    sums: dict[str, torch.Tensor]
    started: float
    stop_reason: str

    @property
    def finished(self) -> bool:
        return self.done >= self.batches


@contextmanager
def deferred_interrupt() -> Iterator[dict[str, bool]]:
    """Turn the first Ctrl-C into a flag checked between steps, so a step is never half-applied.

    A second Ctrl-C interrupts at once.
    """
    flag = {"stop": False}
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        flag["stop"] = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (e.g. inside a test runner thread)
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class Trainer:
    """One training run: fresh or resumed."""

    def __init__(self, model: RegisteredModel, options: TrainOptions, group: Group | None = None) -> None:
        self.model = model
        self.spec = model.spec
        self.options = options
        self.group = group or Group()
        self.device = self.group.device or select_device(options.device)
        self.checkpoint: Checkpoint | None = None
        self.resumed_record: dict[str, Any] | None = None
        if options.resume is not None:
            self._init_resumed(options)
        else:
            self._init_fresh(options)
        self.amp_dtype = _amp_dtype(self.config, self.device, asked="amp" in options.overrides)
        self.recipe = build_recipe(model, self.config)
        self.warned_best = False
        self.ckpt_dir = self.run_dir / CHECKPOINT_DIR
        self.group.check_batch_size(int(self.config["batch_size"]))
        self.group.barrier()  # every rank has checked the run directory before rank 0 writes to it

    # -- set-up ----------------------------------------------------------------------
    def _init_fresh(self, options: TrainOptions) -> None:
        preset = options.preset or (self.spec.gpu_preset if self.device.type == "cuda" else self.spec.default_preset)
        self.config = resolve_config(self.spec, preset, options.overrides)
        self.seed = options.seed
        self.source = options.source
        stamp = self.group.agree(os.environ.get(RUN_STAMP_ENV) or datetime.now().strftime("%Y%m%d-%H%M%S"))
        self.run_dir = Path(options.out) if options.out else Path("runs") / self.spec.name / f"{stamp}-{preset}"
        if self.group.restarts and self._launched_here():  # the elastic agent restarted the group after a failure
            if self.group.is_main:
                print(f"zoo: restart {self.group.restarts} of the processes: continuing {self.run_dir} from its last "
                      "checkpoint", file=sys.stderr, flush=True)
            if checkpoint_file(self.run_dir, "last").exists():
                self._init_resumed(TrainOptions(resume=self.run_dir, source=options.source, device=options.device))
            return
        if checkpoint_file(self.run_dir, "last").exists():
            raise UsageError(f"{self.run_dir} already holds a run; continue it with --resume {self.run_dir} "
                             "or choose another --out")
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise UsageError(f"--out {self.run_dir} is a file, not a directory; choose another --out")
        if self.run_dir.is_dir() and any(self.run_dir.iterdir()):
            # its config.json or metrics.jsonl may be another run's: never overwrite what this run did not write
            raise UsageError(f"--out {self.run_dir} is not empty; choose a new or empty directory")

    def _init_resumed(self, options: TrainOptions) -> None:
        self.run_dir = Path(options.resume)
        record = read_run_record(self.spec, self.run_dir)  # every field checked before it sizes or seeds anything
        remove_stale_temporaries(self.run_dir)  # what saves killed mid-write left behind
        self.config = dict(record["config"])
        _refuse_config_changes(self.spec, self.config, options)
        if "epochs" in options.overrides:
            self.config["epochs"] = resolve_config(self.spec, self.config["preset"],
                                                   {"epochs": options.overrides["epochs"]})["epochs"]
            # config.json follows, so that a later plain --resume keeps the new length
            record["config"]["epochs"] = self.config["epochs"]
            record.setdefault("overrides", {})["epochs"] = self.config["epochs"]
            self.resumed_record = record
        self.seed = record["seed"]
        data = record.get("data", {})
        self.source = DataSource(**{k: (Path(v) if k.startswith("data") and v else v) for k, v in data.items()})
        self.checkpoint = load_checkpoint(checkpoint_file(self.run_dir, "last"))
        check_checkpoint_meta(self.spec, self.checkpoint.meta, checkpoint_file(self.run_dir, "last"), resumable=True)

    def _launched_here(self) -> bool:
        """Whether the run directory's config.json was written by this launch (an earlier attempt of the group)."""
        try:
            record = json.loads((self.run_dir / "config.json").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(record, dict) and record.get("launch") == self.group.launch_id

    def _write_config(self, data_description: str) -> None:
        source = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.source).items()}
        launch = {"launch": self.group.launch_id, "world_size": self.group.world_size} if self.group.active else {}
        zio.write_json(self.run_dir / "config.json", {
            "model": self.spec.name, "plugin": {"distribution": self.model.distribution, "version": self.model.version},
            "preset": self.config["preset"], "config": self.config, "overrides": self.options.overrides,
            "seed": self.seed, "device": str(self.device), "data": source, "data_description": data_description,
            "autocast": str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else None,
            "versions": versions(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"), **launch,
        })

    def _meta(self, position: Position, generator: torch.Generator) -> dict[str, Any]:
        return {"model": self.spec.name, "plugin_version": self.model.version, "zoo_version": __version__,
                "config": self.config, "seed": self.seed, "position": position.as_json()}

    # -- the loop --------------------------------------------------------------------
    def run(self) -> Path:
        from zoo_core.progress import TrainingProgress

        state = self._start_or_resume()
        epochs = int(self.config["epochs"])
        progress = TrainingProgress(self.spec.name, epochs, enabled=self.options.progress and self.group.is_main)
        stop_reason = ""
        with deferred_interrupt() as interrupt, progress:
            while state.position.epoch < epochs and not stop_reason:
                epoch = self._train_epoch(state, progress, interrupt)
                stop_reason = epoch.stop_reason
                if not epoch.finished:
                    break
                self._end_epoch(state, epoch, progress)
                if self.group.anyone(interrupt["stop"]) and not stop_reason:
                    stop_reason = "interrupted"
        if self.group.is_main:
            self._plot_losses()
        self._report_stop(stop_reason, state.position)
        return self.run_dir

    def _start_or_resume(self) -> TrainingState:
        """Build networks, data and optimizers; restore them from the checkpoint or start the run directory."""
        recipe, device = self.recipe, self.device
        networks = build_networks(recipe, self.seed, device)
        data = recipe.load_data(self.source)
        if _length(data.train) == 0:
            raise ZooError("the training data is empty")
        optimizers = recipe.build_optimizers(networks)
        schedulers = recipe.build_schedulers(optimizers)
        amp_dtype = self.amp_dtype
        scalers = {name: torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
                   for name in optimizers}
        generator = torch.Generator()
        position = Position()
        if self.checkpoint is not None:
            restore_networks(networks, self.checkpoint)
            position = Position.from_json(self.checkpoint.meta["position"])
            _fast_forward(schedulers, position.epoch)
            # after the replay, so the saved learning rates win over the ones the replay computed
            restore_training_state(self.checkpoint, optimizers, scalers)
            saved = self.group.rank_state(self.checkpoint.tensors, "generator")
            if saved is not None:
                generator.set_state(saved.to(torch.uint8))
            else:  # a rank the checkpoint's smaller world did not have
                generator.manual_seed(derive_seed(self.seed, position.global_step, 1, *self.group.seed_parts()))
            _restore_global_rng(self.checkpoint, device, self.group)
            if self.group.is_main:
                _truncate_metrics(self.run_dir / "metrics.jsonl", position.epoch)
            if self.resumed_record is not None and self.group.is_main:
                zio.write_json(self.run_dir / "config.json", self.resumed_record)
        elif self.group.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
            self._write_config(data.description)
        epochs = int(self.config["epochs"])
        if position.epoch >= epochs:
            raise UsageError(f"{self.run_dir} has already trained {position.epoch} of {epochs} epochs; "
                             "pass a larger --epochs to continue")
        if self.options.max_steps is not None and position.global_step >= self.options.max_steps:
            raise UsageError(f"--max-steps {self.options.max_steps}: {self.run_dir} is already at step "
                             f"{position.global_step}; --max-steps counts the run's steps, pass a larger one")
        if self.group.is_main and (self.options.progress or self.checkpoint is not None):
            processes = f" x {self.group.world_size} processes" if self.group.active else ""
            what = f"training {self.spec.name}"
            if self.checkpoint is not None:  # the line also says which file a resume loaded
                what = (f"resuming {self.spec.name} at epoch {position.epoch + 1}, step {position.global_step} "
                        f"from {self.checkpoint.path}")
            print(f"zoo: {what} (preset {self.config['preset']}, {device}{processes}) on "
                  f"{data.description or 'its data'}; run directory {self.run_dir}", file=sys.stderr, flush=True)
        return TrainingState(networks=networks, data=data, optimizers=optimizers, schedulers=schedulers,
                             scalers=scalers, generator=generator, position=position,
                             step=StepContext(device, generator, optimizers, scalers, amp_dtype),
                             trained=wrap_networks(networks, device, self.group))

    def _train_epoch(self, state: TrainingState, progress: Any, interrupt: Mapping[str, bool]) -> EpochOutcome:
        """Run the current epoch's remaining steps; stop early at --max-steps or Ctrl-C with a mid-epoch save."""
        recipe, device, position = self.recipe, self.device, state.position
        epoch = position.epoch
        shuffle = torch.Generator().manual_seed(derive_seed(self.seed, epoch, 0))
        batches = recipe.batches(state.data.train, int(self.config["batch_size"]), shuffle, train=True)
        _cache_on_device(batches, device, state.device_cache)
        if position.batch == 0:
            state.generator.manual_seed(derive_seed(self.seed, epoch, 1, *self.group.seed_parts()))
            position.sums, position.items, position.seconds = {}, 0, 0.0
        for net in state.networks.values():
            net.train()
        state.step.epoch = epoch
        progress.start_epoch(epoch, len(batches), position.batch)
        sums = {k: torch.tensor(v, dtype=_sum_dtype(device), device=device) for k, v in position.sums.items()}
        started = time.perf_counter()
        done = position.batch
        stop_reason = ""
        for index in range(position.batch, len(batches)):
            shard, total = self.group.shard(batches.batch(index), recipe.loss_reduction)  # all of it in one process
            batch = recipe.prepare_batch(shard, device)
            state.step.step = position.global_step
            metrics = recipe.training_step(batch, state.trained or state.networks, state.step)
            weight = self.group.weight.metrics  # this process's share of the global batch
            for key, value in metrics.items():  # in place: one small kernel per metric and step
                if key in sums:
                    sums[key].add_(value.detach(), alpha=weight)
                else:
                    sums[key] = value.detach().to(_sum_dtype(device), copy=True).mul_(weight)
            position.items += total if self.group.active else recipe.items_in(batch)
            position.global_step += 1
            done = index + 1
            # under DDP the bar shows rank 0's share scaled up; metrics.jsonl gets the all-reduced sums
            shown = sums if not self.group.active else {k: v * self.group.world_size for k, v in sums.items()}
            progress.advance(done, position.items, shown, done, time.perf_counter() - started + position.seconds)
            if self.options.max_steps is not None and position.global_step >= self.options.max_steps:
                stop_reason = f"reached --max-steps {self.options.max_steps}"
            elif self.group.anyone(interrupt["stop"], position.global_step):
                stop_reason = "interrupted"
            saving = self.options.save_every and position.global_step % self.options.save_every == 0
            if (stop_reason or saving) and done < len(batches):
                self._save_mid_epoch(position, done, sums, started, state.networks, state.optimizers, state.scalers,
                                     state.generator)
            if stop_reason:
                break
        return EpochOutcome(epoch=epoch, batches=len(batches), done=done, sums=sums, started=started,
                            stop_reason=stop_reason)

    def _end_epoch(self, state: TrainingState, outcome: EpochOutcome, progress: Any) -> None:
        """Validate, step the schedulers, log metrics, save sample grid and checkpoints of a finished epoch."""
        position, epoch, optimizers = state.position, outcome.epoch, state.optimizers
        seconds = time.perf_counter() - outcome.started + position.seconds
        train_metrics = {k: float(v) / outcome.batches for k, v in self.group.sum_metrics(outcome.sums).items()}
        val_metrics = self._validate(state.networks, state.data) if self.group.is_main else {}
        for scheduler in state.schedulers:
            scheduler.step()
        position.epoch, position.batch = epoch + 1, 0
        rng = self.group.gather_states(_rng_tensors(state.generator, self.device))
        if not self.group.is_main:  # rank 0 writes every file
            position.sums, position.items, position.seconds = {}, 0, 0.0
            return
        record = {"epoch": epoch + 1, "step": position.global_step, "train": train_metrics, "val": val_metrics,
                  "items_per_s": position.items / seconds if seconds > 0 else None, "seconds": seconds,
                  "lr": {n: o.param_groups[0]["lr"] for n, o in optimizers.items()}}
        zio.append_line(self.run_dir / "metrics.jsonl", json.dumps(record))
        self._save_samples(state.networks, state.data, epoch + 1)
        improved = self._improves_best(position, train_metrics, val_metrics)
        position.sums, position.items, position.seconds = {}, 0, 0.0
        meta = self._meta(position, state.generator)
        save_checkpoint(self.ckpt_dir / LAST, state.networks, meta, optimizers, state.scalers, rng)
        if improved:
            save_checkpoint(self.ckpt_dir / BEST, state.networks, meta)
        progress.end_epoch(epoch, train_metrics, val_metrics, record["items_per_s"])

    def _improves_best(self, position: Position, train_metrics: Mapping[str, float],
                       val_metrics: Mapping[str, float]) -> bool:
        """Whether this epoch's weights become best.safetensors: only where the recipe declares its metric."""
        metric = self.recipe.best_checkpoint
        if metric is None:
            return False
        metrics = val_metrics or train_metrics  # held-out metrics when the run has held-out data
        if metric.name not in metrics:
            if not self.warned_best:
                print(f"zoo: warning: the recipe of {self.spec.name} selects its best checkpoint by {metric.name!r}, "
                      f"which it does not log (it logs {', '.join(sorted(metrics)) or 'nothing'}); "
                      f"no {BEST} is written", file=sys.stderr)
                self.warned_best = True
            return False
        if not metric.improves(metrics[metric.name], position.best_metric):
            return False
        position.best_metric = metrics[metric.name]
        return True

    def _report_stop(self, stop_reason: str, position: Position) -> None:
        if stop_reason == "interrupted":
            raise Interrupted(f"zoo: interrupted at epoch {position.epoch + 1}, step {position.global_step}; "
                              f"checkpoint saved; continue with: zoo train {self.spec.name} --resume {self.run_dir}")
        if stop_reason and self.group.is_main:
            print(f"zoo: {stop_reason} at step {position.global_step}; checkpoint saved in {self.ckpt_dir} "
                  f"(continue with --resume {self.run_dir})", file=sys.stderr)

    def _save_mid_epoch(self, position: Position, done: int, sums: Mapping[str, torch.Tensor], started: float,
                        networks: Mapping[str, torch.nn.Module], optimizers: Any, scalers: Any,
                        generator: torch.Generator) -> None:
        snapshot = Position(epoch=position.epoch, batch=done, global_step=position.global_step,
                            best_metric=position.best_metric,
                            sums={k: float(v) for k, v in self.group.sum_metrics(sums).items()},
                            items=position.items, seconds=time.perf_counter() - started + position.seconds)
        rng = self.group.gather_states(_rng_tensors(generator, self.device))
        if self.group.is_main:
            save_checkpoint(self.ckpt_dir / LAST, dict(networks), self._meta(snapshot, generator), optimizers,
                            scalers, rng)

    def _validate(self, networks: Mapping[str, torch.nn.Module], data: TrainingData) -> dict[str, float]:
        if data.val is None or _length(data.val) == 0:
            return {}
        for net in networks.values():
            net.eval()
        generator = torch.Generator().manual_seed(derive_seed(self.seed, 1 << 20))
        sums: dict[str, torch.Tensor] = {}
        count = 0
        batches = self.recipe.batches(data.val, int(self.config["batch_size"]), generator, train=False)
        with torch.no_grad():
            for raw in batches:
                batch = self.recipe.prepare_batch(raw, self.device)
                for key, value in self.recipe.validation_metrics(batch, networks, generator).items():
                    value = value.to(_sum_dtype(self.device))
                    sums[key] = sums[key] + value if key in sums else value
                count += self.recipe.items_in(batch)
        return {k: float(v) / count for k, v in sums.items()}

    def _save_samples(self, networks: Mapping[str, torch.nn.Module], data: TrainingData, epoch: int) -> None:
        from zoo_core.images import grid_scale, save_grid

        for net in networks.values():
            net.eval()
        with torch.no_grad():
            grid = self.recipe.sample_grid(networks, data, self.device)
        if grid is not None:
            scale = grid_scale(grid.shape[-1])
            save_grid(grid, self.run_dir / "samples" / f"epoch_{epoch:03d}.png", nrow=self.recipe.grid_columns,
                      scale=scale)

    def _plot_losses(self) -> None:
        from zoo_core.plots import plot_metrics

        plot_metrics(self.run_dir / "metrics.jsonl", self.run_dir / "loss.png",
                     title=f"{self.spec.name} ({self.config['preset']})")


def _rng_tensors(generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """The step generator and the global RNGs (dropout and other unseeded draws), for exact resume."""
    states = {"generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda_rng"] = torch.cuda.get_rng_state(device)
    return states


def _restore_global_rng(checkpoint: Checkpoint, device: torch.device, group: Group) -> None:
    torch_rng = group.rank_state(checkpoint.tensors, "torch_rng")
    if torch_rng is not None:
        torch.set_rng_state(torch_rng.to(torch.uint8))
    cuda_rng = group.rank_state(checkpoint.tensors, "cuda_rng")
    if device.type == "cuda" and cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng.to(torch.uint8), device)


def _sum_dtype(device: torch.device) -> torch.dtype:
    """Metric sums in float64, except on MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def _refuse_config_changes(spec: Any, config: Mapping[str, Any], options: TrainOptions) -> None:
    """A resumed run keeps its config: a preset or value equal to the run's own is fine, a real change is refused."""
    changes = []
    if options.preset and options.preset != config.get("preset"):
        changes.append(f"preset {options.preset} (the run's is {config.get('preset')})")
    for key, value in options.overrides.items():
        if key in RESUMABLE_OVERRIDES:
            continue
        wanted = resolve_config(spec, config["preset"], {key: value})[key]  # typed as the preset types it
        if wanted != config.get(key):
            changes.append(f"{key}={json.dumps(wanted)} (the run's is {json.dumps(config.get(key))})")
    if changes:
        raise UsageError(f"a resumed run keeps its config; only --epochs may change (got {', '.join(changes)})")


def _cpu_has_bfloat16() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _amp_dtype(config: dict[str, Any], device: torch.device, asked: bool) -> torch.dtype | None:
    """The autocast dtype ``amp`` gets on ``device``: float16 (or amp_dtype) on CUDA, bfloat16 on a CPU with bfloat16
    arithmetic (measured: CycleGAN quick steps 1.55x faster on the AVX512-BF16 EPYC, the VAE and AE unchanged).

    Where it cannot run, ``amp`` set by the user (``asked``) is refused; set by the preset it is turned off in
    ``config``, so config.json never records an amp that was not used.
    """
    if not config.get("amp", False):
        return None
    if device.type == "cuda":
        return torch.bfloat16 if config.get("amp_dtype") == "bfloat16" else torch.float16
    if device.type == "cpu" and _cpu_has_bfloat16():
        return torch.bfloat16
    why = ("this CPU has no bfloat16 arithmetic (AVX512-BF16 or AMX), where autocast only slows training"
           if device.type == "cpu" else f"mixed precision runs on CUDA or a bfloat16 CPU, not on {device.type}")
    if asked:
        raise UsageError(f"amp=true: {why}; drop --set amp=true")
    print(f"zoo: note: the preset's amp is off here: {why}", file=sys.stderr)
    config["amp"] = False
    return None


def _length(data: Any) -> int:
    if isinstance(data, (tuple, list)):
        return min(len(part) for part in data)
    return len(data)


def _cache_on_device(batches: Batches, device: torch.device, cache: dict[int, torch.Tensor]) -> None:
    """Keep small data sets resident on the accelerator so each batch is an on-device gather."""
    if device.type == "cpu":
        return
    total = sum(t.numel() * t.element_size() for t in batches.tensors.values())
    if total > (1 << 30):
        return
    resident = {}
    for name, tensor in batches.tensors.items():
        key = id(tensor)
        if key not in cache:
            cache[key] = tensor.to(device)
        resident[name] = cache[key]
    batches.tensors = resident
    batches.order = batches.order.to(device)


def _fast_forward(schedulers: list[Any], epochs: int) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()" is intended here
        for scheduler in schedulers:
            for _ in range(epochs):
                scheduler.step()


def _truncate_metrics(path: Path, epochs: int) -> None:
    """Drop metric lines written after the checkpoint a resume starts from."""
    if not path.exists():
        return
    keep = [row for row in read_metrics(path) if row["epoch"] <= epochs]
    zio.write_text(path, "".join(json.dumps(row) + "\n" for row in keep))


def train(model: RegisteredModel, options: TrainOptions) -> Path:
    """Train (or resume) a model; returns the run directory."""
    group = join_from_env(select_device(options.device))  # one process unless torchrun started this one
    try:
        run_dir = Trainer(model, options, group).run()
        group.barrier()  # leave the group together, after rank 0's last write
        return run_dir
    except ZooError as error:
        if group.active:  # the launcher shows one worker's last line: say whose it is
            error.args = (f"rank {group.rank}: {str(error).removeprefix('zoo: ')}",)
        raise
    except RuntimeError as error:
        if not (group.active and lost_the_group(error)):
            raise
        raise ZooError(f"rank {group.rank}: lost contact with the other processes ({lost_the_group(error)})") from None
    finally:
        leave(group)
