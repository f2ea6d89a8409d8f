"""The raw-ASGI inference route answers exactly as the FastAPI route it shortcuts, and its quick input check
accepts only what the full check accepts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from zoo_serve.app import ServeApp, create_app
from zoo_serve.errors import BadRequest
from zoo_serve.tensors import HEADER_LENGTH
from zoo_serve_live import settings_for

from zoo_core.testing import torch_threads

AE = "/v2/models/ae_mnist.autoencoder/infer"
LIMIT = 64 * 1024


def _json(shape: list[int], value: float = 0.5, **extra: Any) -> bytes:
    return json.dumps({"inputs": [{"name": "image", "shape": shape, "datatype": "FP32",
                                   "data": [value] * int(np.prod(shape))}], **extra}).encode()


def _binary(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"id": "7", "inputs": [{"name": "image", "shape": list(x.shape), "datatype": "FP32",
                                                "parameters": {"binary_data_size": x.nbytes}}],
                         "parameters": {"binary_data_output": True}}).encode()
    return header + x.tobytes(), {HEADER_LENGTH: str(len(header)), "content-type": "application/octet-stream"}


GOOD = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
REQUESTS: list[tuple[str, bytes, dict[str, str]]] = [
    (AE, _json([1, 1, 28, 28]), {}),
    ("/v2/models/ae_mnist.autoencoder/versions/1/infer", _json([3, 1, 28, 28], 0.25), {}),
    (AE, *_binary(GOOD)),
    (AE, _json([1, 1, 28, 28], outputs=[{"name": "reconstruction"}]), {}),
    (AE, _json([1, 1, 28, 28], outputs=[{"name": "nope"}]), {}),
    ("/v2/models/nope/infer", _json([1, 1, 28, 28]), {}),
    ("/v2/models/ae_mnist.autoencoder/versions/2/infer", _json([1, 1, 28, 28]), {}),
    (AE, _json([1, 1, 27, 28]), {}),
    (AE, _json([0, 1, 28, 28]), {}),
    (AE, _json([1, 1, 28, 28], 7.0), {}),
    (AE, b"{oops", {}),
    (AE, b"\xff" * 64, {}),
    (AE, _json([1, 1, 28, 28]), {"content-encoding": "gzip"}),
    (AE, _json([1, 1, 28, 28]), {HEADER_LENGTH: "12x"}),
    (AE, _json([30, 1, 28, 28]), {}),  # over LIMIT bytes: 413
]


ROUTED = "x-zoo-test-route"  # requests with this header skip the shortcut


@pytest.fixture(scope="module")
def client(exports: dict[str, Path]) -> Iterator[TestClient]:
    """One client (the batchers belong to one event loop) on the app, with or without its shortcut."""
    app = create_app(settings_for({"ae_mnist": exports["ae_mnist"]}, max_request_bytes=LIMIT))
    assert isinstance(app, ServeApp)

    async def either(scope: Any, receive: Any, send: Any) -> None:
        routed = scope["type"] == "http" and any(name == ROUTED.encode() for name, _ in scope["headers"])
        await (FastAPI.__call__(app, scope, receive, send) if routed else app(scope, receive, send))

    with torch_threads(1), TestClient(either, raise_server_exceptions=False) as http:
        yield http


@pytest.mark.parametrize("number", range(len(REQUESTS)))
def test_shortcut_answers_as_the_fastapi_route(client: TestClient, number: int) -> None:
    path, body, headers = REQUESTS[number]
    fast = client.post(path, content=body, headers=headers)
    routed = client.post(path, content=body, headers={**headers, ROUTED: "1"})
    assert fast.status_code == routed.status_code, (fast.text, routed.text)
    assert fast.content == routed.content
    for name in ("content-type", "content-length", HEADER_LENGTH):
        assert fast.headers.get(name) == routed.headers.get(name), name


def test_shortcut_keeps_the_api_key(exports: dict[str, Path]) -> None:
    app = create_app(settings_for({"ae_mnist": exports["ae_mnist"]}, api_key="k"))
    with torch_threads(1), TestClient(app, raise_server_exceptions=False) as http:
        assert http.post(AE, content=_json([1, 1, 28, 28])).status_code == 401
        assert http.post(AE, content=_json([1, 1, 28, 28]), headers={"authorization": "Bearer k"}).status_code == 200


def _full_check_passes(graph: Any, inputs: list[np.ndarray]) -> bool:
    quick, graph.plainly_valid = graph.plainly_valid, lambda inputs: False
    try:
        graph.check(inputs)
        return True
    except BadRequest:
        return False
    finally:
        del graph.plainly_valid
        assert graph.plainly_valid == quick


def test_quick_check_accepts_only_what_the_full_check_accepts(exports: dict[str, Path]) -> None:
    app = create_app(settings_for({"ae_mnist": exports["ae_mnist"]}))
    graph = app.state.server.graphs["ae_mnist.autoencoder"]
    rng = np.random.default_rng(1)
    good = rng.random((4, 1, 28, 28), dtype=np.float32)
    cases = {"good": [good], "edge of range": [np.full((1, 1, 28, 28), 1.0005, np.float32)],
             "over range": [np.full((1, 1, 28, 28), 1.01, np.float32)], "below": [good - 0.5],
             "nan": [np.where(good > 0.99, np.nan, good).astype(np.float32)],
             "inf": [np.where(good > 0.99, np.inf, good).astype(np.float32)],
             "float64": [good.astype(np.float64)], "big-endian": [good.astype(">f4")],
             "int": [np.ones((1, 1, 28, 28), np.int64)], "empty": [good[:0]], "bad shape": [good[:, :, :27]],
             "rank": [good[0]], "two inputs": [good, good], "none": []}
    verdicts = {name: (graph.plainly_valid(x), _full_check_passes(graph, x)) for name, x in cases.items()}
    assert all(full for quick, full in verdicts.values() if quick), verdicts
    assert verdicts["good"] == verdicts["edge of range"] == (True, True), verdicts
    assert not any(quick for name, (quick, _) in verdicts.items() if name not in ("good", "edge of range")), verdicts
