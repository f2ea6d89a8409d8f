"""zoo-bench: `zoo bench` times a model's graphs on PyTorch eager, torch.compile and ONNX Runtime.

This module stays light (no torch): the plugin entry point imports it on every `zoo` start.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("zoo-bench")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0"
