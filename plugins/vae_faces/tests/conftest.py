"""Fixtures for the vae_faces tests: a private cache for the embedded portraits, a CLI with only this plugin,
and one tiny CPU run (32x32, 48 portraits) shared by the task tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from click.testing import Result
from zoo_vae_faces import plugin as vae_plugin

from zoo_core.api import RegisteredModel, TrainOptions, invoke, isolated_host, private_cache, train

SIZE = 32
TINY = {"image_size": SIZE, "portraits": 48, "batch_size": 8, "epochs": 1}


@pytest.fixture(scope="module")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Embedded portraits are generated into a temp cache, never the user's."""
    with private_cache(tmp_path_factory.mktemp("zoo-cache")) as folder:
        yield folder


@pytest.fixture(scope="module")
def size() -> int:
    """The image side of the tiny run."""
    return SIZE


@pytest.fixture(scope="module")
def vae_model() -> RegisteredModel:
    return RegisteredModel(vae_plugin.SPEC, "zoo-vae-faces", "0.1.0")


def _refuse_cuda(*args: object, **kwargs: object) -> None:
    raise AssertionError("vae_faces called .cuda() on a CPU-only run")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, vae_model: RegisteredModel, zoo_cache: Path) -> Path:
    """One epoch on 48 portraits at 32x32 with --device cpu; any .cuda() call fails it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.Tensor, "cuda", _refuse_cuda)
        patch.setattr(torch.nn.Module, "cuda", _refuse_cuda)
        options = TrainOptions(preset="quick", overrides=dict(TINY), device="cpu", seed=1, progress=False,
                               out=tmp_path_factory.mktemp("tiny") / "run")
        return train(vae_model, options)


@pytest.fixture
def zoo(zoo_cache: Path) -> Iterator[Callable[..., Result]]:
    """`zoo ARGS` in-process with only the core and vae_faces registered."""
    with isolated_host((vae_plugin, "zoo-vae-faces")):
        yield invoke
