"""Every ```sh, ```bash and ```python block of README.md and docs/**/*.md runs, in page order, as a test.

How a block runs (docs/contributing.md says the same for authors):
- each page gets its own working folder, holding `.venv` (a link to this checkout's) and `demo-output/`: quick
  runs of every first-party model cut to 2 steps (`demo-output/runs/MODEL`) and their validated exports
  (`demo-output/exports/MODEL`), laid out as `make demo` lays them, made once per session;
- shell blocks run with `bash -e -o pipefail`, `.venv/bin` first on PATH; python blocks with `.venv/bin/python`;
  ZOO_CACHE_DIR is a private folder, so nothing touches the user's cache;
- the blocks of a page run one after the other in its folder, so a block may use what an earlier one wrote;
- `<!-- docs-test: skip REASON -->` on the line before a block skips it (pytest -rs lists each with its reason);
- `<!-- docs-test: server URL -->` starts the block in the background, waits until URL answers, and stops it
  (SIGTERM) after the page's last block: the blocks between talk to it.
Pages run two at a time (each block on one thread), except pages whose servers share a port.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LANGUAGES = {"sh": "shell", "bash": "shell", "console": None, "python": "python", "py": "python"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)[^\n]*$")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<kind>skip|server)\b\s*(?P<arg>.*?)\s*-->\s*$")
BLOCK_TIMEOUT_S = 240
SERVER_WAIT_S = 90
# The quick presets cut to 2 steps: seconds each, and every later step of the tour (export, generate, serve)
# works on them as on the demo's; the fixture trains two at a time on the two cores.
DEMO_MODELS = ("ae_mnist", "vae_faces", "cyclegan_hair")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    code: str
    skip: str | None
    server: str | None
    last_on_page: bool

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def documented_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks_of(page: Path) -> list[Block]:
    """The runnable fenced blocks of a page, with their markers; an indented block (in a list) counts too."""
    lines = page.read_text().splitlines()
    found: list[dict[str, object]] = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, fence, language = match["indent"], match["fence"], match["lang"].lower()
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence[0] * len(fence)):
            end += 1
        body = "\n".join(line[len(indent):] if line.startswith(indent) else line.lstrip()
                         for line in lines[index + 1:end])
        kind = LANGUAGES.get(language)
        if kind:
            previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            marker = MARKER.match(previous)
            skip = server = None
            if marker and marker["kind"] == "skip":
                skip = marker["arg"]
            elif marker:
                server = marker["arg"]
            found.append({"page": page, "line": index + 1, "language": kind, "code": body + "\n", "skip": skip,
                          "server": server})
        index = end + 1
    return [Block(**item, last_on_page=i == len(found) - 1) for i, item in enumerate(found)]  # type: ignore[arg-type]


ALL_BLOCKS = [block for page in documented_pages() for block in blocks_of(page)]


def test_skip_markers_give_reasons() -> None:
    """A skip says why; the skipped blocks are listed in the output of `pytest -rs` and here on failure."""
    skipped = [f"{b.id}: {b.skip}" for b in ALL_BLOCKS if b.skip is not None]
    assert all(len(b.skip or "") >= 10 for b in ALL_BLOCKS if b.skip is not None), "\n".join(skipped)
    for page in documented_pages():
        for number, line in enumerate(page.read_text().splitlines(), 1):
            if line.lstrip().startswith("<!--") and "docs-test:" in line:
                assert MARKER.match(line), f"{page.relative_to(ROOT)}:{number}: unknown docs-test marker {line!r}"


def test_every_page_block_is_found() -> None:
    """The README's tours are in the collection (a fence the parser missed would silently go untested)."""
    readme = [b for b in ALL_BLOCKS if b.page.name == "README.md"]
    assert sum(b.language == "shell" for b in readme) >= 2 and any(b.language == "python" for b in readme)


