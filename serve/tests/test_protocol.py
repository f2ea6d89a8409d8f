"""KServe v2 routes in-process: health, metadata, JSON and binary inference, requested outputs, batching."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from zoo_export.runtime import open_export
from zoo_export.sessions import SessionSettings
from zoo_serve.app import create_app
from zoo_serve.models import ServeSettings
from zoo_serve.tensors import HEADER_LENGTH
from zoo_serve_live import settings_for

from zoo_core.testing import torch_threads

AE = "ae_mnist.autoencoder"


def digits(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 1, 28, 28), dtype=np.float32)


def json_request(x: np.ndarray, name: str = "image", **extra: object) -> dict[str, object]:
    return {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}],
            **extra}


def reference(exports: dict[str, Path], model: str, graph: str, *inputs: np.ndarray) -> list[np.ndarray]:
    """The graph run by onnxruntime directly, as `zoo generate --runtime onnxruntime` runs it."""
    import torch

    runner = open_export(exports[model], model, SessionSettings(intra_op_threads=1))
    return [o.numpy() for o in runner.run(graph, *(torch.from_numpy(x) for x in inputs))]


def test_health_and_server_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get("/v2").json()
    assert meta["name"] == "zoo" and "binary_tensor_data" in meta["extensions"]


def test_one_v2_model_per_graph_with_manifest_shapes(client: TestClient) -> None:
    meta = client.get(f"/v2/models/{AE}").json()
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert meta["outputs"] == [{"name": "reconstruction", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert meta["versions"] == ["1"] and meta["platform"] == "onnxruntime_onnx"
    encoder = client.get("/v2/models/vae_faces.encoder").json()
    assert [o["name"] for o in encoder["outputs"]] == ["mu", "logvar"]
    assert encoder["inputs"][0]["shape"] == [-1, 3, 32, 32]
    assert client.get(f"/v2/models/{AE}/versions/1").json() == meta
    assert client.get(f"/v2/models/{AE}/ready").json() == {"name": AE, "ready": True}
    assert client.get(f"/v2/models/{AE}/versions/1/ready").json() == {"name": AE, "ready": True}
    names = {g["name"] for m in client.get("/api/models").json()["models"] for g in m["graphs"]}
    assert names == {"ae_mnist.encoder", "ae_mnist.decoder", AE, "vae_faces.encoder", "vae_faces.decoder",
                     "cyclegan_hair.black_to_blond", "cyclegan_hair.blond_to_black"}


def test_json_inference_matches_onnxruntime(client: TestClient, exports: dict[str, Path]) -> None:
    x = digits(3)
    response = client.post(f"/v2/models/{AE}/infer", json=json_request(x, id="r1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == AE and body["id"] == "r1"
    (output,) = body["outputs"]
    assert output["name"] == "reconstruction" and output["shape"] == [3, 1, 28, 28] and output["datatype"] == "FP32"
    (expected,) = reference(exports, "ae_mnist", "autoencoder", x)
    np.testing.assert_allclose(np.asarray(output["data"], np.float32).reshape(3, 1, 28, 28), expected, atol=1e-5)


def test_nested_json_data_is_accepted(client: TestClient) -> None:
    x = digits(1)
    request = {"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": x.tolist()}]}
    assert client.post(f"/v2/models/{AE}/infer", json=request).status_code == 200


def test_binary_tensor_extension_both_ways(client: TestClient, exports: dict[str, Path]) -> None:
    z = np.random.default_rng(1).standard_normal((2, 20)).astype(np.float32)
    header = json.dumps({"inputs": [{"name": "z", "shape": [2, 20], "datatype": "FP32",
                                     "parameters": {"binary_data_size": z.nbytes}}],
                         "parameters": {"binary_data_output": True}}).encode()
    response = client.post("/v2/models/ae_mnist.decoder/infer", content=header + z.tobytes(),
                           headers={HEADER_LENGTH: str(len(header)), "content-type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    split = int(response.headers[HEADER_LENGTH])
    meta = json.loads(response.content[:split])
    (output,) = meta["outputs"]
    size = output["parameters"]["binary_data_size"]
    image = np.frombuffer(response.content[split:split + size], dtype="<f4").reshape(output["shape"])
    (expected,) = reference(exports, "ae_mnist", "decoder", z)
    np.testing.assert_allclose(image, expected, atol=1e-5)


def test_requested_outputs_only(client: TestClient) -> None:
    x = np.random.default_rng(2).random((1, 3, 32, 32), dtype=np.float32)
    request = json_request(x, outputs=[{"name": "mu"}])
    outputs = client.post("/v2/models/vae_faces.encoder/versions/1/infer", json=request).json()["outputs"]
    assert [o["name"] for o in outputs] == ["mu"]


def test_concurrent_requests_are_batched_and_split_back(exports: dict[str, Path]) -> None:
    """Requests arriving together run as fewer, larger batches, and each gets its own rows back."""
    app = create_app(settings_for(exports, max_batch=8, max_delay_ms=50.0))
    inputs = [digits(1, seed) for seed in range(16)]

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(*(http.post(f"/v2/models/{AE}/infer", json=json_request(x)) for x in inputs))

    with torch_threads(1):
        responses = asyncio.run(burst())
    expected = reference(exports, "ae_mnist", "autoencoder", np.concatenate(inputs))[0]
    for index, response in enumerate(responses):
        data = np.asarray(response.json()["outputs"][0]["data"], np.float32).reshape(1, 1, 28, 28)
        np.testing.assert_allclose(data, expected[index:index + 1], atol=1e-5)
    stats = app.state.server.graphs[AE].batcher.stats
    assert stats.items == 16 and stats.largest > 1 and stats.largest <= 8 and stats.batches < 16
    with TestClient(app) as http:
        (counts,) = http.get(f"/v2/models/{AE}/stats").json()["model_stats"]
    assert counts["inference_count"] == 16 and counts["execution_count"] == stats.batches


def test_torch_runtime_serves_the_newest_run(exports: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """--runtime torch: the same routes on the newest run under runs/MODEL, with the same numbers."""
    monkeypatch.chdir(exports["ae_mnist"].parents[1])  # the folder holding runs/ and exports/
    x = digits(2)
    with torch_threads(1), TestClient(create_app(ServeSettings(models=("ae_mnist",), runtime="torch"))) as http:
        assert http.get(f"/v2/models/{AE}").json()["platform"] == "zoo_torch"
        response = http.post(f"/v2/models/{AE}/infer", json=json_request(x))
        assert response.status_code == 200, response.text
        assert http.post("/tasks/ae_mnist/reconstruct", data={"n": "2"}).status_code == 200
    (expected,) = reference(exports, "ae_mnist", "autoencoder", x)
    data = np.asarray(response.json()["outputs"][0]["data"], np.float32).reshape(expected.shape)
    np.testing.assert_allclose(data, expected, atol=1e-4)


def test_worker_processes_rebuild_the_same_app(exports: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """--workers N: each uvicorn worker builds the app from ZOO_SERVE_SETTINGS."""
    from zoo_serve.app import app_from_environment
    from zoo_serve.models import SETTINGS_ENV

    settings = settings_for(exports, max_batch=4, api_key="k")
    monkeypatch.setenv(SETTINGS_ENV, settings.to_json())
    app = app_from_environment()
    assert app.state.server.settings == settings
    with torch_threads(1), TestClient(app) as http:
        assert http.get(f"/v2/models/{AE}").status_code == 200
        assert http.post(f"/v2/models/{AE}/infer", json=json_request(digits(1))).status_code == 401


def test_gallery_page_and_openapi(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "gallery.js" in page.text and "http" not in page.text.split("<body>")[0]
    for name in ("gallery.js", "gallery.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v2/models/{model}/infer" in paths
    for task in ("ae_mnist/reconstruct", "ae_mnist/decode", "vae_faces/sample", "vae_faces/reconstruct",
                 "vae_faces/interpolate", "vae_faces/arithmetic", "cyclegan_hair/translate", "cyclegan_hair/roundtrip"):
        schema = paths[f"/tasks/{task}"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert "seed" in schema["properties"]
    assert paths["/tasks/cyclegan_hair/translate"]["post"]["requestBody"]["content"]["multipart/form-data"][
        "schema"]["properties"]["images"]["items"]["format"] == "binary"


@pytest.mark.parametrize("path", ["/static/../models.py", "/static/%2e%2e/models.py"])
def test_static_files_stay_in_their_folder(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404
