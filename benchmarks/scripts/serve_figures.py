"""`zoo serve` throughput with dynamic batching: one client at a time against many concurrent clients.

Starts `zoo serve` on 127.0.0.1 (a free port) and drives ``POST /v2/models/MODEL.GRAPH/infer`` with a
minimal asyncio HTTP/1.1 client (pre-built requests, keep-alive, binary tensor extension or JSON), so
the client spends as little of the machine's CPU as possible. For each ``--max-delay-ms`` it measures
requests/s of 1 client sending requests one after another and of N concurrent clients, plus p50/p99
latency, and the server's batch sizes are implied by the ratio. Writes benchmarks/results/serve.json.

    .venv/bin/python benchmarks/scripts/serve_figures.py                 # AE graph (tiny export, full-size graph)
    .venv/bin/python benchmarks/scripts/serve_figures.py --generator     # also the 256² CycleGAN generator

Without ``--ae-export`` / ``--generator-export`` it trains and exports what it needs into a temporary folder
(the AE for two steps; the book-size CycleGAN for one step: the timing does not depend on the weights).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
RESULTS = ROOT / "benchmarks" / "results" / "serve.json"


def build_body(name: str, shape: list[int], binary: bool, seed: int) -> tuple[bytes, dict[str, str]]:
    x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    if binary:
        header = json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": "FP32",
                                         "parameters": {"binary_data_size": x.nbytes}}],
                             "parameters": {"binary_data_output": True}}).encode()
        return header + x.tobytes(), {"Inference-Header-Content-Length": str(len(header)),
                                      "Content-Type": "application/octet-stream"}
    body = json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": "FP32",
                                   "data": x.ravel().tolist()}]}).encode()
    return body, {"Content-Type": "application/json"}


def http_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {LOOPBACK}:{port}", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def drive(port: int, request: bytes, clients: int, per_client: int) -> dict[str, Any]:
    """``clients`` connections, each sending ``per_client`` requests one after another."""
    latencies: list[float] = []
    errors = 0

    async def client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        for _ in range(per_client):
            start = time.perf_counter()
            writer.write(request)
            status = await read_response(reader)
            latencies.append(time.perf_counter() - start)
            errors += status != 200
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    seconds = time.perf_counter() - began
    return {"clients": clients, "requests": clients * per_client, "errors": errors, "seconds": round(seconds, 3),
            "requests_per_s": round(clients * per_client / seconds, 1),
            "p50_ms": round(statistics.median(latencies) * 1e3, 2),
            "p99_ms": round(float(np.percentile(latencies, 99)) * 1e3, 2)}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def start_server(export: Path, max_batch: int, max_delay_ms: float, cwd: Path,
                 ort_threads: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, "-m", "zoo_core.cli", "serve", "--export", str(export), "--port", str(port),
               "--max-batch", str(max_batch), "--max-delay-ms", str(max_delay_ms)]
    env = {**os.environ, "ZOO_ORT_THREADS": str(ort_threads)}
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{LOOPBACK}:{port}/v2/health/ready", timeout=2).status_code == 200:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("zoo serve did not start")


def measure(export: Path, graph: str, input_name: str, shape: list[int], delays: list[float], max_batch: int,
            clients: int, per_client: int, single_requests: int, binary: bool, cwd: Path,
            ort_threads: int) -> list[dict[str, Any]]:
    rows = []
    for delay in delays:
        process, port = start_server(export, max_batch, delay, cwd, ort_threads)
        try:
            body, headers = build_body(input_name, shape, binary, seed=0)
            request = http_request(port, f"/v2/models/{graph}/infer", body, headers)
            asyncio.run(drive(port, request, 2, 2))  # warm-up: sessions open, buffers allocated
            before = graph_stats(port, graph)
            single = asyncio.run(drive(port, request, 1, single_requests))
            between = graph_stats(port, graph)
            many = asyncio.run(drive(port, request, clients, per_client))
            after = graph_stats(port, graph)
        finally:
            process.terminate()
            process.wait(30)
        row = {"graph": graph, "encoding": "binary" if binary else "json", "ort_threads": ort_threads,
               "max_batch": max_batch,
               "max_delay_ms": delay, "one_client": single, "concurrent": many,
               "speedup": round(many["requests_per_s"] / single["requests_per_s"], 2),
               "items_per_graph_call": {"one_client": calls(before, between), "concurrent": calls(between, after)}}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def graph_stats(port: int, graph: str) -> dict[str, Any]:
    """The server's counters of the graph (GET /v2/models/GRAPH/stats)."""
    return httpx.get(f"http://{LOOPBACK}:{port}/v2/models/{graph}/stats", timeout=10).json()["model_stats"][0]


def calls(start: dict[str, Any], end: dict[str, Any]) -> float:
    """Mean items per graph call between two readings of the counters."""
    items = end["inference_count"] - start["inference_count"]
    return round(items / max(1, end["execution_count"] - start["execution_count"]), 2)


def machine() -> dict[str, Any]:
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "uptime_before": subprocess.run(["uptime"], capture_output=True,
                                                                         text=True).stdout.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ae-export", type=Path, help="an ae_mnist export (default: train two steps and export)")
    parser.add_argument("--generator", action="store_true", help="also measure the 256² CycleGAN generator")
    parser.add_argument("--generator-export", type=Path, help="a cyclegan_hair export at 256² (default: build one)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--per-client", type=int, default=50)
    parser.add_argument("--single-requests", type=int, default=400)
    parser.add_argument("--delays", default="0,2", help="--max-delay-ms values to measure, comma-separated")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--ae-ort-threads", type=int, default=1,
                        help="ZOO_ORT_THREADS of the AE server (1: no ORT thread pool spinning against the event loop)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    delays = [float(d) for d in args.delays.split(",")]
    with tempfile.TemporaryDirectory(prefix="zoo-serve-figures-") as folder:
        work = Path(folder)
        os.environ.setdefault("ZOO_CACHE_DIR", str(work / "cache"))
        from zoo_serve.testing import tiny_export

        ae = args.ae_export or tiny_export("ae_mnist", work)
        result: dict[str, Any] = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "machine": machine(),
                                  "note": "client and server share the machine; other work on it is in uptime",
                                  "ae": []}
        for binary in (True, False):
            result["ae"] += measure(ae, "ae_mnist.autoencoder", "image", [1, 1, 28, 28], delays, args.max_batch,
                                    args.clients, args.per_client, args.single_requests, binary, work,
                                    args.ae_ort_threads)
        if args.generator:
            generator = args.generator_export or tiny_export(
                "cyclegan_hair", work, overrides={"portraits": 8, "val_fraction": 0.25, "amp": False}, steps=1,
                preset="book")
            result["generator_256"] = measure(generator, "cyclegan_hair.black_to_blond", "image", [1, 3, 256, 256],
                                              [delays[0]], 8, 8, 2, 4, True, work, 0)
        result["machine"]["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
