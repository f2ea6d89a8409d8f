"""The `zoo` command in-process (click's CliRunner): catalogue commands, their JSON schemas, errors, completion."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result

from zoo_core import __version__, hookimpl
from zoo_core.cli import cli
from zoo_core.spec import DataLayout, ModelSpec
from zoo_core.testing import ModelsPlugin


class BrokenPlugin:
    @hookimpl
    def zoo_register_models(self, register: Callable[[ModelSpec], None]) -> None:
        raise ValueError("cannot build the card")


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    # a wide console, so rich tables keep each cell on one line
    return CliRunner().invoke(cli, list(args), prog_name="zoo", env={"COLUMNS": "200", **(env or {})})


@pytest.fixture
def zoo_models(make_host, model_spec):
    """Two models from one distribution, one from another, and a plugin whose hook raises."""
    layouts = (DataLayout("mnist-idx", "MNIST IDX files"), DataLayout("folder", "a folder of images"))
    return make_host(
        (ModelsPlugin(model_spec("dcgan_faces"), model_spec("dcgan_cats", summary="cats")), "zoo-dcgan", "0.4.0"),
        (ModelsPlugin(model_spec("ae_mnist", data_layouts=layouts)), "zoo-ae-mnist", "1.0.0"),
        (BrokenPlugin(), "zoo-broken", "0.0.1"),
    )


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"zoo {__version__}\n"


def test_help_lists_every_core_command(make_host) -> None:
    make_host()
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("list", "info", "plugins", "train", "generate", "plugin"):
        assert f"\n  {command} " in result.stdout


def test_unknown_command_is_one_line_and_exit_2(make_host) -> None:
    make_host()
    result = invoke("lsit")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("zoo: ")


# -- zoo list ------------------------------------------------------------------------------------------------------
LIST_KEYS = {"name": str, "summary": str, "distribution": str, "version": str, "graphs": list, "presets": list,
             "tasks": list, "params": int, "params_preset": str, "tags": list, "weights": list}


def check_types(item: dict[str, Any], schema: dict[str, type]) -> None:
    assert set(item) >= set(schema), f"missing keys {set(schema) - set(item)}"
    for key, kind in schema.items():
        assert isinstance(item[key], kind), f"{key} is {type(item[key]).__name__}, expected {kind.__name__}"


def test_list_json_schema_and_order(zoo_models) -> None:
    result = invoke("list", "--json")
    assert result.exit_code == 0
    models = json.loads(result.stdout)
    assert [m["name"] for m in models] == ["ae_mnist", "dcgan_cats", "dcgan_faces"]
    for model in models:
        check_types(model, LIST_KEYS)
        assert set(model) == set(LIST_KEYS)
    cats = models[1]
    assert (cats["summary"], cats["distribution"], cats["version"]) == ("cats", "zoo-dcgan", "0.4.0")
    assert (cats["graphs"], cats["presets"], cats["tasks"], cats["params"]) == (["decoder"], ["quick", "book"],
                                                                                ["sample"], 1_234)


def test_list_table_shows_summary_and_parameters_at_their_preset(zoo_models) -> None:
    result = invoke("list")
    assert result.exit_code == 0
    for text in ("dcgan_faces", "cats", "0.00 M at book", "parameters at each model's card preset"):
        assert text in result.stdout


def test_list_fits_80_columns_with_whole_names(zoo_models) -> None:
    result = invoke("list", env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    rows = [line for line in result.stdout.splitlines() if "M at book" in line]
    assert [row.split()[1] for row in rows] == ["ae_mnist", "dcgan_cats", "dcgan_faces"]


def test_an_unknown_task_lists_the_tasks(zoo_models) -> None:
    result = invoke("generate", "dcgan_cats", "sampel")
    assert result.exit_code == 2
    assert result.stderr == "zoo: model dcgan_cats has no task 'sampel'; did you mean sample? tasks: sample\n"


def test_list_with_no_models_says_where_to_look(make_host) -> None:
    make_host()
    result = invoke("list")
    assert result.exit_code == 0 and "no models installed" in result.stdout
    assert json.loads(invoke("list", "--json").stdout) == []


# -- zoo info ------------------------------------------------------------------------------------------------------
TENSOR_KEYS = {"name": str, "shape": list, "declared_shape": list, "dtype": str, "layout": str}
CARD_KEYS = {**LIST_KEYS, "source": str, "license": str, "card_preset": str, "default_preset": str,
             "gpu_preset": str, "networks": list, "presets": list, "data_layouts": list}


def test_info_json_is_the_whole_card(zoo_models) -> None:
    result = invoke("info", "ae_mnist", "--json")
    assert result.exit_code == 0
    card = json.loads(result.stdout)
    check_types(card, CARD_KEYS)
    assert (card["name"], card["distribution"], card["version"], card["card_preset"]) == (
        "ae_mnist", "zoo-ae-mnist", "1.0.0", "book")
    assert card["networks"] == [{"name": "generator", "summary": "makes images", "params": 1_200},
                                {"name": "critic", "summary": "judges them", "params": 34}]
    (graph,) = card["graphs"]
    assert (graph["name"], graph["gflops_per_item"]) == ("decoder", 0.125)
    (z,), (image,) = graph["inputs"], graph["outputs"]
    for tensor in (z, image):
        check_types(tensor, TENSOR_KEYS)
    # shapes are resolved at the card preset ("book"), the batch axis stays symbolic
    assert (z["name"], z["shape"], z["dtype"], z["value_range"], z["layout"]) == ("z", ["N", 100], "float32", None,
                                                                                 "NC")
    assert (image["shape"], image["declared_shape"], image["value_range"]) == (["N", 3, 64, 64],
                                                                               ["N", 3, "image_size", "image_size"],
                                                                               [-1.0, 1.0])
    assert card["presets"][1] == {"name": "book", "summary": "as published",
                                  "values": {"image_size": 64, "latent_dim": 100, "batch_size": 128, "epochs": 25}}
    assert card["tasks"] == [{"name": "sample", "summary": "a grid of samples", "graphs": ["decoder"]}]
    assert card["data_layouts"] == [{"name": "mnist-idx", "summary": "MNIST IDX files"},
                                    {"name": "folder", "summary": "a folder of images"}]


def test_info_table_shows_networks_graphs_presets_and_layouts(zoo_models) -> None:
    result = invoke("info", "ae_mnist")
    assert result.exit_code == 0
    for text in ("1,200", "critic", "z[N,100] float32", "image[N,3,64,64]", "in [-1,1]", "0.125", "latent_dim=100",
                 "epochs=25", "mnist-idx", "zoo-ae-mnist 1.0.0", "preset book", "sample"):
        assert text in result.stdout, text


@pytest.mark.parametrize("command", [["info"], ["info", "--json"], ["train"], ["generate"]])
def test_unknown_model_is_one_line_with_close_matches_and_exit_2(zoo_models, command) -> None:
    result = invoke(command[0], "dcgan_face", *command[1:])
    assert result.exit_code == 2
    assert result.stderr == "zoo: unknown model 'dcgan_face'; did you mean dcgan_faces or dcgan_cats?\n"
    assert result.stdout == ""


def test_unknown_model_without_close_matches_lists_the_known_ones(zoo_models) -> None:
    result = invoke("info", "zzz")
    assert result.stderr == "zoo: unknown model 'zzz'; known: ae_mnist, dcgan_cats, dcgan_faces\n"


# -- zoo plugins ---------------------------------------------------------------------------------------------------
PLUGIN_KEYS = {"name": str, "version": str, "entry_points": list, "hooks": list, "models": list, "runtimes": list,
               "commands": list, "errors": list, "deprecations": list}


def test_plugins_json_schema_and_errors(zoo_models) -> None:
    result = invoke("plugins", "--json")
    assert result.exit_code == 0
    records = {r["name"]: r for r in json.loads(result.stdout)}
    assert sorted(records) == ["zoo-ae-mnist", "zoo-broken", "zoo-core", "zoo-dcgan"]
    for record in records.values():
        check_types(record, PLUGIN_KEYS)
        assert set(record) == set(PLUGIN_KEYS)
        assert all(isinstance(x, str) for key in ("hooks", "models", "runtimes", "errors") for x in record[key])
    assert records["zoo-dcgan"]["models"] == ["dcgan_faces", "dcgan_cats"]
    assert records["zoo-dcgan"]["hooks"] == ["zoo_register_models"]
    assert records["zoo-core"]["runtimes"] == ["torch"] and records["zoo-core"]["version"] == __version__
    assert records["zoo-broken"]["errors"] == ["zoo_register_models raised ValueError: cannot build the card"]


def test_plugins_table_shows_what_each_registered_and_errors(zoo_models) -> None:
    result = invoke("plugins")
    assert result.exit_code == 0
    for text in ("zoo-dcgan", "0.4.0", "model dcgan_faces", "runtime torch", "zoo_register_models", "ValueError"):
        assert text in result.stdout, text


# -- shell completion through click's environment-variable protocol ------------------------------------------------
def complete(words: str) -> list[str]:
    """What bash would offer for the last (possibly empty) word of ``words``."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = {"_ZOO_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = invoke(env=env)
    assert result.exit_code == 0, result.output
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


