"""The names `zoo bench` accepts, importable without torch (the CLI builds its options from them)."""

from __future__ import annotations

RUNTIMES = ("torch", "torch-compile", "onnxruntime")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DEVICES = ("auto", "cpu", "cuda")
