"""Fixtures for the ae_mnist tests: a private cache for embedded digits, a CLI with only this plugin, a tiny run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from zoo_ae_mnist import plugin as ae_plugin

from zoo_core.api import RegisteredModel, TrainOptions, invoke, isolated_host, private_cache, torch_threads, train

MNIST_DIR = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "mnist-t10k"
# Small enough for seconds on two busy cores: 120 digits, 12 held out, 7 steps of 16 per epoch.
TINY = {"embedded_items": 120, "epochs": 2, "batch_size": 16}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny networks run fastest on one thread, and far faster on a machine loaded by other work."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Embedded digits are generated into a temp cache, never the user's."""
    with private_cache(tmp_path_factory.mktemp("zoo-cache")) as folder:
        yield folder


@pytest.fixture(scope="module")
def ae_model() -> RegisteredModel:
    return RegisteredModel(ae_plugin.SPEC, "zoo-ae-mnist", "0.1.0")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, ae_model: RegisteredModel, zoo_cache: Path) -> Path:
    """Two quick epochs on 120 embedded digits, seed 0."""
    return train(ae_model, TrainOptions(out=tmp_path_factory.mktemp("tiny") / "run", device="cpu", progress=False,
                                        overrides=dict(TINY)))


@pytest.fixture
def zoo(zoo_cache: Path) -> Iterator[Callable[..., Result]]:
    """`zoo ARGS` in-process with only the core and ae_mnist registered."""
    with isolated_host((ae_plugin, "zoo-ae-mnist")):
        yield invoke


@pytest.fixture(scope="module")
def tiny_settings() -> dict[str, int]:
    return dict(TINY)


@pytest.fixture
def mnist_dir() -> Path:
    """The shared real MNIST test split, or a skip where the shared data is absent."""
    if not MNIST_DIR.is_dir():
        pytest.skip(f"real MNIST not available at {MNIST_DIR} (shared data is absent)")
    return MNIST_DIR.resolve()
