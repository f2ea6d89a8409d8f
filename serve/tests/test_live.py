"""A real `zoo serve` (uvicorn) on a free loopback port: the official Triton client, a bounded load test with and
without malformed requests, SIGTERM draining, and the bind-address warning."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
from zoo_serve_live import LOOPBACK, LiveServer, start_server

from zoo_core.testing import invoke

AE = "ae_mnist.autoencoder"
CLIENTS, REQUESTS = 32, 50
LOAD_LIMIT_S = 120  # the whole 1,600-request run, on two busy cores


def test_tritonclient_http_drives_the_server(live: LiveServer, exports: dict[str, Path]) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(url=f"{LOOPBACK}:{live.port}")
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(AE)
    meta = client.get_model_metadata(AE)
    assert meta["inputs"][0] == {"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)

    binary = triton.InferInput("image", list(x.shape), "FP32")
    binary.set_data_from_numpy(x)  # the binary tensor extension, the client's default
    result = client.infer(AE, [binary])
    as_json = triton.InferInput("image", list(x.shape), "FP32")
    as_json.set_data_from_numpy(x, binary_data=False)
    json_result = client.infer(AE, [as_json], outputs=[triton.InferRequestedOutput("reconstruction",
                                                                                   binary_data=False)])
    np.testing.assert_allclose(result.as_numpy("reconstruction"), json_result.as_numpy("reconstruction"), atol=1e-6)
    assert result.as_numpy("reconstruction").shape == (3, 1, 28, 28)

    faces = triton.InferInput("image", [2, 3, 32, 32], "FP32")
    faces.set_data_from_numpy(np.full((2, 3, 32, 32), 0.5, np.float32))
    encoded = client.infer("vae_faces.encoder", [faces])
    latent = client.get_model_metadata("vae_faces.encoder")["outputs"][0]["shape"][1]
    assert encoded.as_numpy("mu").shape == encoded.as_numpy("logvar").shape == (2, latent)

    with pytest.raises(InferenceServerException, match="unknown model"):
        client.infer("nope.graph", [binary])
    wrong = triton.InferInput("image", [1, 1, 27, 28], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 1, 27, 28), np.float32))
    with pytest.raises(InferenceServerException, match="shape"):
        client.infer(AE, [wrong])
    client.close()


def _good_body(rng: np.random.Generator) -> bytes:
    x = rng.random((1, 1, 28, 28), dtype=np.float32)
    return json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                   "data": x.ravel().tolist()}]}).encode()


MALFORMED = [b"{oops", b'{"inputs": []}',
             b'{"inputs": [{"name": "image", "shape": [1, 1, 28], "datatype": "FP32", "data": [0]}]}',
             b'{"inputs": [{"name": "image", "shape": [1,1,28,28], "datatype": "INT8", "data": []}]}',
             b"\xff" * 64]


async def _load(url: str, malformed_share: float) -> tuple[Counter[int], list[float], float, int]:
    """CLIENTS clients, each sending REQUESTS requests one after another; statuses and latencies of the good ones."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    bad_sent = 0
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        async def client(index: int) -> None:
            nonlocal bad_sent
            rng = np.random.default_rng(index)
            bodies = [_good_body(rng) for _ in range(4)]
            for number in range(REQUESTS):
                malformed = rng.random() < malformed_share
                body = MALFORMED[number % len(MALFORMED)] if malformed else bodies[number % len(bodies)]
                start = time.perf_counter()
                response = await http.post(f"/v2/models/{AE}/infer", content=body,
                                           headers={"content-type": "application/json"})
                statuses[response.status_code] += 1
                if malformed:
                    bad_sent += 1
                else:
                    latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(CLIENTS))), LOAD_LIMIT_S)
        return statuses, latencies, time.perf_counter() - began, bad_sent


def test_load_32_clients_no_errors(live: LiveServer, tmp_path: Path) -> None:
    statuses, latencies, seconds, _ = asyncio.run(_load(live.url, 0.0))
    assert statuses == Counter({200: CLIENTS * REQUESTS})
    p50, p99 = statistics.median(latencies), float(np.percentile(latencies, 99))
    (tmp_path / "load.json").write_text(json.dumps({"requests": CLIENTS * REQUESTS, "seconds": seconds,
                                                    "p50_ms": p50 * 1e3, "p99_ms": p99 * 1e3}))
    print(f"load: {CLIENTS}x{REQUESTS} requests in {seconds:.1f} s, p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms")


