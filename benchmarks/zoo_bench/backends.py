"""The runtimes `zoo bench` times, each behind the same small interface.

A backend says why it cannot run a (device, precision) combination, or prepares a cell:
the runtime loaded, the inputs already resident on the device and bound, and a call that
runs the graph once and does nothing else. The timing loop only ever sees that call.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from zoo_bench.choices import COMPILE_MODES, MEMORY_FORMATS
from zoo_core.extend import GraphSpec

AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class GraphCase:
    """One graph ready to benchmark: its fp32 torch module in eval mode on the device.

    ``onnx(precision)`` returns the ONNX file of this graph with these weights (exported on
    first use); a ``LookupError`` from it means that precision has no ONNX model.
    """

    model: str
    spec: GraphSpec
    config: Mapping[str, Any]
    module: nn.Module
    device: torch.device
    onnx: Callable[[str], Path] | None = None


@dataclass
class Prepared:
    """A cell ready to time: ``call()`` runs the graph once on the bound inputs.

    ``outputs(result)`` turns what ``call()`` returned into float32 CPU tensors for the
    correctness check; ``context()`` is entered once around all calls (inference mode,
    autocast); ``sync`` waits for the device after a call (None on CPU); ``min_warmup_runs``
    is what the runtime needs before it is steady (onnxruntime captures its CUDA graph late);
    ``diagnostic_seconds`` of the setup went to diagnostics (finding CPU fallbacks), not loading.
    """

    call: Callable[[], Any]
    outputs: Callable[[Any], tuple[torch.Tensor, ...]]
    sync: Callable[[], Any] | None = None
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    notes: list[str] = field(default_factory=list)
    close: Callable[[], None] = lambda: None
    min_warmup_runs: int = 0
    diagnostic_seconds: float = 0.0


class Backend(Protocol):
    """What the runner needs of a runtime."""

    name: str

    def skip_reason(self, device: torch.device, precision: str) -> str | None:
        """Why this runtime cannot run at (device, precision) here, or None when it can."""
        ...

    def prepare(self, case: GraphCase, inputs: tuple[torch.Tensor, ...], output_shapes: Sequence[tuple[int, ...]],
                precision: str) -> Prepared:
        """Load the runtime for ``case`` and bind ``inputs`` (fp32, on the device).

        A backend may also define ``fetch(case, precision)``: work done before the setup time
        starts (onnxruntime exports the graph there, which is not the runtime's warm-up).
        """
        ...


# -- PyTorch ----------------------------------------------------------------------------
def cuda_skip_reason(device: torch.device) -> str | None:
    if device.type == "cuda" and not torch.cuda.is_available():
        return "CUDA is not available here (torch.cuda.is_available() is False)"
    return None


def autocast_skip_reason(device: torch.device, precision: str) -> str | None:
    if precision == "fp32":
        return None
    if not torch.amp.is_autocast_available(device.type):
        return f"torch has no autocast on {device.type}"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "this GPU has no bf16 support"
    return None


def has_convolutions(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())


def use_channels_last(memory_format: str, case: GraphCase, inputs: tuple[torch.Tensor, ...], precision: str) -> bool:
    """``auto``: NHWC where it pays, i.e. convolutions on CUDA in fp16/bf16 (tensor cores read NHWC).

    On this project's CPU (oneDNN) NHWC measured slower for the 256² generator, so auto keeps NCHW there.
    """
    if memory_format != "auto":
        return memory_format == "channels_last"
    return (case.device.type == "cuda" and precision != "fp32" and has_convolutions(case.module)
            and any(x.dim() == 4 for x in inputs))


def to_cpu_float(result: Any) -> tuple[torch.Tensor, ...]:
    """A module's result (tensor or tuple of tensors) as float32 contiguous CPU copies."""
    outputs = (result,) if isinstance(result, torch.Tensor) else tuple(result)
    return tuple(o.detach().float().cpu().contiguous() for o in outputs)


def torch_context(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    def context() -> contextlib.AbstractContextManager[Any]:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if precision in AUTOCAST_DTYPES:
            stack.enter_context(torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision]))
        return stack

    return context


def device_sync(device: torch.device) -> Callable[[], Any] | None:
    return torch.cuda.synchronize if device.type == "cuda" else None


