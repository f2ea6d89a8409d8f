"""zoo: a plugin-based zoo of generative image models with exported runtimes.

Plugins import :data:`hookimpl` from here and the spec classes from ``zoo_core.spec``.
This module stays light: it imports neither torch nor any plugin.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("zoo-core")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

hookimpl = pluggy.HookimplMarker("zoo")

__all__ = ["__version__", "hookimpl"]
