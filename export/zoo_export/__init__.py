"""zoo-export: ONNX export with validation, and the ``onnxruntime`` runtime, for every zoo model.

The package arrives through the same hooks a third party uses (``zoo_export.plugin``): it adds
the ``zoo export`` command and registers the ``onnxruntime`` runtime. Nothing here knows a
particular model; it reads the model spec and calls the recipe's ``graph_module``,
``example_inputs`` and ``data_inputs``. This module stays light (no torch, onnx or onnxruntime).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("zoo-export")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
