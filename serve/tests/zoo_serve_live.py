"""Helpers of zoo-serve's tests: settings on the tiny exports and a real `zoo serve` process on a free loopback
port (only 127.0.0.1, ever)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from zoo_serve.models import ServeSettings

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 90


def settings_for(exports: dict[str, Path], **overrides: object) -> ServeSettings:
    return ServeSettings(exports=tuple(str(p) for p in exports.values()), **overrides)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


@dataclass
class LiveServer:
    """A `zoo serve` process on a loopback port."""

    process: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start_server(exports: dict[str, Path], folder: Path, *extra: str, scheme: str = "http",
                 verify: bool | ssl.SSLContext = True) -> LiveServer:
    """Start `zoo serve` on the exports and wait until /v2/health/ready answers (``verify``: httpx's, for TLS)."""
    port = free_port()
    log = folder / f"serve-{port}.log"
    command = [sys.executable, "-m", "zoo_core.cli", "serve", "--port", str(port), "--host", LOOPBACK, *extra]
    for path in exports.values():
        command += ["--export", str(path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_ORT_THREADS": "1"}
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=folder, env=env)
    url = f"{scheme}://{LOOPBACK}:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"zoo serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2, verify=verify).status_code == 200:
                return LiveServer(process, url, port, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"zoo serve did not answer within {START_TIMEOUT_S} s:\n{log.read_text()}")