@pytest.fixture(scope="session")
def docs_root() -> Iterator[Path]:
    """A folder of our own for the pages, the demo and the cache: pytest prunes old numbered temp folders when
    other pytest sessions start on the same machine, which would pull a page's folder from under its server."""
    root = Path(tempfile.mkdtemp(prefix="zoo-docs-examples-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def docs_cache(docs_root: Path) -> Path:
    (docs_root / "zoo-cache").mkdir()
    return docs_root / "zoo-cache"


def block_environment(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOO_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", ZOO_CACHE_DIR=str(cache),
               ZOO_THREADS="1", PYTHONUNBUFFERED="1")
    return env


@pytest.fixture(scope="session")
def demo_output(docs_root: Path, docs_cache: Path) -> Path:
    """A small demo-output/: each model's quick preset trained 2 steps, then exported (validated ONNX)."""
    root = docs_root / "demo"
    root.mkdir()
    env = block_environment(docs_cache)
    zoo = str(VENV_BIN / "zoo")

    def run_all(commands: list[list[str]]) -> None:
        # two at a time: the machine has two cores and each command uses one thread
        for start in range(0, len(commands), 2):
            running = [(c, subprocess.Popen(c, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            text=True)) for c in commands[start:start + 2]]
            for command, process in running:
                output, _ = process.communicate(timeout=600)
                assert process.returncode == 0, f"{' '.join(command)} failed:\n{output}"

    run_all([[zoo, "train", m, "--max-steps", "2", "--no-progress", "--device", "cpu",
              "--out", f"demo-output/runs/{m}"] for m in DEMO_MODELS])
    run_all([[zoo, "export", m, "--run", f"demo-output/runs/{m}", "--out", f"demo-output/exports/{m}"]
             for m in DEMO_MODELS])
    return root / "demo-output"


LANES = 2  # pages run two at a time: every block runs torch on one thread (ZOO_THREADS=1), the machine has two cores


@dataclass
class Outcome:
    ok: bool
    message: str = ""


def port_of(url: str) -> int:
    return urllib.parse.urlsplit(url).port or 80


def run_page(blocks: list[Block], demo: Path, cache: Path, outcomes: dict[str, Outcome]) -> None:
    """The page's blocks in order in a fresh folder; a block after a failed one is not run (it may need its files)."""
    folder = Path(tempfile.mkdtemp(prefix="page-", dir=demo.parent.parent))
    (folder / ".venv").symlink_to(VENV_BIN.parent)
    # hard links: cheap, and zoo replaces files atomically (a new inode), so pages never share a change
    shutil.copytree(demo, folder / "demo-output", copy_function=os.link)
    env = block_environment(cache)
    servers: list[tuple[subprocess.Popen[str], Path]] = []
    failed: str | None = None
    try:
        for block in blocks:
            if failed:
                outcomes[block.id] = Outcome(False, f"not run: {failed} failed before it on the same page")
                continue
            outcomes[block.id] = run_block(block, folder, env, servers)
            if not outcomes[block.id].ok:
                failed = block.id
    finally:
        for server, _ in servers:
            stop(server)


def run_block(block: Block, folder: Path, env: dict[str, str],
              servers: list[tuple[subprocess.Popen[str], Path]]) -> Outcome:
    script = folder / f".docs-block-{block.line}.{'py' if block.language == 'python' else 'sh'}"
    script.write_text(block.code)
    command = ([str(VENV_BIN / "python"), script.name] if block.language == "python"
               else ["bash", "-e", "-o", "pipefail", script.name])
    if block.server:
        log = folder / f".docs-server-{block.line}.log"
        with open(log, "w") as sink:  # a file, not a pipe: a chatty server never blocks on a full pipe
            server = subprocess.Popen(command, cwd=folder, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                      text=True, start_new_session=True)
        servers.append((server, log))
        return wait_for(block.server, server, log)
    try:
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired as expired:
        return Outcome(False, f"{block.id} ran past {BLOCK_TIMEOUT_S} s\n--- block ---\n{block.code}"
                              f"--- output ---\n{str(expired.stdout or '')[-2000:]}{str(expired.stderr or '')[-2000:]}")
    if done.returncode != 0:
        return Outcome(False, f"{block.id} exited with {done.returncode}\n--- block ---\n{block.code}"
                              f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}")
    return Outcome(True)


def wait_for(url: str, server: subprocess.Popen[str], log: Path) -> Outcome:
    deadline = time.monotonic() + SERVER_WAIT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return Outcome(False, f"the server block exited with {server.returncode} before {url} answered:\n"
                                  f"{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return Outcome(True)
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    return Outcome(False, f"{url} did not answer within {SERVER_WAIT_S} s:\n{log.read_text()[-4000:]}")


def stop(server: subprocess.Popen[str]) -> None:
    """SIGTERM to the block's process group (the shell and the server it started), then SIGKILL after 20 s."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=20)


@pytest.fixture(scope="session")
def outcomes(request: pytest.FixtureRequest, docs_cache: Path) -> dict[str, Outcome]:
    """Every selected page run once, two pages at a time; pages whose servers use the same port never overlap."""
    selected = {item.callspec.params["block"].page for item in request.session.items
                if getattr(item, "callspec", None) and isinstance(item.callspec.params.get("block"), Block)}
    by_page: dict[Path, list[Block]] = {}
    for block in ALL_BLOCKS:
        if block.page in selected and block.skip is None:
            by_page.setdefault(block.page, []).append(block)
    results: dict[str, Outcome] = {}
    if not by_page:
        return results
    demo = request.getfixturevalue("demo_output")
    # the pages with the most blocks first, so that the two lanes end close together
    pending = sorted(by_page.items(), key=lambda item: -len(item[1]))
    ports_in_use: set[int] = set()
    condition = threading.Condition()

    def lane() -> None:
        while True:
            with condition:
                while True:
                    if not pending:
                        return
                    choice = next((i for i, (_, blocks) in enumerate(pending)
                                   if not {port_of(b.server) for b in blocks if b.server} & ports_in_use), None)
                    if choice is not None:
                        break
                    condition.wait()
                _, blocks = pending.pop(choice)
                ports = {port_of(b.server) for b in blocks if b.server}
                ports_in_use.update(ports)
            try:
                run_page(blocks, demo, docs_cache, results)
            except Exception as error:  # a fixture bug must show as the page's failure, not a hung lane
                for block in blocks:
                    results.setdefault(block.id, Outcome(False, f"{type(error).__name__}: {error}"))
            finally:
                with condition:
                    ports_in_use.difference_update(ports)
                    condition.notify_all()

    threads = [threading.Thread(target=lane, daemon=True) for _ in range(LANES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.id)
def test_documented_example_runs(block: Block, request: pytest.FixtureRequest) -> None:
    if block.skip is not None:
        pytest.skip(f"docs-test: skip {block.skip}")
    outcome = request.getfixturevalue("outcomes").get(block.id)
    assert outcome is not None, f"{block.id} was not run"
    assert outcome.ok, outcome.message
