"""zoo: generative image models as a Python library.

    import zoo

    zoo.list_models()                                   # ['ae_mnist', 'cyclegan_hair', 'vae_faces']
    m = zoo.load("ae_mnist", weights="mnist")           # named weights, a run, a checkpoint or an export
    result = m.reconstruct(n=16)                        # each task is a method; results hold uint8 images
    result.save("reconstruction.png")

The names here are the user API (the distribution is ``zoo-core``); plugin authors use ``zoo_core.api``.
Importing this module is light: torch loads when a model does.
"""

from __future__ import annotations

import importlib
from typing import Any

from zoo_core import __version__

_EXPORTS = {
    "load": "zoo_core.library:load",
    "list_models": "zoo_core.library:list_models",
    "card": "zoo_core.library:card",
    "Model": "zoo_core.library:Model",
    "GraphCall": "zoo_core.library:GraphCall",
    "TaskResult": "zoo_core.results:TaskResult",
    "ZooError": "zoo_core.errors:ZooError",
    "UsageError": "zoo_core.errors:UsageError",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    module, _, attribute = target.partition(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
