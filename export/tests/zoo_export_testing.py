"""Helpers shared by zoo-export's tests: hosts, tiny training runs, the CLI, and the runtime parity check.

The parity check runs every task of a model twice through `zoo generate` (``--runtime torch``
on the run, ``--runtime onnxruntime`` on its export) and compares the PNGs the tasks write,
decoded, pixel by pixel.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zoo_export
import zoo_export.plugin
import zoo_export_tiny
from click.testing import CliRunner, Result
from PIL import Image
from zoo_export.manifest import MANIFEST

from zoo_core import __version__, builtin, plugins
from zoo_core.cli import cli
from zoo_core.engine import TrainOptions, train
from zoo_core.plugins import RegisteredModel

MODEL = zoo_export_tiny.MODEL
PIXEL_TOLERANCE = 2  # uint8 levels: float outputs within fp32 tolerance may round to neighbouring levels


def make_host(*extra: tuple[object, str, str], entry_points: bool = False) -> plugins.PluginHost:
    """A host with the core's builtin plugin and zoo-export (or every installed entry point) plus ``extra``."""
    host = plugins.PluginHost()
    host.register(builtin, plugins.CORE_DISTRIBUTION, __version__, "builtin")
    if entry_points:
        host.load_entry_points()
    else:
        host.register(zoo_export.plugin, "zoo-export", zoo_export.__version__, "export")
    for plugin, distribution, version in extra:
        host.register(plugin, distribution, version)
    host.collect()
    return host


def tiny_host() -> plugins.PluginHost:
    return make_host((zoo_export_tiny, zoo_export_tiny.DISTRIBUTION, zoo_export_tiny.VERSION))


def install_host_fixture() -> Iterator[Callable[[plugins.PluginHost], None]]:
    """Make a host the process-wide one (with its commands on `zoo`) for one test, then restore both."""
    saved_host = plugins._HOST
    saved_commands = dict(cli.commands)

    def install(host: plugins.PluginHost) -> None:
        plugins.reset_host(host)
        host.add_commands(cli)

    try:
        yield install
    finally:
        plugins.reset_host(saved_host)
        cli.commands.clear()
        cli.commands.update(saved_commands)


def train_tiny(model: RegisteredModel, out: Path, overrides: Mapping[str, Any] | None = None,
               max_steps: int = 2) -> Path:
    """A run of ``model`` at its quick preset with ``overrides``, stopped after ``max_steps`` steps."""
    options = TrainOptions(preset="quick", overrides=dict(overrides or {}), out=out, max_steps=max_steps,
                           progress=False, device="cpu")
    return train(model, options)


@dataclass
class Exported:
    """A trained tiny_vae run and its export (with fp16 files), shared by the tests of a session."""

    host: plugins.PluginHost
    model: RegisteredModel
    run: Path
    export: Path


def export_tiny(root: Path) -> Exported:
    from zoo_export.pipeline import ExportOptions, export_model

    host = tiny_host()
    model = host.models[MODEL]
    run = train_tiny(model, root / "run")
    export = export_model(model, ExportOptions(run=run, out=root / "export", fp16=True, log=lambda line: None))
    return Exported(host, model, run, export)


def manifest_of(directory: Path) -> dict[str, Any]:
    return json.loads((directory / MANIFEST).read_text())