@pytest.mark.parametrize("command", ["info", "train", "generate"])
def test_model_names_complete(zoo_models, command) -> None:
    assert complete(f"zoo {command} dcgan") == ["dcgan_cats", "dcgan_faces"]
    assert complete(f"zoo {command} ") == ["ae_mnist", "dcgan_cats", "dcgan_faces"]
    assert complete(f"zoo {command} x") == []


def test_generate_completes_task_names(zoo_models) -> None:
    assert complete("zoo generate ae_mnist ") == ["sample"]


def test_completion_after_an_unknown_model_prints_no_error(zoo_models) -> None:
    env = {"_ZOO_COMPLETE": "bash_complete", "COMP_WORDS": "zoo generate nosuch ", "COMP_CWORD": "3"}
    result = invoke(env=env)
    assert result.exit_code == 0 and result.stderr == ""


def test_commands_complete(zoo_models) -> None:
    assert complete("zoo pl") == ["plugin", "plugins"]


def test_bash_source_prints_the_completion_script() -> None:
    result = invoke(env={"_ZOO_COMPLETE": "bash_source"})
    assert result.exit_code == 0
    assert "_ZOO_COMPLETE=bash_complete" in result.stdout and "complete -o nosort -F" in result.stdout


# -- commands from plugins -------------------------------------------------------------------------------------------
def test_plugin_command_runs_from_the_cli(make_host) -> None:
    import click

    class Commands:
        @hookimpl
        def zoo_register_commands(self, cli: click.Group) -> None:
            @cli.command("shout")
            @click.argument("word")
            def shout(word: str) -> None:
                """Print WORD in capitals."""
                click.echo(word.upper())

    make_host((Commands(), "zoo-shout", "1"), commands=True)
    assert invoke("shout", "zoo").stdout == "ZOO\n"
    assert "shout" in invoke("--help").stdout


