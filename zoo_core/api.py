"""The plugin author's API: every zoo_core name a model plugin (and its tests) may import, in one place.

    from zoo_core.api import hookimpl, ModelSpec, Recipe, cached, load_mnist, assert_card_matches

Anything else in ``zoo_core`` is internal and may change in any release; the first-party plugins import
nothing else (tests/test_api.py fails if one does). PLUGINS.md documents each name with an example.

Compatibility: ``API_VERSION`` is "MAJOR.MINOR". Within a major, releases only add names, and add
optional arguments to existing functions; removing or changing a name raises the major. While the major
is 0 the minor plays that part, as semantic versioning has it for 0.x. The API version is zoo-core's own
major.minor, so a plugin pins ``zoo-core`` to :func:`compatible_range` (``zoo plugin new`` writes it).

Names are loaded on first use (module ``__getattr__``), so ``from zoo_core.api import ModelSpec`` in a
plugin's entry-point module stays as light as ``zoo list`` needs: only the spec, error and hook names are
light; ``Recipe``, data, images, model loading and the test helpers import torch when first touched.
"""

from __future__ import annotations

import importlib
from typing import Any

from zoo_core import hookimpl

API_VERSION = "0.2"

# Public name -> "module:attribute". Grouped as PLUGINS.md presents them.
_EXPORTS: dict[str, str] = {
    # -- the model card, registered from the plugin's entry-point module (no torch) --------------------------
    "ModelSpec": "zoo_core.spec:ModelSpec",
    "NetworkSpec": "zoo_core.spec:NetworkSpec",
    "GraphSpec": "zoo_core.spec:GraphSpec",
    "TensorSpec": "zoo_core.spec:TensorSpec",
    "Preset": "zoo_core.spec:Preset",
    "TaskSpec": "zoo_core.spec:TaskSpec",
    "Param": "zoo_core.spec:Param",
    "WebTask": "zoo_core.spec:WebTask",
    "REQUIRED": "zoo_core.spec:REQUIRED",
    "DataLayout": "zoo_core.spec:DataLayout",
    "RuntimeSpec": "zoo_core.spec:RuntimeSpec",
    "QualityBar": "zoo_core.spec:QualityBar",
    "Weights": "zoo_core.weights:Weights",
    "RegisteredModel": "zoo_core.plugins:RegisteredModel",
    # -- errors: one clear line on stderr, never a traceback --------------------------------------------------
    "ZooError": "zoo_core.errors:ZooError",
    "UsageError": "zoo_core.errors:UsageError",
    "DataError": "zoo_core.data.errors:DataError",
    "error_line": "zoo_core.errors:error_line",
    # -- training: the recipe the engine drives ---------------------------------------------------------------
    "Recipe": "zoo_core.recipe:Recipe",
    "BestMetric": "zoo_core.recipe:BestMetric",
    "StepContext": "zoo_core.recipe:StepContext",
    "DataSource": "zoo_core.recipe:DataSource",
    "TrainingData": "zoo_core.recipe:TrainingData",
    "Batches": "zoo_core.recipe:Batches",
    "linear_decay": "zoo_core.recipe:linear_decay",
    "resolve_config": "zoo_core.config:resolve_config",
    "TrainOptions": "zoo_core.engine:TrainOptions",
    "train": "zoo_core.engine:train",
    # -- generation tasks ------------------------------------------------------------------------------------
    "TaskContext": "zoo_core.tasks:TaskContext",
    "TaskResult": "zoo_core.results:TaskResult",
    "to_uint8_images": "zoo_core.results:to_uint8_images",
    "ImageInput": "zoo_core.inputs:ImageInput",
    "load_tensor": "zoo_core.inputs:load_tensor",
    "any_size": "zoo_core.spatial:any_size",
    "accepts_any_size": "zoo_core.spatial:accepts_any_size",
    "wants_picture": "zoo_core.streaming:wants_picture",
    # -- data: in-memory image sets, the embedded data sets and the readers of real layouts ------------------
    "ImageSet": "zoo_core.data.imageset:ImageSet",
    "to_float": "zoo_core.data.imageset:to_float",
    "to_uint8": "zoo_core.data.imageset:to_uint8",
    "make_digits": "zoo_core.data.procedural:make_digits",
    "make_portraits": "zoo_core.data.procedural:make_portraits",
    "PORTRAIT_LABELS": "zoo_core.data.procedural:PORTRAIT_LABELS",
    "cached": "zoo_core.data.procedural:cached",
    "cache_root": "zoo_core.data.cache:cache_root",
    "load_mnist": "zoo_core.data.mnist:load_mnist",
    "load_image_folder": "zoo_core.data.folders:load_image_folder",
    "image_files": "zoo_core.data.folders:image_files",
    "load_image_files": "zoo_core.data.folders:load_image_files",
    "read_text_table": "zoo_core.data.folders:read_text_table",
    "load_celeba": "zoo_core.data.folders:load_celeba",
    "read_celeba_attributes": "zoo_core.data.folders:read_celeba_attributes",
    "detect_layout": "zoo_core.data.folders:detect_layout",
    # -- pictures --------------------------------------------------------------------------------------------
    "IMAGE_SUFFIXES": "zoo_core.images:IMAGE_SUFFIXES",
    "decode_image": "zoo_core.images:decode_image",
    "is_image_file": "zoo_core.images:is_image_file",
    "load_images": "zoo_core.images:load_images",
    "expand_image_paths": "zoo_core.images:expand_image_paths",
    "make_grid": "zoo_core.images:make_grid",
    "stack_rows": "zoo_core.images:stack_rows",
    "upscale": "zoo_core.images:upscale",
    "grid_scale": "zoo_core.images:grid_scale",
    "caption_grid": "zoo_core.images:caption_grid",
    "CAPTION_BAND": "zoo_core.images:CAPTION_BAND",
    "save_png": "zoo_core.images:save_png",
    "save_grid": "zoo_core.images:save_grid",
    # -- model loading (zoo_core.models): a trained model outside `zoo generate` ------------------------------
    "registered_model": "zoo_core.registry:registered_model",
    "get_model": "zoo_core.registry:get_model",  # API 0.1's name of registered_model
    "load_model": "zoo_core.models:load_model",
    "build_model": "zoo_core.models:build_model",
    "build_recipe": "zoo_core.models:build_recipe",
    "build_networks": "zoo_core.models:build_networks",
    "LoadedModel": "zoo_core.models:LoadedModel",
    "select_device": "zoo_core.models:select_device",
    "load_checkpoint": "zoo_core.checkpoint:load_checkpoint",
    "resolve_weights": "zoo_core.weights:resolve_weights",
    "RuntimeSource": "zoo_core.runtime:RuntimeSource",
    "GraphRunner": "zoo_core.runtime:GraphRunner",
    "TorchRunner": "zoo_core.runtime:TorchRunner",
    # -- testing helpers (zoo_core.testing) ------------------------------------------------------------------
    "invoke": "zoo_core.testing:invoke",
    "isolated_host": "zoo_core.testing:isolated_host",
    "private_cache": "zoo_core.testing:private_cache",
    "torch_threads": "zoo_core.testing:torch_threads",
    "assert_card_matches": "zoo_core.testing:assert_card_matches",
    "assert_light_plugin_module": "zoo_core.testing:assert_light_plugin_module",
    "RecordingRunner": "zoo_core.testing:RecordingRunner",
    "ModelsPlugin": "zoo_core.testing:ModelsPlugin",
}

__all__ = ["API_VERSION", "compatible_range", "hookimpl", *_EXPORTS]


def compatible_range(version: str = API_VERSION) -> str:
    """The ``zoo-core`` requirement of a plugin written against API ``version``: ``>=0.1,<0.2`` for 0.1."""
    major, minor = (int(part) for part in version.split(".")[:2])
    upper = f"0.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"zoo-core>={major}.{minor},<{upper}"


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"zoo_core.api has no name {name!r}; the plugin API is listed in PLUGINS.md")
    module, _, attribute = target.partition(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

