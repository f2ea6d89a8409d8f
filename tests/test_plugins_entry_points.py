"""Real distributions found through their `zoo` entry points: the installed test plugin and broken ones.

tests/plugins/zoo-testplugin is installed with `pip install --target` into a temporary folder that goes on
PYTHONPATH, so `zoo` discovers it exactly as it discovers a plugin from a package index.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from zoo_core.cli import cli

ONLY_TESTPLUGIN = {"ZOO_LOAD_PLUGINS": "zoo-testplugin"}


def records_of(stdout: str) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(stdout)}


def test_installed_plugin_is_listed_with_its_hooks_and_registrations(run_zoo, testplugin_site) -> None:
    done = run_zoo("plugins", "--json", sites=(testplugin_site,), **ONLY_TESTPLUGIN)
    assert done.returncode == 0 and done.stderr == ""
    records = records_of(done.stdout)
    assert sorted(records) == ["zoo-core", "zoo-testplugin"]
    deprecations = records["zoo-testplugin"].pop("deprecations")  # its task is written against API 0.1
    assert records["zoo-testplugin"] == {
        "name": "zoo-testplugin", "version": "0.3.1", "entry_points": ["testplugin"],
        "hooks": ["zoo_register_commands", "zoo_register_models"], "models": ["testplugin_tiny"], "runtimes": [],
        "commands": ["testplugin-hello"], "errors": [],
    }
    assert len(deprecations) == 1 and "testplugin_tiny reconstruct" in deprecations[0]


def test_installed_plugin_is_found_beside_everything_else_installed(run_zoo, testplugin_site) -> None:
    done = run_zoo("list", "--json", sites=(testplugin_site,))
    assert done.returncode == 0
    models = {m["name"]: m for m in json.loads(done.stdout)}
    assert models["testplugin_tiny"]["distribution"] == "zoo-testplugin"
    assert models["testplugin_tiny"]["params"] == 17_648 + 19_593


def test_installed_plugin_command_runs(run_zoo, testplugin_site) -> None:
    done = run_zoo("testplugin-hello", "world", sites=(testplugin_site,), **ONLY_TESTPLUGIN)
    assert (done.returncode, done.stdout) == (0, "hello world from zoo-testplugin\n")


@pytest.mark.parametrize(("variables", "present"), [
    ({"ZOO_LOAD_PLUGINS": ""}, False),
    ({"ZOO_LOAD_PLUGINS": "zoo_TestPlugin"}, True),
    ({"ZOO_LOAD_PLUGINS": "testplugin"}, False),  # the entry-point name is not the distribution name
    ({"ZOO_DISABLE_PLUGINS": "zoo-testplugin"}, False),
])
def test_environment_variables_take_distribution_names(run_zoo, testplugin_site, variables, present) -> None:
    done = run_zoo("plugins", "--json", sites=(testplugin_site,), **variables)
    assert done.returncode == 0
    records = records_of(done.stdout)
    assert ("zoo-testplugin" in records) is present
    if variables.get("ZOO_LOAD_PLUGINS") == "":
        assert list(records) == ["zoo-core"]


def test_unknown_model_prints_exactly_one_line(run_zoo, testplugin_site) -> None:
    done = run_zoo("info", "no_such_model", sites=(testplugin_site,), **ONLY_TESTPLUGIN)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == ["zoo: unknown model 'no_such_model'; known: testplugin_tiny"]
    done = run_zoo("info", "testplugin_tiy", sites=(testplugin_site,), **ONLY_TESTPLUGIN)
    assert done.stderr.splitlines() == ["zoo: unknown model 'testplugin_tiy'; did you mean testplugin_tiny?"]


@pytest.mark.parametrize(("words", "cword", "expected"), [
    ("zoo info testp", "2", ["plain,testplugin_tiny"]),
    ("zoo train ", "2", ["plain,testplugin_tiny"]),
    ("zoo generate testplugin_tiny ", "3", ["plain,reconstruct"]),
    ("zoo testplugin-h", "1", ["plain,testplugin-hello"]),
])
def test_shell_completion_through_the_installed_script(run_zoo, testplugin_site, words, cword, expected) -> None:
    done = run_zoo(sites=(testplugin_site,), _ZOO_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=cword,
                   **ONLY_TESTPLUGIN)
    assert done.returncode == 0 and done.stdout.splitlines() == expected


def test_info_json_of_the_installed_plugin(run_zoo, testplugin_site) -> None:
    done = run_zoo("info", "testplugin_tiny", "--json", sites=(testplugin_site,), **ONLY_TESTPLUGIN)
    card = json.loads(done.stdout)
    assert [(n["name"], n["params"]) for n in card["networks"]] == [("encoder", 17_648), ("decoder", 19_593)]
    encode = card["graphs"][0]
    assert encode["inputs"][0]["shape"] == ["N", 1, 32, 32] and encode["outputs"][0]["shape"] == ["N", 16]


# -- broken plugins of every kind never stop the CLI -----------------------------------------------------------------
BROKEN_PLUGINS = {
    "zoo-broken-import": "import zoo_dependency_nobody_installed\n",
    "zoo-broken-hook": """
        from zoo_core import hookimpl

        @hookimpl
        def zoo_register_models(register):
            raise RuntimeError("card data missing")
    """,
    "zoo-broken-typo": """
        from zoo_core import hookimpl

        @hookimpl
        def zoo_register_modles(register):
            pass
    """,
    "zoo-broken-args": """
        from zoo_core import hookimpl

        @hookimpl
        def zoo_register_runtimes(register, device):
            pass
    """,
}
DUPLICATE_PLUGIN = """
    from zoo_core import hookimpl
    from zoo_testplugin.plugin import SPEC

    @hookimpl
    def zoo_register_models(register):
        register(SPEC)
