"""Where a run's weights, config and ONNX files come from.

By default the networks get random weights at a preset (timing does not depend on the
values) and each graph is exported with zoo_export into the run's temporary directory the
first time onnxruntime needs it. ``--checkpoint`` times trained weights instead, and
``--export DIR`` times an existing export, with torch running the checkpoint that export was
made from, so both sides compute the same function and the correctness check means something.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo_core.extend import RegisteredModel, ZooError


@dataclass
class WeightSource:
    """The config the networks are built at and, unless random, the checkpoint they load.

    ``weights`` says where the weights come from: ``random``, ``checkpoint FILE`` or ``export DIR``.
    """

    preset: str
    weights: str
    config: dict[str, Any]
    checkpoint: Path | None = None
    export: Any = None  # a zoo_export.manifest.ExportRecord
    export_seconds: dict[str, dict[str, float]] = field(default_factory=dict)


def resolve_source(model: RegisteredModel, preset: str | None, overrides: Mapping[str, Any],
                   checkpoint: Path | None, export_dir: Path | None) -> WeightSource:
    """Random weights at ``preset`` (default: the card preset), or a checkpoint's, or an export's."""
    from zoo_core.extend import resolve_config

    spec = model.spec
    if export_dir is not None:
        from zoo_export.manifest import load_export

        from zoo_core.extend import file_sha256

        record = load_export(export_dir, model=model.name)
        if checkpoint is None:
            source = record.manifest.get("source") or {}
            checkpoint = Path(source.get("checkpoint", ""))
            if not source.get("checkpoint") or not checkpoint.is_file():
                raise ZooError(f"{export_dir} was exported from checkpoint {source.get('checkpoint')!r}, which is "
                               "not here; torch must run the same weights: pass --checkpoint FILE")
            if source.get("sha256") and file_sha256(checkpoint) != source["sha256"]:
                raise ZooError(f"{checkpoint} changed since {export_dir} was exported from it (sha256 differs); "
                               "export again or pass the original --checkpoint")
        config = dict(record.config)
        return WeightSource(str(config.get("preset", "-")), f"export {export_dir}", config, checkpoint, record)
    if checkpoint is not None:
        from zoo_core.extend import read_checkpoint

        config = dict(read_checkpoint(model, checkpoint).config)
        return WeightSource(str(config.get("preset", "-")), f"checkpoint {checkpoint}", config, checkpoint)
    name = preset or spec.card_preset
    return WeightSource(name, "random", resolve_config(spec, name, overrides))


def onnx_files(model: RegisteredModel, source: WeightSource, recipe: Any, module: torch.nn.Module, graph: str,
               workdir: Path) -> Callable[[str], Path] | None:
    """``precision -> .onnx path`` for one graph, or None when zoo_export is not installed.

    From ``--export DIR`` the files are the export's; otherwise the graph is exported on first
    use (fp32, or fp16 with float32 inputs and outputs) from a CPU copy of ``module``.
    """
    if source.export is not None:
        return lambda precision: source.export.graph_file(graph, precision)
    try:
        from zoo_export.onnx_export import export_model_graph
    except ImportError:
        return None

    made: dict[str, Path] = {}
    failed: dict[str, Exception] = {}

    def path(precision: str) -> Path:
        if precision == "int8" and precision not in made and precision not in failed:
            try:
                made[precision] = int8_file(recipe, graph, path("fp32"), workdir)  # int8 quantizes the fp32 file
            except Exception as error:
                failed[precision] = error
                raise
            return made[precision]
        if precision in failed:
            raise failed[precision]  # an export that failed once fails again: do not pay for it per batch size
        if precision not in made:
            started = time.perf_counter()
            suffix = ".onnx" if precision == "fp32" else f".{precision}.onnx"
            on_cpu = all(p.device.type == "cpu" for p in module.parameters())
            cpu_module = module if on_cpu else copy.deepcopy(module).cpu().eval()
            try:
                made[precision] = export_model_graph(model, recipe, cpu_module, recipe.spec.graph(graph),
                                                     workdir / f"{model.name}-{graph}{suffix}", precision).path
            except Exception as error:
                failed[precision] = error
                raise
            source.export_seconds.setdefault(graph, {})[precision] = time.perf_counter() - started
        return made[precision]

    return path


CALIBRATION_ITEMS = 32


def int8_file(recipe: Any, graph: str, fp32: Path, workdir: Path) -> Path:
    """``fp32`` quantized like ``zoo export --int8`` (QDQ, per-channel int8 weights, uint8 activations), calibrated
    on random inputs in the declared ranges: the bench's weights are random too; task quality is export's check."""
    from zoo_export.quantize import preprocess, quantize_file

    spec = recipe.spec.graph(graph)
    calibration = recipe.example_inputs(graph, CALIBRATION_ITEMS, torch.Generator().manual_seed(1))
    pre = workdir / f"{fp32.stem}.pre.onnx"
    out = workdir / f"{fp32.stem}.int8.onnx"
    preprocess(fp32, pre)
    quantize_file(pre, out, [t.name for t in spec.inputs], calibration, "minmax", "uint8")
    return out
