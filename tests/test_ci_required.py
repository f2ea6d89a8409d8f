"""Under CI=true, a skip because Chromium, tritonclient or the shared MNIST is missing fails the run; other skips,
and every skip outside CI, stay skips. Run as a pytest of its own on a few sample tests, with the plugin the
suite's conftest registers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

SAMPLES = {
    "test_needs_mnist.py": '''
        import pytest

        @pytest.fixture
        def mnist_dir():
            pytest.skip("real MNIST not available at /nowhere (shared data is absent)")

        def test_reads_mnist(mnist_dir):
            pass
    ''',
    "test_needs_triton.py": '''
        import pytest

        def test_parses_config():
            pytest.importorskip("tritonclient_that_is_not_installed", reason="pip install tritonclient to parse it")
    ''',
    "test_needs_chromium.py": '''
        import pytest

        pytest.skip("no /usr/bin/chromium or /usr/bin/chromedriver: install them", allow_module_level=True)

        def test_gallery():
            pass
    ''',
    "test_other_skips.py": '''
        import pytest

        @pytest.mark.skipif(True, reason="needs a machine without CUDA")
        def test_cpu_only():
            pass

        def test_docs_block():
            pytest.skip("docs-test: skip needs tritonclient and a GPU")

        def test_plain():
            pass
    ''',
}


def run_samples(folder: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    for name, text in SAMPLES.items():
        (folder / name).write_text(textwrap.dedent(text))
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only this plugin: seconds, not the installed plugins' imports
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "ci_required", "-p",
                           "no:cacheprovider", "--rootdir", str(folder), "-c", os.devnull, str(folder)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("ci", [None, "false", "1"])
def test_outside_ci_the_missing_tools_skip(tmp_path: Path, ci: str | None) -> None:
    done = run_samples(tmp_path, ci)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 5 skipped" in done.stdout


def test_under_ci_each_missing_tool_fails_and_other_skips_stay(tmp_path: Path) -> None:
    done = run_samples(tmp_path, "true")
    assert done.returncode == 1, done.stdout
    # every test ran; a fixture's skip fails the test's setup, which pytest counts as an error
    assert "1 failed, 1 passed, 3 skipped, 1 error" in done.stdout.splitlines()[-1]
    assert "ERROR test_needs_mnist.py::test_reads_mnist" in done.stdout
    assert "FAILED test_needs_triton.py::test_parses_config" in done.stdout
    assert "FAILED test_needs_chromium.py: CI=true and Chromium" in done.stdout  # a module skipped as a whole
    assert done.stdout.count("SKIPPED [1] test_other_skips.py") == 2  # no CUDA; a docs block marked skip
    assert "the shared real MNIST at ../shared/data/mnist-t10k is missing" in done.stdout
    assert "tritonclient (Triton's model-config schema) is missing" in done.stdout


def test_the_suite_registers_the_plugin_for_every_test_folder(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("zoo-ci-required")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "CI=" in ci and "chromium-driver" in ci and "mnist-t10k" in ci  # what the required skips need
    assert "tritonclient" in (ROOT / "Makefile").read_text()
