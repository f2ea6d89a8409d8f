"""Tasks: functions of a loaded model on any runtime that return a :class:`~zoo_core.results.TaskResult`.

:func:`run_task` is the one place a task runs, for `zoo generate`, ``zoo.load(...).TASK(...)`` and the server
alike: it checks the parameters against the task's :class:`~zoo_core.spec.Param` data (:func:`bind_params`), builds
the :class:`TaskContext` the task computes with, and returns what the task returns. Tasks written against API 0.1
(click parameters, PNG files written through ``ctx.output``) run unchanged: their files are written into a private
temporary folder and read back into a result (:func:`zoo_core.results.result_from_files`).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo_core.errors import UsageError, ZooError
from zoo_core.inputs import image_inputs
from zoo_core.plugins import RegisteredModel
from zoo_core.recipe import DataSource, Recipe, TrainingData
from zoo_core.results import TaskResult, result_from_files
from zoo_core.runtime import GraphRunner
from zoo_core.spec import REQUIRED, Param, TaskSpec, load_object

MAX_SEED = 2**32 - 1


_ONCE = threading.RLock()


@dataclass
class TaskContext:
    """What a task computes with: :meth:`run` on named graphs (so the same task runs on every runtime), the
    recipe and its config, the data, and a seeded generator."""

    model: RegisteredModel
    runner: GraphRunner
    recipe: Recipe
    #: API 0.1 tasks only: the folder their files go to (a private temporary folder since API 0.2)
    out: Path | None = None
    seed: int = 0
    source: DataSource = field(default_factory=DataSource)
    #: where the data comes from when a shell shares one decoded copy between calls (the server)
    data_provider: Callable[[Recipe], TrainingData] | None = None
    #: what :meth:`once` computed; a stream shares one dict between the chunks of a model it loaded once
    shared: dict[str, Any] = field(default_factory=dict)
    _data: TrainingData | None = None
    _notes: list[str] = field(default_factory=list)
    _private_out: Path | None = None  # the folder output() made for an API 0.1 task that declares no parameters

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
            provider = self.data_provider or (lambda recipe: recipe.load_data(self.source))
            self._data = provider(self.recipe)
        return self._data

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, called once per loaded model where a stream runs the task chunk after chunk (a fit to
        the data, say); it must not draw from :meth:`generator`, so a chunk's images do not depend on it."""
        with _ONCE:  # a stream's two compute threads would both compute it
            if key not in self.shared:
                self.shared[key] = compute()
            return self.shared[key]

    def generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed + offset)

    # -- API 0.1: tasks that wrote their own files --------------------------------------------------------------
    def output(self, default_name: str) -> Path:
        """API 0.1: where a task writes its picture (inside :attr:`out`)."""
        if self.out is None:  # an API 0.1 task with no parameters looks like a 0.2 one until it asks for a path
            self._private_out = Path(tempfile.mkdtemp(prefix="zoo-task-"))
            self.out = self._private_out
        if self.out.suffix == "" or self.out.is_dir():
            return self.out / default_name
        return self.out

    def done(self, path: Path, what: str) -> None:
        """API 0.1: what a task wrote, which becomes the result's summary."""
        self._notes.append(what)


# -- parameters ---------------------------------------------------------------------------------------------------
def task_params(task: TaskSpec) -> tuple[Param, ...]:
    """The task's parameters as :class:`Param` data (an API 0.1 task's click parameters converted)."""
    if not task.legacy:
        return task.params
    from zoo_core.legacy import param_from_click

    return tuple(param_from_click(p) for p in task.params)