def zoo(*args: str | Path) -> Result:
    """`zoo ARGS` in-process against the installed host; user errors come back as exit codes."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


def assert_clean_exit(result: Result, code: int = 0) -> None:
    """Exit ``code`` with no traceback (a user error is a SystemExit, never another exception)."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"zoo raised {result.exception!r}\n{result.output}") from result.exception
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}:\n{result.output}"


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    """A non-zero exit with exactly one stderr line, starting `zoo: ` and containing every fragment."""
    assert_clean_exit(result, code)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{result.stderr}"
    assert lines[0].startswith("zoo: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


def png_arrays(folder: Path) -> dict[str, np.ndarray]:
    """Every PNG under ``folder``, decoded, by relative path."""
    arrays = {}
    for path in sorted(folder.rglob("*.png")):
        with Image.open(path) as image:
            arrays[str(path.relative_to(folder))] = np.asarray(image.convert("RGBA"), dtype=np.int16)
    return arrays


def compare_pngs(expected: Path, actual: Path, tolerance: int = PIXEL_TOLERANCE) -> list[str]:
    """Differences between two folders of task outputs (empty when they match within ``tolerance``)."""
    want, got = png_arrays(expected), png_arrays(actual)
    if not want:
        return [f"{expected} holds no PNG: the task wrote nothing to compare"]
    if set(want) != set(got):
        return [f"files differ: {sorted(want)} vs {sorted(got)}"]
    problems = []
    for name, array in want.items():
        if array.shape != got[name].shape:
            problems.append(f"{name}: shape {array.shape} vs {got[name].shape}")
            continue
        worst = int(np.abs(array - got[name]).max())
        if worst > tolerance:
            problems.append(f"{name}: pixels differ by up to {worst} levels (tolerance {tolerance})")
    return problems


def generate(model: str, task: str, task_args: Sequence[str], runtime_args: Sequence[str | Path], out: Path) -> None:
    result = zoo("generate", model, task, *task_args, *runtime_args, "--device", "cpu", "--seed", "3", "--out", out)
    assert_clean_exit(result)


def task_parity(model: str, task: str, task_args: Sequence[str], run: Path, export: Path, folder: Path) -> list[str]:
    """Run ``task`` on both runtimes into ``folder/torch`` and ``folder/onnxruntime``; returns the differences."""
    torch_out, ort_out = folder / "torch", folder / "onnxruntime"
    generate(model, task, task_args, ["--runtime", "torch", "--run", run], torch_out)
    generate(model, task, task_args, ["--runtime", "onnxruntime", "--export", export], ort_out)
    return compare_pngs(torch_out, ort_out)


#: each first-party model's networks module, which the exported runtimes must never import
FIRST_PARTY_NETWORKS = {"ae_mnist": "zoo_ae_mnist.networks", "cyclegan_hair": "zoo_cyclegan_hair.networks",
                        "vae_faces": "zoo_vae_faces.networks"}

_BLOCKING_PRELUDE = '''
import importlib.abc
import sys


class BlockModules(importlib.abc.MetaPathFinder):
    """Any import of a blocked module fails, as if the plugin had been deployed without it."""

    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED:
            raise ImportError(f"{name} is blocked: an exported runtime must not import it")
        return None


sys.meta_path.insert(0, BlockModules())
sys.path.insert(0, TESTS)
'''

_ZOO_COMMANDS = '''
from zoo_core import plugins
from zoo_core.cli import cli

if TINY:
    from zoo_export_testing import tiny_host

    host = tiny_host()
    plugins.reset_host(host)
    host.add_commands(cli)
for arguments in COMMANDS:
    try:
        cli(arguments, prog_name="zoo")
    except SystemExit as exit:
        if exit.code:
            raise
print("imported:", sorted(name for name in sys.modules if name in BLOCKED))
'''


def blocked_process(blocked: set[str], script: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """``script`` in a fresh Python where importing any module named in ``blocked`` raises ImportError; ``BLOCKED``
    holds the names and the tests folder is on sys.path."""
    prelude = f"BLOCKED = {sorted(blocked)!r}\nTESTS = {str(Path(__file__).parent)!r}\n" + _BLOCKING_PRELUDE
    return subprocess.run([sys.executable, "-c", prelude + script], capture_output=True, text=True, timeout=timeout)


def zoo_with_modules_blocked(blocked: set[str], commands: Sequence[Sequence[str | Path]],
                             tiny: bool = False) -> subprocess.CompletedProcess[str]:
    """Each `zoo ARGS` of ``commands`` in one fresh process that cannot import ``blocked`` (with the installed
    plugins, plus tiny_vae when ``tiny``); stdout's last line lists the blocked modules imported anyway."""
    listed = [[str(a) for a in arguments] for arguments in commands]
    return blocked_process(blocked, f"COMMANDS = {listed!r}\nTINY = {tiny!r}\n" + _ZOO_COMMANDS)