class TorchEager:
    """PyTorch eager: eval, inference mode, autocast for fp16/bf16, channels_last where it helps."""

    name = "torch"

    def __init__(self, memory_format: str = "auto") -> None:
        if memory_format not in MEMORY_FORMATS:
            raise ValueError(f"memory format must be one of {MEMORY_FORMATS}, got {memory_format!r}")
        self.memory_format = memory_format

    def skip_reason(self, device: torch.device, precision: str) -> str | None:
        if precision == "int8":
            return "int8 runs as onnxruntime QDQ graphs (zoo export --int8); torch has no int8 path here"
        return cuda_skip_reason(device) or autocast_skip_reason(device, precision)

    def module_and_inputs(self, case: GraphCase, inputs: tuple[torch.Tensor, ...],
                          precision: str) -> tuple[nn.Module, tuple[torch.Tensor, ...], list[str]]:
        if not use_channels_last(self.memory_format, case, inputs, precision):
            return case.module, inputs, []
        # A copy: converting in place would change the module every other cell shares.
        module = copy.deepcopy(case.module).to(memory_format=torch.channels_last)
        inputs = tuple(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x for x in inputs)
        return module, inputs, ["channels_last"]

    def prepare(self, case: GraphCase, inputs: tuple[torch.Tensor, ...], output_shapes: Sequence[tuple[int, ...]],
                precision: str) -> Prepared:
        module, inputs, notes = self.module_and_inputs(case, inputs, precision)
        return Prepared(call=functools.partial(module, *inputs), outputs=to_cpu_float, sync=device_sync(case.device),
                        context=torch_context(case.device, precision), notes=notes)


def compiler_skip_reason(device: torch.device) -> str | None:
    """Why torch.compile cannot run on ``device`` here (Python version, C++ compiler, Triton)."""
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile does not support this Python/platform"
    if device.type == "cpu":
        from torch._inductor.cpp_builder import get_cpp_compiler

        try:
            get_cpp_compiler()
        except Exception:
            return "torch.compile on CPU needs a C++ compiler (g++ or $CXX); none was found"
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return "torch.compile on CUDA needs Triton, which is not installed"
    return None


class TorchCompile(TorchEager):
    """torch.compile (inductor) of the eager module; the compile happens in the first call."""

    name = "torch-compile"

    def __init__(self, mode: str = "default", memory_format: str = "auto") -> None:
        super().__init__(memory_format)
        if mode not in COMPILE_MODES:
            raise ValueError(f"compile mode must be one of {COMPILE_MODES}, got {mode!r}")
        self.mode = mode

    def skip_reason(self, device: torch.device, precision: str) -> str | None:
        return super().skip_reason(device, precision) or compiler_skip_reason(device)

    def prepare(self, case: GraphCase, inputs: tuple[torch.Tensor, ...], output_shapes: Sequence[tuple[int, ...]],
                precision: str) -> Prepared:
        import torch._dynamo

        module, inputs, notes = self.module_and_inputs(case, inputs, precision)
        compiled = torch.compile(module, mode=None if self.mode == "default" else self.mode, dynamic=False)
        notes.append(f"mode {self.mode}")
        if self.mode in ("reduce-overhead", "max-autotune") and case.device.type == "cuda":
            call = marked_step(compiled, inputs)
        else:
            call = functools.partial(compiled, *inputs)
        return Prepared(call=call, outputs=to_cpu_float, sync=device_sync(case.device),
                        context=torch_context(case.device, precision), notes=notes, close=torch._dynamo.reset)


def marked_step(compiled: Callable[..., Any], inputs: tuple[torch.Tensor, ...]) -> Callable[[], Any]:
    """A call that starts a new CUDA-graph-tree step first, so a replay may reuse the last outputs' memory."""
    mark = torch.compiler.cudagraph_mark_step_begin

    def call() -> Any:
        mark()
        return compiled(*inputs)

    return call


# -- other distributions' runtimes ---------------------------------------------------------
#: Entry point group through which another distribution adds a runtime to `zoo bench`: ``NAME = "module:Factory"``,
#: called as ``Factory(threads)`` and returning a :class:`Backend` (zoo-openvino registers ``openvino`` here).
BACKEND_GROUP = "zoo.bench_backends"


class UnloadableBackend:
    """A registered backend that failed to load: every cell is skipped with the reason, the run goes on."""

    needs_onnx = False

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def skip_reason(self, device: torch.device, precision: str) -> str | None:
        return self.reason

    def prepare(self, case: GraphCase, inputs: tuple[torch.Tensor, ...], output_shapes: Sequence[tuple[int, ...]],
                precision: str) -> Prepared:
        raise RuntimeError(self.reason)


def installed_backends(threads: int) -> dict[str, Backend]:
    """The backends registered in :data:`BACKEND_GROUP` by installed distributions, by name."""
    from importlib.metadata import entry_points

    found: dict[str, Backend] = {}
    for entry in entry_points(group=BACKEND_GROUP):
        try:
            found[entry.name] = entry.load()(threads)
        except Exception as error:  # a broken plugin costs its own rows, not the benchmark
            found[entry.name] = UnloadableBackend(entry.name, f"{entry.value} could not be loaded "
                                                  f"({type(error).__name__}: {' '.join(str(error).split())[:160]})")
    return found