def test_load_with_malformed_requests_never_5xx(live: LiveServer) -> None:
    statuses, _, _, bad_sent = asyncio.run(_load(live.url, 0.1))
    assert not [code for code in statuses if code >= 500], statuses
    assert statuses[400] == bad_sent > 0
    assert statuses[200] == CLIENTS * REQUESTS - bad_sent


def test_sigterm_drains_in_flight_requests_and_exits_0(exports: dict[str, Path], tmp_path: Path) -> None:
    # a long batching delay keeps the request in flight when SIGTERM arrives
    server = start_server({"ae_mnist": exports["ae_mnist"]}, tmp_path, "--max-delay-ms", "900")
    body = _good_body(np.random.default_rng(0))
    head = (f"POST /v2/models/{AE}/infer HTTP/1.1\r\nHost: {LOOPBACK}:{server.port}\r\nContent-Type: "
            f"application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection((LOOPBACK, server.port), timeout=30) as client:
        client.sendall(head + body)
        # SIGTERM once the server has read the whole request (not after a guessed sleep): it is then in flight
        deadline = time.monotonic() + 20
        while not _request_read_by_server(server.port, client.getsockname()[1]):
            assert time.monotonic() < deadline, "the server never read the request"
            time.sleep(0.01)
        assert server.stop() == 0, server.log.read_text()
        answer = b""
        while chunk := client.recv(1 << 16):
            answer += chunk
    status, _, payload = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200"), answer[:500]
    assert len(json.loads(payload)["outputs"][0]["data"]) == 784


def _request_read_by_server(port: int, client_port: int) -> bool:
    """Whether every byte the client sent has reached the server (the client's send queue is empty) and been read
    by it (the server side's receive queue is empty), from the kernel's socket table."""
    queues: dict[str, tuple[int, int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16), fields[3]
            tx, rx = (int(part, 16) for part in fields[4].split(":"))
            if state == "01" and (local, remote) == (port, client_port):
                queues["server"] = (tx, rx)
            elif state == "01" and (local, remote) == (client_port, port):
                queues["client"] = (tx, rx)
    return "server" in queues and "client" in queues and queues["client"][0] == 0 and queues["server"][1] == 0


def test_non_loopback_host_warns(monkeypatch: pytest.MonkeyPatch, exports: dict[str, Path]) -> None:
    import uvicorn

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    result = invoke("serve", "--export", exports["ae_mnist"], "--host", "0.0.0.0", "--port", "0")
    assert result.exit_code == 0, result.output
    assert "warning: binding 0.0.0.0 exposes the server" in result.output and "no --api-key" in result.output
    assert calls[0]["host"] == "0.0.0.0"
    default = invoke("serve", "--export", exports["ae_mnist"], "--port", "0")
    assert "warning" not in default.output and calls[1]["host"] == LOOPBACK


def test_bare_zoo_serve_finds_the_demo_exports(monkeypatch: pytest.MonkeyPatch, exports: dict[str, Path],
                                              tmp_path: Path) -> None:
    """After `make demo` (exports under demo-output/exports), plain `zoo serve` serves them, and says so."""
    import shutil

    import uvicorn

    monkeypatch.chdir(tmp_path)
    shutil.copytree(exports["ae_mnist"], tmp_path / "demo-output" / "exports" / "ae_mnist")
    apps: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: apps.append(app))
    result = invoke("serve", "--port", "0")  # port 0: the test does not depend on 8000 being free
    assert result.exit_code == 0, result.output
    assert "demo-output/exports/ (after `make demo`, as exports/ holds none)" in result.output
    assert list(apps[0].state.server.graphs) == ["ae_mnist.encoder", "ae_mnist.decoder", "ae_mnist.autoencoder"]
    rooted = invoke("serve", "--exports-root", tmp_path / "demo-output" / "exports", "--port", "0")
    assert rooted.exit_code == 0 and "make demo" not in rooted.output


def test_nothing_to_serve_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("serve", "--port", "0")
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert "nothing to serve" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = invoke("serve", "--export", empty, "--port", "0")
    assert bad.exit_code != 0 and "manifest.json" in bad.output and "Traceback" not in bad.output
