"""Streaming tasks on Ray Data, past one machine (``pip install 'zoo-core[ray]'``).

:class:`TaskMapper` is the callable class a user passes to ``ray.data.Dataset.map_batches``: each Ray worker
loads the model once (any registered runtime: an export on ``onnxruntime``, a run on ``torch``) and maps batches
of images to the task's outputs::

    ds = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)
    out = ds.map_batches(TaskMapper, fn_constructor_kwargs={"model": "cyclegan_hair", "task": "translate",
                         "runtime": "onnxruntime", "export": "exports/cyclegan_hair"}, batch_size=16, concurrency=4)

A batch holds ``bytes`` (encoded images), ``path`` (files the workers can read) or ``image`` (HWC uint8 arrays,
as ``ray.data.read_images`` gives); ``name`` (optional) names the outputs. The mapper returns ``name`` and ``png``
(the encoded output), or, with ``out=DIR`` (a folder every worker can write), writes each PNG there atomically
and returns ``name`` and ``written``. ``zoo generate ... --engine ray [--address ADDR]`` runs the same mapper over
chunks the driver forms exactly as the local engine does, so the files are the same, and journals what comes back.
"""

from __future__ import annotations

import base64
import json
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo_core.errors import UsageError, ZooError
from zoo_core.inputs import ImageInput


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--engine ray needs Ray: pip install 'zoo-core[ray]'") from None
    return ray


class TaskMapper:
    """``map_batches`` callable class: a streaming task of a model on one runtime, loaded once per worker."""

    def __init__(self, model: str, task: str, runtime: str = "onnxruntime", *, export: str | None = None,
                 run: str | None = None, checkpoint: str | None = None, weights: str | None = None,
                 precision: str | None = None, device: str = "auto", params: Mapping[str, Any] | None = None,
                 seed: int = 0, out: str | None = None, threads: int | None = None) -> None:
        from zoo_core.library import open_model
        from zoo_core.recipe import DataSource
        from zoo_core.runtime import RuntimeSource
        from zoo_core.streaming import ChunkRunner
        from zoo_core.threads import apply_threads

        if threads:
            os.environ.setdefault("ZOO_ORT_THREADS", str(threads))
        os.environ.setdefault("ZOO_ORT_SPIN", "0")  # idle session threads sleep, leaving cores to decode and write
        apply_threads(threads)
        source = RuntimeSource(run=_path(run), checkpoint=_path(checkpoint), export=_path(export), device=device,
                               precision=precision, weights=weights)
        self.model = open_model(model, runtime, source, DataSource(), quiet=True)
        self.chunks = ChunkRunner(self.model, task, params or {}, seed)
        self.out = Path(out) if out else None

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        inputs = _batch_inputs(batch)
        chunk = self.chunks(inputs, picture=False)
        names, pngs, written = [], [], []
        from zoo_core.results import encode_png

        for _, result, index in chunk.outputs:
            name = result.names[index]
            data = encode_png(result.images[index])
            names.append(name)
            if self.out is not None:
                _write(self.out / name, data)
                written.append(True)
            else:
                pngs.append(data)
        for position, _ in chunk.failed:
            names.append(f"!{inputs[position].name}")  # an unreadable input: no output, marked
            written.append(False) if self.out is not None else pngs.append(b"")
        if self.out is not None:
            return {"name": np.array(names, dtype=object), "written": np.array(written)}
        return {"name": np.array(names, dtype=object), "png": np.array(pngs, dtype=object)}


def _path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


def _batch_inputs(batch: Mapping[str, Any]) -> list[ImageInput]:
    count = len(next(iter(batch.values())))
    names = list(batch["name"]) if "name" in batch else None
    if "bytes" in batch:
        sources: list[Any] = [bytes(b) for b in batch["bytes"]]
    elif "image" in batch:
        sources = [np.asarray(image) for image in batch["image"]]
    elif "path" in batch:
        sources = [Path(str(p)) for p in batch["path"]]
    else:
        raise ZooError(f"a batch for TaskMapper holds bytes, image or path; got columns {sorted(batch)}")
    if names is None:
        paths = list(batch["path"]) if "path" in batch else [f"image{i}" for i in range(count)]
        names = [Path(str(p)).stem for p in paths]
    return [ImageInput(str(name), source) for name, source in zip(names, sources, strict=True)]


def _write(path: Path, data: bytes) -> None:
    from zoo_core import io as zio

    zio.write_bytes(path, data)


