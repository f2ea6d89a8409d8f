"""Model loading (zoo_core.models): device choice, which checkpoint a run loads, and no engine behind inference."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import torch
from torch import nn

from zoo_core.checkpoint import save_checkpoint
from zoo_core.errors import UsageError, ZooError
from zoo_core.models import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    build_model,
    checkpoint_file,
    choose_checkpoint,
    find_latest_run,
    load_model,
    select_device,
)
from zoo_core.plugins import RegisteredModel
from zoo_core.recipe import BestMetric, Recipe
from zoo_core.runtime import RuntimeSource, TorchRunner
from zoo_core.spec import GraphSpec, ModelSpec, NetworkSpec, Preset, TensorSpec

ROOT = Path(__file__).resolve().parents[1]


class PlainRecipe(Recipe):
    """One linear layer; declares no best checkpoint, like a GAN."""

    def build_networks(self) -> dict[str, nn.Module]:
        return {"net": nn.Linear(3, int(self.config["width"]))}

    def graph_module(self, graph: str, networks: Mapping[str, nn.Module]) -> nn.Module:
        return networks["net"]


class SelectingRecipe(PlainRecipe):
    best_checkpoint = BestMetric("loss", "min")


def spec(name: str, recipe: str) -> ModelSpec:
    return ModelSpec(name=name, summary="one linear layer", recipe=f"{__name__}:{recipe}",
                     networks=(NetworkSpec("net", "linear", 12),),
                     graphs=(GraphSpec("net", "x → y", (TensorSpec("x", ("N", 3)),),
                                       (TensorSpec("y", ("N", "width")),), gflops_per_item=0.0),),
                     presets=(Preset("quick", "tiny", {"width": 3}), Preset("book", "tiny", {"width": 3})))


PLAIN = RegisteredModel(spec("plain", "PlainRecipe"), "zoo-plain-test", "0.0")
SELECTING = RegisteredModel(spec("selecting", "SelectingRecipe"), "zoo-selecting-test", "0.0")


def write_checkpoint(path: Path, model: RegisteredModel, fill: float) -> Path:
    """A checkpoint whose weights are all ``fill``, so a test can tell which file loaded."""
    net = nn.Linear(3, 3)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.fill_(fill)
    config = {"width": 3, "preset": "quick"}
    return save_checkpoint(path, {"net": net}, {"model": model.name, "config": config})


def make_run(folder: Path, model: RegisteredModel, best: bool = True) -> Path:
    write_checkpoint(checkpoint_file(folder, "last"), model, 1.0)
    if best:
        write_checkpoint(checkpoint_file(folder, "best"), model, 2.0)
    return folder


def weight(loaded: object) -> float:
    return float(loaded.networks["net"].weight[0, 0].detach())  # type: ignore[attr-defined]


@pytest.fixture
def in_tmp(tmp_path: Path) -> Iterator[Path]:
    """Run in ``tmp_path``, where ``runs/`` is searched for the newest run."""
    saved = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(saved)


def test_select_device_resolves_auto_and_refuses_absent_devices() -> None:
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(UsageError, match="--device must be auto, cpu, cuda, mps"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            select_device("cuda")
        assert select_device("cuda", must_exist=False).type == "cuda"  # a benchmark skips each cell instead
        assert select_device("auto", choices=("cpu", "cuda")).type == "cpu"
    with pytest.raises(UsageError, match="--device must be auto, cpu, cuda, got 'mps'"):
        select_device("mps", choices=("cpu", "cuda"))


def test_a_recipe_with_a_selection_metric_loads_best_and_one_without_loads_last(tmp_path: Path) -> None:
    selecting = make_run(tmp_path / "selecting", SELECTING)
    plain = make_run(tmp_path / "plain", PLAIN)  # e.g. a run trained before recipes declared a metric
    choice = choose_checkpoint(SELECTING, run=selecting)
    assert choice.path.name == BEST_CHECKPOINT and choice.reason == "best by loss, min"
    choice = choose_checkpoint(PLAIN, run=plain)
    assert choice.path.name == LAST_CHECKPOINT and "declares no best metric" in choice.reason
    assert choose_checkpoint(SELECTING, run=selecting, which="last").path.name == LAST_CHECKPOINT
    assert choose_checkpoint(PLAIN, run=plain, which="best").path.name == BEST_CHECKPOINT


def test_best_falls_back_to_last_only_when_not_asked_for(tmp_path: Path) -> None:
    early = make_run(tmp_path / "early", SELECTING, best=False)
    assert choose_checkpoint(SELECTING, run=early).reason == f"last; no {BEST_CHECKPOINT} yet"
    with pytest.raises(ZooError, match=f"has no {BEST_CHECKPOINT} .the recipe selects by loss, min."):
        choose_checkpoint(SELECTING, run=early, which="best")
    with pytest.raises(ZooError, match="holds no checkpoint"):
        choose_checkpoint(SELECTING, run=tmp_path)


def test_checkpoint_and_run_together_are_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", PLAIN)
    with pytest.raises(UsageError, match="either --run or --checkpoint"):
        choose_checkpoint(PLAIN, run=run, checkpoint=checkpoint_file(run, "last"))


def test_the_newest_run_is_found_under_runs(in_tmp: Path) -> None:
    with pytest.raises(ZooError, match="no trained plain found under runs/plain"):
        choose_checkpoint(PLAIN)
    older = make_run(in_tmp / "runs" / "plain" / "older", PLAIN, best=False)
    newer = make_run(in_tmp / "runs" / "plain" / "newer", PLAIN, best=False)
    os.utime(checkpoint_file(older, "last"), (1_000_000, 1_000_000))
    assert find_latest_run("plain") == Path("runs/plain/newer")
    choice = choose_checkpoint(PLAIN)
    assert choice.path == checkpoint_file(Path("runs/plain/newer"), "last") and choice.reason.startswith("the newest")
    assert newer.is_dir()


def test_load_model_restores_the_chosen_weights_and_says_which_file(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", SELECTING)
    lines: list[str] = []
    loaded = load_model(SELECTING, run=run, device="cpu", log=lines.append)
    assert weight(loaded) == 2.0 and loaded.checkpoint == checkpoint_file(run, "best")
    assert lines == [f"zoo: loaded {checkpoint_file(run, 'best')} (best by loss, min)"]
    assert loaded.config == {"width": 3, "preset": "quick"} and loaded.device == torch.device("cpu")
    assert not loaded.networks["net"].training
    assert weight(load_model(SELECTING, run=run, which="last", log=None)) == 1.0
    out = loaded.graph_module("net")(torch.ones(2, 3))
    assert out.shape == (2, 3)
    with pytest.raises(ZooError, match="selecting has no graph 'nope'; graphs: net"):
        loaded.graph_module("nope")


def test_load_model_prints_one_line_on_stderr_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "run", PLAIN)
    TorchRunner(PLAIN, RuntimeSource(run=run, device="cpu"))
    assert capsys.readouterr().err == f"zoo: loaded {checkpoint_file(run, 'last')} (last; the recipe declares " \
                                      "no best metric)\n"


def test_a_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path / "other.safetensors", PLAIN, 1.0)
    with pytest.raises(ZooError, match="is a checkpoint of 'plain', not 'selecting'"):
        load_model(SELECTING, checkpoint=path, log=None)


def test_build_model_gives_seeded_random_weights() -> None:
    first = build_model(PLAIN, {"width": 5, "preset": "quick"}, seed=3)
    again = build_model(PLAIN, {"width": 5, "preset": "quick"}, seed=3)
    other = build_model(PLAIN, {"width": 5, "preset": "quick"}, seed=4)
    assert first.checkpoint is None and first.networks["net"].out_features == 5
    assert torch.equal(first.networks["net"].weight, again.networks["net"].weight)
    assert not torch.equal(first.networks["net"].weight, other.networks["net"].weight)


# Inference, export, benchmarks and serving load models through zoo_core.models, never the training engine.
INFERENCE = ["zoo_core/models.py", "zoo_core/runtime.py", "zoo_core/tasks.py", "export/zoo_export",
             "benchmarks/zoo_bench", "serve"]


def engine_imports(path: Path) -> list[str]:
    """``file:line`` of every import of zoo_core.engine in ``path`` (at any depth, including inside functions)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        if any(name == "zoo_core.engine" or name.startswith("zoo_core.engine.") for name in names):
            found.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{node.lineno}")
    return found


def test_nothing_outside_training_imports_the_engine() -> None:
    files = []
    for entry in INFERENCE:
        target = ROOT / entry
        if target.is_file():
            files.append(target)
        elif target.is_dir():
            # tests and test helpers (testing.py) train tiny models on purpose
            files += [p for p in target.rglob("*.py")
                      if "tests" not in p.parts and "build" not in p.parts and p.name != "testing.py"]
    assert len(files) > 20, "the inference modules moved: update INFERENCE"
    offenders = [hit for path in files for hit in engine_imports(path)]
    assert offenders == [], f"inference imports the training engine: {offenders}"


def test_the_engine_scan_catches_an_import(tmp_path: Path) -> None:
    sample = tmp_path / "probe.py"
    sample.write_text("import zoo_core.engine\n\ndef f():\n    from zoo_core.engine import train\n"
                      "    from zoo_core import engine\n")
    assert engine_imports(sample) == [f"{sample}:1", f"{sample}:4", f"{sample}:5"]
