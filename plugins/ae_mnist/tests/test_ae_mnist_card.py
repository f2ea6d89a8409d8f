"""The card's declared figures, recomputed from the networks, like torchvision's model metadata tests."""

from __future__ import annotations

import pytest
import torch
from zoo_ae_mnist.plugin import SPEC
from zoo_ae_mnist.recipe import AutoencoderRecipe

from zoo_core.api import assert_card_matches, assert_light_plugin_module

BATCH = 3


@pytest.fixture(scope="module")
def recipe() -> AutoencoderRecipe:
    return AutoencoderRecipe(SPEC, SPEC.preset(SPEC.card_preset).values)


@pytest.fixture(scope="module")
def networks(recipe: AutoencoderRecipe) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return recipe.build_networks()


def test_card_figures_match_the_networks() -> None:
    assert_card_matches(SPEC, rel=1e-12)
    assert SPEC.total_params == 322_804  # the book's "about 323 k"


@pytest.mark.parametrize("graph", [g.name for g in SPEC.graphs])
def test_graph_outputs_are_float_and_in_range(graph: str, recipe: AutoencoderRecipe,
                                              networks: dict[str, torch.nn.Module]) -> None:
    spec = SPEC.graph(graph)
    module = recipe.graph_module(graph, networks).eval()
    inputs = recipe.example_inputs(graph, BATCH, torch.Generator().manual_seed(1))
    for tensor, value in zip(spec.inputs, inputs, strict=True):
        assert tuple(value.shape) == tensor.resolve(recipe.config, BATCH)
    with torch.no_grad():
        outputs = module(*inputs)
    outputs = (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)
    assert len(outputs) == len(spec.outputs)
    for tensor, value in zip(spec.outputs, outputs, strict=True):
        assert tuple(value.shape) == tensor.resolve(recipe.config, BATCH), tensor.name
        assert value.dtype == torch.float32
        if tensor.value_range is not None:
            assert tensor.value_range[0] <= float(value.min()) and float(value.max()) <= tensor.value_range[1]


def test_the_autoencoder_graph_is_the_decoder_after_the_encoder(recipe: AutoencoderRecipe,
                                                                networks: dict[str, torch.nn.Module]) -> None:
    (images,) = recipe.example_inputs("autoencoder", BATCH, torch.Generator().manual_seed(2))
    with torch.no_grad():
        composed = recipe.graph_module("decoder", networks)(recipe.graph_module("encoder", networks)(images))
        assert torch.equal(recipe.graph_module("autoencoder", networks)(images), composed)


def test_book_preset_is_the_seed_recipe() -> None:
    book = SPEC.preset("book").values
    assert (book["h_dim"], book["z_dim"], book["lr"], book["batch_size"], book["epochs"]) == (200, 20, 2.5e-4, 32, 10)
    layers = [type(m).__name__ for m in AutoencoderRecipe(SPEC, book).build_networks()["decoder"]]
    assert layers == ["Linear", "ReLU", "Linear", "Sigmoid"]


def test_plugin_module_imports_nothing_heavy() -> None:
    assert_light_plugin_module("zoo_ae_mnist.plugin")
