"""ExecuTorch programs behind the backend interface: each graph lowered once to XNNPACK (fp32, and PT2E int8).

The lowering (and for int8 the PT2E calibration) happens in ``fetch``, before the cell's setup time starts, like
the ONNX export of the onnxruntime backend; its seconds are a note on every cell of the graph. int8 is calibrated
on random inputs in the declared ranges, as the bench's onnxruntime int8 files are: the weights are random too, and
task quality is `zoo export`'s check. The timed call is one ``Method.execute`` on the bound inputs.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from zoo_bench.backends import GraphCase, Prepared
from zoo_bench.sources import CALIBRATION_ITEMS


def random_inputs(case: GraphCase, count: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Inputs in each declared value range (standard normal where none is declared)."""
    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for spec in case.spec.inputs:
        shape = (count, *spec.resolve(case.config)[1:])
        if spec.value_range is None:
            tensors.append(torch.randn(shape, generator=generator))
        else:
            low, high = spec.value_range
            tensors.append(low + (high - low) * torch.rand(shape, generator=generator))
    return tuple(tensors)


class ExecuTorchPrograms:
    """`zoo export --format executorch`'s programs, made on first use per graph and precision in a private folder."""

    name = "executorch"

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.folder = tempfile.TemporaryDirectory(prefix="zoo-bench-executorch-")
        self.programs: dict[tuple[int, str], tuple[Path, float, list[str]]] = {}

    def skip_reason(self, device: torch.device, precision: str) -> str | None:
        if importlib.util.find_spec("zoo_export") is None:
            return "zoo-export is not installed (it lowers the ExecuTorch programs)"
        if importlib.util.find_spec("executorch") is None:
            return "executorch is not installed (pip install 'zoo-export[executorch]')"
        if device.type != "cpu":
            return "ExecuTorch's XNNPACK backend runs on the CPU"
        if precision not in ("fp32", "int8"):
            return "ExecuTorch programs are lowered in fp32 or PT2E int8"
        return None

    def fetch(self, case: GraphCase, precision: str) -> None:
        """Lower the graph once per precision (its batch dimension is dynamic up to MAX_BATCH)."""
        from zoo_export.executorch import compile_int8_program, compile_program

        key = (id(case.module), precision)
        if key in self.programs:
            return
        path = Path(self.folder.name) / f"{case.model}-{case.spec.name}-{len(self.programs)}.{precision}.pte"
        example = random_inputs(case, 2, 0)
        started = time.perf_counter()
        if precision == "int8":
            _, outside = compile_int8_program(case.module, example, random_inputs(case, CALIBRATION_ITEMS, 1), path)
        else:
            _, outside = compile_program(case.module, example, path)
        self.programs[key] = (path, time.perf_counter() - started, outside)

    def prepare(self, case: GraphCase, inputs: tuple[torch.Tensor, ...], output_shapes: Sequence[tuple[int, ...]],
                precision: str) -> Prepared:
        from zoo_export.executorch import MAX_BATCH, Program, set_threads

        if inputs and inputs[0].shape[0] > MAX_BATCH:
            raise ValueError(f"batch {inputs[0].shape[0]} is above the programs' planned maximum {MAX_BATCH}")
        self.fetch(case, precision)
        path, seconds, outside = self.programs[(id(case.module), precision)]
        set_threads(self.threads)
        program = Program(path)
        bound = [x.detach().cpu().float().contiguous() for x in inputs]
        method = program.method

        def read_outputs(result: Any) -> tuple[torch.Tensor, ...]:
            return tuple(o.float().clone() for o in result)

        verb = "quantised (PT2E) and lowered" if precision == "int8" else "lowered"
        notes = [f"XNNPACK, {verb} in {seconds:.0f} s, {self.threads} threads"]
        if outside:
            notes.append(f"outside the delegate: {', '.join(outside)}")
        return Prepared(call=lambda: method.execute(bound), outputs=read_outputs, notes=notes)

    def close(self) -> None:
        self.folder.cleanup()
