"""`zoo export --format executorch` and the ``executorch`` runtime: tiny_vae (lowered once per module), and every
first-party model's tasks run from ``.pte`` programs in a process that cannot import their networks."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("executorch.runtime", reason="ExecuTorch is not installed (pip install 'zoo-export[executorch]')")

from test_first_party import MODELS, host_for, installed
from zoo_export.executorch import Program, compile_program, open_executorch_export
from zoo_export.manifest import MANIFEST, load_export
from zoo_export.pipeline import ExportOptions, export_model
from zoo_export.quantize import Int8Options
from zoo_export_testing import (
    FIRST_PARTY_NETWORKS,
    Exported,
    assert_one_line_error,
    compare_pngs,
    generate,
    train_tiny,
    zoo,
    zoo_with_modules_blocked,
)

from zoo_core.checkpoint import file_sha256
from zoo_core.runtime import RuntimeSource, TorchRunner


def _untimed(paths: list[Path], feeds: object) -> list[float]:
    return [1.0] * len(paths)  # the ONNX int8 search's speed check is not what these tests are about


@pytest.fixture(scope="module")
def et_export(tiny: Exported, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """tiny_vae's run exported with --format executorch --int8 (both graphs, both precisions), and its log."""
    out = tmp_path_factory.mktemp("executorch") / "export"
    lines: list[str] = []
    int8 = Int8Options(samples=16, method="minmax", keep_slower=True, timer=_untimed, progress=False)
    export_model(tiny.model, ExportOptions(run=tiny.run, out=out, executorch=True, int8=int8, log=lines.append))
    return out, lines


def test_manifest_lists_each_program_with_sha256_validation_and_quality(et_export: tuple[Path, list[str]]) -> None:
    export, lines = et_export
    manifest = json.loads((export / MANIFEST).read_text())
    for name, graph in manifest["graphs"].items():
        entry = graph["executorch"]
        assert entry["file"] == f"{name}.pte" and entry["sha256"] == file_sha256(export / entry["file"])
        assert entry["backend"] == "xnnpack" and entry["max_batch"] >= 8
        assert entry["validation"]["passed"] and entry["validation"]["rel_l2"] <= entry["validation"]["tolerance"]
        int8 = graph["executorch_int8"]
        assert int8 is not None, lines
        assert int8["file"] == f"{name}.int8.pte" and int8["sha256"] == file_sha256(export / int8["file"])
        assert int8["calibration"]["samples"] == 16 and int8["calibration"]["activations"] == "int8"
        assert int8["quality"] and all(q["passed"] for q in int8["quality"])
    rows = [row for row in manifest["validation"]["quality"] if row.get("format") == "executorch"]
    assert {row["graph"] for row in rows} == set(manifest["graphs"]) and all(row["kept"] for row in rows)
    assert any("executorch xnnpack int8" in line for line in lines), lines
    load_export(export)  # every .pte is listed and hash-checked like the .onnx files


def test_every_graph_matches_eager_in_fp32_and_stays_close_in_int8(tiny: Exported,
                                                                    et_export: tuple[Path, list[str]]) -> None:
    eager = TorchRunner(tiny.model, RuntimeSource(run=tiny.run, device="cpu"), quiet=True)
    fp32 = open_executorch_export(et_export[0], tiny.model.name, "fp32")
    int8 = open_executorch_export(et_export[0], tiny.model.name, "int8")
    for graph in tiny.model.spec.graphs:
        inputs = eager.recipe.example_inputs(graph.name, 5, torch.Generator().manual_seed(4))
        want = eager.run(graph.name, *inputs)
        for got, reference in zip(fp32.run(graph.name, *inputs), want, strict=True):
            torch.testing.assert_close(got, reference, rtol=1e-4, atol=1e-5)
        for got, reference in zip(int8.run(graph.name, *inputs), want, strict=True):
            assert got.shape == reference.shape
            assert float((got - reference).norm() / reference.norm()) < 0.2


