"""`zoo export`: a trained checkpoint to a validated export directory, all or nothing.

The export is built in a temporary directory beside the target and renamed into place only
after every graph exported, checked and validated; an existing export is replaced only then,
so a failure leaves the previous export (or nothing) and no half-written directory.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from zoo_core import __version__ as zoo_version
from zoo_core.extend import (
    DataSource,
    GraphSpec,
    ModelSpec,
    RegisteredModel,
    TorchRunner,
    TrainingData,
    UsageError,
    ZooError,
    file_sha256,
    load_model,
)
from zoo_core.extend import io as zio
from zoo_export import __version__ as export_version
from zoo_export.manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    ExportRecord,
    config_gflops,
    graph_json,
    read_manifest,
    tolerance,
)
from zoo_export.onnx_export import DEFAULT_OPSET, TRACE_BATCH, ExportedFile, export_model_graph
from zoo_export.quantize import Int8Data, Int8Options, export_int8
from zoo_export.sessions import SessionSettings, gpu_available
from zoo_export.validation import GraphResult, format_table, input_sets, validate_file

DATA_LIMIT = 64  # validation needs a handful of real samples, not the whole data set


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass
class ExportOptions:
    """Everything `zoo export` was told."""

    run: Path | None = None
    checkpoint: Path | None = None
    out: Path | None = None
    graphs: Sequence[str] | None = None
    opset: int = DEFAULT_OPSET
    fp16: bool = False
    fp16_io: bool = False
    int8: Int8Options | None = None  # also write GRAPH.int8.onnx where the graph's quality bars hold
    aoti: bool = False  # also write GRAPH.pt2 (AOTInductor package)
    executorch: bool = False  # also write GRAPH.pte (and GRAPH.int8.pte with int8) lowered to XNNPACK
    executorch_int8: bool = True  # with int8 and executorch: the int8 programs too (False: only the .int8.onnx)
    validate: bool = True
    force: bool = False  # replace a previous zoo export at ``out`` (never anything else)
    trace_batch: int = TRACE_BATCH  # the AOTInductor trace; ONNX files always trace TRACE_BATCH items
    seed: int = 0
    log: Callable[[str], None] = field(default=_stderr)


def select_graphs(spec: ModelSpec, names: Sequence[str] | None) -> list[GraphSpec]:
    """The graphs to export: all of them, or the named ones in the given order."""
    if not names:
        return list(spec.graphs)
    known = [g.name for g in spec.graphs]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"--graphs: {spec.name} has no graph {', '.join(map(repr, unknown))}; "
                         f"its graphs: {', '.join(known)}")
    return [spec.graph(n) for n in dict.fromkeys(names)]


def check_target(out: Path, force: bool = False) -> None:
    """Refuse to replace anything but a previous zoo export, and that only with ``force``.

    A previous export is checked by its manifest: it must read as one, and every entry of the directory
    must be the manifest or a file it lists, so a folder that merely holds a ``manifest.json`` is not one.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; choose a directory for the export")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / MANIFEST).is_file():
        raise UsageError(f"--out {out} is a non-empty directory without {MANIFEST}, not a zoo export; "
                         "choose another --out (zoo replaces only its own exports)")
    try:
        listed = {name for name, _ in ExportRecord(out, read_manifest(out)).files()} | {MANIFEST}
    except ZooError:
        raise UsageError(f"--out {out} holds a {MANIFEST} that is not a valid zoo export manifest; choose another "
                         "--out (zoo replaces only its own exports)") from None
    foreign = sorted(p.name for p in out.iterdir() if p.name not in listed or not p.is_file() or p.is_symlink())
    if foreign:
        raise UsageError(f"--out {out} holds {', '.join(foreign[:3])}, which its {MANIFEST} does not list; "
                         "choose another --out (zoo replaces only its own exports)")
    if not force:
        raise UsageError(f"--out {out} already holds a zoo export; pass --force to replace it, or choose another --out")


def resolve_out(out: Path) -> Path:
    """``out`` as the file system will see it: ``new/../existing`` is ``existing``, a link is followed."""
    try:
        resolved = Path(os.path.realpath(out))
    except (OSError, ValueError) as error:
        raise UsageError(f"--out {out}: not a usable path ({error})") from None
    if resolved == Path(resolved.anchor):
        raise UsageError(f"--out {out} is the file system root; choose a directory for the export")
    parent = resolved.parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"--out {out}: {parent} is not a directory; choose another --out")
    return resolved


def _stale_name(out: Path) -> re.Pattern[str]:
    # mkdtemp's suffix is 8 characters of [a-z0-9_]
    return re.compile(rf"^\.{re.escape(out.name)}\.(partial|old)-[a-z0-9_]{{8}}$")


