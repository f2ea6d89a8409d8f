"""A third-party model for the web export's test: tiny_vae's networks and recipe under another name, whose tasks
declare only generic WebTask kinds, so the static site must run them with no JavaScript of the plugin's own."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import zoo_export_tiny

from zoo_core import hookimpl
from zoo_core.spec import ModelSpec, TaskSpec, WebTask

MODEL = "tiny_web"
DISTRIBUTION = "zoo-tiny-web"
VERSION = "0.1"

SPEC = dataclasses.replace(zoo_export_tiny.SPEC, name=MODEL, summary="Tiny conv VAE (web export test fixture)", tasks=(
    TaskSpec("sample", "decode Gaussian codes into a grid", ("decoder",), "zoo_export_tiny:sample",
             zoo_export_tiny.SPEC.tasks[0].params,
             web=WebTask("sample", {"graph": "decoder", "prior": "normal", "count": "count", "columns": 4})),
    TaskSpec("reconstruct", "an image through the encoder's mean and the decoder", ("encoder", "decoder"),
             "zoo_export_tiny:reconstruct", web=WebTask("image-to-image", {"graphs": ["encoder", "decoder"]})),
))


@hookimpl
def zoo_register_models(register: Callable[[ModelSpec], None]) -> None:
    register(SPEC)
