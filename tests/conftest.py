"""Shared fixtures: a clean plugin host per test, fake and real plugin distributions, and a `zoo` runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import pytest

from zoo_core import __version__, builtin, plugins
from zoo_core.cli import cli
from zoo_core.spec import DataLayout, GraphSpec, ModelSpec, NetworkSpec, Preset, TaskSpec, TensorSpec

TESTPLUGIN_SOURCE = Path(__file__).parent / "plugins" / "zoo-testplugin"
ZOO_VARIABLES = ("ZOO_LOAD_PLUGINS", "ZOO_DISABLE_PLUGINS", "ZOO_STRICT_PLUGINS")


def pytest_configure(config: pytest.Config) -> None:
    """Under CI=true a skip for a missing required tool fails (tests/ci_required.py). Registered as a plugin of its
    own: a conftest's hooks would reach the tests below tests/ only, not serve/, export/ or plugins/."""
    import importlib.util

    if config.pluginmanager.has_plugin("zoo-ci-required"):
        return
    spec = importlib.util.spec_from_file_location("zoo_ci_required", Path(__file__).with_name("ci_required.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config.pluginmanager.register(module, "zoo-ci-required")


@pytest.fixture(autouse=True)
def restore_zoo_host() -> Iterator[None]:
    """Each test may replace the process-wide host or add commands to `zoo`; both are restored afterwards."""
    saved_host = plugins._HOST
    saved_commands = dict(cli.commands)
    try:
        yield
    finally:
        plugins.reset_host(saved_host)
        cli.commands.clear()
        cli.commands.update(saved_commands)


@pytest.fixture
def warnings_seen() -> list[str]:
    """The stderr lines a host built by ``make_host`` printed."""
    return []


@pytest.fixture
def make_host(warnings_seen: list[str]) -> Callable[..., plugins.PluginHost]:
    """Build a host with the core's builtin plugin plus ``(object, distribution, version)`` triples,
    call the register hooks and install it as the process-wide host, so the CLI sees exactly these."""

    def build(*extra: tuple[object, str, str], distributions: list[metadata.Distribution] | None = None,
              commands: bool = False) -> plugins.PluginHost:
        host = plugins.PluginHost(warn=warnings_seen.append)
        host.register(builtin, plugins.CORE_DISTRIBUTION, __version__, "builtin")
        for plugin, distribution, version in extra:
            host.register(plugin, distribution, version)
        if distributions is not None:
            host.load_entry_points(distributions)
        host.collect()
        if commands:
            host.add_commands(cli)
        plugins.reset_host(host)
        return host

    return build


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """Write a plugin distribution by hand (dist-info + modules), as `pip install --target` would lay it out.

    The site folder is put on ``sys.path`` for the test, so its entry points import for real.
    """
    made: set[Path] = set()
    modules_before = set(sys.modules)

    def write(site_name: str, distribution: str, version: str, modules: dict[str, str],
              entry_points: dict[str, str]) -> Path:
        site = tmp_path / site_name
        info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[zoo]\n{lines}")
        for filename, source in modules.items():
            path = site / filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source))
        if site not in made:
            made.add(site)
            monkeypatch.syspath_prepend(str(site))
        return site

    yield write
    forget_modules_from(made, modules_before)


def forget_modules_from(folders: set[Path], keep: set[str]) -> None:
    """Drop modules imported from ``folders`` so the next test imports its own files of the same name."""
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None) or ""
        if name not in keep and any(origin.startswith(str(folder)) for folder in folders):
            del sys.modules[name]


@pytest.fixture
def testplugin_source(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """tests/plugins/zoo-testplugin importable from its source folder (no entry point involved)."""
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(TESTPLUGIN_SOURCE))
    yield TESTPLUGIN_SOURCE
    forget_modules_from({TESTPLUGIN_SOURCE}, before)