class _ChunkMapper(TaskMapper):
    """What `--engine ray` maps: one row per chunk (the driver's chunks, so outputs match the local engine's)."""

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        from zoo_core.results import check_output_file, encode_png

        assert self.out is not None
        keys, names, status = [], [], []
        for text, first, force in zip(batch["chunk"], batch["first"], batch["force"], strict=True):
            rows = json.loads(str(text))
            inputs = [ImageInput(name, Path(path) if path is not None else base64.b64decode(data))
                      for _, name, path, data in rows]
            chunk = self.chunks(inputs, picture=bool(first))
            for position, result, index in chunk.outputs:
                if first and result.picture is not None and index == 0 and position == chunk.outputs[0][0]:
                    check_output_file(self.out / result.filename, bool(force))
                    _write(self.out / result.filename, encode_png(result.picture))
                path = self.out / result.names[index]
                check_output_file(path, bool(force))
                _write(path, encode_png(result.images[index]))
                keys.append(rows[position][0])
                names.append(result.names[index])
                status.append("written")
            for position, message in chunk.failed:
                keys.append(rows[position][0])
                names.append(message)
                status.append("failed")
        return {"key": np.array(keys, dtype=object), "name": np.array(names, dtype=object),
                "status": np.array(status, dtype=object)}


def stream_on_ray(model_name: str, task_name: str, runtime: str, source: Any, images: Sequence[Any],
                  values: dict[str, Any], out: Path, options: Any, seed: int = 0,
                  address: str | None = None, workers: int | None = None) -> tuple[Any, str]:
    """`zoo generate ... --engine ray`: the driver enumerates, skips what the journal says is done and forms the
    chunks; Ray actors (one CPU each, ``workers`` of them: default every CPU of the cluster) run and write them;
    the driver journals each output as it comes back."""
    ray = _ray()
    from zoo_core.library import open_model
    from zoo_core.recipe import DataSource
    from zoo_core.streaming import (
        ChunkRunner,
        Inputs,
        Journal,
        StreamReport,
        complete_png,
        prepare_out,
        unique_stems,
    )

    model = open_model(model_name, runtime, source, DataSource(), quiet=True)
    chunks = ChunkRunner(model, task_name, values, seed)  # checks the parameters before Ray starts
    batch = int(chunks.bound.get("batch_size", options.batch_size))
    target = prepare_out(out)
    journal = Journal(target, chunks.fingerprint(), rank="ray")  # type: ignore[arg-type]
    done = {} if options.overwrite else journal.done()
    report = StreamReport()
    rows: list[dict[str, Any]] = []
    current: list[Any] = []
    block, first = -1, True
    for index, item, name in unique_stems(iter(Inputs([str(i) for i in images]))):
        if index // batch != block:
            if current:
                rows.append({"chunk": json.dumps(current), "first": first, "force": options.force})
                first = False
            current, block = [], index // batch
        outputs = done.get(item.key)
        if outputs and all(complete_png(target / o) for o in outputs):
            report.skipped += 1
            first = first and index != 0
            continue
        path = str(item.source) if isinstance(item.source, Path) else None
        data = None if path is not None else base64.b64encode(item.source or b"\0").decode()
        current.append([item.key, name, path, data])
    if current:
        rows.append({"chunk": json.dumps(current), "first": first, "force": options.force})
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Ray's own deprecated settings, nothing the user set
        _run_rows(ray, rows, model_name, task_name, runtime, source, values, seed, target, address, workers,
                  journal, report, options)
    report.seconds = time.monotonic() - started
    if report.failed:
        from zoo_core import io as zio
        from zoo_core.streaming import STATE_DIR

        zio.write_text(target / STATE_DIR / "failed.txt", "".join(f"{key}\n" for key in report.failed))
    cpus = int(ray.cluster_resources().get("CPU", 0)) if ray.is_initialized() else 0
    return report, f"Ray, {cpus} CPUs: {model.runner.description}"


def _run_rows(ray: Any, rows: list[dict[str, Any]], model_name: str, task_name: str, runtime: str, source: Any,
              values: dict[str, Any], seed: int, target: Path, address: str | None, workers: int | None,
              journal: Any, report: Any, options: Any) -> None:
    from zoo_core.streaming import Progress

    if rows:
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                # a private instance on this machine's loopback only, as many CPUs as it has
                ray.init(address="local", include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        actors = workers or max(1, min(len(rows), int(ray.cluster_resources().get("CPU", 1))))
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
        kwargs = {"model": model_name, "task": task_name, "runtime": runtime, "params": values, "seed": seed,
                  "out": str(target.resolve()), "threads": 1,
                  **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(source).items()}}
        mapped = dataset.map_batches(_ChunkMapper, fn_constructor_kwargs=kwargs, batch_size=1, concurrency=actors,
                                     num_cpus=1)
        total = sum(len(json.loads(r["chunk"])) for r in rows) + report.skipped
        progress = Progress(total, options.progress)
        for row in mapped.iter_rows():
            if row["status"] == "written":
                journal.add(str(row["key"]), str(row["name"]))
                report.written += 1
            else:
                if options.strict:
                    journal.close()
                    raise ZooError(f"{row['name']} (--strict stops at the first unreadable input)")
                report.failed.append(str(row["key"]))
            progress.update(report.written, report.skipped, len(report.failed))
        journal.close()
        progress.update(report.written, report.skipped, len(report.failed), final=True)
