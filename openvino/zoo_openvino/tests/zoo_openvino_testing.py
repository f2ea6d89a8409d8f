"""zoo-openvino's test helpers: a host with the plugin and zoo-export's tiny third-party model, and what the
session's export fixture returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import zoo_export_tiny
from zoo_export_testing import make_host

import zoo_openvino
import zoo_openvino.plugin
from zoo_core.extend import PluginHost, RegisteredModel


@dataclass
class TinyExport:
    """tiny_vae's run and its export with fp32 and int8 ONNX files, and the export's log lines."""

    host: PluginHost
    model: RegisteredModel
    run: Path
    export: Path
    log: list[str]


def openvino_host() -> PluginHost:
    """The core, zoo-export, zoo-openvino and the tiny third-party model, registered in-process."""
    return make_host((zoo_export_tiny, zoo_export_tiny.DISTRIBUTION, zoo_export_tiny.VERSION),
                     (zoo_openvino.plugin, "zoo-openvino", zoo_openvino.__version__))
