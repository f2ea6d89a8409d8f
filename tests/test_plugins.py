"""The plugin host: hook validation, per-plugin error capture, duplicates, the environment variables."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import click
import pytest

from zoo_core import __version__, hookimpl, hookspecs, plugins
from zoo_core.registry import get_runtime, list_models, list_runtimes, registered_model
from zoo_core.spec import RuntimeSpec
from zoo_core.testing import ModelsPlugin


def test_hookspecs_are_the_three_register_hooks() -> None:
    names = sorted(n for n in vars(hookspecs) if n.startswith("zoo_"))
    assert names == ["zoo_register_commands", "zoo_register_models", "zoo_register_runtimes"]


def test_in_process_plugin_registers_models_and_unregisters(make_host, model_spec) -> None:
    host = make_host((ModelsPlugin(model_spec("alpha"), model_spec("beta")), "zoo-greek", "1.2"))
    assert [m.name for m in list_models()] == ["alpha", "beta"]
    assert [m.name for m in list_models("b*")] == ["beta"]
    model = registered_model("alpha")
    assert (model.distribution, model.version) == ("zoo-greek", "1.2")
    record = host.records["zoo-greek"]
    assert record.models == ["alpha", "beta"] and record.hooks == ["zoo_register_models"] and not record.errors

    host.unregister("zoo-greek")
    assert list_models() == [] and "zoo-greek" not in host.records
    assert host.pm.get_plugins() == {plugins.get_host().pm.get_plugin("zoo-core:builtin")}


def test_builtin_plugin_registers_the_torch_runtime(make_host) -> None:
    host = make_host()
    assert [r.name for r in list_runtimes()] == ["torch"]
    assert get_runtime("torch").distribution == "zoo-core"
    assert host.records["zoo-core"].as_json()["runtimes"] == ["torch"]
    assert host.records["zoo-core"].version == __version__


def test_hookimpl_with_an_argument_the_spec_lacks_is_reported(make_host, model_spec, warnings_seen) -> None:
    class Plugin:
        @hookimpl
        def zoo_register_models(self, register, model_aliases):  # model_aliases is no zoo hook argument
            register(model_spec("never"))

    host = make_host((Plugin(), "zoo-bad-args", "0.1"))
    (error,) = host.records["zoo-bad-args"].errors
    assert error.startswith("invalid hook implementation") and "model_aliases" in error
    assert "never" not in host.models
    assert warnings_seen == [f"zoo: plugin zoo-bad-args 0.1: {error}"]


def test_unknown_hook_name_is_reported_with_the_close_match(make_host, model_spec, warnings_seen) -> None:
    class Plugin:
        @hookimpl
        def zoo_register_model(self, register):  # missing the final "s"
            register(model_spec("typo"))

        @hookimpl
        def zoo_register_runtimes(self, register):
            register(RuntimeSpec("fake", "a fake runtime", "zoo_core.runtime:load_torch_runner"))

    host = make_host((Plugin(), "zoo-typo", "0.1"))
    record = host.records["zoo-typo"]
    assert record.errors == ["unknown hook 'zoo_register_model' (did you mean zoo_register_models?)"]
    assert record.hooks == ["zoo_register_runtimes"]  # the valid hook of the same plugin still runs
    assert record.runtimes == ["fake"] and "typo" not in host.models
    assert len(warnings_seen) == 1


def test_unknown_hook_suggestions_come_from_real_hooks_only(make_host, warnings_seen) -> None:
    class First:
        @hookimpl
        def zoo_register_modelz(self, register):
            pass

    class Second:
        @hookimpl
        def zoo_register_modelx(self, register):
            pass

    host = make_host((First(), "zoo-first", "1"), (Second(), "zoo-second", "1"))
    assert host.records["zoo-second"].errors == [
        "unknown hook 'zoo_register_modelx' (did you mean zoo_register_models?)"]


def test_hook_that_raises_is_reported_and_other_plugins_still_register(make_host, model_spec, warnings_seen) -> None:
    class Exploding:
        @hookimpl
        def zoo_register_models(self, register):
            register(model_spec("half"))
            raise RuntimeError("weights\nmissing")

    host = make_host((Exploding(), "zoo-boom", "2.0"), (ModelsPlugin(model_spec("fine")), "zoo-fine", "1.0"))
    assert host.records["zoo-boom"].errors == ["zoo_register_models raised RuntimeError: weights missing"]
    assert warnings_seen == ["zoo: plugin zoo-boom 2.0: zoo_register_models raised RuntimeError: weights missing"]
    assert sorted(host.models) == ["fine", "half"]  # what it registered before raising is kept
    assert host.records["zoo-fine"].models == ["fine"] and not host.records["zoo-fine"].errors


def test_register_refuses_anything_but_a_model_spec(make_host) -> None:
    class Wrong:
        @hookimpl
        def zoo_register_models(self, register):
            register({"name": "dict"})

    host = make_host((Wrong(), "zoo-wrong", "1"))
    assert host.records["zoo-wrong"].errors == [
        "zoo_register_models raised TypeError: register() takes a ModelSpec, got dict"]
    assert host.models == {}


def test_duplicate_model_names_an_error_naming_both_and_the_first_keeps_it(make_host, model_spec,
                                                                           warnings_seen) -> None:
    first, second = model_spec("twin", summary="first"), model_spec("twin", summary="second")
    host = make_host((ModelsPlugin(first), "zoo-one", "1.0"), (ModelsPlugin(second), "zoo-two", "2.0"))
    assert registered_model("twin").spec.summary == "first" and registered_model("twin").distribution == "zoo-one"
    assert host.records["zoo-one"].models == ["twin"] and not host.records["zoo-one"].errors
    assert host.records["zoo-two"].models == []
    assert warnings_seen == ["zoo: plugin zoo-two 2.0: model 'twin' is already registered by zoo-one; "
                             "zoo-one keeps the name"]


def test_duplicate_runtime_names_the_first_keeps_it(make_host) -> None:
    class Shadow:
        @hookimpl
        def zoo_register_runtimes(self, register):
            register(RuntimeSpec("torch", "an impostor", "nowhere:load"))

    host = make_host((Shadow(), "zoo-shadow", "1"))
    assert get_runtime("torch").distribution == "zoo-core"
    assert host.records["zoo-shadow"].errors == [
        "runtime 'torch' is already registered by zoo-core; zoo-core keeps the name"]


def test_hookimpl_may_take_a_subset_of_the_arguments(make_host) -> None:
    calls = []

    class NoArguments:
        @hookimpl
        def zoo_register_commands(self):
            calls.append("called")

    make_host((NoArguments(), "zoo-quiet", "1"), commands=True)
    assert calls == ["called"]


def test_commands_hook_adds_commands_and_records_them(make_host) -> None:
    class Commands:
        @hookimpl
        def zoo_register_commands(self, cli: click.Group) -> None:
            @cli.command("hello-test")
            def hello() -> None:
                click.echo("hi")

    host = make_host((Commands(), "zoo-hello", "1"), commands=True)
    assert host.records["zoo-hello"].commands == ["hello-test"]
    assert host.records["zoo-hello"].hooks == ["zoo_register_commands"]


def test_commands_hook_that_raises_is_reported(make_host, warnings_seen) -> None:
    class Broken:
        @hookimpl
        def zoo_register_commands(self, cli):
            raise ImportError("no module named heavy")

    host = make_host((Broken(), "zoo-cmd", "1"), commands=True)
    assert host.records["zoo-cmd"].errors == ["zoo_register_commands raised ImportError: no module named heavy"]


def test_strict_mode_reraises_for_plugin_authors(monkeypatch, model_spec) -> None:
    class Exploding:
        @hookimpl
        def zoo_register_models(self, register):
            raise RuntimeError("bug in my plugin")

    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    host = plugins.PluginHost(warn=lambda line: None)
    host.register(Exploding(), "zoo-strict", "1")
    with pytest.raises(RuntimeError, match="bug in my plugin"):
        host.collect()


# -- entry points: hand-made distributions on sys.path, loaded through importlib.metadata -----------------------
GOOD_MODULE = """
    from zoo_core import hookimpl
    from zoo_core.spec import GraphSpec, ModelSpec, NetworkSpec, Preset, TensorSpec

    def spec(name):
        z = TensorSpec("z", ("N", 4))
        return ModelSpec(name=name, summary=name, recipe="x:Y", networks=(NetworkSpec("g", "g", 10),),
                         graphs=(GraphSpec("decoder", "d", (z,), (z,), 0.0),),
                         presets=(Preset("quick", "q", {}), Preset("book", "b", {})))

    @hookimpl
    def zoo_register_models(register):
        register(spec("{model}"))
