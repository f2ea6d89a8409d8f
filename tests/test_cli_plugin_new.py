"""`zoo plugin new`: the generated package is complete, installs, is found through its entry point and passes
its own tests; bad names and occupied folders are one clear line."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo_core.api import API_VERSION, compatible_range
from zoo_core.cli import cli
from zoo_core.errors import UsageError
from zoo_core.scaffold import write_plugin

EXPECTED_FILES = {
    "pyproject.toml", "README.md", "LICENSE", ".gitignore",
    ".github/workflows/test.yml", ".github/workflows/publish.yml",
    "zoo_my_model/__init__.py", "zoo_my_model/plugin.py", "zoo_my_model/networks.py", "zoo_my_model/data.py",
    "zoo_my_model/recipe.py", "zoo_my_model/tasks.py", "tests/test_plugin.py",
}


def new_plugin(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["plugin", "new", *args], prog_name="zoo")
    return result.exit_code, result.stdout, result.stderr


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_writes_a_complete_package(tmp_path: Path) -> None:
    package = write_plugin("my_model", tmp_path / "pkg")
    assert package == tmp_path / "pkg"
    assert files_under(package) == EXPECTED_FILES
    for path in package.rglob("*"):
        if path.is_file():
            assert not re.search(r"\{\{[a-z_]+\}\}", path.read_text()), f"placeholder left in {path}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]  # no staging folder left behind


def test_pyproject_declares_the_entry_point_the_licence_and_the_api_range(tmp_path: Path) -> None:
    package = write_plugin("my_model", tmp_path / "pkg")
    project = tomllib.loads((package / "pyproject.toml").read_text())
    assert project["build-system"] == {"requires": ["setuptools>=77"], "build-backend": "setuptools.build_meta"}
    assert project["project"]["name"] == "zoo-my-model"
    assert project["project"]["entry-points"]["zoo"] == {"my_model": "zoo_my_model.plugin"}
    assert project["project"]["license"] == "MIT" and project["project"]["license-files"] == ["LICENSE"]
    assert (package / "LICENSE").read_text().startswith("MIT License\n\nCopyright (c) ")
    assert compatible_range(API_VERSION) in project["project"]["dependencies"]


def test_generated_spec_is_valid_and_named_after_the_plugin(tmp_path: Path, monkeypatch) -> None:
    package = write_plugin("my_model", tmp_path / "pkg")
    monkeypatch.syspath_prepend(str(package))
    try:
        from zoo_my_model.plugin import SPEC

        assert SPEC.name == "my_model" and SPEC.recipe == "zoo_my_model.recipe:MyModelRecipe"
        assert [p.name for p in SPEC.presets] == ["quick", "book"]
        assert [t.name for t in SPEC.tasks] == ["reconstruct"] and SPEC.tasks[0].function.startswith("zoo_my_model.")
        assert [g.name for g in SPEC.graphs] == ["encoder", "decoder"]
    finally:
        for name in [m for m in sys.modules if m.startswith("zoo_my_model")]:
            del sys.modules[name]


def test_default_folder_is_zoo_name_in_the_current_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = new_plugin("tiny_gan")
    assert code == 0
    assert (tmp_path / "zoo-tiny-gan" / "zoo_tiny_gan" / "plugin.py").is_file()
    assert stdout == f"wrote plugin package {tmp_path / 'zoo-tiny-gan'}; install it with: pip install -e " \
                     f"{tmp_path / 'zoo-tiny-gan'}\n"


def test_an_existing_empty_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert new_plugin("my_model", "--dir", str(tmp_path / "empty"))[0] == 0
    assert files_under(tmp_path / "empty") == EXPECTED_FILES


@pytest.mark.parametrize(("name", "suggestion"), [
    ("My-Model", "my_model"), ("1gan", "my_1gan"), ("a__b", "a_b"), ("gan_", "gan"), ("dc gan", "dc_gan"),
    ("x" * 41, "x" * 40), ("_", "my"),
])
def test_bad_names_are_one_line_with_a_suggestion(tmp_path: Path, name: str, suggestion: str) -> None:
    code, stdout, stderr = new_plugin(name, "--dir", str(tmp_path / "pkg"))
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith(f"zoo: plugin name {name!r} must be lowercase")
    assert stderr.rstrip().endswith(f"try `zoo plugin new {suggestion}`")
    assert not (tmp_path / "pkg").exists()


def test_a_name_whose_module_exists_is_refused(tmp_path: Path) -> None:
    code, _, stderr = new_plugin("core", "--dir", str(tmp_path / "pkg"))
    assert code == 2
    assert stderr == "zoo: a package named zoo_core is already importable here (it would shadow or be shadowed " \
                     "by the new plugin); choose another name\n"


def test_an_occupied_folder_is_refused_and_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    code, _, stderr = new_plugin("my_model", "--dir", str(folder))
    assert code == 2
    assert stderr == f"zoo: {folder} already exists and is not empty; choose another --dir or remove it first\n"
    assert files_under(folder) == {"notes.txt"} and (folder / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="already exists and is not empty"):
        write_plugin("my_model", tmp_path / "file")


def test_generated_code_is_ruff_clean(tmp_path: Path) -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed in this environment")
    package = write_plugin("my_model", tmp_path / "pkg")
    done = subprocess.run([ruff, "check", "--no-cache", "."], cwd=package, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_generated_package_installs_and_passes_its_own_tests(tmp_path: Path, pip_target, zoo_env) -> None:
    package = write_plugin("my_model", tmp_path / "zoo-my-model")
    site = tmp_path / "site"
    pip_target(package, site)
    assert (site / "zoo_my_model" / "plugin.py").is_file()
    # a fresh interpreter with the install on PYTHONPATH: discovery goes through the entry point in site/
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=zoo_env(site))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # every test ran, `zoo export` in-process included (zoo-export is installed here)
    assert re.search(r"\b8 passed\b", done.stdout) and "skipped" not in done.stdout, done.stdout[-2000:]


def test_the_zoo_core_wheel_ships_the_templates(tmp_path: Path) -> None:
    # `zoo plugin new` from a regular (non-editable) install needs the templates as package data
    from zoo_core import scaffold

    root = Path(scaffold.__file__).parent.parent
    source = tmp_path / "src"
    shutil.copytree(root / "zoo_core", source / "zoo_core", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(root / "pyproject.toml", source)
    readme = root / "README.md"
    (source / "README.md").write_text(readme.read_text() if readme.is_file() else "# zoo\n")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").glob("zoo_core-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    templates = {f"zoo_core/{p.relative_to(root / 'zoo_core').as_posix()}" for p in scaffold.template_files()}
    assert templates - shipped == set(), "add to pyproject.toml: [tool.setuptools.package-data] " \
                                         'zoo_core = ["scaffold_template/**/*"]'
