"""`zoo export --format aoti` and the ``aoti`` runtime, on tiny_vae (compiled once per module: AOTInductor
takes seconds per graph even at this size)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from zoo_export.aoti import open_aoti_export
from zoo_export.manifest import MANIFEST, tolerance
from zoo_export.pipeline import ExportOptions, export_model
from zoo_export_testing import (
    FIRST_PARTY_NETWORKS,
    Exported,
    assert_clean_exit,
    assert_one_line_error,
    blocked_process,
    compare_pngs,
    generate,
    zoo,
    zoo_with_modules_blocked,
)

from zoo_core.checkpoint import file_sha256
from zoo_core.runtime import RuntimeSource, TorchRunner


@pytest.fixture(scope="module")
def aoti_export(tiny: Exported, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_vae's run exported with --format aoti (both graphs compiled)."""
    out = tmp_path_factory.mktemp("aoti") / "export"
    return export_model(tiny.model, ExportOptions(run=tiny.run, out=out, aoti=True, log=lambda line: None))


def test_manifest_lists_each_package_with_sha256_compile_time_and_validation(aoti_export: Path) -> None:
    manifest = json.loads((aoti_export / MANIFEST).read_text())
    for name, graph in manifest["graphs"].items():
        entry = graph["aoti"]
        assert entry["file"] == f"{name}.pt2" and entry["sha256"] == file_sha256(aoti_export / entry["file"])
        assert entry["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
        assert entry["compile_seconds"] > 0 and entry["dynamic_batch"]
        assert entry["validation"]["passed"] and entry["validation"]["rel_l2"] <= entry["validation"]["tolerance"]


def test_every_graph_loads_and_matches_eager_at_a_new_batch_size(tiny: Exported, aoti_export: Path) -> None:
    runner = open_aoti_export(aoti_export, tiny.model.name, "auto")
    eager = TorchRunner(tiny.model, RuntimeSource(run=tiny.run, device="cpu"))
    for graph in tiny.model.spec.graphs:
        inputs = eager.recipe.example_inputs(graph.name, 5, torch.Generator().manual_seed(4))
        for got, want in zip(runner.run(graph.name, *inputs), eager.run(graph.name, *inputs), strict=True):
            assert got.shape == want.shape
            # what the export promises (relative L2 within the graph's fp32 tolerance), not an elementwise bound:
            # compiled kernels sum in another order, and one element's cancellation may exceed any fixed rtol
            limit = tolerance(graph, "fp32")
            assert float((got - want).norm()) <= limit * float(want.norm()), graph.name


def test_every_task_runs_through_the_aoti_runtime_like_torch(tiny: Exported, aoti_export: Path, tmp_path: Path,
                                                             install_host) -> None:
    install_host(tiny.host)
    for task in tiny.model.spec.tasks:
        torch_out, aoti_out = tmp_path / task.name / "torch", tmp_path / task.name / "aoti"
        generate(tiny.model.name, task.name, [], ["--runtime", "torch", "--run", tiny.run], torch_out)
        generate(tiny.model.name, task.name, [], ["--runtime", "aoti", "--export", aoti_export], aoti_out)
        assert not compare_pngs(torch_out, aoti_out), task.name


def test_the_runtime_runs_the_packages_without_the_plugin_s_code(tiny: Exported, aoti_export: Path) -> None:
    """In a fresh process where importing the plugin's module (networks and recipe) fails, every graph runs."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["zoo_export_tiny"] = None  # any import of the plugin's code now raises ImportError
        import torch
        from zoo_export.aoti import open_aoti_export
        runner = open_aoti_export({str(aoti_export)!r}, {tiny.model.name!r}, "cpu")
        for graph in runner.export.graph_names:
            inputs = [torch.rand(3, *tensor.resolve(runner.config)[1:]) for tensor in runner.graph_spec(graph).inputs]
            print(graph, [tuple(o.shape) for o in runner.run(graph, *inputs)])
        assert not [name for name in sys.modules if "tiny" in name and sys.modules[name] is not None]
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == len(tiny.model.spec.graphs) and all("[(3," in line for line in lines), done.stdout


def test_zoo_generate_runs_every_task_through_aoti_with_the_networks_module_blocked(
        tiny: Exported, aoti_export: Path, tmp_path: Path) -> None:
    """`zoo generate ... --runtime aoti` in a fresh process that cannot import tiny_vae's networks module."""
    commands = [["generate", tiny.model.name, task.name, "--runtime", "aoti", "--export", aoti_export,
                 "--device", "cpu", "--out", tmp_path / task.name] for task in tiny.model.spec.tasks]
    done = zoo_with_modules_blocked({"zoo_export_tiny_networks"}, commands, tiny=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "imported: []" in done.stdout, done.stdout
    for task in tiny.model.spec.tasks:
        assert list((tmp_path / task.name).rglob("*.png")), f"{task.name} wrote no PNG: {done.stderr}"


def test_first_party_recipes_tasks_and_data_load_without_their_networks_modules() -> None:
    """What an exported runtime builds for a task (the recipe, the task functions, the data) never imports a
    first-party networks module (test_int8.py runs their tasks that way end to end)."""
    script = textwrap.dedent(f"""
        from zoo_core.config import resolve_config
        from zoo_core.models import build_recipe
        from zoo_core.plugins import get_host
        from zoo_core.recipe import DataSource
        from zoo_core.spec import load_object

        for name in {sorted(FIRST_PARTY_NETWORKS)!r}:
            model = get_host().models.get(name)
            if model is None:
                print("not installed:", name)
                continue
            recipe = build_recipe(model, resolve_config(model.spec, model.spec.card_preset, {{}}))
            for task in model.spec.tasks:
                load_object(task.function)
            data = recipe.load_data(DataSource(limit=8))
            print("loaded:", name, type(data.held_out()).__name__)
        print("imported:", sorted(name for name in sys.modules if name in BLOCKED))
    """)
    done = blocked_process(set(FIRST_PARTY_NETWORKS.values()), script)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "imported: []" in done.stdout, done.stdout
    if "loaded:" not in done.stdout:
        pytest.skip("no first-party plugin is installed")


@pytest.mark.parametrize("damage", ["truncated", "tampered", "truncated with its sha256 updated"])
def test_a_damaged_package_is_one_line_and_a_non_zero_exit(tiny: Exported, aoti_export: Path, tmp_path: Path,
                                                           install_host, damage: str) -> None:
    install_host(tiny.host)
    export = tmp_path / "export"
    shutil.copytree(aoti_export, export)
    package = export / "decoder.pt2"
    data = package.read_bytes()
    package.write_bytes(data[: len(data) // 2] if damage.startswith("truncated") else
                        data[:1000] + bytes(b ^ 0xFF for b in data[1000:1064]) + data[1064:])
    if damage.endswith("updated"):
        manifest = json.loads((export / MANIFEST).read_text())
        manifest["graphs"]["decoder"]["aoti"]["sha256"] = file_sha256(package)
        (export / MANIFEST).write_text(json.dumps(manifest))
    result = zoo("generate", tiny.model.name, "sample", "--runtime", "aoti", "--export", export, "--device", "cpu",
                 "--out", tmp_path / "out")
    fragment = "not a loadable AOTInductor package" if damage.endswith("updated") else "sha256"
    assert_one_line_error(result, 1, "decoder.pt2", fragment)


def test_an_export_without_packages_is_refused_in_one_line(tiny: Exported, tmp_path: Path, install_host) -> None:
    install_host(tiny.host)
    result = zoo("generate", tiny.model.name, "sample", "--runtime", "aoti", "--export", tiny.export,
                 "--device", "cpu", "--out", tmp_path / "out")
    assert_one_line_error(result, 1, "no AOTInductor packages", "--format aoti")
    assert_clean_exit(zoo("generate", tiny.model.name, "sample", "--runtime", "onnxruntime", "--export", tiny.export,
                          "--device", "cpu", "--out", tmp_path / "ok"))
