"""zoo-openvino's plugin module: registers the ``openvino`` runtime.

Imported on every `zoo` start, so it imports neither torch nor openvino.
"""

from __future__ import annotations

from collections.abc import Callable

from zoo_core import hookimpl
from zoo_core.extend import RuntimeSpec


@hookimpl
def zoo_register_runtimes(register: Callable[[RuntimeSpec], None]) -> None:
    register(RuntimeSpec(
        name="openvino",
        summary="OpenVINO on an export's ONNX graphs (fp32, or int8 from zoo export --int8), CPU",
        loader="zoo_openvino.runtime:load",
    ))
