"""The training engine on a tiny in-test recipe: outputs of a run, exact resume, best checkpoint, refusals."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from zoo_core import engine
from zoo_core.checkpoint import load_checkpoint
from zoo_core.engine import TrainOptions, derive_seed, train
from zoo_core.errors import UsageError
from zoo_core.models import select_device
from zoo_core.plugins import RegisteredModel
from zoo_core.recipe import Batches, BestMetric, DataSource, Recipe, StepContext, TrainingData, linear_decay
from zoo_core.spec import GraphSpec, ModelSpec, NetworkSpec, Preset, TensorSpec
from zoo_core.testing import torch_threads

FEATURES = 4
VAL_ITEMS = 12


class TinyRecipe(Recipe):
    """Denoising on random vectors: dropout (global RNG), step noise (run generator), an LR schedule."""

    crash_at_step: int | None = None  # set by a test to simulate a crash mid-run
    best_checkpoint = BestMetric("loss", "min")

    def build_networks(self) -> dict[str, nn.Module]:
        return {"net": nn.Sequential(nn.Linear(FEATURES, 8), nn.Dropout(0.25), nn.Linear(8, FEATURES))}

    def graph_module(self, graph: str, networks: Mapping[str, nn.Module]) -> nn.Module:
        return networks["net"]

    def load_data(self, source: DataSource) -> TrainingData:
        values = torch.randn(int(self.config["items"]), FEATURES, generator=torch.Generator().manual_seed(7))
        return TrainingData(train=values[:-VAL_ITEMS], val=values[-VAL_ITEMS:])

    def batches(self, data: Any, batch_size: int, generator: torch.Generator, train: bool) -> Batches:
        order = torch.randperm(len(data), generator=generator) if train else torch.arange(len(data))
        return Batches({"x": data}, batch_size, order)

    def build_optimizers(self, networks: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        return {"adam": torch.optim.Adam(networks["net"].parameters(), lr=float(self.config["lr"]))}

    def build_schedulers(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> list[Any]:
        return [torch.optim.lr_scheduler.StepLR(optimizers["adam"], step_size=1, gamma=0.7)]

    def training_step(self, batch: dict[str, torch.Tensor], networks: Mapping[str, nn.Module],
                      step: StepContext) -> dict[str, torch.Tensor]:
        if TinyRecipe.crash_at_step == step.step:
            raise RuntimeError("simulated crash")
        clean = batch["x"]
        noisy = clean + 0.3 * step.randn(*clean.shape)
        loss = ((networks["net"](noisy) - clean) ** 2).mean()
        step.optimize("adam", loss)
        return {"loss": loss.detach(), "noisy_norm": noisy.norm().detach()}

    def validation_metrics(self, batch: dict[str, torch.Tensor], networks: Mapping[str, nn.Module],
                           generator: torch.Generator) -> dict[str, torch.Tensor]:
        clean = batch["x"]
        return {"loss": ((networks["net"](clean) - clean) ** 2).mean(1).sum()}

    def sample_grid(self, networks: Mapping[str, nn.Module], data: TrainingData,
                    device: torch.device) -> torch.Tensor | None:
        return torch.sigmoid(networks["net"](data.val[:4].to(device))).view(4, 1, 2, 2).cpu()


VECTOR = TensorSpec("x", ("N", FEATURES))
SETTINGS = {"items": 60, "batch_size": 8, "lr": 0.01, "epochs": 3, "amp": False}
SPEC = ModelSpec(
    name="tiny",
    summary="a tiny denoiser for engine tests",
    recipe=f"{__name__}:TinyRecipe",
    networks=(NetworkSpec("net", "two linear layers", 76),),
    graphs=(GraphSpec("net", "x → x", (VECTOR,), (VECTOR,), gflops_per_item=0.0),),
    presets=(Preset("quick", "tiny", SETTINGS), Preset("book", "tiny", SETTINGS)),
)
MODEL = RegisteredModel(SPEC, "zoo-tiny-test", "0.0")
STEPS_PER_EPOCH = -(-(SETTINGS["items"] - VAL_ITEMS) // SETTINGS["batch_size"])  # 6


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny networks run fastest on one thread, and far faster on a machine loaded by other work."""
    with torch_threads(1):
        yield


@pytest.fixture(autouse=True)
def no_crash() -> Any:
    yield
    TinyRecipe.crash_at_step = None


def run(out: Path, **options: Any) -> Path:
    return train(MODEL, TrainOptions(out=out, device="cpu", progress=False, **options))


def resume(out: Path, **options: Any) -> Path:
    return train(MODEL, TrainOptions(resume=out, device="cpu", progress=False, **options))


