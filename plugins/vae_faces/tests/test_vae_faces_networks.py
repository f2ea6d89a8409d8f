"""Networks: the book's shapes at every size, the card's figures recomputed, no randomness inside a graph."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from zoo_vae_faces.networks import (
    Decoder,
    Encoder,
    bottleneck_side,
    decoder_sides,
    encoder_sides,
    kl_per_item,
    reparameterise,
)
from zoo_vae_faces.plugin import SPEC
from zoo_vae_faces.recipe import VaeFacesRecipe

from zoo_core.api import UsageError, assert_card_matches, assert_light_plugin_module, resolve_config

RANDOM_OPS = ("rand", "normal", "bernoulli", "dropout", "uniform", "multinomial", "poisson", "exponential",
              "cauchy", "geometric", "log_normal")


def random_nodes(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[str]:
    """Names of random ops in the ATen graph torch.export traces from ``module``."""
    graph = torch.export.export(module, inputs).run_decompositions().graph
    targets = [str(node.target) for node in graph.nodes if node.op == "call_function"]
    op_names = {t: t.split(".")[1] if t.startswith("aten.") else t for t in targets}  # aten.randn.default → randn
    return [t for t, name in op_names.items() if any(op in name for op in RANDOM_OPS)]


def recipe(image_size: int = 32, preset: str = "quick") -> VaeFacesRecipe:
    model = SPEC
    return VaeFacesRecipe(model, resolve_config(model, preset, {"image_size": image_size}))


@pytest.mark.parametrize(("size", "bottleneck"), [(256, 31), (64, 7), (32, 3), (16, 1), (24, 2)])
def test_the_decoder_inverts_the_encoder_exactly(size: int, bottleneck: int) -> None:
    assert bottleneck_side(size) == bottleneck
    assert encoder_sides(size)[-1] == bottleneck and decoder_sides(bottleneck)[-1] == size
    if size <= 64:
        encoder, decoder = Encoder(size).eval(), Decoder(size).eval()
        mu, log_std = encoder(torch.rand(2, 3, size, size))
        assert mu.shape == log_std.shape == (2, 100)
        assert decoder(mu).shape == (2, 3, size, size)


def test_book_spatial_path() -> None:
    assert encoder_sides(256) == (256, 128, 64, 31)
    assert decoder_sides(31) == (31, 64, 128, 256)
    assert encoder_sides(64) == (64, 32, 16, 7)


@pytest.mark.parametrize("size", [20, 8, 100, 250])
def test_impossible_sizes_are_refused_in_one_line(size: int) -> None:
    with pytest.raises(UsageError) as error:
        bottleneck_side(size)
    assert "\n" not in str(error.value)
    assert f"image_size {size} does not work" in str(error.value) and "multiple of 8" in str(error.value)
    with pytest.raises(UsageError):
        recipe(size)


def test_the_random_op_scanner_sees_random_ops() -> None:
    class Noisy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.randn_like(x)

    assert random_nodes(Noisy(), (torch.zeros(2, 3),))


@pytest.mark.parametrize("graph", ["encoder", "decoder"])
def test_graphs_are_deterministic_and_hold_no_random_node(graph: str) -> None:
    vae = recipe(32)
    torch.manual_seed(0)
    networks = vae.build_networks()
    module = vae.graph_module(graph, networks).eval()
    (inputs,) = vae.example_inputs(graph, 3, torch.Generator().manual_seed(1))
    assert random_nodes(module, (inputs,)) == []
    with torch.no_grad():
        first, second = module(inputs), module(inputs)
    first = first if isinstance(first, tuple) else (first,)
    second = second if isinstance(second, tuple) else (second,)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    declared = vae.graph_spec(graph).outputs
    assert [tuple(t.shape) for t in first] == [t.resolve(vae.config, 3) for t in declared]


def test_encoder_graph_returns_logvar_of_the_books_std() -> None:
    vae = recipe(32)
    networks = vae.build_networks()
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        mu, log_std = networks["encoder"].eval()(images)
        graph_mu, logvar = vae.graph_module("encoder", networks)(images)
    assert torch.equal(mu, graph_mu)
    assert torch.allclose(torch.exp(0.5 * logvar), torch.exp(log_std))


def test_kl_and_sampling_follow_the_book() -> None:
    mu, log_std = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.2, -0.3]])
    std = torch.exp(log_std)
    expected = (std**2 / 2 + mu**2 / 2 - torch.log(std) - 0.5).sum()
    assert torch.allclose(kl_per_item(mu, log_std), expected.unsqueeze(0))
    assert kl_per_item(torch.zeros(1, 4), torch.zeros(1, 4)).item() == 0.0  # q = prior
    noise = torch.tensor([[1.0, 2.0]])
    assert torch.allclose(reparameterise(mu, log_std, noise), mu + std * noise)


def test_card_figures_match_the_book_networks() -> None:
    """Params per network, GFLOPs per item per graph (2 per MAC) and output shapes at the card preset."""
    model = SPEC
    assert_card_matches(model, rel=1e-3)  # the card states GFLOPs to four figures
    assert model.total_params == pytest.approx(63.3e6, rel=1e-3)
    assert model.graph("decoder").outputs[0].resolve(model.preset(model.card_preset).values) == ("N", 3, 256, 256)


def test_the_plugin_module_imports_nothing_heavy() -> None:
    assert_light_plugin_module("zoo_vae_faces.plugin")


@pytest.mark.parametrize("size", [64, 256])
def test_the_books_decoder_never_reaches_its_last_four_rows_and_columns(size: int) -> None:
    # The README's grey band: ConvT(k3, s2, p0, output_padding 1) adds a row and a column no input reaches,
    # and the two later upsamplings spread it to the last 4 of each side, whatever z is.
    torch.manual_seed(0)
    decoder = Decoder(size, 100).eval()
    z = torch.randn(2, 100, requires_grad=True)
    image = decoder(z)
    (edge,) = torch.autograd.grad(image[..., size - 4:, :].sum() + image[..., :, size - 4:].sum(), z,
                                  retain_graph=True)
    (inside,) = torch.autograd.grad(image[..., size - 5, : size - 4].sum(), z)
    assert torch.count_nonzero(edge) == 0 and torch.count_nonzero(inside) > 0
