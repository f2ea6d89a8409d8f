"""Weights over HTTP, against real servers on 127.0.0.1: Starlette's FileResponse under uvicorn (it answers Range
requests), a route that drops the connection half way, and a slow one two processes pull from at once."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zoo_core.download import fetch
from zoo_core.errors import UsageError, ZooError
from zoo_core.testing import invoke, isolated_host
from zoo_core.weights import cached_path, resolve_weights

ae_plugin = pytest.importorskip("zoo_ae_mnist.plugin")
from zoo_core.plugins import RegisteredModel  # noqa: E402

PAYLOAD = Path(ae_plugin.__file__).parent / "weights" / "mnist.safetensors"  # a real ae_mnist zoo checkpoint
MODEL = RegisteredModel(ae_plugin.SPEC, "zoo-ae-mnist", "0.0.0+test")


class Files:
    """The uvicorn server's routes, and what it was asked."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cuts = 0

    def app(self) -> object:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import FileResponse, Response, StreamingResponse
        from starlette.routing import Route

        files = self

        async def plain(request: Request) -> Response:
            files.requests.append((request.url.path, request.headers.get("range")))
            return FileResponse(PAYLOAD)

        async def cut(request: Request) -> Response:
            files.requests.append((request.url.path, request.headers.get("range")))
            if request.headers.get("range") or files.cuts >= 1:
                return FileResponse(PAYLOAD)
            files.cuts += 1
            half = len(files.data) // 2

            async def body() -> object:
                yield files.data[:half]
                raise ConnectionAbortedError("the test server drops the connection half way")

            return StreamingResponse(body(), headers={"Content-Length": str(len(files.data))},
                                     media_type="application/octet-stream")

        async def slow(request: Request) -> Response:
            files.requests.append((request.url.path, request.headers.get("range")))

            async def body() -> object:
                step = len(files.data) // 20 + 1
                for start in range(0, len(files.data), step):
                    await asyncio.sleep(0.03)
                    yield files.data[start:start + step]

            return StreamingResponse(body(), headers={"Content-Length": str(len(files.data))},
                                     media_type="application/octet-stream")

        async def missing(request: Request) -> Response:
            return Response("no such file", status_code=404)

        return Starlette(routes=[Route("/files/mnist.safetensors", plain), Route("/cut/mnist.safetensors", cut),
                                 Route("/slow/mnist.safetensors", slow), Route("/missing.safetensors", missing)])


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Files]]:
    """uvicorn on 127.0.0.1 and a free port, in a thread, stopped at the end of the module."""
    import uvicorn

    files = Files(PAYLOAD.read_bytes())
    config = uvicorn.Config(files.app(), host="127.0.0.1", port=0, log_level="critical", lifespan="off")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    for _ in range(200):
        if instance.started:
            break
        time.sleep(0.02)
    assert instance.started, "the test server did not start"
    port = instance.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", files
    finally:
        instance.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    return tmp_path / "cache"


SHA256 = hashlib.sha256(PAYLOAD.read_bytes()).hexdigest()


def test_a_url_downloads_once_into_the_cache_keyed_by_sha256(server, cache) -> None:
    base, files = server
    before = len(files.requests)
    path = resolve_weights(MODEL, f"{base}/files/mnist.safetensors#sha256={SHA256}")
    assert path == cache / "weights" / f"{SHA256}.safetensors" == cached_path(SHA256)
    assert path.read_bytes() == PAYLOAD.read_bytes()
    assert resolve_weights(MODEL, f"{base}/files/mnist.safetensors#sha256={SHA256.upper()}") == path
    assert len(files.requests) == before + 1  # the second call found the cached copy
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".lock"]


