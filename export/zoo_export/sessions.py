"""onnxruntime sessions, configured in one place, with a copy-free IOBinding path for timing.

Everything that opens an ``onnxruntime.InferenceSession`` in zoo goes through here: the
``onnxruntime`` runtime, export validation and ``zoo bench``. :class:`SessionSettings`
holds every knob (device, fp32/fp16 file, CPU threads, CUDA graphs, TF32, cuDNN search,
profiling); :func:`session_options` and :func:`execution_providers` turn it into ORT's
objects. Graph optimisation is always ``ORT_ENABLE_ALL``. The CUDA execution provider is
requested only when torch sees a GPU and ORT has the provider, so CPU machines print no
provider errors. ``torch`` is imported before ``onnxruntime`` and, on GPU machines,
``onnxruntime.preload_dlls()`` loads the CUDA/cuDNN libraries of pip's ``nvidia-*``
packages.

Lower-level API (what a benchmark times)::

    from zoo_export.sessions import GraphSession, SessionSettings
    settings = SessionSettings(device="cuda", cuda_graph=True)     # or SessionSettings.resolve("auto")
    session = GraphSession(path, settings)                         # or OnnxRunner.session(graph)
    outputs = session.run_numpy([x])        # host numpy in, host numpy out (ORT copies to/from the device)
    bound = session.bind([x_cuda])          # IOBinding on torch CUDA tensors (or numpy / CPU tensors on CPU)
    bound.run()                             # no host copies: reads bound.inputs, writes bound.outputs in place
    bound.inputs[0].copy_(next_batch)       # refill inputs in place; buffers keep their addresses

:meth:`GraphSession.bind` allocates the outputs on the inputs' device once (a torch tensor per
output), so repeated :meth:`BoundRun.run` calls touch only device memory; that is also what
ORT's CUDA graphs need (``cuda_graph=True``: fixed shapes and addresses, captured on the first
run). :func:`node_providers` profiles one run and returns the execution provider of every node,
which is how a CUDA session's CPU fallbacks are found and recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo_core.extend import UsageError, ZooError

PRECISIONS = ("fp32", "fp16", "int8")
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
               "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(uint8)": np.uint8,
               "tensor(bool)": np.bool_}
TORCH_TO_NUMPY = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64,
                  torch.int64: np.int64, torch.int32: np.int32, torch.uint8: np.uint8, torch.bool: np.bool_}
ENV_PREFIX = "ZOO_ORT_"

_ORT: Any = None


def onnxruntime_module() -> Any:
    """``onnxruntime``, imported after torch, with pip's CUDA libraries preloaded on GPU machines."""
    global _ORT
    if _ORT is None:
        import onnxruntime

        if torch.cuda.is_available() and hasattr(onnxruntime, "preload_dlls"):
            # preload_dlls reports problems with print(); keep stdout for the command's own output
            with contextlib.redirect_stdout(sys.stderr):
                onnxruntime.preload_dlls()
        onnxruntime.set_default_logger_severity(3)  # errors only; CPU fallbacks are detected and reported by us
        _ORT = onnxruntime
    return _ORT


def gpu_available() -> bool:
    """True when both torch sees a CUDA device and this onnxruntime build has the CUDA provider."""
    return torch.cuda.is_available() and CUDA_PROVIDER in onnxruntime_module().get_available_providers()


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(ENV_PREFIX + name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"{ENV_PREFIX}{name} must be 0 or 1, got {value!r}")


def max_threads() -> int:
    """The most intra-op threads a session may ask for: 4 per CPU, ample for any oversubscription test."""
    return 4 * (os.cpu_count() or 1)


