"""The docs keep up with the code: the committed CLI reference is what docs/gen_cli.py writes now, every ZOO_*
variable the code reads is on the environment page, every page is in the navigation, and the README stays short."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SOURCE_FOLDERS = [ROOT / "zoo", ROOT / "zoo_core", ROOT / "export", ROOT / "serve", ROOT / "benchmarks",
                  *sorted((ROOT / "plugins").glob("*"))]


def gen_cli() -> Any:
    spec = importlib.util.spec_from_file_location("docs_gen_cli", DOCS / "gen_cli.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_the_code() -> None:
    """docs/reference/cli.md is regenerated from click; a new command or option without it fails here."""
    committed = (DOCS / "reference" / "cli.md").read_text()
    current = gen_cli().render()
    if committed != current:
        import difflib

        diff = "".join(difflib.unified_diff(committed.splitlines(True), current.splitlines(True), "committed",
                                            "from the code", n=1))
        pytest.fail(f"docs/reference/cli.md is out of date: run .venv/bin/python docs/gen_cli.py\n{diff[:6000]}")


def test_cli_reference_lists_every_command() -> None:
    text = (DOCS / "reference" / "cli.md").read_text()
    for command in ("zoo train", "zoo generate vae_faces arithmetic", "zoo export", "zoo serve", "zoo bench",
                    "zoo plugin new"):
        assert f"`{command}`" in text, command
    assert "`--max-steps INTEGER RANGE`" in text


def environment_variables_in_code() -> set[str]:
    """Every "ZOO_..." string literal outside tests (a prefix ending in _ is not a variable)."""
    found: set[str] = set()
    for folder in SOURCE_FOLDERS:
        for path in folder.rglob("*.py"):
            if "tests" in path.relative_to(ROOT).parts or "scaffold_template" in path.parts:
                continue
            text = path.read_text(errors="replace")
            found.update(re.findall(r"[\"'](ZOO_[A-Z0-9_]*[A-Z0-9])[\"']", text))
            # names on a prefix constant: ENV_PREFIX = "ZOO_ORT_", then _env_flag("TF32") or ENV_PREFIX + "THREADS"
            for prefix_name, prefix in re.findall(r"^(\w+) = [\"'](ZOO_[A-Z0-9_]*_)[\"']", text, flags=re.MULTILINE):
                found.update(prefix + name for name in re.findall(
                    rf"(?:{prefix_name} \+ |_env_flag\()[\"']([A-Z0-9_]+)[\"']", text))
    return found


def test_every_environment_variable_is_documented() -> None:
    page = (DOCS / "reference" / "environment.md").read_text()
    variables = environment_variables_in_code()
    assert {"ZOO_CACHE_DIR", "ZOO_THREADS", "ZOO_LOAD_PLUGINS"} <= variables, variables
    missing = sorted(v for v in variables if f"`{v}`" not in page)
    assert not missing, f"read by the code but not on docs/reference/environment.md: {missing}"


def nav_pages(entries: Any) -> list[str]:
    pages: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            pages.append(entry)
        elif isinstance(entry, dict):
            for value in entry.values():
                pages.extend(nav_pages(value) if isinstance(value, list) else [value])
    return pages


def test_every_page_is_in_the_navigation() -> None:
    """A page someone adds under docs/ (a how-to, a model page) must be reachable from the menu."""
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "python"))
    listed = set(nav_pages(config["nav"]))
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    missing = sorted(on_disk - listed)
    assert not missing, f"pages not in mkdocs.yml nav: {missing}"
    generated = {"reference/model-cards.md", "reference/plugin-api.md", "reference/python-api.md",
                 "reference/extension-api.md",
                 "reference/plugins-guide.md", "benchmarks/suite.md"}
    dangling = sorted(listed - on_disk - generated)
    assert not dangling, f"nav entries with no page: {dangling}"


def test_readme_is_short_and_links_into_the_site() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for target in ("docs/getting-started.md", "docs/tutorials/python.md", "docs/reference/cli.md",
                   "docs/benchmarks/index.md", "make docs"):
        assert target in readme, target
