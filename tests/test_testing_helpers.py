"""zoo_core.testing's card and light-module checks fail, naming the figure or module, when a plugin is wrong."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from pathlib import Path

import pytest

from zoo_core.spec import GraphSpec, ModelSpec, NetworkSpec, Preset, TensorSpec
from zoo_core.testing import assert_card_matches, assert_light_plugin_module

RECIPE_SOURCE = '''
from torch import nn
from zoo_core.api import Recipe


class TinyRecipe(Recipe):
    def build_networks(self):
        return {"decoder": nn.Linear(self.config["z_dim"], 12)}

    def graph_module(self, graph, networks):
        return networks["decoder"]
'''


@pytest.fixture
def tiny_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    package = tmp_path / "zoo_card_check"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "recipe.py").write_text(textwrap.dedent(RECIPE_SOURCE))
    (package / "plugin.py").write_text("import numpy\nimport zoo_card_check.light\n")  # no torch: a faster test
    (package / "light.py").write_text("from zoo_core.api import hookimpl, ModelSpec\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    yield package
    for name in [m for m in sys.modules if m.startswith("zoo_card_check")]:
        del sys.modules[name]


def tiny_spec(params: int = 4 * 12 + 12, gflops: float = 2 * 4 * 12 / 1e9) -> ModelSpec:
    z = TensorSpec("z", ("N", "z_dim"), layout="NC")
    image = TensorSpec("image", ("N", 12), layout="NC")
    return ModelSpec(name="card_check", summary="a linear decoder", recipe="zoo_card_check.recipe:TinyRecipe",
                     networks=(NetworkSpec("decoder", "Linear", params),),
                     graphs=(GraphSpec("decoder", "z to image", (z,), (image,), gflops_per_item=gflops),),
                     presets=(Preset("quick", "tiny", {"z_dim": 4, "epochs": 1, "batch_size": 2}),),
                     card_preset="quick", default_preset="quick", gpu_preset="quick")


def test_a_true_card_passes(tiny_package: Path) -> None:
    assert_card_matches(tiny_spec())
    assert_card_matches(tiny_spec(), device="cpu")


@pytest.mark.parametrize(("spec", "message"), [
    (tiny_spec(params=61), "network decoder has 60 parameters at preset quick; the spec declares 61"),
    (tiny_spec(gflops=1e-6), "graph decoder costs 9.6e-08 GFLOPs per item at preset quick; the spec declares 1e-06"),
])
def test_a_wrong_figure_is_named(tiny_package: Path, spec: ModelSpec, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        assert_card_matches(spec)


def test_a_wrong_output_shape_is_named(tiny_package: Path) -> None:
    spec = tiny_spec()
    graph = dataclasses.replace(spec.graphs[0], outputs=(TensorSpec("image", ("N", 13), layout="NC"),))
    with pytest.raises(AssertionError, match=r"returns shapes \[\(2, 12\)\], declared \[\(2, 13\)\]"):
        assert_card_matches(dataclasses.replace(spec, graphs=(graph,)))


def test_a_heavy_entry_point_module_is_named(tiny_package: Path) -> None:
    assert_light_plugin_module("zoo_card_check.light")
    with pytest.raises(AssertionError, match=r"zoo_card_check\.plugin imports numpy"):
        assert_light_plugin_module("zoo_card_check.plugin")
    with pytest.raises(AssertionError, match=r"imports zoo_card_check\.light: refer to it by an import string"):
        assert_light_plugin_module("zoo_card_check.plugin", heavy=())
