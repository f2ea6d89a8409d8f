"""The model spec: what a plugin declares about a model, as plain data.

Everything here is importable without torch, so `zoo list` and `zoo info` can show a
model's card without building it. The heavy parts (networks, training step, tasks) live
behind import strings (``"package.module:Name"``) that the core imports on demand.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo_core.weights import Weights

Dim = int | str
BATCH = "N"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a graph.

    ``shape`` uses ``"N"`` for the dynamic batch axis; any other string names a key of the
    resolved training config (e.g. ``"image_size"``), so one spec serves every preset.
    """

    name: str
    shape: tuple[Dim, ...]
    dtype: str = "float32"
    value_range: tuple[float, float] | None = None
    layout: str = ""

    def resolve(self, config: Mapping[str, Any], batch: int | None = None) -> tuple[Dim, ...]:
        """Concrete shape for a config; the batch axis stays ``"N"`` unless ``batch`` is given."""
        dims: list[Dim] = []
        for dim in self.shape:
            if dim == BATCH:
                dims.append(batch if batch is not None else BATCH)
            elif isinstance(dim, str):
                if dim not in config:
                    raise KeyError(f"tensor {self.name!r}: shape names {dim!r}, which the config lacks")
                dims.append(int(config[dim]))
            else:
                dims.append(dim)
        return tuple(dims)

    def as_json(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The tensor as JSON data at ``config``: what `zoo info --json` shows and an export manifest records."""
        return {"name": self.name, "shape": list(self.resolve(config)), "declared_shape": list(self.shape),
                "dtype": self.dtype, "value_range": list(self.value_range) if self.value_range else None,
                "layout": self.layout}

    def describe(self, config: Mapping[str, Any]) -> str:
        dims = ",".join(str(d) for d in self.resolve(config))
        text = f"{self.name}[{dims}] {self.dtype}"
        if self.value_range is not None:
            low, high = self.value_range
            text += f" in [{low:g},{high:g}]"
        return text


QUALITY_RULES = ("at_least", "relative_rise", "drop")


@dataclass(frozen=True)
class QualityBar:
    """A task-quality bar an int8 export of a graph must meet on held-out inputs, or it is not written.

    ``metric`` is ``"psnr"`` (built in: dB of the graph's int8 outputs against its fp32 outputs, peak = the
    output's value range, else the fp32 output's spread) or a task metric computed by ``function``
    (``"module:function"``, called as ``function(graph, run, data, recipe) -> float`` where ``run(name, *inputs)``
    runs graphs: the one under test in int8, the others in fp32; ``data`` is the recipe's held-out TrainingData).
    ``rule``: ``at_least`` (metric >= limit), ``relative_rise`` (lower is better: int8 <= fp32 * (1 + limit)),
    ``drop`` (higher is better: int8 >= fp32 - limit).
    """

    metric: str
    rule: str
    limit: float
    function: str = ""

    def __post_init__(self) -> None:
        if self.rule not in QUALITY_RULES:
            raise ValueError(f"QualityBar rule must be one of {', '.join(QUALITY_RULES)}, got {self.rule!r}")
        if self.metric != "psnr" and not self.function:
            raise ValueError(f"QualityBar {self.metric!r}: a task metric needs function='module:function'")

    def describe(self) -> str:
        if self.rule == "at_least":
            return f"{self.metric} >= {self.limit:g}"
        if self.rule == "relative_rise":
            return f"{self.metric} within {self.limit:.0%} above fp32"
        return f"{self.metric} at most {self.limit:g} below fp32"


#: What an int8 graph must meet when its GraphSpec declares no quality bars.
DEFAULT_QUALITY = (QualityBar("psnr", "at_least", 30.0),)


@dataclass(frozen=True)
class GraphSpec:
    """A named computation that can be exported and run by any runtime.

    ``gflops_per_item`` is declared at the card preset (2 FLOPs per multiply-add) and
    recomputed by the test suite; ``tolerance`` overrides the relative-L2 thresholds of
    export validation per precision (``{"fp32": 1e-4, "fp16": 1e-2}`` by default);
    ``quality`` is what an int8 export must keep (:class:`QualityBar`; :data:`DEFAULT_QUALITY` when empty).
    """

    name: str
    summary: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    gflops_per_item: float
    tolerance: Mapping[str, float] = field(default_factory=dict)
    quality: tuple[QualityBar, ...] = ()

    @property
    def quality_bars(self) -> tuple[QualityBar, ...]:
        """The declared quality bars, or the default ones."""
        return self.quality or DEFAULT_QUALITY

    def input(self, name: str) -> TensorSpec:
        for tensor in self.inputs:
            if tensor.name == name:
                return tensor
        raise KeyError(name)


@dataclass(frozen=True)
class NetworkSpec:
    """A trained ``nn.Module``; ``params`` is declared at the card preset and tested."""

    name: str
    summary: str
    params: int


@dataclass(frozen=True)
class Preset:
    """A named set of hyper-parameters; every value can be overridden from the CLI."""

    name: str
    summary: str
    values: Mapping[str, Any]


class _Required:
    """The default of a parameter that has none (``Param.default``); its repr reads well in signatures."""

    def __repr__(self) -> str:
        return "REQUIRED"

    def __bool__(self) -> bool:
        return False


REQUIRED: Any = _Required()

#: What a task parameter holds. ``images``: image files or folders on the command line, uploads over HTTP,
#: paths, PIL images or arrays from Python; ``image``: one such image, or a text the task reads otherwise (a
#: data-set index); ``file``: one data file (a path, or its bytes over HTTP).
PARAM_KINDS = ("int", "float", "bool", "text", "choice", "file", "image", "images")


@dataclass(frozen=True)
class Param:
    """One task parameter as plain typed data.

    The command line's options, the server's form fields and OpenAPI schema, and the Python method's
    signature and docstring are all derived from it. ``minimum``/``maximum`` bound numbers (inclusive);
    ``positional`` makes it a command-line argument (``zoo generate vae_faces arithmetic "EXPR"``) rather
    than an option; ``flag`` spells the option when it is not ``--name`` with dashes (``--z`` for ``z_file``).
    """

    name: str
    kind: str
    default: Any = REQUIRED
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    positional: bool = False
    flag: str = ""

    def __post_init__(self) -> None:
        if not re.match(r"^[a-z][a-z0-9_]{0,63}$", self.name) or self.name in RESERVED_PARAMS:
            raise ValueError(f"task parameter name {self.name!r} must be a lower-case identifier other than "
                             f"{', '.join(RESERVED_PARAMS)}")
        if self.kind not in PARAM_KINDS:
            raise ValueError(f"parameter {self.name}: kind must be one of {', '.join(PARAM_KINDS)}, got {self.kind!r}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"parameter {self.name}: a choice needs choices")
        if self.kind == "images" and not self.positional:
            raise ValueError(f"parameter {self.name}: images are given positionally")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def option(self) -> str:
        """The command-line spelling of an option."""
        return self.flag or "--" + self.name.replace("_", "-")

    def describe(self) -> str:
        """The parameter's help with its range and default, as a docstring line shows it."""
        text = self.help
        if self.choices:
            text += f" One of {', '.join(self.choices)}."
        if self.minimum is not None or self.maximum is not None:
            low = "" if self.minimum is None else f"{self.minimum:g}"
            high = "" if self.maximum is None else f"{self.maximum:g}"
            text += f" Range [{low}, {high}]."
        return text.strip()


#: What a task's ``stream`` may declare (see :class:`TaskSpec`).
STREAM_KINDS = ("", "map", "map-any-size", "produce")

#: The parameter a ``stream="produce"`` task draws its number of images from.
PRODUCE_COUNT = "n"

#: Names every task takes besides its own parameters (the Python method and the server add them).
RESERVED_PARAMS = ("seed", "self", "ctx")


#: What a static web page (`zoo export MODEL --format web`) can run of a task in the browser, generically.
WEB_KINDS = ("sample", "image-to-image", "interpolate", "arithmetic")


@dataclass(frozen=True)
class WebTask:
    """How the static site runs a task in the browser with onnxruntime-web, as data (no JavaScript per model).

    ``kind`` and its ``options`` (graph and parameter names of the task; values are JSON):

    - ``sample``: decode latents drawn from a prior with a seed. ``graph`` (the decoder), ``prior`` (``"normal"``:
      N(0, I); ``"fitted"``: a diagonal Gaussian fitted at export time to the codes ``encoder`` gives the data),
      ``count`` and ``columns`` (parameter names, or a number for columns).
    - ``image-to-image``: an example from the data, a photo or (``draw``: true) a drawing, through ``graphs`` (a
      list run in turn, output 0 feeding input 0), or through ``graphs[value]`` of the choice parameter ``choice``;
      ``inverse`` (choice value -> value) also runs the result back.
    - ``interpolate``: ``encoder`` two images, decode ``w*z_A + (1-w)*z_B`` with ``decoder`` on a slider
      (``steps``: parameter name).
    - ``arithmetic``: signed sums of the mean encodings of label groups (``glasses&~male``), precomputed by
      ``encoder`` at export time from the data's binary labels and decoded with ``decoder``; ``example``: an
      expression.
    """

    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in WEB_KINDS:
            raise ValueError(f"web task kind must be one of {', '.join(WEB_KINDS)}, got {self.kind!r}")


@dataclass(frozen=True)
class TaskSpec:
    """A task (`zoo generate MODEL TASK`, ``zoo.load(MODEL).TASK(...)``, the server's task route) written against
    named graphs.

    ``function`` is ``"module:function"``, called as ``function(ctx, **params)`` with a
    :class:`zoo_core.tasks.TaskContext`; it returns a :class:`zoo_core.results.TaskResult` and writes nothing.
    ``params`` are :class:`Param` data. API 0.1 tasks declared click parameters and wrote files through the
    context; the core still runs them (see :attr:`legacy`).

    ``stream`` lets `zoo generate` run the task over inputs of any number in bounded memory
    (:mod:`zoo_core.streaming`, which calls ``function`` on chunks): ``"map"`` maps each image of its ``images``
    parameter to one named image at the graph's size, ``"map-any-size"`` does the same with fully convolutional
    graphs (any height and width, so their spatial axes are dynamic), ``"produce"`` draws ``n`` independent
    images from the seed (an int parameter ``n``; `zoo generate ... --per-image` then writes any number of them, one
    PNG each, in blocks drawn with seeds derived from ``--seed``), ``""`` runs it whole.
    """

    name: str
    summary: str
    graphs: tuple[str, ...]
    function: str
    params: tuple[Any, ...] = ()
    stream: str = ""
    #: what the static web page runs in the browser (:class:`WebTask`); None: the task runs in Python only
    web: WebTask | None = None

    def __post_init__(self) -> None:
        if self.stream not in STREAM_KINDS:
            raise ValueError(f"task {self.name!r}: stream must be one of {STREAM_KINDS}, got {self.stream!r}")
        if self.stream == "produce" and not any(isinstance(p, Param) and p.name == PRODUCE_COUNT and p.kind == "int"
                                                for p in self.params):
            raise ValueError(f"task {self.name!r}: a task that produces images takes an int parameter "
                             f"{PRODUCE_COUNT!r}, how many")

    @property
    def legacy(self) -> bool:
        """An API 0.1 task: click parameters, a function that writes PNG files instead of returning a result."""
        return any(not isinstance(p, Param) for p in self.params)


@dataclass(frozen=True)
class DataLayout:
    """A data layout the model reads with ``--data``."""

    name: str
    summary: str


@dataclass(frozen=True)
class ModelSpec:
    """Everything the core needs to list, train, export and run a model.

    ``recipe`` is ``"module:Class"`` of a :class:`zoo_core.recipe.Recipe` subclass,
    imported only when the model is trained or run. Card figures (network parameters,
    graph GFLOPs) are stated at ``card_preset``.
    """

    name: str
    summary: str
    recipe: str
    networks: tuple[NetworkSpec, ...]
    graphs: tuple[GraphSpec, ...]
    presets: tuple[Preset, ...]
    tasks: tuple[TaskSpec, ...] = ()
    data_layouts: tuple[DataLayout, ...] = ()
    card_preset: str = "book"
    default_preset: str = "quick"
    gpu_preset: str = "book"
    source: str = ""
    license: str = "MIT"
    tags: tuple[str, ...] = ()
    #: trained weights users load with ``--weights NAME`` (:class:`zoo_core.weights.Weights`)
    weights: tuple[Weights, ...] = ()

    def __post_init__(self) -> None:
        check_name("model", self.name)
        for kind, items in (("network", self.networks), ("graph", self.graphs),
                            ("preset", self.presets), ("task", self.tasks)):
            names = [item.name for item in items]
            for name in names:
                check_name(f"model {self.name!r}: {kind}", name)
            if len(set(names)) != len(names):
                raise ValueError(f"model {self.name!r}: duplicate {kind} names in {names}")
        preset_names = {p.name for p in self.presets}
        for role in ("card_preset", "default_preset", "gpu_preset"):
            if getattr(self, role) not in preset_names:
                raise ValueError(f"model {self.name!r}: {role} {getattr(self, role)!r} is not a preset")
        if self.weights:
            from zoo_core.weights import check_declarations  # torch-free; imported here to avoid a cycle

            check_declarations(self)

    @property
    def total_params(self) -> int:
        return sum(n.params for n in self.networks)

    def preset(self, name: str) -> Preset:
        for preset in self.presets:
            if preset.name == name:
                return preset
        raise KeyError(name)

    def graph(self, name: str) -> GraphSpec:
        for graph in self.graphs:
            if graph.name == name:
                return graph
        raise KeyError(name)

    def task(self, name: str) -> TaskSpec:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)


@dataclass(frozen=True)
class RuntimeSpec:
    """An inference backend: ``loader`` is ``"module:function"`` returning a GraphRunner."""

    name: str
    summary: str
    loader: str

    def __post_init__(self) -> None:
        check_name("runtime", self.name)


# Plugin-supplied names become directory and file names (runs/MODEL, GRAPH.onnx) and command names: a letter,
# then letters, digits, "_" or "-" (no "/", "..", dots or spaces), at most 64 characters.
SAFE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def check_name(kind: str, name: Any) -> None:
    """Refuse a name that is not a safe identifier (a plugin's load error, isolated like any other)."""
    if not isinstance(name, str) or not SAFE_NAME.match(name):
        raise ValueError(f"{kind} name {str(name)[:80]!r} is not a safe identifier (a letter, then letters, "
                         "digits, _ or -, at most 64 characters)")


def load_object(reference: str) -> Any:
    """Import ``"package.module:attr"`` on demand (keeps heavy imports off fast paths)."""
    module_name, _, attr = reference.partition(":")
    if not attr:
        raise ValueError(f"{reference!r} is not of the form 'module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
