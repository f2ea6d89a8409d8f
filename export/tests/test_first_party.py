"""Every installed zoo model exports, validates, and runs every task alike on torch, onnxruntime and aoti.

Each model trains a tiny run (quick preset shrunk with overrides, 2 steps), is exported with
validation by the same code path as `zoo export` (ONNX and AOTInductor), then each of its tasks runs through
`zoo generate` on torch and onnxruntime and the PNGs are compared, and through the Python API
(``zoo.load(...)``) on torch, onnxruntime and aoti, whose results' images are compared. A first-party model whose
distribution is installed must be registered and pass (the test fails rather than skips);
an absent distribution skips with the reason.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from zoo_export.pipeline import ExportOptions, export_model
from zoo_export_testing import PIXEL_TOLERANCE, make_host, task_parity, train_tiny

from zoo_core.plugins import PluginHost
from zoo_core.runtime import dynamic_axes

TESTPLUGIN_SOURCE = Path(__file__).resolve().parents[2] / "tests" / "plugins" / "zoo-testplugin"


def write_images(folder: Path, count: int = 3, size: int = 40, height: int | None = None) -> list[str]:
    """A few RGB PNG files (``size`` wide, ``height`` high) for tasks that translate image files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    paths = []
    for index in range(count):
        path = folder / f"input_{index}.png"
        Image.fromarray(rng.integers(0, 256, (height or size, size, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


@dataclass(frozen=True)
class Model:
    """How to exercise one model cheaply: config overrides and each task's extra arguments."""

    distribution: str
    overrides: Mapping[str, Any]
    task_args: Mapping[str, Callable[[Path], list[str]]] = field(default_factory=dict)
    #: each task's keyword arguments from Python (zoo.load(...).TASK(**kwargs))
    python_args: Mapping[str, Callable[[Path], dict[str, Any]]] = field(default_factory=dict)
    source: Path | None = None  # a plugin registered from its source tree rather than installed
    plugin_module: str = ""


MODELS = {
    "ae_mnist": Model("zoo-ae-mnist", {"embedded_items": 64, "h_dim": 16, "z_dim": 4, "batch_size": 16},
                      {"reconstruct": lambda d: ["--n", "4"], "decode": lambda d: ["--n", "4"]},
                      {"reconstruct": lambda d: {"n": 4}, "decode": lambda d: {"n": 4}}),
    "vae_faces": Model("zoo-vae-faces", {"image_size": 32, "latent_dim": 4, "portraits": 48, "batch_size": 8},
                       {"sample": lambda d: ["--n", "4"], "reconstruct": lambda d: ["--n", "4"],
                        "interpolate": lambda d: ["0", "1", "--steps", "3"],
                        "arithmetic": lambda d: ["glasses - ~glasses", "--group-size", "1"]},
                       {"sample": lambda d: {"n": 4}, "reconstruct": lambda d: {"n": 4},
                        "interpolate": lambda d: {"a": 0, "b": "1", "steps": 3},
                        "arithmetic": lambda d: {"expression": "glasses - ~glasses", "group_size": 1}}),
    "cyclegan_hair": Model("zoo-cyclegan-hair", {"image_size": 32, "load_size": 32, "features": 4, "res_blocks": 1,
                                                 "d_features": 4, "portraits": 24, "val_fraction": 0.25},
                           {"translate": lambda d: [*write_images(d / "inputs"), "--batch-size", "2"],
                            "roundtrip": lambda d: ["--n", "2"]},
                           # 44×36, not the trained 32²: every runtime's generators take any height and width
                           {"translate": lambda d: {"images": write_images(d / "py_inputs", size=44, height=36),
                                                    "batch_size": 2},
                            "roundtrip": lambda d: {"n": 2}}),
    "testplugin_tiny": Model("zoo-testplugin", {}, {"reconstruct": lambda d: ["--count", "4"]},
                             {"reconstruct": lambda d: {"count": 4}},
                             source=TESTPLUGIN_SOURCE, plugin_module="zoo_testplugin.plugin"),
}


def installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def host_for(name: str, model: Model) -> PluginHost:
    """Installed entry points, plus the plugin from its source tree when it is not installed."""
    if model.source is None or installed(model.distribution):
        return make_host(entry_points=True)
    sys.path.insert(0, str(model.source))
    try:  # import every module while the source is on the path; the recipe and tasks load lazily later
        plugin = importlib.import_module(model.plugin_module)
        package = model.plugin_module.split(".")[0]
        for module in ("recipe", "tasks"):
            importlib.import_module(f"{package}.{module}")
    finally:
        sys.path.remove(str(model.source))
    return make_host((plugin, model.distribution, "source"), entry_points=True)


@pytest.mark.parametrize("name", list(MODELS))
def test_model_exports_validates_and_runs_every_task_alike(name: str, tmp_path: Path, install_host) -> None:
    model = MODELS[name]
    if model.source is None and not installed(model.distribution):
        pytest.skip(f"{model.distribution} is not installed")
    host = host_for(name, model)
    record = host.records.get(model.distribution)
    assert name in host.models, f"{model.distribution} is installed but registered no {name}: " \
                                f"{record.errors if record else 'no plugin record'}"
    install_host(host)
    registered = host.models[name]
    run = train_tiny(registered, tmp_path / "run", model.overrides)
    export = export_model(registered, ExportOptions(run=run, out=tmp_path / "export", aoti=True,
                                                    log=lambda line: None))

    from zoo_export_testing import manifest_of

    manifest = manifest_of(export)
    assert list(manifest["graphs"]) == [g.name for g in registered.spec.graphs]
    results = manifest["validation"]["results"]
    assert {r["graph"] for r in results} == set(manifest["graphs"])
    assert all(r["passed"] for r in results), results
    for graph in registered.spec.graphs:  # fully convolutional graphs: any height and width in every format
        any_size = [2, 3] if dynamic_axes(registered.spec, graph.name) else []
        entry = manifest["graphs"][graph.name]
        assert entry["dynamic_axes"] == any_size and entry["aoti"]["dynamic_axes"] == any_size, graph.name
    for task in registered.spec.tasks:
        arguments = model.task_args.get(task.name, lambda folder: [])(tmp_path / task.name)
        problems = task_parity(name, task.name, arguments, run, export, tmp_path / task.name / "out")
        assert not problems, f"{name} {task.name}: {problems}"
    for task in registered.spec.tasks:
        kwargs = model.python_args.get(task.name, lambda folder: {})(tmp_path / task.name)
        problems = python_parity(name, task.name, kwargs, run, export)
        assert not problems, f"{name} {task.name} from Python: {problems}"


def python_parity(name: str, task: str, kwargs: dict[str, Any], run: Path, export: Path) -> list[str]:
    """The task through zoo.load on torch, onnxruntime and aoti: the same images within the PNG tolerance."""
    import zoo

    results = {runtime: zoo.load(name, run=run if runtime == "torch" else None,
                                 export=export if runtime != "torch" else None, runtime=runtime,
                                 device="cpu").run(task, seed=3, **kwargs)
               for runtime in ("torch", "onnxruntime", "aoti")}
    problems = []
    reference = results["torch"]
    if not reference.images:
        return ["the task returned no image"]
    for runtime, result in results.items():
        if len(result.images) != len(reference.images) or result.names != reference.names:
            problems.append(f"{runtime}: {len(result.images)} images named {result.names[:3]} vs torch's "
                            f"{len(reference.images)} named {reference.names[:3]}")
            continue
        for index, (got, want) in enumerate(zip(result.images, reference.images, strict=True)):
            worst = int(np.abs(got.astype(int) - want.astype(int)).max()) if got.shape == want.shape else -1
            if not 0 <= worst <= PIXEL_TOLERANCE:
                problems.append(f"{runtime}: image {index} differs from torch's by {worst} levels "
                                f"(shape {got.shape} vs {want.shape})")
    return problems