"""


def good_plugin(fake_site, distribution: str, model: str, site: str = "site") -> Path:
    module = distribution.replace("-", "_")
    return fake_site(site, distribution, "1.0", {f"{module}.py": GOOD_MODULE.replace("{model}", model)},
                     {"main": module})


def dists(*sites: Path) -> list[metadata.Distribution]:
    return list(metadata.distributions(path=[str(s) for s in sites]))


def test_entry_points_load_per_distribution_with_version(make_host, fake_site) -> None:
    site = good_plugin(fake_site, "zoo-fake-a", "model_a")
    fake_site("site", "zoo-fake-two", "3.1", {
        "zoo_fake_two/__init__.py": "",
        "zoo_fake_two/models.py": GOOD_MODULE.replace("{model}", "model_two"),
        "zoo_fake_two/runtimes.py": """
            from zoo_core import hookimpl
            from zoo_core.spec import RuntimeSpec

            @hookimpl
            def zoo_register_runtimes(register):
                register(RuntimeSpec("fake", "fake", "nowhere:load"))
        """,
    }, {"models": "zoo_fake_two.models", "runtimes": "zoo_fake_two.runtimes"})
    host = make_host(distributions=dists(site))
    two = host.records["zoo-fake-two"]
    assert (two.version, sorted(two.entry_points), two.models, two.runtimes) == (
        "3.1", ["models", "runtimes"], ["model_two"], ["fake"])
    assert sorted(two.hooks) == ["zoo_register_models", "zoo_register_runtimes"]
    assert host.records["zoo-fake-a"].models == ["model_a"]


def test_import_error_is_recorded_with_the_distribution_and_version(make_host, fake_site, warnings_seen) -> None:
    site = fake_site("site", "zoo-broken", "0.9", {"zoo_broken.py": "import zoo_not_installed_anywhere\n"},
                     {"broken": "zoo_broken"})
    good_plugin(fake_site, "zoo-fine", "fine")
    host = make_host(distributions=dists(site))
    record = host.records["zoo-broken"]
    assert record.version == "0.9" and record.entry_points == ["broken"] and record.models == []
    assert record.errors == ["failed to load entry point 'zoo_broken': ModuleNotFoundError: "
                             "No module named 'zoo_not_installed_anywhere'"]
    assert warnings_seen == [f"zoo: plugin zoo-broken 0.9: {record.errors[0]}"]
    assert list(host.models) == ["fine"]


def test_syntax_error_in_a_plugin_is_recorded(make_host, fake_site) -> None:
    site = fake_site("site", "zoo-syntax", "1", {"zoo_syntax.py": "def broken(:\n"}, {"x": "zoo_syntax"})
    host = make_host(distributions=dists(site))
    assert host.records["zoo-syntax"].errors[0].startswith("failed to load entry point 'zoo_syntax': SyntaxError")


def test_a_malformed_entry_points_file_is_reported_and_others_still_load(make_host, fake_site,
                                                                         warnings_seen) -> None:
    site = good_plugin(fake_site, "zoo-fine", "fine")
    (site / "zoo_mangled-1.0.dist-info").mkdir()
    (site / "zoo_mangled-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-mangled\n"
                                                                 "Version: 1.0\n")
    (site / "zoo_mangled-1.0.dist-info" / "entry_points.txt").write_text("[zoo]\nline without an equals sign\n")
    (site / "other-2.0.dist-info").mkdir()  # not a zoo plugin: its broken file is none of zoo's business
    (site / "other-2.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: other\nVersion: 2.0\n")
    (site / "other-2.0.dist-info" / "entry_points.txt").write_text("[console_scripts]\nno equals\n")
    host = make_host(distributions=dists(site))
    (error,) = host.records["zoo-mangled"].errors
    assert error.startswith("unreadable entry_points.txt: ")
    assert list(host.models) == ["fine"] and "other" not in host.records
    assert warnings_seen == [f"zoo: plugin zoo-mangled 1.0: {error}"]


def test_the_same_distribution_twice_on_the_path_loads_once(make_host, fake_site) -> None:
    first = good_plugin(fake_site, "zoo-dup", "dup_model", site="first")
    second = good_plugin(fake_site, "zoo-dup", "dup_model", site="second")
    host = make_host(distributions=dists(first, second))
    assert host.records["zoo-dup"].entry_points == ["main"] and not host.records["zoo-dup"].errors


def test_distributions_without_zoo_entry_points_are_not_plugins(make_host) -> None:
    host = make_host(distributions=[metadata.distribution("pluggy"), metadata.distribution("click")])
    assert list(host.records) == ["zoo-core"]


@pytest.fixture
def three_plugins(fake_site) -> Path:
    site = good_plugin(fake_site, "zoo-red", "red")
    good_plugin(fake_site, "zoo-green", "green")
    good_plugin(fake_site, "zoo_blue", "blue")
    return site


@pytest.mark.parametrize(("variables", "loaded"), [
    ({}, ["blue", "green", "red"]),
    ({"ZOO_LOAD_PLUGINS": ""}, []),
    ({"ZOO_LOAD_PLUGINS": "zoo-red,zoo-blue"}, ["blue", "red"]),
    ({"ZOO_LOAD_PLUGINS": " ZOO_Green , "}, ["green"]),  # names are normalised like pip's
    ({"ZOO_LOAD_PLUGINS": "zoo_red"}, ["red"]),
    ({"ZOO_LOAD_PLUGINS": "red"}, []),  # the model or module name is not the distribution name
    ({"ZOO_DISABLE_PLUGINS": "zoo-green"}, ["blue", "red"]),
    ({"ZOO_DISABLE_PLUGINS": "zoo-green,zoo.blue"}, ["red"]),
    ({"ZOO_DISABLE_PLUGINS": ""}, ["blue", "green", "red"]),
    ({"ZOO_LOAD_PLUGINS": "zoo-red,zoo-green", "ZOO_DISABLE_PLUGINS": "zoo-red"}, ["green"]),
])
def test_environment_variables_select_distributions(make_host, three_plugins, monkeypatch, variables,
                                                    loaded) -> None:
    for name in ("ZOO_LOAD_PLUGINS", "ZOO_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    host = make_host(distributions=dists(three_plugins))
    assert sorted(host.models) == loaded
    assert sorted(host.records) == sorted(["zoo-core", *(f"zoo-{m}" for m in loaded)])


def test_get_host_loads_once_and_reset_host_replaces_it(make_host) -> None:
    plugins.reset_host(None)
    first = plugins.get_host()
    assert plugins.get_host() is first and "zoo-core" in first.records
    replacement = make_host()
    assert plugins.get_host() is replacement
