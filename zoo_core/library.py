"""The user's Python API, re-exported by ``import zoo``: load a model on any runtime and call its tasks.

    import zoo

    m = zoo.load("vae_faces", run="runs/vae_faces/RUN")           # or export=..., weights=..., runtime=...
    faces = m.sample(n=8, seed=0)                                  # every task is a method with its own signature
    faces.save("faces.png"); faces.images[0].shape; faces.to_pil(); faces.grid()
    z = m.graph("encoder")(faces.images)                           # one graph, on the same runtime

The command line (`zoo generate`) and the server are shells over this module: they parse, call
:meth:`Model.run`, and save or encode the :class:`~zoo_core.results.TaskResult`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from zoo_core.cards import model_card
from zoo_core.errors import UsageError
from zoo_core.plugins import RegisteredModel
from zoo_core.registry import get_runtime, registered_model
from zoo_core.registry import list_models as registered_models
from zoo_core.results import TaskResult
from zoo_core.spec import REQUIRED, Param

PathLike = str | os.PathLike[str]

#: What each Param kind is annotated as in a task method's signature.
ANNOTATIONS = {"int": "int", "float": "float", "bool": "bool", "text": "str", "choice": "str",
               "file": "str | os.PathLike | bytes", "image": "path, PIL image, array or index",
               "images": "paths, PIL images or arrays"}


def list_models() -> list[str]:
    """The names of the installed models."""
    return [m.name for m in registered_models()]


def card(name: str) -> dict[str, Any]:
    """A model's card as JSON-ready data: networks, graphs, presets, tasks, data layouts."""
    return model_card(registered_model(name))


def load(name: str, *, run: PathLike | None = None, checkpoint: PathLike | None = None,
         export: PathLike | None = None, weights: str | None = None, runtime: str = "torch",
         device: str = "auto", precision: str | None = None, data: PathLike | None = None,
         data_a: PathLike | None = None, data_b: PathLike | None = None, threads: int | None = None,
         quiet: bool = True) -> Model:
    """Load model ``name`` on ``runtime`` and return it with one method per task.

    Weights come from ``run`` (a run directory; default: the newest under ``runs/NAME``), ``checkpoint`` (a
    ``.safetensors`` file), ``weights`` (a name the card declares, ``URL#sha256=HEX``, a path or
    ``hf://org/repo[@rev]``) or, for an exported runtime (``"onnxruntime"``, ``"aoti"``, ...), ``export`` (an
    export directory; default ``exports/NAME``). ``precision`` picks an export's fp32, fp16 or int8 graphs.
    ``data`` (or ``data_a``/``data_b``) is the data set tasks read (default: the embedded one). ``quiet`` keeps
    the loaders' "loaded ..." lines off stderr. ``name`` may itself be a weights reference (``hf://org/repo``, a
    folder ``zoo card`` wrote, a checkpoint file): the model is the one those weights were trained for.
    """
    from zoo_core.recipe import DataSource
    from zoo_core.runtime import RuntimeSource
    from zoo_core.threads import apply_threads

    apply_threads(threads)
    if weights is None and _is_reference(name):
        from zoo_core.weights import model_of

        name, weights = model_of(name), name
    source = RuntimeSource(run=_path(run), checkpoint=_path(checkpoint), export=_path(export), device=device,
                           precision=precision, weights=weights)
    return open_model(name, runtime, source, DataSource(data=_path(data), data_a=_path(data_a), data_b=_path(data_b)),
                      quiet=quiet)


def open_model(name: str, runtime: str, source: Any, data: Any, quiet: bool = False) -> Model:
    """Model ``name`` on runtime ``runtime`` from a :class:`~zoo_core.runtime.RuntimeSource` (what :func:`load`
    and `zoo generate` share)."""
    from zoo_core.spec import load_object

    registered = registered_model(name)
    loader = load_object(get_runtime(runtime).spec.loader)
    runner = _quietly(loader, registered, source) if quiet else loader(registered, source)
    return Model(registered, runner, data)


def _is_reference(name: str) -> bool:
    """Whether ``name`` names weights rather than an installed model."""
    from zoo_core.plugins import get_host

    return name not in get_host().models and ("://" in name or os.sep in name or name.endswith(".safetensors"))


def _path(value: PathLike | None) -> Path | None:
    return None if value is None else Path(value)


def _quietly(loader: Callable[..., Any], registered: RegisteredModel, source: Any) -> Any:
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()):
        return loader(registered, source)


