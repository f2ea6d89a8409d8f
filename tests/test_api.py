"""zoo_core.api is the whole plugin API: every name resolves, each is documented in PLUGINS.md, importing it stays
light, and the first-party plugins (and the scaffold template) import nothing from zoo_core outside it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import zoo_core.api as api
from zoo_core.scaffold import TEMPLATE_DIR, names_for, render

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = sorted((ROOT / "plugins").glob("*/**/*.py"))
TEMPLATE_SOURCES = sorted(TEMPLATE_DIR.rglob("*.py.tmpl"))


def zoo_core_imports(source: str) -> list[tuple[int, str, str]]:
    """(line, module, name) of every import from a zoo_core module in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "zoo_core":
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, "") for alias in node.names if alias.name.split(".")[0] == "zoo_core"]
    return found


def outside_the_api(source: str) -> list[str]:
    return [f"line {line}: {module} {name}".rstrip() for line, module, name in zoo_core_imports(source)
            if module != "zoo_core.api" or name not in api.__all__]


def test_every_public_name_resolves() -> None:
    for name in api.__all__:
        assert getattr(api, name) is not None, name
    assert api.ModelSpec is __import__("zoo_core.spec", fromlist=["ModelSpec"]).ModelSpec


def test_an_unknown_name_points_at_the_docs() -> None:
    with pytest.raises(AttributeError, match=r"zoo_core\.api has no name 'Trainer'; the plugin API is listed in"):
        api.Trainer  # noqa: B018
    with pytest.raises(ImportError):
        exec("from zoo_core.api import Trainer")


def test_the_spec_names_import_no_torch() -> None:
    code = ("import sys\nfrom zoo_core.api import hookimpl, ModelSpec, GraphSpec, TaskSpec, UsageError\n"
            "print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_every_public_name_has_a_place_in_plugins_md() -> None:
    text = (ROOT / "PLUGINS.md").read_text()
    missing = [name for name in api.__all__ if not re.search(rf"`{re.escape(name)}[`(.\[]", text)]
    assert missing == [], f"document these in PLUGINS.md: {missing}"


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_first_party_plugins_import_only_the_api(path: Path) -> None:
    assert outside_the_api(path.read_text()) == [], f"{path}: import these from zoo_core.api (or add them to it)"


@pytest.mark.parametrize("path", TEMPLATE_SOURCES, ids=lambda p: p.name)
def test_the_scaffold_template_imports_only_the_api(path: Path) -> None:
    assert outside_the_api(render(path.read_text(), names_for("my_model"))) == []


def test_the_check_catches_an_internal_import() -> None:
    assert outside_the_api("from zoo_core.engine import Trainer\nimport zoo_core.cli\n") == [
        "line 1: zoo_core.engine Trainer", "line 2: zoo_core.cli"]
    assert outside_the_api("from zoo_core.api import Recipe, load_mnist\n") == []


def test_the_api_version_is_zoo_cores_own_and_pins_a_compatible_range() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert api.API_VERSION == ".".join(version.split(".")[:2])
    assert api.compatible_range("0.1") == "zoo-core>=0.1,<0.2"
    assert api.compatible_range("1.3") == "zoo-core>=1.3,<2"


EXTENSION_PACKAGES = ("export/zoo_export", "serve/zoo_serve", "benchmarks/zoo_bench", "openvino/zoo_openvino")
EXTENSION_SOURCES = sorted(p for folder in EXTENSION_PACKAGES for p in (ROOT / folder).rglob("*.py")
                           if "tests" not in p.relative_to(ROOT / folder).parts)


@pytest.mark.parametrize("path", EXTENSION_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_extensions_import_only_the_plugin_and_extension_apis(path: Path) -> None:
    """export, serve, bench and OpenVINO reach the core through zoo_core.api and zoo_core.extend alone."""
    from zoo_core import extend

    allowed = {"zoo_core.api": set(api.__all__), "zoo_core.extend": set(extend.__all__),
               "zoo_core": {"__version__", "hookimpl"}}
    outside = [f"line {line}: {module} {name}".rstrip() for line, module, name in zoo_core_imports(path.read_text())
               if name not in allowed.get(module, set())]
    assert outside == [], f"{path}: import these from zoo_core.api or zoo_core.extend (or add them there)"


def test_every_extension_name_resolves() -> None:
    from zoo_core import extend

    assert len(extend.__all__) > 20
    for name in extend.__all__:
        assert getattr(extend, name) is not None, name
