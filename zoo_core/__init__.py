"""zoo: a plugin-based zoo of generative image models with exported runtimes.

Plugins import :data:`hookimpl`, the spec classes and everything else they use from ``zoo_core.api``, the
versioned plugin API (``hookimpl`` stays importable from here too).
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