@dataclass(frozen=True)
class SessionSettings:
    """Every onnxruntime knob zoo uses; the defaults are the validated, reproducible ones.

    ``precision`` picks ``GRAPH.onnx``, ``GRAPH.fp16.onnx`` or ``GRAPH.int8.onnx``; ``intra_op_threads`` 0 lets ORT use
    one thread per physical core; ``tf32`` stays off so fp32 CUDA results meet the fp32 tolerance;
    ``cuda_graph`` captures the graph on the first IOBinding run (fixed shapes only);
    ``disable_cpu_fallback`` makes a CUDA session fail instead of moving nodes to the CPU.
    """

    device: str = "cpu"
    device_id: int = 0
    precision: str = "fp32"
    intra_op_threads: int = 0
    cuda_graph: bool = False
    tf32: bool = False
    cudnn_conv_algo_search: str = "EXHAUSTIVE"
    disable_cpu_fallback: bool = False
    profile_prefix: Path | None = None
    #: idle intra-op threads spin (ORT's default); off, they sleep and leave the cores to other work (streaming)
    spin: bool = True

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise UsageError(f"onnxruntime runs on cpu or cuda, not {self.device!r}; use --device cpu or cuda")
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision must be fp32, fp16 or int8, got {self.precision!r} "
                             f"(set {ENV_PREFIX}PRECISION)")
        if not 0 <= self.intra_op_threads <= max_threads():
            # thousands of threads stall the machine and very large counts crash onnxruntime
            raise UsageError(f"intra-op threads must be 0 (automatic) to {max_threads()} (4 per CPU here), got "
                             f"{self.intra_op_threads} (set {ENV_PREFIX}THREADS)")
        if self.cuda_graph and self.device != "cuda":
            raise UsageError("CUDA graphs need --device cuda")

    @classmethod
    def resolve(cls, device: str = "auto", **overrides: Any) -> SessionSettings:
        """Settings for a ``--device`` value: ``auto`` is CUDA when a GPU is usable, else the CPU."""
        if device == "auto":
            device = "cuda" if gpu_available() else "cpu"
        elif device == "cuda" and not gpu_available():
            raise UsageError("--device cuda: no CUDA device usable by onnxruntime here; use --device cpu or auto")
        elif device == "mps":
            raise UsageError("--runtime onnxruntime runs on cpu or cuda, not mps; use --device cpu")
        return cls(device=device, **overrides)

    @classmethod
    def from_env(cls, device: str = "auto", precision: str | None = None) -> SessionSettings:
        """Settings for ``zoo generate --runtime onnxruntime``: ``ZOO_ORT_PRECISION=fp16``,
        ``ZOO_ORT_THREADS=N``, ``ZOO_ORT_CUDA_GRAPH=1``, ``ZOO_ORT_TF32=1`` tune them; a ``precision``
        given (``--precision``) wins over ``ZOO_ORT_PRECISION``."""
        threads = (os.environ.get(ENV_PREFIX + "THREADS", "0") or "0").strip()
        # ASCII digits only ("²".isdigit() holds), and a length no thread count needs
        if not (threads.isascii() and threads.isdigit() and len(threads) <= 6):
            raise UsageError(f"{ENV_PREFIX}THREADS must be a whole number from 0 to {max_threads()}, got {threads!r}")
        precision = precision or os.environ.get(ENV_PREFIX + "PRECISION", "fp32") or "fp32"
        return cls.resolve(device, precision=precision,
                           intra_op_threads=int(threads), cuda_graph=_env_flag("CUDA_GRAPH", False),
                           tf32=_env_flag("TF32", False), spin=_env_flag("SPIN", True))


def session_options(settings: SessionSettings) -> Any:
    """ORT session options for ``settings``: full graph optimisation, threads, logging, profiling."""
    ort = onnxruntime_module()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = settings.intra_op_threads
    options.log_severity_level = 3
    if not settings.spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if settings.disable_cpu_fallback:
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    if settings.profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(settings.profile_prefix)
    return options


