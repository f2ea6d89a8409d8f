"""Test fixtures for cyclegan_hair, shared by its own tests and the core's streaming tests: a private cache for the
embedded portraits, one thread, a CLI with only this plugin, and one tiny CPU run (32², 4 features, 1 residual
block). Import the fixtures by name into a conftest or test module; importing this module needs pytest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from zoo_core.api import RegisteredModel, TrainOptions, invoke, isolated_host, private_cache, torch_threads, train
from zoo_cyclegan_hair import plugin as cyclegan_plugin

SIZE = 32
# The smallest networks that still have every layer: seconds per epoch on two busy cores.
TINY = {"image_size": SIZE, "load_size": SIZE, "features": 4, "res_blocks": 1, "d_features": 4, "portraits": 40,
        "batch_size": 2, "epochs": 1, "val_fraction": 0.1}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny networks run fastest on one thread, and far faster on a machine loaded by other work."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Embedded portraits are generated into a temp cache, never the user's."""
    with private_cache(tmp_path_factory.mktemp("zoo-cache")) as folder:
        yield folder


@pytest.fixture(scope="module")
def cyclegan_model() -> RegisteredModel:
    return RegisteredModel(cyclegan_plugin.SPEC, "zoo-cyclegan-hair", "0.1.0")


@pytest.fixture(scope="module")
def tiny_settings() -> dict[str, object]:
    return dict(TINY)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, cyclegan_model: RegisteredModel, zoo_cache: Path) -> Path:
    """One epoch of the quick recipe shrunk to 32² on 40 embedded portraits, on the CPU."""
    options = TrainOptions(preset="quick", overrides=dict(TINY), device="cpu", progress=False,
                           out=tmp_path_factory.mktemp("tiny") / "run")
    return train(cyclegan_model, options)


@pytest.fixture
def zoo(zoo_cache: Path) -> Iterator[Callable[..., Result]]:
    """`zoo ARGS` in-process with only the core and cyclegan_hair registered."""
    with isolated_host((cyclegan_plugin, "zoo-cyclegan-hair")):
        yield invoke
