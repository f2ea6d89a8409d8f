"""PLUGINS.md keeps up with the code: every hook, spec field, Recipe method, TaskContext member and variable."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from zoo_core import hookspecs, spec

PLUGINS_MD = Path(__file__).parent.parent / "PLUGINS.md"
SPEC_CLASSES = [spec.ModelSpec, spec.NetworkSpec, spec.GraphSpec, spec.TensorSpec, spec.Preset, spec.TaskSpec,
                spec.DataLayout, spec.RuntimeSpec]


def section(heading: str) -> str:
    """The text under a markdown heading, up to the next heading of any level."""
    text = PLUGINS_MD.read_text()
    match = re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#+ |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    assert match, f"PLUGINS.md has no section {heading!r}"
    return match.group(1)


def test_every_hook_is_documented_with_its_arguments() -> None:
    hooks = section("Hooks")
    for name, function in vars(hookspecs).items():
        if name.startswith("zoo_"):
            arguments = ", ".join(inspect.signature(function).parameters)
            assert f"`{name}({arguments})`" in hooks, name


@pytest.mark.parametrize("cls", SPEC_CLASSES, ids=lambda c: c.__name__)
def test_every_spec_field_is_documented(cls) -> None:
    table = section(f"`{cls.__name__}`")
    for item in dataclasses.fields(cls):
        assert f"| `{item.name}` |" in table, f"{cls.__name__}.{item.name} is missing from PLUGINS.md"


def test_every_recipe_method_is_documented() -> None:
    from zoo_core.recipe import Recipe

    table = section("The Recipe contract")
    for name, member in vars(Recipe).items():
        if callable(member) and not name.startswith("_"):
            assert f"| `{name}(" in table, f"Recipe.{name} is missing from PLUGINS.md"


def test_every_task_context_member_is_documented() -> None:
    from zoo_core.tasks import TaskContext

    table = section("Tasks (`zoo generate`)")
    members = {f.name for f in dataclasses.fields(TaskContext)} | set(vars(TaskContext))
    for name in sorted(m for m in members if not m.startswith("_")):
        assert re.search(rf"ctx\.{name}\b", table), f"TaskContext.{name} is missing from PLUGINS.md"


def test_environment_variables_and_publishing_are_documented() -> None:
    text = PLUGINS_MD.read_text()
    for needle in ("ZOO_LOAD_PLUGINS", "ZOO_DISABLE_PLUGINS", "ZOO_STRICT_PLUGINS", "python -m build",
                   "twine upload", "trusted publishing", "[project.entry-points.zoo]", "zoo plugin new"):
        assert needle in text, needle
