"""A bounded soak of a running `zoo serve`: zoo's own asyncio load generator (raw HTTP/1.1 keep-alive, not Locust).

:func:`max_rate` measures the most requests per second that ``clients`` closed-loop clients get through with
the request mix; :func:`soak` then sends the same mix open-loop at a fixed rate (a request is started every
1/rate seconds, whether earlier ones have answered or not, up to ``max_outstanding`` at once) for a fixed
time, and records per window: requests, statuses, p50/p99 latency and the server's resident memory.

The mix (fractions of requests): v2 inference on ``ae_mnist.autoencoder`` with the binary tensor extension
and with JSON tensors, a task (``ae_mnist reconstruct``, PNG), and bad requests (malformed JSON, a wrong
shape, an unknown graph, an unknown task field), each of which must get its own 4xx. A 5xx, a transport
error or an unexpected status is a failure.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import numpy as np

AE = "ae_mnist.autoencoder"
MIX = (("binary", 0.40), ("json", 0.30), ("task", 0.10), ("bad_json", 0.05), ("bad_shape", 0.05),
       ("unknown_graph", 0.05), ("bad_field", 0.05))


@dataclass(frozen=True)
class Request:
    kind: str
    method: str
    path: str
    expected: int
    content: bytes | None = None
    data: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _requests(seed: int = 0) -> dict[str, Request]:
    x = np.random.default_rng(seed).random((1, 1, 28, 28), dtype=np.float32)
    header = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "outputs": [{"name": "reconstruction", "parameters": {"binary_data": True}}]}).encode()
    infer = f"/v2/models/{AE}/infer"
    as_json = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                      "data": x.ravel().tolist()}]}).encode()
    wrong = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 27, 28], "datatype": "FP32",
                                    "data": [0.0] * 756}]}).encode()
    return {
        "binary": Request("binary", "POST", infer, 200, header + x.tobytes(),
                          headers={"inference-header-content-length": str(len(header)),
                                   "content-type": "application/octet-stream"}),
        "json": Request("json", "POST", infer, 200, as_json, headers={"content-type": "application/json"}),
        "task": Request("task", "POST", "/tasks/ae_mnist/reconstruct", 200, data={"n": "2", "seed": "1"}),
        "bad_json": Request("bad_json", "POST", infer, 400, b"{oops"),
        "bad_shape": Request("bad_shape", "POST", infer, 400, wrong),
        "unknown_graph": Request("unknown_graph", "POST", "/v2/models/nope.graph/infer", 404, as_json),
        "bad_field": Request("bad_field", "POST", "/tasks/ae_mnist/reconstruct", 400, data={"colour": "red"}),
    }


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its children (the workers of ``--workers N``), from /proc."""
    total = 0
    for process in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            continue
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


@dataclass
class Window:
    """One window of the soak."""

    start_s: float
    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    rss: int = 0

    def summary(self) -> dict[str, Any]:
        lat = np.array(self.latencies) * 1e3 if self.latencies else np.zeros(1)
        return {"start_s": round(self.start_s, 1), "requests": self.requests, "statuses": dict(self.statuses),
                "failures": self.failures, "p50_ms": round(float(np.percentile(lat, 50)), 2),
                "p99_ms": round(float(np.percentile(lat, 99)), 2), "rss_mb": round(self.rss / 2**20, 1)}


class Mix:
    def __init__(self, seed: int = 0) -> None:
        self.requests = _requests(seed)
        self.random = random.Random(seed)
        self.kinds = [k for k, _ in MIX]
        self.weights = [w for _, w in MIX]

    def next(self) -> Request:
        return self.requests[self.random.choices(self.kinds, self.weights)[0]]


