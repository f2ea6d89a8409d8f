"""The extension API: what a distribution that extends zoo beyond models may import from ``zoo_core``, in one place.

Runtimes (onnxruntime, aoti and ExecuTorch in zoo-export, OpenVINO in zoo-openvino), export formats, `zoo serve`
and `zoo bench` are written against :mod:`zoo_core.api` (the plugin API) and this module: the model registry,
model loading, the runner interface, running tasks, config checks and the CLI's shared parameter types. A test
fails when one of them imports any other ``zoo_core`` module (``tests/test_api.py``), as the plugin API's test does
for model plugins.

Compatibility follows :data:`zoo_core.api.API_VERSION`: names are only added within a version. Names load lazily,
so importing this module costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> "module:attribute" (or "module" for a module).
_EXPORTS: dict[str, str] = {
    "model_card": "zoo_core.cards:model_card",
    "file_sha256": "zoo_core.checkpoint:file_sha256",
    "MODEL": "zoo_core.cli:MODEL",
    "parse_assignment": "zoo_core.config:parse_assignment",
    "resolve_config": "zoo_core.config:resolve_config",
    "TrainOptions": "zoo_core.engine:TrainOptions",
    "train": "zoo_core.engine:train",
    "UsageError": "zoo_core.errors:UsageError",
    "ZooError": "zoo_core.errors:ZooError",
    "error_line": "zoo_core.errors:error_line",
    "grid_scale": "zoo_core.images:grid_scale",
    "ImageInput": "zoo_core.inputs:ImageInput",
    "io": "zoo_core.io",  # atomic writes: write_bytes, write_json, atomic_path, replace_directory
    "build_model": "zoo_core.models:build_model",
    "load_model": "zoo_core.models:load_model",
    "read_checkpoint": "zoo_core.models:read_checkpoint",
    "select_device": "zoo_core.models:select_device",
    "PluginHost": "zoo_core.plugins:PluginHost",
    "RegisteredModel": "zoo_core.plugins:RegisteredModel",
    "DataSource": "zoo_core.recipe:DataSource",
    "TrainingData": "zoo_core.recipe:TrainingData",
    "UnknownName": "zoo_core.registry:UnknownName",
    "registered_model": "zoo_core.registry:registered_model",
    "get_runtime": "zoo_core.registry:get_runtime",
    "list_models": "zoo_core.registry:list_models",
    "TaskResult": "zoo_core.results:TaskResult",
    "encode_png": "zoo_core.results:encode_png",
    "RANGE_SLACK": "zoo_core.runtime:RANGE_SLACK",
    "RuntimeSource": "zoo_core.runtime:RuntimeSource",
    "TorchRunner": "zoo_core.runtime:TorchRunner",
    "check_inputs": "zoo_core.runtime:check_inputs",
    "dynamic_axes": "zoo_core.runtime:dynamic_axes",
    "export_to_run": "zoo_core.runtime:export_to_run",
    "held_graphs": "zoo_core.runtime:held_graphs",
    "platform_of": "zoo_core.runtime:platform_of",
    "refuse_precision": "zoo_core.runtime:refuse_precision",
    "BATCH": "zoo_core.spec:BATCH",
    "GraphSpec": "zoo_core.spec:GraphSpec",
    "ModelSpec": "zoo_core.spec:ModelSpec",
    "Param": "zoo_core.spec:Param",
    "QualityBar": "zoo_core.spec:QualityBar",
    "RuntimeSpec": "zoo_core.spec:RuntimeSpec",
    "TaskSpec": "zoo_core.spec:TaskSpec",
    "TensorSpec": "zoo_core.spec:TensorSpec",
    "load_object": "zoo_core.spec:load_object",
    "check_value": "zoo_core.tasks:check_value",
    "run_task": "zoo_core.tasks:run_task",
    "task_params": "zoo_core.tasks:task_params",
    "apply_threads": "zoo_core.threads:apply_threads",
    "check_config": "zoo_core.validate:check_config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"zoo_core.extend has no name {name!r}; the extension API is listed in its docstring "
                             "and in docs/reference")
    module, _, attribute = target.partition(":")
    value = importlib.import_module(module)
    value = getattr(value, attribute) if attribute else value
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