def bind_params(task: TaskSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The task's keyword arguments from ``values``: defaults filled in, every value checked against its Param.

    A wrong name, a missing value, a value of the wrong type or out of range is one :class:`UsageError`.
    """
    params = task_params(task)
    known = {p.name: p for p in params}
    unknown = sorted(set(values) - set(known))
    if unknown:
        takes = ", ".join(sorted(known)) or "no parameters"
        raise UsageError(f"task {task.name} has no parameter {', '.join(unknown)}; it takes {takes} (and seed)")
    bound = {}
    for param in params:
        if param.name in values and values[param.name] is not None:
            bound[param.name] = check_value(param, values[param.name])
        elif param.required:
            raise UsageError(f"task {task.name} needs {param.name}: {param.help or param.kind}")
        else:
            bound[param.name] = param.default
    return bound


def check_value(param: Param, value: Any) -> Any:
    """``value`` as ``param`` takes it, or a UsageError naming the parameter and what it takes."""
    kind = param.kind
    if kind == "images":
        return image_inputs(value, param.name)
    if kind == "image":
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not Path(value).is_file():
            return value  # not an image file: text the task reads (an index), or refuses in its own words
        images = image_inputs(value, param.name)
        if len(images) != 1:
            raise UsageError(f"{param.name}: one image, got {len(images)}")
        return images[0]
    if kind == "file":
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        if isinstance(value, str | Path):
            path = Path(value)
            if not path.is_file():
                raise UsageError(f"{param.name}: no such file {path}")
            return path
        raise UsageError(f"{param.name}: give a file path or its bytes, got {type(value).__name__}")
    if kind == "bool":
        if not isinstance(value, bool):
            raise UsageError(f"{param.name}: true or false, got {value!r}")
        return value
    if kind == "text":
        if not isinstance(value, str):
            raise UsageError(f"{param.name}: text, got {type(value).__name__}")
        return value
    if kind == "choice":
        if value not in param.choices:
            raise UsageError(f"{param.name}: one of {', '.join(param.choices)}, got {value!r}")
        return value
    number = _number(param, value)
    if (param.minimum is not None and number < param.minimum) or (param.maximum is not None and number > param.maximum):
        low = "" if param.minimum is None else f"{param.minimum:g}"
        high = "" if param.maximum is None else f"{param.maximum:g}"
        raise UsageError(f"{param.name}: {number} is outside [{low}, {high}]")
    return number


def _number(param: Param, value: Any) -> int | float:
    if isinstance(value, bool):
        raise UsageError(f"{param.name}: a number, got {value!r}")
    if param.kind == "int":
        if isinstance(value, int) or (hasattr(value, "__index__") and not isinstance(value, float)):
            return int(value)
        raise UsageError(f"{param.name}: a whole number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{param.name}: a number, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise UsageError(f"{param.name}: a finite number, got {value!r}")
    return number


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UsageError(f"seed: a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return seed


# -- running ------------------------------------------------------------------------------------------------------
def run_task(model: RegisteredModel, task_name: str, runner: GraphRunner, params: Mapping[str, Any], *,
             seed: int = 0, source: DataSource | None = None, recipe: Recipe | None = None,
             data_provider: Callable[[Recipe], TrainingData] | None = None) -> TaskResult:
    """Run task ``task_name`` of ``model`` on ``runner`` and return its result; nothing is written.

    ``params`` are checked with :func:`bind_params`; ``recipe`` defaults to one built at the runner's config (tasks
    read data and priors through it); ``data_provider`` lets a shell share decoded data between calls.
    """
    from zoo_core.models import build_recipe

    task = model.spec.task(task_name)
    arguments = bind_params(task, params)
    ctx = TaskContext(model=model, runner=runner, recipe=recipe or build_recipe(model, runner.config),
                      seed=check_seed(seed), source=source or DataSource(), data_provider=data_provider)
    function = load_object(task.function)
    if task.legacy:
        return _run_legacy(ctx, function, arguments, task)
    try:
        result = function(ctx, **arguments)
        if result is None and ctx._private_out is not None:  # an API 0.1 task without parameters wrote files
            return result_from_files(_pngs(ctx._private_out), "; ".join(ctx._notes) or f"{model.name} {task.name}")
    finally:
        if ctx._private_out is not None:
            shutil.rmtree(ctx._private_out, ignore_errors=True)
    if not isinstance(result, TaskResult):
        raise ZooError(f"task {model.name} {task.name} returned {type(result).__name__}, not a TaskResult")
    return result


def _run_legacy(ctx: TaskContext, function: Callable[..., Any], arguments: dict[str, Any],
                task: TaskSpec) -> TaskResult:
    from zoo_core.legacy import click_values

    with tempfile.TemporaryDirectory(prefix="zoo-task-") as folder:
        ctx.out = Path(folder) / "out"
        ctx.out.mkdir()
        function(ctx, **click_values(task, arguments, Path(folder) / "inputs"))
        files = _pngs(ctx.out)
    return result_from_files(files, "; ".join(ctx._notes) or f"{ctx.model.name} {task.name}")


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


__all__ = ["REQUIRED", "TaskContext", "bind_params", "check_value", "run_task", "task_params"]
