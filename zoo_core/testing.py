"""Helpers for testing zoo plugins (first- or third-party) with pytest.

``isolated_host`` makes the CLI see only the core and the plugins under test,
``invoke`` runs ``zoo ARGS`` in-process, ``private_cache`` keeps generated data out of the
user's cache and ``torch_threads`` pins tiny networks to one thread, where they run fastest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from zoo_core import __version__, builtin, hookimpl, plugins
from zoo_core.spec import ModelSpec


@contextmanager
def isolated_host(*under_test: tuple[object, str]) -> Iterator[plugins.PluginHost]:
    """Replace the process-wide host with one holding the core and each ``(plugin, distribution)``."""
    saved = plugins._HOST
    host = plugins.PluginHost()
    host.register(builtin, plugins.CORE_DISTRIBUTION, __version__, "builtin")
    for plugin, distribution in under_test:
        host.register(plugin, distribution, "0.0.0+test", distribution)
    host.collect()
    plugins.reset_host(host)
    try:
        yield host
    finally:
        plugins.reset_host(saved)


def invoke(*args: str | os.PathLike[str]) -> Result:
    """``zoo ARGS`` in this process, against whatever host is current."""
    from zoo_core.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="zoo")


@contextmanager
def private_cache(folder: Path) -> Iterator[Path]:
    """Point the embedded-data cache at ``folder`` for the duration."""
    saved = os.environ.get("ZOO_CACHE_DIR")
    os.environ["ZOO_CACHE_DIR"] = str(folder)
    try:
        yield folder
    finally:
        if saved is None:
            os.environ.pop("ZOO_CACHE_DIR", None)
        else:
            os.environ["ZOO_CACHE_DIR"] = saved


@contextmanager
def torch_threads(count: int = 1) -> Iterator[None]:
    """Run torch on ``count`` intra-op threads for the duration."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class RecordingRunner:
    """Wraps a runner so a test sees only named graphs, as on onnxruntime, and which ones a task ran."""

    runtime = "recording"
    description = "named graphs only"

    def __init__(self, runner: Any) -> None:
        self._runner = runner
        self.config = runner.config
        self.calls: list[str] = []

    def run(self, graph: str, *inputs: Any) -> tuple[Any, ...]:
        self.calls.append(graph)
        return self._runner.run(graph, *inputs)


class ModelsPlugin:
    """An in-process plugin that registers the given specs, for tests of hosts and commands."""

    def __init__(self, *specs: ModelSpec) -> None:
        self.specs = specs

    @hookimpl
    def zoo_register_models(self, register: Callable[[ModelSpec], None]) -> None:
        for spec in self.specs:
            register(spec)
