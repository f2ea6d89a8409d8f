"""The plain-data model spec: symbolic shapes, validation, lookups, import strings, and card figures that recompute."""

from __future__ import annotations

import dataclasses

import pytest

from zoo_core.spec import GraphSpec, ModelSpec, NetworkSpec, Preset, RuntimeSpec, TensorSpec, load_object


def test_tensor_shape_resolves_config_keys_and_keeps_the_batch_symbolic() -> None:
    image = TensorSpec("image", ("N", 3, "image_size", "image_size"), value_range=(-1.0, 1.0))
    assert image.resolve({"image_size": 64}) == ("N", 3, 64, 64)
    assert image.resolve({"image_size": "32"}, batch=5) == (5, 3, 32, 32)
    assert image.describe({"image_size": 64}) == "image[N,3,64,64] float32 in [-1,1]"
    assert TensorSpec("z", ("N", 100), dtype="float16").describe({}) == "z[N,100] float16"


def test_tensor_shape_naming_a_missing_config_key_says_which() -> None:
    with pytest.raises(KeyError, match="tensor 'image': shape names 'image_size', which the config lacks"):
        TensorSpec("image", ("N", "image_size")).resolve({"latent_dim": 4})


def test_model_spec_lookups_and_total_params(model_spec) -> None:
    spec = model_spec("m")
    assert spec.total_params == 1_234
    assert spec.preset("book").values["latent_dim"] == 100
    assert spec.graph("decoder").input("z").shape == ("N", "latent_dim")
    assert spec.task("sample").graphs == ("decoder",)
    for lookup in (spec.preset, spec.graph, spec.task):
        with pytest.raises(KeyError):
            lookup("nothing")
    with pytest.raises(KeyError):
        spec.graph("decoder").input("nothing")


@pytest.mark.parametrize("field", ["networks", "graphs", "presets", "tasks"])
def test_model_spec_refuses_duplicate_names(model_spec, field) -> None:
    items = getattr(model_spec("m"), field)
    with pytest.raises(ValueError, match=f"model 'm': duplicate {field[:-1]} names"):
        model_spec("m", **{field: (*items, items[0])})


@pytest.mark.parametrize("role", ["card_preset", "default_preset", "gpu_preset"])
def test_model_spec_preset_roles_must_name_presets(model_spec, role) -> None:
    with pytest.raises(ValueError, match=f"model 'm': {role} 'huge' is not a preset"):
        model_spec("m", **{role: "huge"})


def test_model_spec_is_immutable(model_spec) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        model_spec("m").name = "other"


def test_spec_defaults() -> None:
    z = TensorSpec("z", ("N", 2))
    spec = ModelSpec(name="d", summary="s", recipe="a:B", networks=(NetworkSpec("n", "n", 1),),
                     graphs=(GraphSpec("g", "g", (z,), (z,), 0.0),),
                     presets=(Preset("quick", "", {}), Preset("book", "", {})))
    assert (spec.card_preset, spec.default_preset, spec.gpu_preset, spec.license) == ("book", "quick", "book", "MIT")
    assert (spec.tasks, spec.data_layouts, spec.tags, spec.graph("g").tolerance) == ((), (), (), {})
    assert z.dtype == "float32" and z.value_range is None


def test_load_object_imports_on_demand() -> None:
    assert load_object("zoo_core.spec:RuntimeSpec") is RuntimeSpec
    assert load_object("os.path:join.__name__") == "join"
    with pytest.raises(ValueError, match="is not of the form 'module:attribute'"):
        load_object("zoo_core.spec")
    with pytest.raises(ModuleNotFoundError):
        load_object("zoo_no_such_module:thing")
    with pytest.raises(AttributeError):
        load_object("zoo_core.spec:NoSuchThing")


# -- card figures: the numbers a plugin declares are recomputed from the networks it builds -------------------------
def recompute_card(spec: ModelSpec) -> tuple[dict[str, int], dict[str, float]]:
    """Parameters per network and GFLOPs per item per graph (2 per multiply-add) at the card preset."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    recipe = load_object(spec.recipe)(spec, dict(spec.preset(spec.card_preset).values))
    torch.manual_seed(0)
    networks = recipe.build_networks()
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in networks.items()}
    gflops = {}
    for graph in spec.graphs:
        module = recipe.graph_module(graph.name, networks).eval()
        inputs = recipe.example_inputs(graph.name, 2, torch.Generator().manual_seed(0))
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(*inputs)
        gflops[graph.name] = counter.get_total_flops() / 2 / 1e9
    return params, gflops


def test_testplugin_card_figures_recompute(testplugin_source) -> None:
    from zoo_testplugin.plugin import SPEC

    params, gflops = recompute_card(SPEC)
    assert params == {n.name: n.params for n in SPEC.networks}
    assert gflops == pytest.approx({g.name: g.gflops_per_item for g in SPEC.graphs}, rel=1e-6)


def test_testplugin_graphs_match_their_declared_shapes_and_ranges(testplugin_source) -> None:
    import torch
    from zoo_testplugin.plugin import SPEC

    for preset in SPEC.presets:
        recipe = load_object(SPEC.recipe)(SPEC, dict(preset.values))
        networks = recipe.build_networks()
        for graph in SPEC.graphs:
            inputs = recipe.example_inputs(graph.name, 3, torch.Generator().manual_seed(1))
            with torch.no_grad():
                outputs = recipe.graph_module(graph.name, networks)(*inputs)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            for tensor, value in zip(graph.outputs, outputs, strict=True):
                assert tuple(value.shape) == tensor.resolve(preset.values, batch=3)
                if tensor.value_range is not None:
                    assert tensor.value_range[0] <= float(value.min()) <= float(value.max()) <= tensor.value_range[1]
