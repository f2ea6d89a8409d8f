"""Export validation: onnxruntime against PyTorch on the same inputs, per graph, precision and provider.

Inputs are random tensors in each input's declared range (``recipe.example_inputs``) and real
samples from the model's data (``recipe.data_inputs``, skipped with a note when it returns
None), each at batch 1 and batch 7. The reference is the ``torch`` runtime in float32 on the
CPU. Errors are the maximum absolute difference and the relative L2 error
``||ort - torch|| / ||torch||`` (the worst over outputs and input sets); a graph passes when
its relative L2 error is within its tolerance at that precision.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo_core.extend import GraphSpec
from zoo_export.sessions import CPU_PROVIDER, GraphSession, SessionSettings, cpu_nodes, node_providers

BATCHES = (1, 7)


@dataclass(frozen=True)
class InputSet:
    """One set of graph inputs: ``kind`` is ``random`` or ``data``."""

    kind: str
    batch: int
    tensors: tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Check:
    kind: str
    batch: int
    max_abs: float
    rel_l2: float

    def as_json(self) -> dict[str, Any]:
        return {"inputs": self.kind, "batch": self.batch, "max_abs": self.max_abs, "rel_l2": self.rel_l2}


@dataclass
class GraphResult:
    """Validation of one file on one provider."""

    graph: str
    precision: str
    provider: str
    tolerance: float
    checks: list[Check] = field(default_factory=list)
    cpu_nodes: list[dict[str, str]] | None = None

    @property
    def max_abs(self) -> float:
        return max((c.max_abs for c in self.checks), default=0.0)

    @property
    def rel_l2(self) -> float:
        return max((c.rel_l2 for c in self.checks), default=0.0)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and self.rel_l2 <= self.tolerance

    def as_json(self) -> dict[str, Any]:
        return {"graph": self.graph, "precision": self.precision, "provider": self.provider,
                "tolerance": self.tolerance, "max_abs": _finite(self.max_abs), "rel_l2": _finite(self.rel_l2),
                "passed": self.passed, "checks": [c.as_json() for c in self.checks], "cpu_nodes": self.cpu_nodes}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no inf or nan


def compare(outputs: Sequence[np.ndarray], references: Sequence[torch.Tensor]) -> tuple[float, float]:
    """Worst max-abs and relative-L2 error over the outputs; a shape or count mismatch is infinite."""
    if len(outputs) != len(references):
        return math.inf, math.inf
    worst_abs, worst_rel = 0.0, 0.0
    for output, reference in zip(outputs, references, strict=True):
        got = np.asarray(output, dtype=np.float64)
        want = reference.detach().double().cpu().numpy()
        if got.shape != want.shape:
            return math.inf, math.inf
        if got.size == 0:
            continue
        diff = got - want
        if not np.all(np.isfinite(diff)):
            return math.inf, math.inf
        worst_abs = max(worst_abs, float(np.abs(diff).max()))
        error, scale = float(np.linalg.norm(diff)), float(np.linalg.norm(want))
        worst_rel = max(worst_rel, 0.0 if error == 0.0 else error / max(scale, 1e-12))
    return worst_abs, worst_rel


def input_sets(graph: str, example: Callable[[int], tuple[torch.Tensor, ...]],
               data: Callable[[int], tuple[torch.Tensor, ...] | None]) -> tuple[list[InputSet], list[str]]:
    """Random and data inputs at each validation batch size, and notes on what was skipped."""
    sets = [InputSet("random", batch, tuple(example(batch))) for batch in BATCHES]
    notes: list[str] = []
    for batch in BATCHES:
        tensors = data(batch)
        if tensors is None:
            notes.append(f"{graph}: no data inputs (data_inputs returned None or the data could not be loaded)")
            break
        sets.append(InputSet("data", int(tensors[0].shape[0]), tuple(tensors)))
    return sets, notes


def validate_file(path: Path, spec: GraphSpec, precision: str, tolerance: float, settings: SessionSettings,
                  sets: Sequence[InputSet], references: Mapping[int, tuple[torch.Tensor, ...]]) -> GraphResult:
    """Run ``path`` on every input set and compare with the torch references (keyed by set index)."""
    session = GraphSession(path, settings)
    provider = session.providers[0]
    result = GraphResult(spec.name, precision, provider, tolerance)
    for index, item in enumerate(sets):
        outputs = session.run_numpy(item.tensors)
        max_abs, rel_l2 = compare(outputs, references[index])
        result.checks.append(Check(item.kind, item.batch, max_abs, rel_l2))
    if provider != CPU_PROVIDER:
        result.cpu_nodes = cpu_nodes(node_providers(path, settings, sets[0].tensors))
    return result


def format_table(results: Sequence[GraphResult]) -> str:
    """A plain-text table of the results, one row per graph, precision and provider."""
    header = ("graph", "precision", "provider", "max abs", "rel L2", "tolerance", "result")
    rows = [header]
    for r in results:
        rows.append((r.graph, r.precision, r.provider.removesuffix("ExecutionProvider"), f"{r.max_abs:.3g}",
                     f"{r.rel_l2:.3g}", f"{r.tolerance:.0e}", "ok" if r.passed else "FAILED"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)