def execution_providers(settings: SessionSettings) -> list[Any]:
    """The provider list: CUDA (with its options) then CPU on a GPU, the CPU alone otherwise."""
    if settings.device != "cuda":
        return [CPU_PROVIDER]
    cuda_options = {
        "device_id": str(settings.device_id),
        "cudnn_conv_algo_search": settings.cudnn_conv_algo_search,
        "use_tf32": "1" if settings.tf32 else "0",
        "enable_cuda_graph": "1" if settings.cuda_graph else "0",
    }
    return [(CUDA_PROVIDER, cuda_options), CPU_PROVIDER]


@dataclass(frozen=True)
class TensorInfo:
    """One session input or output: name, shape (ints or symbolic names) and numpy dtype."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: type


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(error).__name__


class GraphSession:
    """One ``.onnx`` file opened with :class:`SessionSettings`."""

    def __init__(self, path: str | os.PathLike[str], settings: SessionSettings | None = None) -> None:
        ort = onnxruntime_module()
        self.path = Path(path)
        self.settings = settings or SessionSettings()
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=session_options(self.settings),
                                                providers=execution_providers(self.settings))
        except Exception as error:  # ORT raises its own Fail/InvalidProtobuf/NoSuchFile types
            raise ZooError(f"{self.path}: onnxruntime cannot load it ({_first_line(error)}); "
                           "if the file is damaged or truncated, export the model again") from None
        self.inputs = [self._info(arg) for arg in self.session.get_inputs()]
        self.outputs = [self._info(arg) for arg in self.session.get_outputs()]

    @staticmethod
    def _info(arg: Any) -> TensorInfo:
        return TensorInfo(arg.name, tuple(arg.shape), NUMPY_TYPES.get(arg.type, np.float32))

    @property
    def providers(self) -> list[str]:
        """The providers the session actually holds (CUDA may be absent when it failed to load)."""
        return list(self.session.get_providers())

    def feeds(self, inputs: Sequence[Any]) -> dict[str, np.ndarray]:
        """Input dict for ``session.run``: arrays in the model's input dtypes (fp32 → fp16 for fp16 I/O)."""
        if len(inputs) != len(self.inputs):
            raise ZooError(f"{self.path.name} takes {len(self.inputs)} inputs "
                           f"({', '.join(i.name for i in self.inputs)}), got {len(inputs)}")
        return {info.name: np.ascontiguousarray(_to_numpy(value), dtype=info.dtype)
                for info, value in zip(self.inputs, inputs, strict=True)}

    def run_numpy(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        """Run on host arrays (numpy or CPU tensors); ORT copies to and from the device itself."""
        try:
            return list(self.session.run(None, self.feeds(inputs)))
        except ZooError:
            raise
        except Exception as error:
            raise ZooError(f"{self.path.name}: onnxruntime refused the inputs ({_first_line(error)})") from None

    def output_shapes(self, inputs: Sequence[Any]) -> list[tuple[int, ...]]:
        """Output shapes for these inputs: from the model when only the batch axis is symbolic,
        else from one host run."""
        batch = int(inputs[0].shape[0])
        shapes = []
        for info in self.outputs:
            if not info.shape or not all(isinstance(dim, int) for dim in info.shape[1:]):
                return [tuple(out.shape) for out in self.run_numpy([_host_zeros(x) for x in inputs])]
            first = info.shape[0]
            shapes.append((first if isinstance(first, int) else batch, *info.shape[1:]))
        return shapes

    def bind(self, inputs: Sequence[Any], outputs: Sequence[torch.Tensor] | None = None) -> BoundRun:
        """An IOBinding over ``inputs`` (torch tensors on the session's device, or numpy on CPU)
        and output tensors allocated once beside them (or the given ``outputs``)."""
        tensors = [_as_tensor(value) for value in inputs]
        device = tensors[0].device
        wanted = "cuda" if self.settings.device == "cuda" else "cpu"
        if any(t.device.type != wanted for t in tensors):
            raise ZooError(f"bind: a {self.settings.device} session needs every input on {wanted}, "
                           f"got {', '.join(str(t.device) for t in tensors)}")
        tensors = [t.to(torch_dtype(info.dtype)).contiguous() for t, info in zip(tensors, self.inputs, strict=True)]
        if outputs is None:
            shapes = self.output_shapes(tensors)
            outputs = [torch.empty(shape, dtype=torch_dtype(info.dtype), device=device)
                       for shape, info in zip(shapes, self.outputs, strict=True)]
        return BoundRun(self, tensors, list(outputs))


class BoundRun:
    """An IOBinding over fixed torch buffers: each :meth:`run` reads ``inputs`` and writes ``outputs``
    in place, with no host copies; refill ``inputs`` in place between runs."""

    def __init__(self, session: GraphSession, inputs: list[torch.Tensor], outputs: list[torch.Tensor]) -> None:
        self.session = session
        self.inputs = inputs
        self.outputs = outputs
        self.binding = session.session.io_binding()
        for info, tensor in zip(session.inputs, inputs, strict=True):
            self.binding.bind_input(info.name, *_buffer(tensor))
        for info, tensor in zip(session.outputs, outputs, strict=True):
            self.binding.bind_output(info.name, *_buffer(tensor))
        self.on_cuda = inputs[0].is_cuda

    def run(self) -> None:
        if self.on_cuda:
            torch.cuda.current_stream(self.inputs[0].device).synchronize()  # inputs written by torch are ready
        try:
            self.session.session.run_with_iobinding(self.binding)
        except Exception as error:  # ORT's own Fail/InvalidArgument/RuntimeException types
            raise ZooError(f"{self.session.path.name}: onnxruntime failed to run it ({_first_line(error)}); it may "
                           "not match its manifest (fixed batch, other inputs): export the model again") from None
        self.binding.synchronize_outputs()


def _buffer(tensor: torch.Tensor) -> tuple[str, int, type, tuple[int, ...], int]:
    """``bind_input``/``bind_output`` arguments for a contiguous tensor's memory."""
    device_type = "cuda" if tensor.is_cuda else "cpu"
    device_id = tensor.device.index or 0
    return device_type, device_id, TORCH_TO_NUMPY[tensor.dtype], tuple(tensor.shape), tensor.data_ptr()


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _as_tensor(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))


