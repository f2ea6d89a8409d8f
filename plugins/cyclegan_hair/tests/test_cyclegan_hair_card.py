"""The card's declared figures recomputed from the networks, and the presets' values against the recipes."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from zoo_cyclegan_hair.plugin import SPEC, generator_macs
from zoo_cyclegan_hair.recipe import CycleGANRecipe

from zoo_core.api import assert_card_matches, assert_light_plugin_module

BATCH = 2


@pytest.fixture(scope="module")
def recipe() -> CycleGANRecipe:
    return CycleGANRecipe(SPEC, SPEC.preset(SPEC.card_preset).values)


@pytest.fixture(scope="module")
def meta_networks(recipe: CycleGANRecipe) -> dict[str, torch.nn.Module]:
    """The card networks on the meta device: shapes and counts without allocating 28 M weights."""
    with torch.device("meta"):
        return recipe.build_networks()


def test_card_figures_match_the_networks() -> None:
    assert_card_matches(SPEC, rel=1e-12)
    assert {n.name for n in SPEC.networks} == {"G_AB", "G_BA", "D_A", "D_B"}
    assert SPEC.total_params == 2 * 11_378_179 + 2 * 2_764_737  # the book's "about 28.3 M"
    assert all(g.gflops_per_item == pytest.approx(99.1, abs=0.05) for g in SPEC.graphs)  # ANCHORS.md
    assert all(g.outputs[0].resolve(SPEC.preset("book").values) == ("N", 3, 256, 256) for g in SPEC.graphs)


def test_the_mac_formula_holds_at_other_settings() -> None:
    quick = SPEC.preset("quick").values
    with torch.device("meta"):
        generator = CycleGANRecipe(SPEC, {**quick, "preset": "quick"}).build_networks()["G_AB"]
        with FlopCounterMode(display=False) as counter:
            generator(torch.empty(1, 3, 64, 64))
    assert counter.get_total_flops() == 2 * generator_macs(64, quick["features"], quick["res_blocks"])


def test_graph_outputs_are_real_images_in_range(tiny_settings: dict[str, object]) -> None:
    config = {**SPEC.preset("quick").values, **tiny_settings, "preset": "quick"}
    recipe = CycleGANRecipe(SPEC, config)
    torch.manual_seed(0)
    networks = recipe.build_networks()
    for graph in SPEC.graphs:
        inputs = recipe.example_inputs(graph.name, 3, torch.Generator().manual_seed(1))
        with torch.no_grad():
            out = recipe.graph_module(graph.name, networks).eval()(*inputs)
        assert out.shape == (3, 3, 32, 32) and out.dtype == torch.float32
        assert -1 <= float(out.min()) and float(out.max()) <= 1


def test_book_preset_is_the_seed_recipe() -> None:
    book = SPEC.preset("book").values
    assert {k: book[k] for k in ("image_size", "load_size", "flip", "features", "res_blocks", "d_features")} == {
        "image_size": 256, "load_size": 256, "flip": True, "features": 64, "res_blocks": 9, "d_features": 64}
    assert book["d_sigmoid"] is True and book["cycle_weight"] == 10.0 and book["identity_weight"] == 0.0
    assert book["pool_size"] == 0 and book["lr"] == 1e-5 and (book["beta1"], book["beta2"]) == (0.5, 0.999)
    assert book["d_first"] is True and book["batch_size"] == 1 and book["amp"] is True
    assert book["init"] == "default" and book["epochs"] == 1 and book["decay_epochs"] == 0


def test_reference_preset_is_the_papers_recipe() -> None:
    ref = SPEC.preset("reference").values
    assert ref["d_sigmoid"] is False and ref["identity_weight"] == 0.5 * ref["cycle_weight"] == 5.0
    assert ref["pool_size"] == 50 and ref["lr"] == 2e-4 and (ref["beta1"], ref["beta2"]) == (0.5, 0.999)
    assert (ref["epochs"], ref["decay_epochs"]) == (200, 100) and ref["init"] == "normal"
    assert (ref["load_size"], ref["image_size"]) == (286, 256) and ref["flip"] is True
    assert ref["d_first"] is False and ref["batch_size"] == 1


def test_quick_preset_is_small_and_every_preset_has_the_same_keys() -> None:
    quick = SPEC.preset("quick").values
    assert quick["image_size"] == 64 and quick["res_blocks"] < 9
    keys = [set(p.values) for p in SPEC.presets]
    assert keys[0] == keys[1] == keys[2]
    assert (SPEC.card_preset, SPEC.default_preset, SPEC.gpu_preset) == ("book", "quick", "book")


def test_plugin_module_imports_nothing_heavy() -> None:
    assert_light_plugin_module("zoo_cyclegan_hair.plugin")


def test_zoo_info_shows_the_card(zoo) -> None:
    result = zoo("info", "cyclegan_hair", "--json")
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert {n["name"]: n["params"] for n in card["networks"]} == {
        "G_AB": 11_378_179, "G_BA": 11_378_179, "D_A": 2_764_737, "D_B": 2_764_737}
    assert [g["inputs"][0]["shape"] for g in card["graphs"]] == [["N", 3, 256, 256]] * 2
    assert [t["name"] for t in card["tasks"]] == ["translate", "roundtrip"]
