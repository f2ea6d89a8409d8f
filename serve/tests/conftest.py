"""Fixtures for zoo-serve's tests: tiny exports of the three first-party models (built once per session),
an in-process client on them, and a real `zoo serve` process on a free loopback port."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:  # the helpers live beside the tests
    sys.path.insert(0, str(TESTS))

from fastapi.testclient import TestClient  # noqa: E402
from zoo_serve.app import create_app  # noqa: E402
from zoo_serve.testing import tiny_exports  # noqa: E402
from zoo_serve_live import LiveServer, settings_for, start_server  # noqa: E402

from zoo_core.testing import private_cache, torch_threads  # noqa: E402


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Embedded data is generated into a temp cache, never the user's."""
    with private_cache(tmp_path_factory.mktemp("zoo-cache")) as folder:
        yield folder


@pytest.fixture(scope="session")
def exports(tmp_path_factory: pytest.TempPathFactory, zoo_cache: Path) -> dict[str, Path]:
    """ae_mnist, vae_faces and cyclegan_hair trained for two steps at tiny sizes and exported, once."""
    with torch_threads(1):
        return tiny_exports(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def client(exports: dict[str, Path]) -> Iterator[TestClient]:
    """The app in-process (ASGI), on every tiny export."""
    with torch_threads(1), TestClient(create_app(settings_for(exports)), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def live(exports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real server (uvicorn, through the `zoo serve` command) shared by the client, load and browser tests."""
    server = start_server(exports, tmp_path_factory.mktemp("live"))
    yield server
    assert server.stop() == 0, server.log.read_text()
