"""Runtimes run a model's named graphs; tasks are written against this interface only.

The ``torch`` runtime lives here; ``onnxruntime`` comes from the export distribution.
Every runtime takes and returns CPU float tensors in the graph's declared order, and
checks inputs against the graph spec, so a task runs unchanged on either.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from zoo_core.errors import UsageError, ZooError
from zoo_core.plugins import RegisteredModel
from zoo_core.spec import BATCH, GraphSpec, ModelSpec

if TYPE_CHECKING:
    from zoo_core.models import LoadedModel

RANGE_SLACK = 1e-3


@dataclass(frozen=True)
class RuntimeSource:
    """Where a runtime loads a model from, as the user gave it."""

    run: Path | None = None
    checkpoint: Path | None = None
    export: Path | None = None
    device: str = "auto"
    #: ``--precision``: which of an export's graph files to run (fp32, fp16, int8); None is the runtime's default
    precision: str | None = None
    #: ``--weights``: a name the card declares, ``URL#sha256=HEX``, a path or ``hf://org/repo[@rev]``
    weights: str | None = None


class GraphRunner(Protocol):
    """What a runtime loader returns.

    A runner declares what it holds, so that no caller reads a runtime's files: ``graph_names`` (the graphs it
    can run; an export made with ``--graphs`` holds fewer than the spec) and ``platform`` (the Open Inference
    Protocol's platform name, e.g. ``onnxruntime_onnx``). Both are optional for runners written before they
    existed: see :func:`held_graphs` and :func:`platform_of`.
    """

    runtime: str
    config: Mapping[str, Any]
    description: str
    graph_names: tuple[str, ...]
    platform: str

    def run(self, graph: str, *inputs: Any) -> tuple[Any, ...]:
        """Run graph ``graph`` on CPU float tensors; returns CPU float tensors."""
        ...


#: The spatial axes of an NCHW image tensor: dynamic in graphs that fully convolutional tasks run.
SPATIAL_AXES = (2, 3)


def dynamic_axes(spec: ModelSpec, graph: str) -> tuple[int, ...]:
    """The axes besides the batch that ``graph``'s image inputs may take at any size: the spatial axes when a task
    declared ``stream="map-any-size"`` runs it (its graphs are fully convolutional), else none."""
    if any(task.stream == "map-any-size" and graph in task.graphs for task in spec.tasks):
        return SPATIAL_AXES
    return ()


def held_graphs(runner: Any, spec: Any) -> list[str]:
    """The names of ``spec``'s graphs that ``runner`` holds, in the spec's order."""
    held = getattr(runner, "graph_names", None)
    return [g.name for g in spec.graphs if held is None or g.name in held]


def platform_of(runner: Any) -> str:
    """The runner's declared platform, else ``zoo_<runtime>``."""
    return getattr(runner, "platform", None) or f"zoo_{runner.runtime}"


def check_inputs(graph: GraphSpec, config: Mapping[str, Any], inputs: tuple[Any, ...],
                 dynamic: Collection[int] = ()) -> None:
    """Refuse inputs of the wrong count, shape, dtype or value range with one clear line.

    ``dynamic`` names axes of 4-D (NCHW) inputs that may take any size of at least 1 (the graph's declared dynamic
    spatial axes: :func:`dynamic_axes`, or an export manifest's ``dynamic_axes``)."""
    if len(inputs) != len(graph.inputs):
        raise ZooError(f"graph {graph.name} takes {len(graph.inputs)} inputs "
                       f"({', '.join(t.name for t in graph.inputs)}), got {len(inputs)}")
    for tensor, value in zip(graph.inputs, inputs, strict=True):
        expected = tensor.resolve(config)
        shape = tuple(value.shape)
        free = set(dynamic) if len(expected) == 4 else set()
        if len(shape) != len(expected) or any(e != BATCH and e != s and not (axis in free and s >= 1)
                                              for axis, (e, s) in enumerate(zip(expected, shape, strict=False))):
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


class TorchRunner:
    """Graphs as eager PyTorch modules on one device, from a checkpoint loaded by :mod:`zoo_core.models`."""

    runtime = "torch"
    platform = "zoo_torch"

    def __init__(self, model: RegisteredModel, source: RuntimeSource, log: Callable[[str], None] | None = None,
                 quiet: bool = False) -> None:
        from zoo_core.models import load_model, log_to_stderr

        log = None if quiet else (log or log_to_stderr)
        checkpoint = source.checkpoint
        if source.weights is not None:
            from zoo_core.weights import resolve_weights

            if source.run is not None or source.checkpoint is not None:
                raise UsageError("--weights names the weights already; drop --run and --checkpoint")
            checkpoint = resolve_weights(model, source.weights, log=log)
        origin = f"--weights {source.weights}" if source.weights is not None else None
        self._attach(load_model(model, run=source.run, checkpoint=checkpoint, device=source.device, log=log,
                                origin=origin))

    @classmethod
    def from_loaded(cls, loaded: LoadedModel) -> TorchRunner:
        """A runner over a model already loaded by :func:`zoo_core.models.load_model` (or built by build_model)."""
        runner = cls.__new__(cls)
        runner._attach(loaded)
        return runner

    def _attach(self, loaded: LoadedModel) -> None:
        self.model = loaded.model
        self.loaded = loaded
        self.device = self.loaded.device
        self.config = self.loaded.config
        self.recipe = self.loaded.recipe
        self.networks = self.loaded.networks
        self.checkpoint = self.loaded.checkpoint
        self.modules: dict[str, Any] = {}
        self.graph_names = tuple(g.name for g in self.model.spec.graphs)
        self.description = f"torch on {self.device}, {self.checkpoint}"

    def module(self, graph: str) -> Any:
        if graph not in self.modules:
            self.modules[graph] = self.loaded.graph_module(graph)
        return self.modules[graph]

    def dynamic_axes(self, graph: str) -> tuple[int, ...]:
        """The axes besides the batch that ``graph`` takes at any size (eager modules run any declared one)."""
        return dynamic_axes(self.model.spec, graph)

    def run(self, graph: str, *inputs: Any) -> tuple[Any, ...]:
        import torch

        check_inputs(self.model.spec.graph(graph), self.config, inputs, self.dynamic_axes(graph))
        module = self.module(graph)
        with torch.inference_mode():
            outputs = module(*(x.to(self.device, non_blocking=True) for x in inputs))
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return tuple(o.float().cpu() for o in outputs)


def refuse_precision(runtime: str, precision: str | None, supported: tuple[str, ...] = ("fp32",)) -> None:
    """One line when ``--precision`` asks a runtime for graphs it does not run."""
    if precision is not None and precision not in supported:
        raise UsageError(f"--runtime {runtime} runs {' or '.join(supported)} only, not --precision {precision}; "
                         "fp16 and int8 graphs run with --runtime onnxruntime on an export made with --fp16 or --int8")


def export_to_run(runtime: str, model: RegisteredModel, source: RuntimeSource, precisions: tuple[str, ...],
                  what: str, made_by: str, device_note: str = "") -> tuple[Path, str]:
    """The export directory and precision a CPU runtime of exported files (ExecuTorch, OpenVINO) loads ``model``
    from, after the refusals every such runtime shares: ``--weights`` (checkpoints: export them first), a
    precision it does not run, a device other than the CPU, a run or checkpoint instead of an export."""
    if source.weights is not None:
        raise ZooError(f"--runtime {runtime} runs an export, not --weights: export them first "
                       f"(zoo export {model.name} --weights {source.weights}) and pass --export DIR")
    precision = source.precision or "fp32"
    if precision not in precisions:
        raise UsageError(f"--runtime {runtime} runs {' or '.join(precisions)} {what}, not --precision {precision}")
    if source.device not in ("auto", "cpu"):
        raise UsageError(f"--runtime {runtime} runs on the CPU{device_note}, not --device {source.device}")
    if source.export is None and (source.run is not None or source.checkpoint is not None):
        raise ZooError(f"--runtime {runtime} runs an export, not a run or checkpoint: pass --export DIR "
                       f"(made by `{made_by}`)")
    return Path(source.export or Path("exports") / model.name), precision


def load_torch_runner(model: RegisteredModel, source: RuntimeSource) -> TorchRunner:
    refuse_precision("torch", source.precision)
    return TorchRunner(model, source)