@pytest.fixture(scope="session")
def testplugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/plugins/zoo-testplugin installed with pip into its own folder (a copy is built, so the
    source tree stays clean); put it on PYTHONPATH or sys.path to discover it through its entry point."""
    root = tmp_path_factory.mktemp("testplugin")
    source = root / "src"
    shutil.copytree(TESTPLUGIN_SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = root / "site"
    pip_install(source, site)
    return site


def pip_install(package: Path, site: Path) -> None:
    """`pip install --no-deps --no-build-isolation --target site package`, failing the test with pip's output."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--target", str(site), str(package)],
        capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"pip install {package} failed:\n{done.stdout}\n{done.stderr}")


def zoo_environment(*sites: Path, **variables: str) -> dict[str, str]:
    """The current environment with ``sites`` first on PYTHONPATH and only the given ZOO_* variables set."""
    env = {k: v for k, v in os.environ.items() if k not in ZOO_VARIABLES}
    paths = [str(s) for s in sites] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(variables)
    return env


def zoo_command() -> list[str]:
    """How to start `zoo` in a subprocess: the installed console script when there is one."""
    script = Path(sys.executable).parent / "zoo"
    return [sys.executable, str(script)] if script.is_file() else [sys.executable, "-m", "zoo_core.cli"]


@pytest.fixture
def run_zoo() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `zoo ARGS` in a subprocess with the given extra sites on PYTHONPATH and ZOO_* variables."""

    def run(*args: str, sites: tuple[Path, ...] = (), timeout: float = 120, **variables: str
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*zoo_command(), *args], capture_output=True, text=True, timeout=timeout,
                              env=zoo_environment(*sites, **variables))

    return run


@pytest.fixture
def pip_target() -> Callable[[Path, Path], None]:
    return pip_install


@pytest.fixture
def zoo_env() -> Callable[..., dict[str, str]]:
    return zoo_environment


def build_model_spec(name: str, **changes: object) -> ModelSpec:
    """A small, valid model spec (no recipe behind it) for tests of the host and the CLI."""
    image = TensorSpec("image", ("N", 3, "image_size", "image_size"), value_range=(-1.0, 1.0), layout="NCHW")
    latent = TensorSpec("z", ("N", "latent_dim"), layout="NC")
    fields: dict[str, object] = {
        "name": name,
        "summary": f"{name} for tests",
        "recipe": "zoo_nowhere.recipe:Recipe",
        "networks": (NetworkSpec("generator", "makes images", 1_200), NetworkSpec("critic", "judges them", 34)),
        "graphs": (GraphSpec("decoder", "z to image", (latent,), (image,), gflops_per_item=0.125),),
        "presets": (Preset("quick", "fast", {"image_size": 8, "latent_dim": 4, "batch_size": 2, "epochs": 1}),
                    Preset("book", "as published", {"image_size": 64, "latent_dim": 100, "batch_size": 128,
                                                    "epochs": 25})),
        "tasks": (TaskSpec("sample", "a grid of samples", ("decoder",), "zoo_nowhere.tasks:sample"),),
        "data_layouts": (DataLayout("folder", "a folder of images"),),
        "source": "a test",
        "tags": ("test",),
    }
    fields.update(changes)
    return ModelSpec(**fields)  # type: ignore[arg-type]


@pytest.fixture
def model_spec() -> Callable[..., ModelSpec]:
    return build_model_spec


#: tiny runs written by zoo 0.1.0 and the PNGs that release wrote from them (tests/test_task_api.py)
PREVIOUS_RELEASE = Path(__file__).parent / "data" / "previous_release"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private embedded-data cache for the module, never the user's."""
    from zoo_core.testing import private_cache

    with private_cache(tmp_path_factory.mktemp("cache")) as folder:
        yield folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the previous release's runs (loading must not need to write next to them)."""
    root = tmp_path_factory.mktemp("previous")
    for name in ("ae_mnist", "cyclegan_hair"):
        shutil.copytree(PREVIOUS_RELEASE / name, root / name)
    return root
