"""Training through the shared engine: metrics, samples, exact resume with the reference recipe's image pool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from zoo_cyclegan_hair.recipe import CycleGANRecipe

from zoo_core.api import RegisteredModel, StepContext, TrainOptions, load_checkpoint, train

# The reference recipe shrunk: load 36 and crop 32, pool of 3, identity loss, G before D, linear decay.
REFERENCE_TINY = {"image_size": 32, "load_size": 36, "features": 4, "res_blocks": 1, "d_features": 4,
                  "portraits": 24, "batch_size": 2, "epochs": 2, "decay_epochs": 1, "pool_size": 3,
                  "val_fraction": 0.1}


def test_tiny_run_writes_metrics_samples_and_checkpoints(tiny_run: Path) -> None:
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1
    train_metrics, val_metrics = rows[0]["train"], rows[0]["val"]
    assert next(iter(train_metrics)) == "loss"
    assert {"d_loss", "g_gan", "g_cycle", "g_identity"} <= set(train_metrics)
    assert {"loss", "d_loss", "cycle_l1"} <= set(val_metrics)
    assert rows[0]["items_per_s"] > 0
    assert set(rows[0]["lr"]) == {"generators", "discriminators"}
    assert (tiny_run / "samples" / "epoch_001.png").is_file()
    ckpt = load_checkpoint(tiny_run / "checkpoints" / "last.safetensors")
    assert ckpt.network_names() == ["D_A", "D_B", "G_AB", "G_BA"]
    assert not any("pool" in key for key in ckpt.tensors)  # the quick recipe keeps no pool


def _train(model: RegisteredModel, out: Path, max_steps: int | None = None, resume: bool = False) -> Path:
    options = TrainOptions(preset=None if resume else "reference", overrides={} if resume else dict(REFERENCE_TINY),
                           device="cpu", progress=False, seed=3, max_steps=max_steps,
                           out=None if resume else out, resume=out if resume else None)
    return train(model, options)


def test_resume_is_exact_and_keeps_the_image_pool(cyclegan_model: RegisteredModel, zoo_cache: Path,
                                                  tmp_path: Path) -> None:
    whole = _train(cyclegan_model, tmp_path / "whole")
    split = _train(cyclegan_model, tmp_path / "split", max_steps=7)  # stops inside the second epoch
    stopped = load_checkpoint(split / "checkpoints" / "last.safetensors")
    assert stopped.meta["position"]["epoch"] == 1
    for name in ("D_A", "D_B"):
        assert int(stopped.tensors[f"net/{name}/pool.count"]) == 3
        assert float(stopped.tensors[f"net/{name}/pool.images"].abs().sum()) > 0  # real fakes, not the zeros
    _train(cyclegan_model, split, resume=True)
    expected = load_checkpoint(whole / "checkpoints" / "last.safetensors").tensors
    resumed = load_checkpoint(split / "checkpoints" / "last.safetensors").tensors
    assert set(expected) == set(resumed)
    for key, value in expected.items():
        assert torch.equal(value, resumed[key]), key
    rows = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    assert [row["lr"]["generators"] for row in rows] == pytest.approx([2e-4 * 0.5, 0.0])  # linear decay


def test_a_resumed_run_without_its_pool_would_differ(cyclegan_model: RegisteredModel, zoo_cache: Path) -> None:
    """The pool matters: the same step on an emptied pool shows the discriminator other images."""
    config = {**cyclegan_model.spec.preset("reference").values, **REFERENCE_TINY, "preset": "reference"}
    recipe = CycleGANRecipe(cyclegan_model.spec, config)
    torch.manual_seed(0)
    networks = recipe.build_networks()
    fakes = torch.rand(2, 3, 32, 32) * 2 - 1
    networks["D_A"].pool.query(torch.rand(3, 3, 32, 32), torch.Generator().manual_seed(0))
    full = [networks["D_A"].pool.query(fakes, torch.Generator().manual_seed(s)) for s in range(8)]
    assert any(not torch.equal(shown, fakes) for shown in full)
    emptied = CycleGANRecipe(cyclegan_model.spec, config).build_networks()["D_A"].pool
    assert torch.equal(emptied.query(fakes, torch.Generator().manual_seed(0)), fakes)


def test_book_step_updates_the_discriminators_first(cyclegan_model: RegisteredModel,
                                                    tiny_settings: dict[str, object]) -> None:
    """With D first, the generator step is judged by the already-updated discriminators."""
    config = {**cyclegan_model.spec.preset("book").values, **tiny_settings, "preset": "book", "amp": False}
    recipe = CycleGANRecipe(cyclegan_model.spec, config)
    torch.manual_seed(0)
    networks = recipe.build_networks()
    order: list[str] = []
    optimizers = recipe.build_optimizers(networks)
    scalers = {name: torch.amp.GradScaler("cpu", enabled=False) for name in optimizers}

    class Recording(StepContext):
        def optimize(self, name: str, loss: torch.Tensor) -> None:
            order.append(name)
            super().optimize(name, loss)

    step = Recording(torch.device("cpu"), torch.Generator().manual_seed(0), optimizers, scalers, None)
    batch = {"a": torch.rand(2, 3, 32, 32) * 2 - 1, "b": torch.rand(2, 3, 32, 32) * 2 - 1}
    metrics = recipe.training_step(batch, networks, step)
    assert order == ["discriminators", "generators"]
    assert all(p.requires_grad for net in networks.values() for p in net.parameters())
    assert float(metrics["g_identity"]) == 0.0 and float(metrics["loss"]) > 0


@pytest.mark.parametrize("preset", ["book", "reference"])
def test_steps_run_under_autocast(cyclegan_model: RegisteredModel, preset: str) -> None:
    """The AMP path (CUDA float16 in the book) exercised with CPU bfloat16: finite metrics, a float32 pool."""
    config = {**cyclegan_model.spec.preset(preset).values, **REFERENCE_TINY, "preset": preset,
              "pool_size": 2 if preset == "reference" else 0}
    recipe = CycleGANRecipe(cyclegan_model.spec, config)
    torch.manual_seed(0)
    networks = recipe.build_networks()
    optimizers = recipe.build_optimizers(networks)
    scalers = {name: torch.amp.GradScaler("cpu", enabled=False) for name in optimizers}
    step = StepContext(torch.device("cpu"), torch.Generator().manual_seed(0), optimizers, scalers, torch.bfloat16)
    batch = {"a": torch.rand(2, 3, 36, 36) * 2 - 1, "b": torch.rand(2, 3, 36, 36) * 2 - 1}
    for _ in range(2):
        metrics = recipe.training_step(batch, networks, step)
    assert all(bool(torch.isfinite(value)) for value in metrics.values())
    assert float(metrics["g_identity"]) > 0 if preset == "reference" else float(metrics["g_identity"]) == 0
    if preset == "reference":
        assert networks["D_A"].pool.images.dtype == torch.float32 and int(networks["D_A"].pool.count) == 2