def test_a_dropped_connection_resumes_with_a_range_request(server, cache) -> None:
    base, files = server
    files.cuts = 0
    lines: list[str] = []
    before = len(files.requests)
    path = fetch(f"{base}/cut/mnist.safetensors", SHA256, cached_path(SHA256), log=lines.append)
    assert path.read_bytes() == PAYLOAD.read_bytes()
    asked = files.requests[before:]
    assert asked[0] == ("/cut/mnist.safetensors", None)
    assert len(asked) == 2 and asked[1][1] is not None
    resumed_at = int(asked[1][1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at < len(files.data)  # it asked for the rest, not the whole file again
    assert any("resuming" in line for line in lines)


def test_a_partial_file_left_by_a_killed_run_is_resumed(server, cache) -> None:
    base, files = server
    target = cached_path(SHA256)
    target.parent.mkdir(parents=True)
    (target.parent / (target.name + ".part")).write_bytes(files.data[:100_000])
    before = len(files.requests)
    fetch(f"{base}/files/mnist.safetensors", SHA256, target)
    assert files.requests[before:] == [("/files/mnist.safetensors", "bytes=100000-")]
    assert target.read_bytes() == files.data and not (target.parent / (target.name + ".part")).exists()


def test_a_wrong_sha256_is_refused_in_one_line_and_the_download_deleted(server, cache) -> None:
    base, _ = server
    wrong = "0" * 64
    result = _zoo("generate", "ae_mnist", "reconstruct", "--weights", f"{base}/files/mnist.safetensors#sha256={wrong}",
                  "--out", cache / "out.png")
    assert result.exit_code == 1
    *progress, error = result.stderr.splitlines()
    assert progress == [f"zoo: downloading {base}/files/mnist.safetensors (0.6 MB)"]  # no bar: not a terminal
    assert "expected 0000000000000000" in error and "deleted it" in error
    assert [p.name for p in (cache / "weights").iterdir()] == [f"{wrong}.safetensors.lock"]
    assert not (cache / "out.png").exists()


def test_offline_is_one_line_naming_the_url_and_where_to_put_a_copy(server, cache, monkeypatch) -> None:
    base, files = server
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    before = len(files.requests)
    url = f"{base}/files/mnist.safetensors"
    result = _zoo("generate", "ae_mnist", "reconstruct", "--weights", f"{url}#sha256={SHA256}")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert url in result.stderr and str(cached_path(SHA256)) in result.stderr and "ZOO_OFFLINE" in result.stderr
    assert len(files.requests) == before
    # a copy placed there by hand is used, offline
    cached_path(SHA256).parent.mkdir(parents=True)
    cached_path(SHA256).write_bytes(PAYLOAD.read_bytes())
    assert resolve_weights(MODEL, f"{url}#sha256={SHA256}") == cached_path(SHA256)


def test_no_route_to_the_server_is_one_line_too(cache) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mnist.safetensors"
    with pytest.raises(ZooError) as caught:
        resolve_weights(MODEL, f"{url}#sha256={SHA256}")
    assert "\n" not in str(caught.value) and url in str(caught.value)
    assert str(cached_path(SHA256)) in str(caught.value)


def test_http_errors_and_urls_without_a_hash_are_refused(server, cache) -> None:
    base, _ = server
    with pytest.raises(ZooError, match=r"HTTP 404"):
        resolve_weights(MODEL, f"{base}/missing.safetensors#sha256={SHA256}")
    with pytest.raises(UsageError, match=r"must carry its hash as URL#sha256=HEX"):
        resolve_weights(MODEL, f"{base}/files/mnist.safetensors")
    with pytest.raises(UsageError, match=r"must carry its hash"):
        resolve_weights(MODEL, f"{base}/files/mnist.safetensors#md5=abc")
    with pytest.raises(UsageError, match=r"only https://, http:// and hf://"):
        resolve_weights(MODEL, "ftp://example.org/x.safetensors")
    result = _zoo("pull", "ae_mnist:nope")
    assert result.exit_code == 2 and result.stderr == "zoo: ae_mnist has no weights 'nope'; its weights: mnist\n"


PULL = """
import sys
from pathlib import Path
from zoo_core.download import fetch
lines = []
path = fetch(sys.argv[1], sys.argv[2], Path(sys.argv[3]), log=lines.append)
print(path, "waited" if any("another process" in line for line in lines) else "downloaded")
"""


def test_two_processes_pulling_the_same_file_download_it_once(server, cache) -> None:
    base, files = server
    before = len(files.requests)
    target = cached_path(SHA256)
    command = [sys.executable, "-c", PULL, f"{base}/slow/mnist.safetensors", SHA256, str(target)]
    env = {**os.environ, "ZOO_CACHE_DIR": str(cache)}
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for _ in range(500):  # start the second once the first holds the lock and streams
        if (target.parent / (target.name + ".part")).exists():
            break
        time.sleep(0.01)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    outputs = [process.communicate(timeout=60) for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], outputs
    assert sorted(out.split()[1] for out, _ in outputs) == ["downloaded", "waited"]
    assert {out.split()[0] for out, _ in outputs} == {str(target)}
    assert target.read_bytes() == files.data
    assert files.requests[before:] == [("/slow/mnist.safetensors", None)]  # one download between them


def _zoo(*args: object) -> object:
    with isolated_host((ae_plugin, "zoo-ae-mnist")):
        return invoke(*args)