class _Client:
    """Keep-alive HTTP/1.1 connections to one server, each request pre-encoded to bytes: a generator cheap enough
    (about 12% of a core at 755 requests/s here) that on a shared CPU the server, not the generator, sets the
    rate. httpx took a whole core at 460 requests/s (about 2 ms of CPU a request) and fell behind."""

    def __init__(self, url: str, connections: int) -> None:
        address = urlsplit(url)
        if address.scheme != "http" or not address.hostname or not address.port:
            raise ValueError(f"the soak client speaks plain http to host:port, got {url}")
        self.host, self.port = address.hostname, address.port
        self.slots = asyncio.Semaphore(connections)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.raw: dict[int, bytes] = {}

    def encode(self, request: Request) -> bytes:
        raw = self.raw.get(id(request))
        if raw is None:
            body = request.content or b""
            headers = dict(request.headers)
            if request.data is not None:
                body = urlencode(request.data).encode()
                headers["content-type"] = "application/x-www-form-urlencoded"
            lines = [f"{request.method} {request.path} HTTP/1.1", f"host: {self.host}:{self.port}",
                     f"content-length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
            raw = self.raw[id(request)] = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        return raw

    async def send(self, request: Request) -> tuple[str, float, bool]:
        """(status or error name, seconds, whether it is what the request must get)."""
        raw = self.encode(request)
        start = time.perf_counter()  # a wait for a free connection is part of the latency, as on a real client
        async with self.slots:
            connection = None
            try:
                while True:
                    reused = bool(self.idle)
                    connection = self.idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
                    try:
                        status, keep = await asyncio.wait_for(_exchange(*connection, raw), 30)
                        break
                    except _ClosedIdle:
                        connection[1].close()  # the server closed it while idle (keep-alive timeout): a new one
                        connection = None
                        if not reused:
                            raise
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as error:
                if connection is not None:
                    connection[1].close()
                return type(error).__name__, time.perf_counter() - start, False
            seconds = time.perf_counter() - start
            if keep:
                self.idle.append(connection)
            else:
                connection[1].close()
        return str(status), seconds, status == request.expected

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()

    async def __aenter__(self) -> _Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _ClosedIdle(ConnectionError):
    """The connection was closed before a byte of the answer came (a kept-alive one the server timed out)."""


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> tuple[int, bool]:
    """Send one request and read its whole answer: (status, whether the connection stays open)."""
    try:
        writer.write(raw)
        await writer.drain()
        status_line = await reader.readline()
    except ConnectionResetError:
        raise _ClosedIdle from None
    if not status_line:
        raise _ClosedIdle
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
    status = int(parts[1])
    length, chunked, keep = 0, False, parts[0] == b"HTTP/1.1"
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            keep = value != b"close"
    if chunked:
        while (size := int((await reader.readline()).split(b";")[0], 16)) > 0:
            await reader.readexactly(size + 2)
        await reader.readline()
    elif length:
        await reader.readexactly(length)
    return status, keep


def _client(url: str, connections: int) -> _Client:
    return _Client(url, connections)


async def max_rate(url: str, seconds: float = 10.0, clients: int = 16, seed: int = 0) -> float:
    """Requests per second ``clients`` closed-loop clients get through with the mix (all must be right)."""
    mix = Mix(seed)
    done, wrong = 0, Counter()
    async with _client(url, clients) as http:
        stop = time.monotonic() + seconds

        async def client() -> None:
            nonlocal done
            while time.monotonic() < stop:
                status, _, right = await http.send(mix.next())
                done += 1
                if not right:
                    wrong[status] += 1

        began = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.monotonic() - began
    if wrong:
        raise AssertionError(f"wrong answers while measuring the maximum rate: {dict(wrong)}")
    return done / elapsed


async def soak(url: str, rate: float, seconds: float, window_s: float, pid: int | None = None, seed: int = 1,
               max_outstanding: int = 256, progress: Callable[[dict[str, Any]], None] | None = None
               ) -> dict[str, Any]:
    """The mix open-loop at ``rate`` requests/s for ``seconds``; per-window figures (see the module's docstring)."""
    mix = Mix(seed)
    windows: list[Window] = []
    outstanding: set[asyncio.Task[None]] = set()
    skipped = 0
    began = time.monotonic()

    def window() -> Window:
        index = int((time.monotonic() - began) // window_s)
        while len(windows) <= index:
            windows.append(Window(len(windows) * window_s))
        return windows[index]

    async def one(http: _Client, request: Request) -> None:
        status, seconds_taken, right = await http.send(request)
        current = window()
        current.requests += 1
        current.statuses[status] += 1
        if right:
            current.latencies.append(seconds_taken)
        else:
            current.failures += 1

    async def sample_memory() -> None:
        while True:
            if pid is not None:
                current = window()
                current.rss = max(current.rss, rss_bytes(pid))
            await asyncio.sleep(0.5)

    async with _client(url, max_outstanding) as http:
        sampler = asyncio.create_task(sample_memory())
        sent, reported = 0, 0
        while (now := time.monotonic()) - began < seconds:
            due = began + sent / rate
            if due > now:
                await asyncio.sleep(due - now)
            sent += 1
            if len(outstanding) >= max_outstanding:
                skipped += 1  # the server is this far behind: counted, not queued without bound
                continue
            task = asyncio.create_task(one(http, mix.next()))
            outstanding.add(task)
            task.add_done_callback(outstanding.discard)
            if progress is not None and len(windows) - 1 > reported:  # each window once, when the next began
                reported = len(windows) - 1
                progress(windows[reported - 1].summary())
        await asyncio.wait_for(asyncio.gather(*outstanding), 60)
        sampler.cancel()
    return {"rate_per_s": rate, "seconds": seconds, "window_s": window_s, "skipped_by_generator": skipped,
            "windows": [w.summary() for w in windows if w.requests]}


def verdict(result: dict[str, Any], warmup_windows: int, compare_windows: int) -> dict[str, Any]:
    """The soak's criteria: 0 5xx and 0 failures, p99 of the last windows within 1.5x of the first (after the
    warm-up), and resident memory at the end within 5% of its value after the warm-up."""
    windows = result["windows"]
    steady = windows[warmup_windows:]
    first, last = steady[:compare_windows], steady[-compare_windows:]

    def p99(group: list[dict[str, Any]]) -> float:
        return max(w["p99_ms"] for w in group)

    server_errors = sum(n for w in windows for s, n in w["statuses"].items() if s.isdigit() and int(s) >= 500)
    failures = sum(w["failures"] for w in windows)
    rss_after_warmup = max(w["rss_mb"] for w in windows[:warmup_windows + 1])
    rss_end = max(w["rss_mb"] for w in windows[-compare_windows:])
    return {"requests": sum(w["requests"] for w in windows), "server_errors": server_errors, "failures": failures,
            "skipped_by_generator": result["skipped_by_generator"],
            "p99_first_ms": p99(first), "p99_last_ms": p99(last), "p99_ratio": round(p99(last) / p99(first), 3),
            "rss_after_warmup_mb": rss_after_warmup, "rss_end_mb": rss_end,
            "rss_growth": round(rss_end / rss_after_warmup - 1, 4) if rss_after_warmup else None}
