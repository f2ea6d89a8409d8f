"""zoo-serve: `zoo serve`, an ASGI server for zoo exports (KServe v2 / Open Inference Protocol, task endpoints
returning PNG, and a gallery page). This module stays light: no torch, numpy or web framework."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("zoo-serve")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