def epochs_of(run_dir: Path) -> list[dict[str, Any]]:
    """Per-epoch records without the timing fields, which legitimately differ between runs."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("seconds", "items_per_s")} for row in rows]


def weights(run_dir: Path, name: str = "last.safetensors") -> dict[str, torch.Tensor]:
    ckpt = load_checkpoint(run_dir / "checkpoints" / name)
    return {k: v for k, v in ckpt.tensors.items() if k.startswith(("net/", "opt/"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted three-epoch run that the resumed runs must reproduce exactly."""
    return run(tmp_path_factory.mktemp("reference") / "run", seed=3)


def assert_same_run(resumed: Path, reference: Path) -> None:
    assert epochs_of(resumed) == epochs_of(reference)
    ours, theirs = weights(resumed), weights(reference)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


def test_run_directory_holds_config_metrics_samples_plot_and_checkpoints(reference: Path) -> None:
    config = json.loads((reference / "config.json").read_text())
    assert config["model"] == "tiny" and config["preset"] == "quick" and config["seed"] == 3
    assert config["config"] == {**SETTINGS, "preset": "quick"}
    assert {"zoo", "torch", "python", "numpy"} <= set(config["versions"])
    rows = epochs_of(reference)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["step"] for r in rows] == [STEPS_PER_EPOCH * e for e in (1, 2, 3)]
    assert set(rows[0]["train"]) == {"loss", "noisy_norm"} and set(rows[0]["val"]) == {"loss"}
    assert rows[1]["lr"]["adam"] == pytest.approx(0.01 * 0.7 ** 2)  # the schedule stepped once per epoch
    assert sorted(p.name for p in (reference / "samples").iterdir()) == [f"epoch_00{e}.png" for e in (1, 2, 3)]
    assert (reference / "loss.png").stat().st_size > 0
    assert not list(reference.rglob("*.tmp"))


def test_best_checkpoint_is_the_epoch_with_the_lowest_validation_loss(reference: Path) -> None:
    rows = epochs_of(reference)
    best = load_checkpoint(reference / "checkpoints" / "best.safetensors")
    assert best.meta["position"]["best_metric"] == min(r["val"]["loss"] for r in rows)
    assert "optimizers" not in best.meta  # weights only
    last = load_checkpoint(reference / "checkpoints" / "last.safetensors")
    assert last.meta["position"]["epoch"] == 3 and "optimizers" in last.meta


