"""OpenVINO as a `zoo bench` backend, registered through the ``zoo.bench_backends`` entry point group.

The cell's ONNX file (fp32, or the bench's int8 QDQ file) comes from zoo bench like onnxruntime's; OpenVINO
compiles it at the cell's static shape with the runtime's settings (:func:`zoo_openvino.runtime.compile_config`,
strict fp32, the bench's thread count), the inputs are set on the request once, and the timed call is one
synchronous ``infer()``. Imported by zoo bench when it starts, so it imports neither torch nor openvino here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any


class OpenVinoBackend:
    """OpenVINO's CPU plugin on the graph's ONNX file."""

    name = "openvino"
    needs_onnx = True

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def skip_reason(self, device: Any, precision: str) -> str | None:
        if importlib.util.find_spec("openvino") is None:
            return "openvino is not installed (pip install zoo-openvino)"
        if device.type != "cpu":
            return "the openvino backend runs on the CPU (no Intel GPU or NPU plugin is used here)"
        if precision not in ("fp32", "int8"):
            return "openvino runs the export's fp32 and int8 ONNX files"
        return None

    def fetch(self, case: Any, precision: str) -> None:
        """The ONNX file (exported or quantised by zoo bench) before the cell's setup time starts."""
        if case.onnx is None:
            raise LookupError(f"no ONNX model for graph {case.spec.name}")
        case.onnx(precision)

    def prepare(self, case: Any, inputs: tuple[Any, ...], output_shapes: Sequence[tuple[int, ...]],
                precision: str) -> Any:
        import numpy as np
        import torch
        from zoo_bench.backends import Prepared

        from zoo_openvino.runtime import GraphModel, openvino_module

        ov = openvino_module()
        model = GraphModel(case.onnx(precision), case.spec, self.threads)
        request = model.request([tuple(x.shape) for x in inputs])
        arrays = [np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32) for x in inputs]
        for index, array in enumerate(arrays):
            request.set_input_tensor(index, ov.Tensor(array, shared_memory=True))

        def read_outputs(_: Any) -> tuple[torch.Tensor, ...]:
            return tuple(torch.from_numpy(np.array(request.get_output_tensor(i).data, dtype=np.float32, copy=True))
                         for i in range(len(output_shapes)))

        notes = [f"CPU plugin, f32 inference precision, {self.threads} threads"]
        if precision == "int8":
            notes.append("int8 QDQ model")
        return Prepared(call=request.infer, outputs=read_outputs, notes=notes,
                        close=lambda: arrays.clear())
