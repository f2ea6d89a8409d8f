"""What the server serves: each model's runner (any registered runtime) and one batcher per graph.

Models load through the runtime registry, exactly as `zoo generate --runtime R` loads them, so a
runtime another plugin registers serves too. Without names or ``--export`` directories the server
serves every installed model that has an export under ``ROOT/MODEL`` (``--exports-root``; default
``exports/``, or ``demo-output/exports/`` when only `make demo` has exported), or with
``--runtime torch`` a run under ``runs/MODEL``.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo_core.extend import (
    BATCH,
    RANGE_SLACK,
    GraphSpec,
    RegisteredModel,
    RuntimeSource,
    TensorSpec,
    UsageError,
    ZooError,
    check_inputs,
    get_runtime,
    held_graphs,
    list_models,
    load_object,
    platform_of,
    registered_model,
)
from zoo_serve.batching import GraphBatcher
from zoo_serve.errors import BadRequest
from zoo_serve.tensors import v2_datatype

SETTINGS_ENV = "ZOO_SERVE_SETTINGS"
EXPORTS_ROOT = Path("exports")
DEMO_EXPORTS_ROOT = Path("demo-output") / "exports"  # where `make demo` exports


@dataclass(frozen=True)
class ServeSettings:
    """Everything `zoo serve` was told; JSON-able so that worker processes rebuild the same server."""

    models: tuple[str, ...] = ()
    exports: tuple[str, ...] = ()
    exports_root: str | None = None  # where MODEL's export is ROOT/MODEL; None: exports/, else the demo's
    runtime: str = "onnxruntime"
    device: str = "cpu"
    max_batch: int = 8
    max_delay_ms: float = 0.0
    max_request_bytes: int = 16 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    api_key: str | None = None
    task_threads: int = 2
    cors_origins: tuple[str, ...] = ()  # browser origins allowed by CORS; none unless asked
    access_log: bool = False  # one line per request with its request id (`zoo serve` turns it on)
    quiet: bool = False  # worker processes: the parent already said what is served
    weights: str | None = None  # --weights: published weights of the one named model, served on torch

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        values = json.loads(text)
        for name in ("models", "exports", "cors_origins"):
            values[name] = tuple(values.get(name, ()))
        return cls(**values)


@dataclass
class ServedGraph:
    """One v2 model: graph ``graph`` of ``model``, named ``<model>.<graph>``."""

    model: ServedModel
    spec: GraphSpec
    batcher: GraphBatcher

    @property
    def name(self) -> str:
        return f"{self.model.name}.{self.spec.name}"

    def tensor_shape(self, tensor: TensorSpec) -> list[int]:
        """The v2 shape: -1 for the dynamic batch axis."""
        return [-1 if d == BATCH else int(d) for d in tensor.resolve(self.model.config)]

    def metadata(self) -> dict[str, Any]:
        def entry(tensor: TensorSpec) -> dict[str, Any]:
            return {"name": tensor.name, "datatype": v2_datatype(tensor.dtype), "shape": self.tensor_shape(tensor)}

        return {"name": self.name, "versions": ["1"], "platform": self.model.platform,
                "inputs": [entry(t) for t in self.spec.inputs], "outputs": [entry(t) for t in self.spec.outputs]}

    @cached_property
    def expected_inputs(self) -> dict[str, tuple[str, int]]:
        """Each input's v2 datatype and rank (asked on every request, so computed once)."""
        return {t.name: (v2_datatype(t.dtype), len(t.shape)) for t in self.spec.inputs}

    @cached_property
    def output_names(self) -> list[str]:
        return [t.name for t in self.spec.outputs]

    @cached_property
    def input_rules(self) -> list[tuple[tuple[int | str, ...], np.dtype[Any], tuple[float, float] | None]]:
        """Per input: its shape for this config (``N`` for the batch axis), numpy dtype and allowed value range."""
        return [(tensor.resolve(self.model.config), np.dtype(tensor.dtype), tensor.value_range)
                for tensor in self.spec.inputs]

    def plainly_valid(self, inputs: Sequence[np.ndarray]) -> bool:
        """Whether the inputs pass :meth:`check` for certain, in one min/max pass per input.

        A NaN makes min or max NaN and an infinity is the min or max, so finite extremes mean finite values.
        """
        if len(inputs) != len(self.input_rules) or not inputs[0].ndim:
            return False
        batch = inputs[0].shape[0]
        for (shape, dtype, value_range), value in zip(self.input_rules, inputs, strict=True):
            if (value.dtype != dtype or value.ndim != len(shape) or not value.size or value.shape[0] != batch
                    or any(e != BATCH and e != s for e, s in zip(shape, value.shape, strict=True))):
                return False
            if value_range is None and dtype.kind != "f":
                continue
            vmin, vmax = float(value.min()), float(value.max())
            if dtype.kind == "f" and not (math.isfinite(vmin) and math.isfinite(vmax)):
                return False
            if value_range is not None and (vmin < value_range[0] - RANGE_SLACK or vmax > value_range[1] + RANGE_SLACK):
                return False
        return True

    def check(self, inputs: Sequence[np.ndarray]) -> None:
        """Refuse a request before it joins a batch, so one bad request never fails the others."""
        if self.plainly_valid(inputs):  # the common case; anything else gets the full checks and their messages
            return
        try:
            check_inputs(self.spec, self.model.config, tuple(inputs))
        except ZooError as error:
            raise BadRequest(str(error)) from None
        if inputs[0].shape[0] == 0 or any(x.shape[0] != inputs[0].shape[0] for x in inputs):
            raise BadRequest(f"{self.name}: every input needs the same batch size, at least 1")
        for tensor, value in zip(self.spec.inputs, inputs, strict=True):
            if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
                raise BadRequest(f"{self.name}: input {tensor.name} holds NaN or infinity")

    def run_batch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """The graph on one gathered batch (called on the batcher's thread)."""
        outputs = self.model.runner.run(self.spec.name, *(torch.from_numpy(x) for x in inputs))
        return [np.asarray(o.detach().cpu().numpy()) for o in outputs]

    async def infer(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.check(inputs)
        return await self.batcher.submit(inputs)


@dataclass
class ServedModel:
    """A model, the runner its graphs run on, and where it was loaded from."""

    registered: RegisteredModel
    runner: Any
    source: str
    graphs: dict[str, ServedGraph] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.registered.name

    @property
    def config(self) -> Mapping[str, Any]:
        return self.runner.config

    @property
    def platform(self) -> str:
        return platform_of(self.runner)


def _export_model_name(directory: Path) -> str:
    """The model an export directory holds, from its checked manifest."""
    from zoo_export.manifest import load_export

    return load_export(directory, verify=False).model


def exports_root(settings: ServeSettings) -> Path:
    """``--exports-root``, else exports/ when it holds an export, else the one `make demo` writes."""
    if settings.exports_root is not None:
        return Path(settings.exports_root)
    has_exports = EXPORTS_ROOT.is_dir() and any((p / "manifest.json").is_file() for p in EXPORTS_ROOT.iterdir())
    if not has_exports and DEMO_EXPORTS_ROOT.is_dir():
        return DEMO_EXPORTS_ROOT
    return EXPORTS_ROOT


def _say(settings: ServeSettings, line: str) -> None:
    if not settings.quiet:
        print(f"zoo serve: {line}", file=sys.stderr, flush=True)


def resolve_sources(settings: ServeSettings) -> list[tuple[RegisteredModel, RuntimeSource]]:
    """(model, source) pairs to serve: the ``--export`` directories, the named models, or every installed one.

    A model both named and given by ``--export`` (``zoo serve ae_mnist --export DIR``, as `zoo generate` is
    written) is served from its export. Without either, every installed model found under the exports root
    (or ``runs/`` with ``--runtime torch``) is served, and the command says which folder it looked in, which
    models it found and which it skipped and why.
    """
    pairs: list[tuple[RegisteredModel, RuntimeSource]] = []
    for text in settings.exports:
        directory = Path(text)
        source = RuntimeSource(export=directory, device=settings.device)
        pairs.append((registered_model(_export_model_name(directory)), source))
    exported = {model.name for model, _ in pairs}
    on_torch = settings.runtime == "torch"
    root = exports_root(settings) if not on_torch and not settings.exports else EXPORTS_ROOT

    if settings.weights is not None and (not on_torch or len(settings.models) != 1 or settings.exports):
        raise UsageError("--weights serves one named model on --runtime torch: zoo serve MODEL --runtime torch "
                         "--weights REF (for onnxruntime, zoo export MODEL --weights REF, then --export DIR)")

    def source_of(model: str) -> RuntimeSource:
        return RuntimeSource(device=settings.device, export=None if on_torch else root / model,
                             weights=settings.weights if on_torch else None)

    for name in settings.models:
        if name in exported:  # named and exported: the export serves it (checked to be that model above)
            continue
        pairs.append((registered_model(name), source_of(name)))
    notes: list[str] = []  # said only when something is served: nothing to serve is one line
    if not settings.exports and not settings.models:
        folder = Path("runs") if on_torch else root
        how = "--exports-root" if settings.exports_root is not None else (
            "after `make demo`, as exports/ holds none" if root == DEMO_EXPORTS_ROOT else "the default")
        notes.append(f"looking for {'runs' if on_torch else 'exports'} under {folder.absolute()}/ ({how})")
        for model in list_models():
            if on_torch:
                found, why = (Path("runs") / model.name).is_dir(), f"no runs/{model.name}/"
            else:
                manifest = root / model.name / "manifest.json"
                found = manifest.is_file()
                why = f"no {manifest}" if (root / model.name).is_dir() else f"no {root / model.name}/"
            if found:
                pairs.append((model, source_of(model.name)))
            else:
                notes.append(f"skipped {model.name}: {why}")
    names = [model.name for model, _ in pairs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"{', '.join(twice)} named more than once; serve one export per model")
    if not pairs:
        where = "runs/MODEL" if on_torch else f"{root}/MODEL"
        raise UsageError(f"nothing to serve: no installed model has {where} (looked in {root.absolute()}/); "
                         "name models, pass --export DIR, or run `zoo export MODEL` first")
    for note in notes:
        _say(settings, note)
    return pairs


def describe_sources(settings: ServeSettings) -> None:
    """Say what would be served (``--workers N``: the parent says it once, the workers load quietly)."""
    for model, source in resolve_sources(settings):
        _say(settings, f"{model.name}: {source.export if source.export is not None else 'newest run'}")


def load_models(settings: ServeSettings) -> dict[str, ServedModel]:
    """Load every model to serve (one line on stderr each); a bad export is one clear ZooError."""
    runtime = get_runtime(settings.runtime)
    loader = load_object(runtime.spec.loader)
    served: dict[str, ServedModel] = {}
    for model, source in resolve_sources(settings):
        runner = loader(model, source)
        entry = ServedModel(model, runner, getattr(runner, "description", settings.runtime))
        for name in held_graphs(runner, model.spec):
            spec = model.spec.graph(name)
            graph = ServedGraph(entry, spec, None)  # type: ignore[arg-type]
            graph.batcher = GraphBatcher(graph.name, graph.run_batch, settings.max_batch,
                                         settings.max_delay_ms / 1000)
            entry.graphs[name] = graph
        served[model.name] = entry
        _say(settings, f"{model.name}: graphs {', '.join(entry.graphs)} ({entry.source})")
    return served


class BatchedRunner:
    """A GraphRunner for tasks, run on a worker thread, whose graph calls go through the batchers."""

    def __init__(self, model: ServedModel, loop: asyncio.AbstractEventLoop) -> None:
        self.model = model
        self.loop = loop
        self.runtime = model.runner.runtime
        self.config = model.config
        self.description = f"zoo serve, {model.source}"

    def run(self, graph: str, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if graph not in self.model.graphs:
            raise ZooError(f"{self.model.name}: graph {graph!r} is not served (the export lacks it)")
        served = self.model.graphs[graph]
        arrays = [x.detach().cpu().contiguous().numpy() for x in inputs]
        check_inputs(served.spec, self.config, tuple(arrays))
        future = asyncio.run_coroutine_threadsafe(served.batcher.submit(arrays), self.loop)
        return tuple(torch.from_numpy(o) for o in future.result())


def element_limit(settings: ServeSettings) -> int:
    """The most values one request may carry: what its byte limit holds as float32."""
    return max(1, math.floor(settings.max_request_bytes / 4))
