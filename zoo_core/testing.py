"""Helpers for testing zoo plugins (first- or third-party) with pytest.

``isolated_host`` makes the CLI see only the core and the plugins under test,
``invoke`` runs ``zoo ARGS`` in-process (plugin commands such as ``export`` included),
``private_cache`` keeps generated data out of the user's cache, ``torch_threads`` pins tiny
networks to one thread, where they run fastest, ``assert_card_matches`` recomputes a spec's
card figures from its networks and ``assert_light_plugin_module`` checks that the module zoo
imports on every start pulls in nothing heavy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
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
    """``zoo ARGS`` in this process, against whatever host is current, with that host's plugin commands."""
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


def assert_card_matches(spec: ModelSpec, rel: float = 1e-6, batch: int = 2, device: str = "meta") -> None:
    """Recompute the card at ``spec.card_preset``: each network's parameter count, each graph's GFLOPs per item
    (torch's FlopCounterMode: 2 per multiply-add) and output shapes, and fail naming the first figure that differs.

    Networks are built on the meta device by default: shapes and counts without allocating the weights, so a
    book-sized model checks in a second. Pass ``device="cpu"`` for a network whose ops lack meta kernels.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from zoo_core.config import resolve_config
    from zoo_core.spec import load_object

    config = resolve_config(spec, spec.card_preset, {})
    recipe = load_object(spec.recipe)(spec, config)
    with torch.device(device):
        networks = recipe.build_networks()
    declared_networks = [n.name for n in spec.networks]
    assert set(networks) == set(declared_networks), \
        f"{spec.name}: build_networks() returned {sorted(networks)}, the spec declares {declared_networks}"
    for network in spec.networks:
        counted = sum(p.numel() for p in networks[network.name].parameters())
        assert counted == network.params, f"{spec.name}: network {network.name} has {counted:,} parameters at " \
                                          f"preset {spec.card_preset}; the spec declares {network.params:,}"
    for graph in spec.graphs:
        module = recipe.graph_module(graph.name, networks).eval()
        inputs = tuple(torch.empty(t.resolve(config, batch), device=device) for t in graph.inputs)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            outputs = module(*inputs)
        outputs = (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)
        measured = counter.get_total_flops() / batch / 1e9
        assert abs(measured - graph.gflops_per_item) <= rel * max(abs(graph.gflops_per_item), 1e-12), \
            f"{spec.name}: graph {graph.name} costs {measured:.6g} GFLOPs per item at preset {spec.card_preset}; " \
            f"the spec declares {graph.gflops_per_item:.6g}"
        shapes = [tuple(o.shape) for o in outputs]
        declared = [t.resolve(config, batch) for t in graph.outputs]
        assert shapes == declared, f"{spec.name}: graph {graph.name} returns shapes {shapes}, declared {declared}"


HEAVY_MODULES = ("torch", "numpy", "torchvision", "onnx", "onnxruntime", "PIL")


def assert_light_plugin_module(module: str, heavy: Iterable[str] = HEAVY_MODULES,
                               allowed: Iterable[str] = ()) -> None:
    """Import ``module`` (a plugin's entry-point module) in a fresh interpreter, call its register hooks, and fail
    if that imported any ``heavy`` library or any other module of the plugin's own package (its networks or
    recipe), except ``allowed`` ones. zoo imports this module on every start, so `zoo list` pays for whatever it
    imports."""
    package = module.partition(".")[0]
    script = (
        "import importlib, json, sys\n"
        f"plugin = importlib.import_module({module!r})\n"
        "for hook in ('zoo_register_models', 'zoo_register_runtimes'):\n"
        "    if hasattr(plugin, hook):\n"
        "        getattr(plugin, hook)(register=lambda item: None)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"importing {module} failed:\n{done.stderr[-2000:]}"
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    own = {name for name in loaded if name.startswith(f"{package}.")} - {module, *allowed}
    found = sorted({name for name in loaded if name.partition(".")[0] in set(heavy)} - set(allowed))
    assert not found, f"{module} imports {', '.join(found[:5])}: move that import into the function that needs it"
    assert not own, f"{module} imports {', '.join(sorted(own))}: refer to it by an import string instead"