def _host_zeros(value: Any) -> np.ndarray:
    return np.zeros(tuple(value.shape), dtype=np.float32)


def torch_dtype(dtype: type) -> torch.dtype:
    """The torch dtype of a session input or output's numpy dtype."""
    for torch_type, numpy_type in TORCH_TO_NUMPY.items():
        if numpy_type is dtype:
            return torch_type
    raise ZooError(f"unsupported tensor type {dtype}")


@dataclass(frozen=True)
class NodePlacement:
    """Where ORT ran one node of the optimised graph."""

    name: str
    op_type: str
    provider: str


def node_providers(path: str | os.PathLike[str], settings: SessionSettings,
                   inputs: Sequence[Any]) -> list[NodePlacement]:
    """Profile one run of ``path`` and return the execution provider of every node that ran."""
    with tempfile.TemporaryDirectory(prefix="zoo-ort-profile-") as folder:
        # placement does not depend on CUDA graphs, and a captured graph would need IOBinding
        profiled = GraphSession(path, replace(settings, profile_prefix=Path(folder) / "profile", cuda_graph=False))
        profiled.run_numpy(inputs)
        trace = Path(profiled.session.end_profiling())
        events = json.loads(trace.read_text())
    placements: dict[str, NodePlacement] = {}
    for event in events:
        args = event.get("args", {})
        name = event.get("name", "")
        if event.get("cat") == "Node" and "provider" in args and name.endswith("_kernel_time"):
            node = name.removesuffix("_kernel_time")
            placements.setdefault(node, NodePlacement(node, args.get("op_name", ""), args["provider"]))
    return list(placements.values())


def cpu_nodes(placements: Sequence[NodePlacement]) -> list[dict[str, str]]:
    """The nodes a session left on the CPU provider, as manifest-ready records."""
    return [{"node": p.name, "op": p.op_type} for p in placements if p.provider == CPU_PROVIDER]
