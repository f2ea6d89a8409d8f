"""API 0.1 tasks, still run unchanged: their click parameters read as :class:`~zoo_core.spec.Param` data.

A plugin published against API 0.1 declared ``TaskSpec.params`` as click objects and wrote PNG files through the
task context. The core derives Param data from those objects (so the Python method, the server's form and the
docs see the same parameters) and converts checked values back to what the click types would have produced.
Only this module and the command line import click for tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from zoo_core.errors import UsageError
from zoo_core.spec import REQUIRED, Param, TaskSpec

DEPRECATION = ("task {task} declares click parameters (task API 0.1); declare zoo_core.api.Param data and return "
               "a TaskResult (API 0.2, see PLUGINS.md 'Migrating tasks from API 0.1')")


def param_from_click(param: click.Parameter) -> Param:
    """The Param an API 0.1 click option or argument stands for."""
    name = param.name or ""
    ptype = param.type
    multiple = param.nargs == -1 or getattr(param, "multiple", False)
    positional = isinstance(param, click.Argument)
    low = high = None
    choices: tuple[str, ...] = ()
    if isinstance(ptype, click.Path | click.File):
        kind = "images" if multiple else "file"
        positional = positional or kind == "images"
    elif isinstance(ptype, click.Choice):
        kind, choices = "choice", tuple(str(c) for c in ptype.choices)
    elif isinstance(ptype, click.types.IntParamType):
        kind, low, high = "int", getattr(ptype, "min", None), getattr(ptype, "max", None)
    elif isinstance(ptype, click.types.FloatParamType):
        kind, low, high = "float", getattr(ptype, "min", None), getattr(ptype, "max", None)
    elif isinstance(ptype, click.types.BoolParamType) or getattr(param, "is_flag", False):
        kind = "bool"
    else:
        kind = "text"
    default = _default(param, kind)
    flag = ""
    if isinstance(param, click.Option):
        longest = max(param.opts, key=len)
        flag = "" if longest == "--" + name.replace("_", "-") else longest
    return Param(name, kind, default=default, help=getattr(param, "help", None) or "", minimum=low, maximum=high,
                 choices=choices, positional=positional, flag=flag)


def _default(param: click.Parameter, kind: str) -> Any:
    if param.required:
        return REQUIRED
    value = param.default
    if kind == "bool":
        return bool(value)
    if value is None or isinstance(value, str | int | float | tuple | list):
        return value
    return None


def click_values(task: TaskSpec, bound: dict[str, Any]) -> dict[str, Any]:
    """Checked values as the task's click types produce them (paths as Path, images as a tuple of paths)."""
    values = {}
    for param in task.params:
        value = bound[param.name]
        if isinstance(param.type, click.Path | click.File) and value is not None:
            if isinstance(value, list):  # ImageInputs: an API 0.1 task reads files by path
                value = tuple(_path_of(item) for item in value)
            elif not isinstance(value, Path):
                raise UsageError(f"{param.name}: this task (API 0.1) reads files by path")
        values[param.name] = value
    return values


def _path_of(item: Any) -> Path:
    if not isinstance(item.source, Path):
        raise UsageError(f"{item.name}: this task (API 0.1) reads image files by path, not in-memory images")
    return item.source
