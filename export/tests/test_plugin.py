"""zoo-export arrives like any plugin: its entry point registers the command and the runtime, and stays light."""

from __future__ import annotations

import subprocess
import sys

from zoo_export_testing import make_host


def test_entry_point_registers_export_command_and_onnxruntime_runtime() -> None:
    host = make_host(entry_points=True)
    record = host.records["zoo-export"]
    assert record.errors == []
    assert set(record.hooks) == {"zoo_register_commands", "zoo_register_runtimes"}
    assert host.runtimes["onnxruntime"].spec.loader == "zoo_export.runtime:load_onnx_runner"
    import click

    group = click.Group("zoo")
    host.add_commands(group)
    assert "export" in group.commands and "web" in group.commands and record.commands == ["export", "web"]


def test_plugin_module_and_command_import_no_heavy_library() -> None:
    script = ("import sys, click\n"
              "import zoo_export.plugin\n"
              "group = click.Group('zoo')\n"
              "zoo_export.plugin.zoo_register_commands(group)\n"
              "heavy = [m for m in ('torch', 'numpy', 'onnx', 'onnxruntime', 'onnxscript') if m in sys.modules]\n"
              "print(','.join(heavy))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
