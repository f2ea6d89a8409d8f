"""zoo-serve's plugin module: adds `zoo serve`. Imported on every `zoo` start, so it imports click only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo_core import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def zoo_register_commands(cli: click.Group) -> None:
    from zoo_serve.command import serve_command

    cli.add_command(serve_command)
