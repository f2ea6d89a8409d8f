"""The zoo-bench plugin: registers `zoo bench`. Imported on every `zoo` start, so it imports no torch."""

from __future__ import annotations

import click

from zoo_core import hookimpl


@hookimpl
def zoo_register_commands(cli: click.Group) -> None:
    from zoo_bench.command import bench_command

    cli.add_command(bench_command)
