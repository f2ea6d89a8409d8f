"""hubconf.py: torch.hub.load on this checkout returns zoo.load's model with the weights asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_torch_hub_loads_ae_mnist_with_its_shipped_weights() -> None:
    pytest.importorskip("zoo_ae_mnist.plugin")
    import torch

    import zoo

    model = torch.hub.load(str(ROOT), "ae_mnist", source="local", weights="mnist", device="cpu")
    assert isinstance(model, zoo.Model) and model.name == "ae_mnist" and model.runtime == "torch"
    assert model.runner.checkpoint.name == "mnist.safetensors"
    codes = model.graph("encoder")(torch.rand(3, 1, 28, 28))
    assert tuple(codes.shape) == (3, 20)
    with pytest.raises(zoo.UsageError, match="not a weights name of ae_mnist"):
        torch.hub.load(str(ROOT), "ae_mnist", source="local", weights="nope")
    hubconf = __import__("hubconf")  # torch.hub left the checkout on sys.path only while loading
    assert hubconf.ae_mnist.__doc__ and "held-out MSE" in hubconf.ae_mnist.__doc__


def test_without_installed_plugins_hubconf_reads_the_plugin_from_the_checkout() -> None:
    import os
    import subprocess
    import sys

    code = ("import torch, sys\n"
            f"m = torch.hub.load({str(ROOT)!r}, 'ae_mnist', source='local', device='cpu')\n"
            "from zoo_core.plugins import get_host\n"
            "print(m.name, m.runner.checkpoint.name, get_host().models['ae_mnist'].version)\n")
    env = {**os.environ, "ZOO_LOAD_PLUGINS": ""}  # no entry point loads: as after torch.hub's own download
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=ROOT.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ae_mnist", "mnist.safetensors", "source"]
