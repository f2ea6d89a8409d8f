"""AOTInductor packages behind the backend interface: each graph compiled once (dynamic batch) and loaded.

The compile (torch.export + ``aoti_compile_and_package``) happens in ``fetch``, before the cell's
setup time starts, like the ONNX export of the onnxruntime backend; its seconds are a note on
every cell of the graph. The package holds the cell's exact weights, so the correctness check
against torch fp32 means what it does for the other runtimes.
"""

from __future__ import annotations

import functools
import importlib.util
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from zoo_bench.backends import GraphCase, Prepared, compiler_skip_reason, cuda_skip_reason, to_cpu_float


class AotiPackages:
    """``zoo export --format aoti``'s packages, made on first use per graph in a private temporary folder."""

    name = "aoti"

    def __init__(self) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="zoo-bench-aoti-")
        self.packages: dict[int, tuple[Path, float]] = {}

    def skip_reason(self, device: torch.device, precision: str) -> str | None:
        if importlib.util.find_spec("zoo_export") is None:
            return "zoo-export is not installed (it makes the AOTInductor packages)"
        if precision != "fp32":
            return "aoti packages are compiled in fp32 (zoo export --format aoti)"
        return cuda_skip_reason(device) or compiler_skip_reason(device)

    def fetch(self, case: GraphCase, precision: str) -> None:
        """Compile the graph's package once (its batch dimension is dynamic, so every batch size shares it)."""
        from zoo_export.aoti import compile_package

        key = id(case.module)
        if key not in self.packages:
            path = Path(self.folder.name) / f"{case.model}-{case.spec.name}-{len(self.packages)}.pt2"
            example = tuple(torch.rand(2, *t.resolve(case.config)[1:], device=case.device) for t in case.spec.inputs)
            started = time.perf_counter()
            compile_package(case.module, example, path)
            self.packages[key] = (path, time.perf_counter() - started)

    def prepare(self, case: GraphCase, inputs: tuple[torch.Tensor, ...], output_shapes: Sequence[tuple[int, ...]],
                precision: str) -> Prepared:
        from zoo_export.aoti import load_package

        self.fetch(case, precision)
        path, seconds = self.packages[id(case.module)]
        package = load_package(path)
        sync = torch.cuda.synchronize if case.device.type == "cuda" else None
        return Prepared(call=functools.partial(package, *inputs), outputs=to_cpu_float, sync=sync,
                        context=torch.inference_mode, notes=[f"compiled in {seconds:.0f} s (dynamic batch)"])

    def close(self) -> None:
        self.folder.cleanup()