def remove_stale_temporaries(out: Path, log: Callable[[str], None]) -> None:
    """What a killed export of ``out`` left beside it: staged ``.NAME.partial-*`` directories are removed; a
    ``.NAME.old-*`` backup holds the previous export, so it is put back when ``out`` is missing."""
    if not out.parent.is_dir():
        return
    pattern = _stale_name(out)
    for entry in sorted(out.parent.iterdir()):
        match = pattern.match(entry.name)
        if not match or not entry.is_dir() or entry.is_symlink():
            continue
        previous = entry / out.name
        if match.group(1) == "old" and previous.is_dir() and not out.exists():
            os.replace(previous, out)
            log(f"zoo: restored the previous export {out} from an interrupted export")
        shutil.rmtree(entry, ignore_errors=True)


def _usual_permissions(path: Path) -> None:
    """Temporary files and directories are private (0600/0700); an export is as readable as any file."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


@contextlib.contextmanager
def staged_directory(out: Path) -> Iterator[Path]:
    """A temporary directory beside ``out`` that replaces it on success and vanishes on failure."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as error:
        raise UsageError(f"--out {out}: cannot create it ({error.strerror or error}); choose another --out") from None
    _usual_permissions(stage)
    try:
        yield stage
        zio.replace_directory(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _versions() -> dict[str, str]:
    import onnx

    found = {"zoo": zoo_version, "zoo-export": export_version, "torch": torch.__version__, "onnx": onnx.__version__,
             "python": platform.python_version()}
    for distribution in ("onnxscript", "onnxruntime-gpu", "onnxruntime"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[distribution] = metadata.version(distribution)
    return found


class DataSamples:
    """Real graph inputs from the model's embedded data, loaded once; None (with a note) when unavailable."""

    def __init__(self, runner: TorchRunner) -> None:
        self.runner = runner
        self._data: TrainingData | None = None
        self.problem: str | None = None

    def data(self) -> TrainingData | None:
        if self._data is None and self.problem is None:
            try:
                self._data = self.runner.recipe.load_data(DataSource(limit=DATA_LIMIT))
            except NotImplementedError:
                self.problem = "the recipe has no load_data"
            except Exception as error:  # validation goes on with random inputs, and says why
                self.problem = f"its data could not be loaded ({type(error).__name__}: {error})"
        return self._data

    def inputs(self, graph: str, batch: int) -> tuple[torch.Tensor, ...] | None:
        data = self.data()
        if data is None:
            return None
        with torch.no_grad():
            tensors = self.runner.recipe.data_inputs(graph, data, batch, self.runner.networks)
        return None if tensors is None else tuple(t.detach().float().cpu().contiguous() for t in tensors)


def _validate_graph(stage: Path, graph: GraphSpec, files: dict[str, ExportedFile], runner: TorchRunner,
                    samples: DataSamples, seed: int) -> tuple[list[GraphResult], list[str]]:
    recipe = runner.recipe
    sets, notes = input_sets(
        graph.name,
        lambda batch: recipe.example_inputs(graph.name, batch, torch.Generator().manual_seed(seed + batch)),
        lambda batch: samples.inputs(graph.name, batch))
    if samples.problem and notes:
        notes = [f"{graph.name}: no data inputs, {samples.problem}"]
    references = {index: runner.run(graph.name, *item.tensors) for index, item in enumerate(sets)}
    devices = ["cpu", "cuda"] if gpu_available() else ["cpu"]
    results = []
    for precision, exported in files.items():
        for device in devices:
            settings = SessionSettings(device=device, precision=precision)
            result = validate_file(stage / exported.path.name, graph, precision, tolerance(graph, precision),
                                   settings, sets, references)
            if result.cpu_nodes:
                ops = ", ".join(sorted({node["op"] for node in result.cpu_nodes}))
                notes.append(f"{graph.name} ({precision}) on {result.provider}: {len(result.cpu_nodes)} nodes ran on "
                             f"the CPU ({ops}); see cpu_nodes in {MANIFEST}")
            results.append(result)
    return results, notes


def _file_record(exported: ExportedFile) -> dict[str, Any]:
    return {"file": exported.path.name, "sha256": file_sha256(exported.path), "bytes": exported.path.stat().st_size,
            "exporter": exported.exporter, "exporter_note": exported.note, "io_dtype": exported.io_dtype,
            "dynamic_axes": list(exported.dynamic_axes)}


def _export_files(runner: TorchRunner, model: RegisteredModel, graph: GraphSpec, stage: Path,
                  options: ExportOptions) -> dict[str, ExportedFile]:
    """The graph's fp32 file (and fp16 file) in ``stage``, by precision."""
    module = runner.module(graph.name)
    files: dict[str, ExportedFile] = {}
    for precision in ("fp32", "fp16") if options.fp16 or options.fp16_io else ("fp32",):
        suffix = ".onnx" if precision == "fp32" else ".fp16.onnx"
        files[precision] = export_model_graph(model, runner.recipe, module, graph, stage / f"{graph.name}{suffix}",
                                              precision, options.opset, float_io=not options.fp16_io,
                                              seed=options.seed)
        options.log(f"zoo: exported {graph.name} ({precision}, {files[precision].exporter} exporter)")
    return files


def _manifest(model: RegisteredModel, runner: TorchRunner, options: ExportOptions, entries: dict[str, Any],
              results: list[GraphResult], notes: list[str]) -> dict[str, Any]:
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "model": model.name,
        "plugin": {"distribution": model.distribution, "version": model.version},
        "zoo_version": zoo_version, "versions": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": {"checkpoint": str(runner.checkpoint), "sha256": file_sha256(runner.checkpoint)},
        "config": runner.config, "opset": options.opset, "batch_axis": "N", "graphs": entries,
        "validation": {"performed": options.validate, "results": [r.as_json() for r in results], "notes": notes},
    }


def _report(results: list[GraphResult], notes: list[str], out: Path, log: Callable[[str], None]) -> None:
    """Print the validation table and notes; a failed graph raises (and the staged export is dropped)."""
    if results:
        log(format_table(results))
    for note in notes:
        log(f"zoo: note: {note}")
    failed = [r for r in results if not r.passed]
    if failed:
        names = ", ".join(sorted({f"{r.graph} ({r.precision}, {r.provider})" for r in failed}))
        kept = f"{out} is unchanged" if out.exists() else "nothing was written"
        raise ZooError(f"export validation failed for {names}: onnxruntime differs from PyTorch beyond the "
                       f"tolerance (table above); {kept}. Fix the graph or widen GraphSpec.tolerance")


def export_model(model: RegisteredModel, options: ExportOptions) -> Path:
    """Export, check and validate every selected graph of ``model``; returns the export directory."""
    if options.run is not None and options.checkpoint is not None:
        raise UsageError("pass either --run or --checkpoint, not both")
    given = options.out or Path("exports") / model.name
    out = resolve_out(given)
    remove_stale_temporaries(out, options.log)
    check_target(out, options.force)
    graphs = select_graphs(model.spec, options.graphs)
    runner = TorchRunner.from_loaded(load_model(model, run=options.run, checkpoint=options.checkpoint, device="cpu"))
    samples = DataSamples(runner)
    with staged_directory(out) as stage:
        entries: dict[str, Any] = {}
        results: list[GraphResult] = []
        notes: list[str] = []
        quality: list[dict[str, Any]] = []
        int8_inputs: Int8Data | None = None
        for graph in graphs:
            record = graph_json(graph, runner.config, config_gflops(runner.recipe, graph, runner.module(graph.name)))
            files = _export_files(runner, model, graph, stage, options)
            entries[graph.name] = {**record, **_file_record(files["fp32"]),
                                   "fp16": _file_record(files["fp16"]) if "fp16" in files else None}
            if options.validate:
                graph_results, graph_notes = _validate_graph(stage, graph, files, runner, samples, options.seed)
                results.extend(graph_results)
                notes.extend(graph_notes)
            if options.int8 is not None:
                int8_inputs = int8_inputs or Int8Data(runner.recipe, runner.networks, options.int8)
                entries[graph.name]["int8"], rows, entries[graph.name]["int8_search"] = export_int8(
                    stage, graph, stage / files["fp32"].path.name, runner, int8_inputs, options.int8, options.log)
                quality.extend(rows)
            if options.aoti:
                from zoo_export.aoti import export_aoti

                entries[graph.name]["aoti"] = export_aoti(stage, graph, runner, options.trace_batch, options.seed,
                                                          options.log)
            if options.executorch:
                from zoo_export.executorch import export_executorch

                int8_pair = (int8_inputs, options.int8) if (int8_inputs is not None and options.int8
                                                            and options.executorch_int8) else None
                (entries[graph.name]["executorch"], entries[graph.name]["executorch_int8"],
                 rows) = export_executorch(stage, graph, runner, options.trace_batch, options.seed, int8_pair,
                                           options.log)
                quality.extend(rows)
        manifest = _manifest(model, runner, options, entries, results, notes)
        if options.int8 is not None:
            manifest["validation"]["quality"] = quality  # int8 task-quality figures, kept or not
        zio.write_json(stage / MANIFEST, manifest)
        _usual_permissions(stage / MANIFEST)
        _report(results, notes, out, options.log)
    return given