def test_resume_after_an_epoch_reproduces_the_uninterrupted_run(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(out, seed=3, overrides={"epochs": 1})
    assert len(epochs_of(out)) == 1
    resume(out, overrides={"epochs": 3})
    assert_same_run(out, reference)
    assert json.loads((out / "config.json").read_text())["config"]["epochs"] == 3


def test_resume_after_max_steps_mid_epoch_reproduces_the_uninterrupted_run(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(out, seed=3, max_steps=STEPS_PER_EPOCH + 2)
    position = load_checkpoint(out / "checkpoints" / "last.safetensors").meta["position"]
    assert (position["epoch"], position["batch"], position["global_step"]) == (1, 2, STEPS_PER_EPOCH + 2)
    resume(out)
    assert_same_run(out, reference)


def test_resume_after_a_crash_from_a_save_every_checkpoint(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    TinyRecipe.crash_at_step = 17  # the 18th step, the last of epoch 3: saves came at steps 4, 8 and 16
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(out, seed=3, save_every=4)
    position = load_checkpoint(out / "checkpoints" / "last.safetensors").meta["position"]
    assert (position["epoch"], position["batch"], position["global_step"]) == (2, 4, 16)
    TinyRecipe.crash_at_step = None
    resume(out)
    assert_same_run(out, reference)


def test_a_different_seed_gives_a_different_run(reference: Path, tmp_path: Path) -> None:
    other = run(tmp_path / "run", seed=4, overrides={"epochs": 1})
    assert epochs_of(other)[0]["train"] != epochs_of(reference)[0]["train"]


def test_resume_refuses_changed_settings_and_spent_budgets(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    with pytest.raises(UsageError, match="only --epochs may change"):
        resume(out, overrides={"lr": 0.5})
    with pytest.raises(UsageError, match="already trained 3 of 3 epochs"):
        resume(out)
    with pytest.raises(UsageError, match="already at step"):
        resume(out, overrides={"epochs": 4}, max_steps=5)
    with pytest.raises(UsageError, match="already holds a run"):
        run(out)
    with pytest.raises(UsageError, match=r"no config\.json"):
        resume(tmp_path)


class UnrankedRecipe(TinyRecipe):
    """Like a GAN: no metric ranks its weights."""

    best_checkpoint = None


class HighestNormRecipe(TinyRecipe):
    """Selects by the largest training metric, to show mode max and the training-metric fallback."""

    best_checkpoint = BestMetric("noisy_norm", "max")

    def load_data(self, source: DataSource) -> TrainingData:
        return TrainingData(train=super().load_data(source).train, val=None)

    def sample_grid(self, networks: Mapping[str, nn.Module], data: TrainingData,
                    device: torch.device) -> torch.Tensor | None:
        return None


def model_with(recipe: str) -> RegisteredModel:
    return RegisteredModel(ModelSpec(**{**vars(SPEC), "recipe": f"{__name__}:{recipe}"}), "zoo-tiny-test", "0.0")


def test_a_recipe_without_a_selection_metric_writes_only_last(tmp_path: Path) -> None:
    out = train(model_with("UnrankedRecipe"), TrainOptions(out=tmp_path / "run", device="cpu", progress=False))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.safetensors"]


def test_mode_max_keeps_the_highest_training_metric_without_held_out_data(tmp_path: Path) -> None:
    out = train(model_with("HighestNormRecipe"), TrainOptions(out=tmp_path / "run", device="cpu", progress=False))
    rows = epochs_of(out)
    best = load_checkpoint(out / "checkpoints" / "best.safetensors").meta["position"]
    assert best["best_metric"] == max(r["train"]["noisy_norm"] for r in rows)
    assert best["epoch"] == 1 + max(range(3), key=lambda e: rows[e]["train"]["noisy_norm"])


def test_resume_says_where_it_resumes_and_accepts_the_runs_own_values(
        reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    run(out, seed=3, max_steps=STEPS_PER_EPOCH + 2)
    capsys.readouterr()
    resume(out, preset="quick", overrides={"lr": 0.01, "batch_size": "8", "epochs": 3})
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith(f"zoo: resuming tiny at epoch 2, step {STEPS_PER_EPOCH + 2} from "
                            f"{out / 'checkpoints' / 'last.safetensors'} (preset quick, cpu)")
    assert_same_run(out, reference)
    with pytest.raises(UsageError, match=r"only --epochs may change \(got preset book \(the run's is quick\), "
                                         r"lr=0.5 \(the run's is 0.01\)\)"):
        resume(out, preset="book", overrides={"lr": 0.5, "epochs": 4})


def test_amp_on_cpu_is_bfloat16_autocast_where_the_cpu_has_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_cpu_has_bfloat16", lambda: True)
    out = run(tmp_path / "bf16", overrides={"amp": True, "epochs": 1})
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["amp"] is True and record["autocast"] == "bfloat16"
    monkeypatch.setattr(engine, "_cpu_has_bfloat16", lambda: False)
    with pytest.raises(UsageError, match="amp=true: this CPU has no bfloat16 arithmetic"):
        run(tmp_path / "refused", overrides={"amp": True})
    assert not (tmp_path / "refused").exists()


def test_amp_from_a_preset_is_turned_off_and_not_recorded_where_it_cannot_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(engine, "_cpu_has_bfloat16", lambda: False)
    amp_preset = Preset("quick", "tiny with amp", {**SETTINGS, "amp": True, "epochs": 1})
    model = RegisteredModel(ModelSpec(**{**vars(SPEC), "presets": (amp_preset, SPEC.presets[1])}), "zoo-tiny", "0.0")
    out = train(model, TrainOptions(out=tmp_path / "run", device="cpu", progress=False))
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["amp"] is False and record["autocast"] is None
    assert "the preset's amp is off here" in capsys.readouterr().err


def test_config_errors_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no preset 'huge'"):
        run(tmp_path / "a", preset="huge")
    with pytest.raises(UsageError, match="epochs must be at least 1"):
        run(tmp_path / "b", overrides={"epochs": -1})
    with pytest.raises(UsageError, match="did you mean lr"):
        run(tmp_path / "c", overrides={"lrr": 0.1})
    assert not (tmp_path / "a").exists()


def test_select_device_and_derive_seed() -> None:
    assert select_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            select_device("cuda")
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3) != derive_seed(1, 2, 4)
    assert 0 <= derive_seed(0, 0) < 2 ** 63


def test_reference_schedule_is_constant_then_linear_to_zero() -> None:
    factor = linear_decay(epochs=200, decay_epochs=100)
    assert [factor(e) for e in (0, 50, 99)] == [1.0, 1.0, 1.0]
    assert factor(100) == pytest.approx(1 - 1 / 101)
    assert factor(199) == pytest.approx(1 / 101)  # the paper's code: one step short of zero in the last epoch
    assert factor(200) == pytest.approx(0.0)
