"""Fast start: the catalogue commands import no torch, numpy, ONNX or plugin networks, with every plugin installed.

A fresh interpreter runs the CLI's ``main()`` with every plugin installed in this environment plus the test
plugin, with an import watcher first on ``sys.meta_path``. A heavy import added to any plugin's plugin.py, or to
a module the core imports at start, fails here and names the file and line that pulled it in.
(``-X importtime`` is not enough: it does not see modules imported through ``importlib.import_module``, which is
how entry points load.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.util import find_spec

import pytest

HEAVY = ("torch", "torchvision", "numpy", "onnx", "onnxruntime", "onnxscript", "fastapi", "starlette", "uvicorn")

DRIVER = r"""
import json, sys, traceback

HEAVY = set(sys.argv[2].split(","))
culprits = {}


class Watch:
    # First on sys.meta_path: sees every import before any finder does; finds nothing itself.
    @staticmethod
    def find_spec(name, path=None, target=None):
        top = name.split(".")[0]
        if top in HEAVY and top not in culprits:
            frames = [f for f in traceback.extract_stack()[:-1] if not f.filename.startswith("<frozen")]
            culprits[top] = [f"{f.filename}:{f.lineno}" for f in frames[-3:]]
        return None


sys.meta_path.insert(0, Watch)
report, sys.argv = sys.argv[1], ["zoo", *sys.argv[3:]]
from zoo_core.cli import main

try:
    main()
    code = 0
except SystemExit as done:
    code = done.code or 0
loaded = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
plugins = sorted(m for m in sys.modules if m.startswith("zoo_") and m.endswith(".plugin"))
with open(report, "w") as handle:
    json.dump({"code": code, "heavy": loaded, "culprits": culprits, "plugins": plugins}, handle)
"""


@pytest.mark.parametrize("command", [["--help"], ["list", "--json"], ["list"], ["plugins", "--json"],
                                     ["plugins"], ["info", "testplugin_tiny", "--json"]])
def test_catalogue_commands_import_nothing_heavy(command, testplugin_site, zoo_env, tmp_path) -> None:
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-c", DRIVER, str(report), ",".join(HEAVY), *command],
                          capture_output=True, text=True, timeout=120, env=zoo_env(testplugin_site))
    assert report.is_file(), done.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["code"] == 0, done.stderr[-3000:]
    assert "zoo_testplugin.plugin" in result["plugins"]  # plugins were loaded, not skipped
    for first_party in ("zoo_ae_mnist", "zoo_vae_faces", "zoo_cyclegan_hair", "zoo_export", "zoo_bench"):
        if find_spec(first_party) is not None:  # every first-party plugin installed here is loaded too
            assert f"{first_party}.plugin" in result["plugins"]
    culprits = "\n".join(f"{name} imported by {' <- '.join(reversed(where))}"
                         for name, where in result["culprits"].items())
    assert result["heavy"] == [], f"heavy imports on a fast path:\n{culprits}"


def test_the_watcher_catches_a_heavy_import_and_names_its_file(fake_site, zoo_env, tmp_path) -> None:
    site = fake_site("heavy", "zoo-heavy", "1.0", {"zoo_heavy.py": """
        import numpy  # the mistake this test suite exists to catch
        from zoo_core import hookimpl

        @hookimpl
        def zoo_register_models(register):
            pass
    """}, {"main": "zoo_heavy"})
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-c", DRIVER, str(report), ",".join(HEAVY), "list", "--json"],
                   capture_output=True, text=True, timeout=120, env=zoo_env(site, ZOO_LOAD_PLUGINS="zoo-heavy"))
    result = json.loads(report.read_text())
    assert "numpy" in result["heavy"]
    assert result["culprits"]["numpy"][-1] == f"{site / 'zoo_heavy.py'}:2"