"""


@pytest.fixture
def broken_sites(fake_site, testplugin_site) -> tuple[Path, ...]:
    site = None
    for distribution, source in BROKEN_PLUGINS.items():
        module = distribution.replace("-", "_")
        site = fake_site("broken", distribution, "0.1", {f"{module}.py": source}, {"main": module})
    # later on the path than the real test plugin, so the real one registers the model first
    later = fake_site("later", "zoo-copycat", "9.9", {"zoo_copycat.py": DUPLICATE_PLUGIN}, {"main": "zoo_copycat"})
    return testplugin_site, site, later


@pytest.mark.parametrize("command", [["list", "--json"], ["plugins", "--json"], ["--help"],
                                     ["info", "testplugin_tiny"]])
def test_broken_plugins_warn_once_each_and_the_command_works(run_zoo, broken_sites, command) -> None:
    allow = ",".join(["zoo-testplugin", "zoo-copycat", *BROKEN_PLUGINS])
    done = run_zoo(*command, sites=broken_sites, ZOO_LOAD_PLUGINS=allow)
    assert done.returncode == 0, done.stderr
    lines = sorted(done.stderr.splitlines())
    assert len(lines) == 5, lines
    # the argument check is pluggy's wording: only its start and the argument's name are pinned down
    args_line = lines.pop(0)
    assert args_line.startswith("zoo: plugin zoo-broken-args 0.1: invalid hook implementation: ")
    assert "zoo_register_runtimes" in args_line and "{'device'}" in args_line
    assert lines == [
        "zoo: plugin zoo-broken-hook 0.1: zoo_register_models raised RuntimeError: card data missing",
        "zoo: plugin zoo-broken-import 0.1: failed to load entry point 'zoo_broken_import': ModuleNotFoundError: "
        "No module named 'zoo_dependency_nobody_installed'",
        "zoo: plugin zoo-broken-typo 0.1: unknown hook 'zoo_register_modles' (did you mean zoo_register_models?)",
        "zoo: plugin zoo-copycat 9.9: model 'testplugin_tiny' is already registered by zoo-testplugin; "
        "zoo-testplugin keeps the name",
    ]


def test_broken_plugins_are_listed_with_their_errors(run_zoo, broken_sites) -> None:
    allow = ",".join(["zoo-testplugin", "zoo-copycat", *BROKEN_PLUGINS])
    records = records_of(run_zoo("plugins", "--json", sites=broken_sites, ZOO_LOAD_PLUGINS=allow).stdout)
    assert sorted(records) == sorted(["zoo-core", "zoo-testplugin", "zoo-copycat", *BROKEN_PLUGINS])
    for name in [*BROKEN_PLUGINS, "zoo-copycat"]:
        assert records[name]["version"] in ("0.1", "9.9") and len(records[name]["errors"]) == 1
    assert records["zoo-copycat"]["models"] == [] and records["zoo-testplugin"]["models"] == ["testplugin_tiny"]
    models = json.loads(run_zoo("list", "--json", sites=broken_sites, ZOO_LOAD_PLUGINS=allow).stdout)
    assert [(m["name"], m["distribution"]) for m in models] == [("testplugin_tiny", "zoo-testplugin")]


def test_strict_mode_fails_loudly_for_plugin_authors(run_zoo, broken_sites) -> None:
    done = run_zoo("list", sites=broken_sites, ZOO_LOAD_PLUGINS="zoo-broken-import", ZOO_STRICT_PLUGINS="1")
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr


# -- the test plugin trains with the shared engine and runs its task, discovered through its entry point -----------
def test_installed_plugin_trains_two_steps_and_generates(make_host, testplugin_site, tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(testplugin_site))
    before = set(sys.modules)
    try:
        host = make_host(distributions=list(metadata.distributions(path=[str(testplugin_site)])), commands=True)
        assert host.records["zoo-testplugin"].models == ["testplugin_tiny"]
        assert host.models["testplugin_tiny"].spec.recipe == "zoo_testplugin.recipe:TinyRecipe"
        runner = CliRunner()
        run = tmp_path / "run"
        trained = runner.invoke(cli, ["train", "testplugin_tiny", "--max-steps", "2", "--out", str(run),
                                      "--device", "cpu", "--no-progress"], prog_name="zoo")
        assert trained.exit_code == 0, trained.output
        assert (run / "checkpoints" / "last.safetensors").is_file()
        config = json.loads((run / "config.json").read_text())
        assert config["plugin"] == {"distribution": "zoo-testplugin", "version": "0.3.1"}
        assert config["preset"] == "quick"
        out = tmp_path / "grid.png"
        made = runner.invoke(cli, ["generate", "testplugin_tiny", "reconstruct", "--run", str(run), "--out", str(out),
                                   "--count", "4", "--device", "cpu"], prog_name="zoo")
        assert made.exit_code == 0, made.output
        with Image.open(out) as grid:
            assert grid.size == (4 * 18 + 2, 2 * 18 + 2)  # two rows of four 16-pixel images, 2-pixel padding
        assert runner.invoke(cli, ["testplugin-hello"], prog_name="zoo").stdout == "hello zoo from zoo-testplugin\n"
    finally:
        for name in set(sys.modules) - before:
            if name.startswith("zoo_testplugin"):
                del sys.modules[name]