def test_a_batch_above_the_planned_maximum_runs_in_slices(tmp_path: Path) -> None:
    module = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.Tanh()).eval()
    path = tmp_path / "conv.pte"
    compile_program(module, (torch.rand(2, 2, 6, 6),), path, max_batch=4)
    inputs = torch.rand(11, 2, 6, 6)
    (got,) = Program(path, max_batch=4).run([inputs])
    torch.testing.assert_close(got, module(inputs).detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_every_task_runs_through_executorch_with_the_networks_module_blocked(
        tiny: Exported, et_export: tuple[Path, list[str]], tmp_path: Path, install_host, precision: str) -> None:
    """`zoo generate ... --runtime executorch` in a fresh process that cannot import tiny_vae's networks module;
    fp32 writes the same pictures as torch."""
    install_host(tiny.host)
    commands = [["generate", tiny.model.name, task.name, "--runtime", "executorch", "--precision", precision,
                 "--export", et_export[0], "--device", "cpu", "--seed", "3", "--out", tmp_path / task.name / "et"]
                for task in tiny.model.spec.tasks]
    done = zoo_with_modules_blocked({"zoo_export_tiny_networks"}, commands, tiny=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "imported: []" in done.stdout, done.stdout
    for task in tiny.model.spec.tasks:
        assert list((tmp_path / task.name / "et").rglob("*.png")), f"{task.name} wrote no PNG: {done.stderr}"
        if precision == "fp32":
            generate(tiny.model.name, task.name, [], ["--runtime", "torch", "--run", tiny.run],
                     tmp_path / task.name / "torch")
            assert not compare_pngs(tmp_path / task.name / "torch", tmp_path / task.name / "et"), task.name


@pytest.mark.parametrize("name", list(FIRST_PARTY_NETWORKS))
def test_first_party_tasks_run_on_the_edge_runtimes_without_their_networks(name: str, tmp_path: Path,
                                                                           install_host) -> None:
    """Each first-party model: a tiny run exported with --format executorch (and ONNX int8), then every task through
    ``--runtime executorch`` and, when zoo-openvino is installed, ``--runtime openvino`` (fp32 and int8) on the same
    export, in one process that cannot import its networks."""
    model = MODELS[name]
    if not installed(model.distribution):
        pytest.skip(f"{model.distribution} is not installed")
    host = host_for(name, model)
    install_host(host)
    registered = host.models[name]
    run = train_tiny(registered, tmp_path / "run", model.overrides)
    lines: list[str] = []
    int8 = Int8Options(samples=8, method="minmax", keep_slower=True, timer=_untimed, progress=False)
    # int8 programs are tested on tiny_vae; here the .int8.onnx files feed openvino's int8 runs
    export = export_model(registered, ExportOptions(run=run, out=tmp_path / "export", executorch=True, int8=int8,
                                                    executorch_int8=False, validate=False, log=lines.append))
    graphs = json.loads((export / MANIFEST).read_text())["graphs"].values()
    assert all(graph["executorch"]["validation"]["passed"] for graph in graphs)
    runs = [("executorch", "fp32")]
    if all(graph["executorch_int8"] for graph in graphs):
        runs.append(("executorch", "int8"))
    if installed("zoo-openvino"):
        runs += [("openvino", "fp32")] + ([("openvino", "int8")] if all(graph["int8"] for graph in graphs) else [])
    extra = {task.name: model.task_args.get(task.name, lambda folder: [])(tmp_path / task.name)
             for task in registered.spec.tasks}
    commands = [["generate", name, task.name, *extra[task.name], "--runtime", runtime, "--precision", precision,
                 "--export", export, "--device", "cpu", "--out", tmp_path / runtime / precision / task.name]
                for runtime, precision in runs for task in registered.spec.tasks]
    done = zoo_with_modules_blocked({FIRST_PARTY_NETWORKS[name]}, commands)
    assert done.returncode == 0 and "imported: []" in done.stdout, done.stderr[-2000:]
    for runtime, precision in runs:
        assert re.search(rf"\({runtime} .*{precision} on cpu", done.stderr), (runtime, precision, done.stderr)
        for task in registered.spec.tasks:
            assert list((tmp_path / runtime / precision / task.name).rglob("*.png")), \
                f"{name} {task.name} wrote no PNG on {runtime} {precision}"


@pytest.mark.parametrize("damage", ["truncated", "truncated with its sha256 updated"])
def test_a_damaged_program_is_one_line_and_a_non_zero_exit(tiny: Exported, et_export: tuple[Path, list[str]],
                                                           tmp_path: Path, install_host, damage: str) -> None:
    install_host(tiny.host)
    export = tmp_path / "export"
    shutil.copytree(et_export[0], export)
    program = export / "decoder.pte"
    program.write_bytes(program.read_bytes()[:200])
    if damage.endswith("updated"):
        manifest = json.loads((export / MANIFEST).read_text())
        manifest["graphs"]["decoder"]["executorch"]["sha256"] = file_sha256(program)
        (export / MANIFEST).write_text(json.dumps(manifest))
    result = zoo("generate", tiny.model.name, "sample", "--runtime", "executorch", "--export", export,
                 "--device", "cpu", "--out", tmp_path / "out")
    fragment = "not a loadable ExecuTorch program" if damage.endswith("updated") else "sha256"
    assert_one_line_error(result, 1, "decoder.pte", fragment)


@pytest.mark.parametrize(("arguments", "fragments"), [
    (["--precision", "fp16"], ("--runtime executorch runs fp32 or int8", "fp16")),
    (["--device", "cuda"], ("runs on the CPU", "--device cuda")),
    (["--export", None], ("no ExecuTorch fp32 programs", "--format executorch")),
])
def test_what_the_runtime_cannot_run_is_one_line(tiny: Exported, et_export: tuple[Path, list[str]], tmp_path: Path,
                                                 install_host, arguments: list[str | None],
                                                 fragments: tuple[str, ...]) -> None:
    install_host(tiny.host)
    given = [str(tiny.export) if a is None else a for a in arguments]
    export = [] if "--export" in given else ["--export", str(et_export[0])]
    result = zoo("generate", tiny.model.name, "sample", "--runtime", "executorch", *export, *given,
                 "--out", tmp_path / "out")
    code = 2 if "--precision" in given or "--device" in given else 1
    assert_one_line_error(result, code, *fragments)
