"""The core's own plugin: the ``torch`` runtime, registered through the same hook a third party uses."""

from __future__ import annotations

from collections.abc import Callable

from zoo_core import hookimpl
from zoo_core.spec import RuntimeSpec


@hookimpl
def zoo_register_runtimes(register: Callable[[RuntimeSpec], None]) -> None:
    register(RuntimeSpec(
        name="torch",
        summary="PyTorch eager, from a run directory or checkpoint (CPU, CUDA or MPS)",
        loader="zoo_core.runtime:load_torch_runner",
    ))
