"""The hooks a zoo plugin may implement.

Hooks only ever gain arguments (pluggy lets an implementation accept any subset), so a
plugin written against an older zoo keeps working. Each hook has one verb: register.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from zoo_core.spec import ModelSpec, RuntimeSpec

hookspec = pluggy.HookspecMarker("zoo")


@hookspec
def zoo_register_models(register: Callable[[ModelSpec], None]) -> None:
    """Call ``register(spec)`` once for each :class:`~zoo_core.spec.ModelSpec` the plugin provides.

    Runs on every CLI start, so the module that implements it must not import torch.
    """


@hookspec
def zoo_register_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``zoo`` command (``cli.add_command(...)``).

    Import heavy libraries inside the command bodies, not at module level.
    """


@hookspec
def zoo_register_runtimes(register: Callable[[RuntimeSpec], None]) -> None:
    """Call ``register(spec)`` for each inference backend (:class:`~zoo_core.spec.RuntimeSpec`)."""
