"""A tiny model for the benchmark tests: an MLP graph and a conv graph that time in microseconds."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from zoo_core import hookimpl
from zoo_core.recipe import Recipe
from zoo_core.spec import GraphSpec, ModelSpec, NetworkSpec, Preset, TensorSpec

FEATURES = 16


class TinyRecipe(Recipe):
    def build_networks(self) -> dict[str, nn.Module]:
        hidden = int(self.config["hidden"])
        return {
            "mlp": nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, FEATURES)),
            "conv": nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1), nn.Tanh()),
        }

    def graph_module(self, graph: str, networks: Mapping[str, nn.Module]) -> nn.Module:
        return networks[graph]


def mlp_gflops(hidden: int) -> float:
    return 2 * 2 * FEATURES * hidden / 1e9


SPEC = ModelSpec(
    name="tiny_bench",
    summary="two tiny graphs for the zoo-bench tests",
    recipe="tiny_bench_model:TinyRecipe",
    networks=(NetworkSpec("mlp", "16-32-16 MLP", 1072), NetworkSpec("conv", "two 3x3 convs", 223)),
    graphs=(
        GraphSpec("mlp", "x[N,16] → y[N,16]", (TensorSpec("x", ("N", FEATURES), layout="NC"),),
                  (TensorSpec("y", ("N", FEATURES)),), gflops_per_item=mlp_gflops(32)),
        GraphSpec("conv", "image[N,3,8,8] → image", (TensorSpec("image", ("N", 3, 8, 8), value_range=(-1.0, 1.0)),),
                  (TensorSpec("out", ("N", 3, 8, 8), value_range=(-1.0, 1.0)),),
                  gflops_per_item=2 * 64 * 9 * (3 * 4 + 4 * 3) / 1e9),
    ),
    presets=(Preset("book", "card figures", {"hidden": 32}), Preset("quick", "smaller", {"hidden": 8})),
    card_preset="book",
    default_preset="quick",
    gpu_preset="book",
)


@hookimpl
def zoo_register_models(register) -> None:  # type: ignore[no-untyped-def]
    register(SPEC)
