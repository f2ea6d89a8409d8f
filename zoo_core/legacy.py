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

from zoo_core.spec import REQUIRED, Param, TaskSpec


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


def click_values(task: TaskSpec, bound: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Checked values as the task's click types produce them: paths. An API 0.1 task reads files by path, so
    in-memory inputs (uploads, arrays) are written into ``folder``, a private temporary folder, first."""
    values = {}
    for param in task.params:
        value = bound[param.name]
        if isinstance(param.type, click.Path | click.File) and value is not None:
            if isinstance(value, list):
                value = tuple(_path_of(item, folder) for item in value)
            elif isinstance(value, bytes):
                value = _written(folder, f"{param.name}.bin", value)
        values[param.name] = value
    return values


def _path_of(item: Any, folder: Path) -> Path:
    if isinstance(item.source, Path):
        return item.source
    from zoo_core.results import encode_png

    return _written(folder, f"{item.name}.png", encode_png(item.decode()))


def _written(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path
