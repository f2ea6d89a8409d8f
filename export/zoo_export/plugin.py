"""zoo-export's plugin module: the `zoo export` command and the ``onnxruntime``, ``aoti`` and ``executorch`` runtimes.

Imported on every `zoo` start, so it imports neither torch nor onnx nor onnxruntime.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from zoo_core import hookimpl
from zoo_core.extend import RuntimeSpec

if TYPE_CHECKING:
    import click


@hookimpl
def zoo_register_commands(cli: click.Group) -> None:
    from zoo_export.command import export_command
    from zoo_export.web.command import web_group

    cli.add_command(export_command)
    cli.add_command(web_group)


@hookimpl
def zoo_register_runtimes(register: Callable[[RuntimeSpec], None]) -> None:
    register(RuntimeSpec(
        name="onnxruntime",
        summary="ONNX Runtime on exported graphs (zoo export), CPU or CUDA with IOBinding",
        loader="zoo_export.runtime:load_onnx_runner",
    ))
    register(RuntimeSpec(
        name="aoti",
        summary="AOTInductor .pt2 packages (zoo export --format aoti): compiled graphs, no plugin network code",
        loader="zoo_export.aoti:load_aoti_runner",
    ))
    register(RuntimeSpec(
        name="executorch",
        summary="ExecuTorch .pte programs on XNNPACK (zoo export --format executorch), fp32 or int8, CPU",
        loader="zoo_export.executorch:load_executorch_runner",
    ))