def test_plugin_commands_are_found_without_anyone_adding_them(make_host) -> None:
    """CliRunner(cli) and zoo_core.testing.invoke see the current host's commands, as `zoo` itself does."""
    import click

    from zoo_core.testing import invoke as zoo_invoke

    class Commands:
        @hookimpl
        def zoo_register_commands(self, cli: click.Group) -> None:
            @cli.command("whisper")
            def whisper() -> None:
                click.echo("psst")

            @cli.command("list")
            def shadow() -> None:
                click.echo("a plugin cannot replace a core command")

    host = make_host((Commands(), "zoo-whisper", "1"))
    assert "whisper" not in cli.commands
    assert zoo_invoke("whisper").stdout == "psst\n"
    assert invoke("list", "--json").stdout.startswith("[")
    assert "whisper" in invoke("--help").stdout
    assert json.loads(invoke("plugins", "--json").stdout)[-1]["commands"] == ["list", "whisper"]
    assert host.records["zoo-whisper"].commands == ["list", "whisper"]


@pytest.mark.parametrize("command", ["export", "bench"])
def test_model_names_complete_for_plugin_commands(make_host, model_spec, command) -> None:
    import zoo_bench.plugin
    import zoo_export.plugin

    make_host((ModelsPlugin(model_spec("dcgan_faces"), model_spec("vae_cats")), "zoo-models", "1"),
              (zoo_export.plugin, "zoo-export", "0.1.0"), (zoo_bench.plugin, "zoo-bench", "0.1.0"))
    assert complete(f"zoo {command} dc") == ["dcgan_faces"]
    assert complete(f"zoo {command} ") == ["dcgan_faces", "vae_cats"]
