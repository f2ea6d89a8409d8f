"""ONNX Runtime behind the backend interface, through zoo_export's sessions and IOBinding.

Session options come from zoo_export (:class:`~zoo_export.sessions.SessionSettings`, the one
place they are set); the harness only picks the device, file precision, thread count and the
CUDA-graph option. Inputs are copied to the device once, outputs are preallocated at their
known shape, and the timed call is :meth:`~zoo_export.sessions.BoundRun.run`: no feeds
dictionary, no output allocation and no host copy per run.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import time
from collections.abc import Sequence
from typing import Any

import torch

from zoo_bench.backends import GraphCase, Prepared, cuda_skip_reason

# onnxruntime's CUDA EP runs a graph normally twice before it captures the CUDA graph on the third run.
CUDA_GRAPH_WARMUP_RUNS = 3


def export_installed() -> bool:
    return importlib.util.find_spec("zoo_export") is not None


class OnnxRuntime:
    """onnxruntime's CPU or CUDA execution provider, optionally with CUDA graphs."""

    name = "onnxruntime"
    needs_onnx = True

    def __init__(self, threads: int, cuda_graph: bool = False, report_cpu_nodes: bool = True) -> None:
        self.threads = threads
        self.cuda_graph = cuda_graph
        self.report_cpu_nodes = report_cpu_nodes

    def skip_reason(self, device: torch.device, precision: str) -> str | None:
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu for CUDA)"
        if not export_installed():
            return "zoo-export is not installed, so there is no ONNX model to run (pip install zoo-export)"
        reason = cuda_skip_reason(device)
        if reason:
            return reason
        if precision == "bf16":
            return "no bf16 ONNX models: zoo export writes fp32 and fp16 (--fp16) models"
        if precision == "int8" and device.type != "cpu":
            return "int8 QDQ graphs are timed on onnxruntime's CPU EP (CUDA int8 needs TensorRT)"
        if precision == "fp16" and device.type == "cpu":
            return "onnxruntime's CPU execution provider lacks fp16 kernels for most ops; fp16 is for --device cuda"
        if device.type == "cuda":
            from zoo_export.sessions import CUDA_PROVIDER, onnxruntime_module

            if CUDA_PROVIDER not in onnxruntime_module().get_available_providers():
                return "this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu for CUDA 13)"
        return None

    def settings(self, device: torch.device, precision: str) -> Any:
        from zoo_export.sessions import SessionSettings

        on_cuda = device.type == "cuda"
        return SessionSettings(device=device.type, device_id=device.index or 0, precision=precision,
                               intra_op_threads=self.threads, cuda_graph=self.cuda_graph and on_cuda)

    def fetch(self, case: GraphCase, precision: str) -> None:
        """Export (or find) the ONNX file before the cell's setup time starts."""
        if case.onnx is None:
            raise LookupError(f"no ONNX model for graph {case.spec.name}")
        case.onnx(precision)

    def prepare(self, case: GraphCase, inputs: tuple[torch.Tensor, ...], output_shapes: Sequence[tuple[int, ...]],
                precision: str) -> Prepared:
        from zoo_export.sessions import TORCH_TO_NUMPY, GraphSession, cpu_nodes, node_providers

        if case.onnx is None:
            raise LookupError(f"no ONNX model for graph {case.spec.name}")
        path = case.onnx(precision)
        settings = self.settings(case.device, precision)
        notes = [f"{'CUDA' if case.device.type == 'cuda' else 'CPU'} EP"]
        if settings.cuda_graph:
            notes.append("CUDA graph")
        if precision != "fp32":
            notes.append(f"{precision} model")
        diagnostic = time.perf_counter()
        if case.device.type == "cuda" and self.report_cpu_nodes:
            # Profiled through the numpy path, which CUDA graphs do not support; placement does not depend on them.
            profiled = dataclasses.replace(settings, cuda_graph=False)
            fallen = cpu_nodes(node_providers(path, profiled, [x[:1].cpu() for x in inputs]))
            if fallen:
                notes.append(f"{len(fallen)} nodes on CPU: {', '.join(sorted({n['op'] for n in fallen}))}")
        diagnostic = time.perf_counter() - diagnostic
        session = GraphSession(path, settings)
        torch_dtypes = {numpy_type: torch_type for torch_type, numpy_type in TORCH_TO_NUMPY.items()}
        outputs = [torch.empty(shape, dtype=torch_dtypes[info.dtype], device=case.device)
                   for shape, info in zip(output_shapes, session.outputs, strict=True)]
        bound = session.bind([x.to(case.device).contiguous() for x in inputs], outputs)

        def read_outputs(_: Any) -> tuple[torch.Tensor, ...]:
            return tuple(o.float().cpu() for o in bound.outputs)

        # BoundRun.run waits for the device before returning, so the timing loop needs no sync of its own.
        return Prepared(call=bound.run, outputs=read_outputs, notes=notes,
                        min_warmup_runs=CUDA_GRAPH_WARMUP_RUNS if settings.cuda_graph else 0,
                        diagnostic_seconds=diagnostic)



def measure_int8_peak(threads: int, seconds: float = 1.0, size: int = 2048) -> Any:
    """The int8 ceiling: median GOP/s of an n×n ``MatMulInteger`` (uint8 × int8 → int32) in onnxruntime's CPU EP,
    2 ops per multiply-add, at the benchmark's thread count: what int8 graphs are a share of."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    from zoo_export.sessions import SessionSettings, onnxruntime_module, session_options

    from zoo_bench.measure import Peak
    from zoo_bench.timing import TimingRule, time_calls

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.integers(-128, 128, (size, size), dtype=np.int8), "b")
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "int8_peak",
                              [helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size])],
                              [helper.make_tensor_value_info("c", TensorProto.INT32, [size, size])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    ort = onnxruntime_module()
    options = session_options(SessionSettings(intra_op_threads=threads))
    session = ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
    feed = {"a": rng.integers(0, 256, (size, size), dtype=np.uint8)}
    call = functools.partial(session.run, None, feed)
    call()
    rule = TimingRule(min_seconds=seconds, min_runs=5, max_seconds=max(seconds, 5.0), warmup_seconds=0, warmup_runs=1)
    timing = time_calls(call, None, rule)
    return Peak("int8", size, 2 * size**3 / timing.p50 / 1e9, timing.runs)