class Model:
    """A loaded model: call its tasks as methods (``m.sample(n=8)``) or :meth:`run`, and its graphs with
    :meth:`graph`. Every task returns a :class:`~zoo_core.results.TaskResult`."""

    def __init__(self, registered: RegisteredModel, runner: Any, source: Any = None,
                 data_provider: Callable[[Any], Any] | None = None) -> None:
        from zoo_core.models import build_recipe
        from zoo_core.recipe import DataSource

        self.registered = registered
        self.runner = runner
        self.source = source or DataSource()
        self.recipe = build_recipe(registered, runner.config)
        self._data_provider = data_provider
        for task in registered.spec.tasks:
            if not hasattr(Model, task.name):  # a task named like a Model member stays reachable through run()
                setattr(self, task.name, self._task_method(task.name))

    @property
    def name(self) -> str:
        return self.registered.name

    @property
    def runtime(self) -> str:
        return self.runner.runtime

    @property
    def config(self) -> Mapping[str, Any]:
        """The resolved training config the weights were made with."""
        return self.runner.config

    @property
    def tasks(self) -> list[str]:
        return [t.name for t in self.registered.spec.tasks]

    @property
    def graphs(self) -> list[str]:
        return [g.name for g in self.registered.spec.graphs]

    @property
    def card(self) -> dict[str, Any]:
        return model_card(self.registered)

    def __repr__(self) -> str:
        return (f"<zoo.Model {self.name} on {self.runner.description}; tasks: {', '.join(self.tasks)}; "
                f"graphs: {', '.join(self.graphs)}>")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self.tasks})

    def run(self, task: str, seed: int = 0, **params: Any) -> TaskResult:
        """Run task ``task`` with ``params`` (checked against the card) and return its result."""
        from zoo_core.tasks import run_task

        if task not in self.tasks:
            raise UsageError(f"model {self.name} has no task {task!r}; tasks: {', '.join(self.tasks) or 'none'}")
        return run_task(self.registered, task, self.runner, params, seed=seed, source=self.source,
                        recipe=self.recipe, data_provider=self._data_provider)

    def graph(self, name: str) -> GraphCall:
        """Graph ``name`` as a function of arrays or tensors, on this model's runtime."""
        self.registered.spec.graph(name)  # an unknown graph is a KeyError here, not at the first call
        return GraphCall(self, name)

    def _task_method(self, task_name: str) -> Callable[..., TaskResult]:
        from zoo_core.tasks import task_params

        task = self.registered.spec.task(task_name)
        params = task_params(task)

        def method(*args: Any, seed: int = 0, **kwargs: Any) -> TaskResult:
            bound = signature.bind(*args, seed=seed, **kwargs)
            values = dict(bound.arguments)
            return self.run(task_name, seed=values.pop("seed"), **values)

        signature = task_signature(params)
        method.__signature__ = signature  # type: ignore[attr-defined]
        method.__name__ = method.__qualname__ = task_name
        method.__doc__ = task_docstring(task.summary, params)
        return method


def task_signature(params: tuple[Param, ...]) -> inspect.Signature:
    """The Python signature of a task: positional parameters first, then keywords, then ``seed``."""
    parameters = []
    for param in sorted(params, key=lambda p: not p.positional):
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if param.positional else inspect.Parameter.KEYWORD_ONLY
        default = inspect.Parameter.empty if param.default is REQUIRED else param.default
        parameters.append(inspect.Parameter(param.name, kind, default=default, annotation=ANNOTATIONS[param.kind]))
    parameters.append(inspect.Parameter("seed", inspect.Parameter.KEYWORD_ONLY, default=0, annotation="int"))
    return inspect.Signature(parameters, return_annotation="TaskResult")


def task_docstring(summary: str, params: tuple[Param, ...]) -> str:
    lines = [summary[:1].upper() + summary[1:] + ".", "", "Args:"]
    for param in params:
        lines.append(f"    {param.name}: {param.describe() or param.kind}")
    lines.append("    seed: random seed of every draw the task makes.")
    lines += ["", "Returns:", "    TaskResult: the images, their captions and the composed picture."]
    return "\n".join(lines)


class GraphCall:
    """One graph of a loaded model: call it with arrays or tensors; it answers in kind (numpy for numpy)."""

    def __init__(self, model: Model, name: str) -> None:
        self.model, self.name = model, name
        self.spec = model.registered.spec.graph(name)

    def __repr__(self) -> str:
        return f"<zoo graph {self.model.name}.{self.name} on {self.model.runtime}>"

    def __call__(self, *inputs: Any) -> Any:
        import numpy as np
        import torch

        as_numpy = not any(isinstance(x, torch.Tensor) for x in inputs)
        tensors = [torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x) for x in inputs]
        outputs = self.model.runner.run(self.name, *tensors)
        outputs = tuple(o.numpy() if as_numpy else o for o in outputs)
        return outputs[0] if len(outputs) == 1 else outputs
