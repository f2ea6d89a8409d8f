"""Bad requests get a 4xx with a JSON error, and the server goes on serving."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from zoo_serve.app import create_app
from zoo_serve.tensors import HEADER_LENGTH
from zoo_serve_live import settings_for

from zoo_core.testing import torch_threads

AE = "/v2/models/ae_mnist.autoencoder/infer"


def tensor(shape: list[int], datatype: str = "FP32", name: str = "image", data: object = None) -> dict[str, object]:
    count = int(np.prod(shape))
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype,
                        "data": data if data is not None else [0.5] * count}]}


def assert_error(response: object, status: int, *words: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    message = response.json()["error"]  # type: ignore[attr-defined]
    for word in words:
        assert word in message, message


@pytest.fixture(autouse=True)
def still_serving(client: TestClient) -> object:
    """After every bad request the server still answers a good one."""
    yield
    good = client.post(AE, json=tensor([1, 1, 28, 28]))
    assert good.status_code == 200, good.text


@pytest.mark.parametrize("path", ["/v2/models/nope.graph", "/v2/models/ae_mnist.nope", "/v2/models/ae_mnist",
                                  "/v2/models/ae_mnist.autoencoder/versions/2"])
def test_unknown_model_graph_or_version_is_404(client: TestClient, path: str) -> None:
    assert_error(client.get(path), 404, "ae_mnist" if "nope.graph" not in path else "unknown model")


def test_unknown_model_inference_is_404(client: TestClient) -> None:
    assert_error(client.post("/v2/models/nope/infer", json=tensor([1, 1, 28, 28])), 404, "MODEL.GRAPH")
    assert_error(client.post("/tasks/ae_mnist/nope", data={}), 404)
    assert_error(client.get("/no/such/page"), 404)


@pytest.mark.parametrize(("request_body", "words"), [
    (tensor([1, 1, 27, 28]), ("shape", "[N,1,28,28]")),
    (tensor([1, 784]), ("4 dimensions",)),
    (tensor([1, 1, 28, 28], datatype="FP64"), ("FP32",)),
    (tensor([1, 1, 28, 28], datatype="INT64"), ("FP32",)),
    (tensor([1, 1, 28, 28], data=[0.5] * 10), ("784",)),
    (tensor([1, 1, 28, 28], data=["x"] * 784), ("numbers",)),
    (tensor([1, 1, 28, 28], data=[2.0] * 784), ("[0,1]",)),
    (tensor([1, 1, 28, 28], data=[float("nan")] * 784), ("NaN",)),
    (tensor([0, 1, 28, 28], data=[]), ("at least 1",)),
    (tensor([1, 1, 28, 28], name="pixels"), ("unknown input", "image")),
    (tensor([1, 1, 28, 28], data={"a": 1}), ("array",)),
    ({"inputs": []}, ("inputs",)),
    ({"inputs": [{"shape": [1]}]}, ("name",)),
    ({"inputs": [{"name": "image", "shape": [1, -1, 28, 28], "datatype": "FP32", "data": []}]}, ("non-negative",)),
    ([1, 2, 3], ("JSON object",)),
])
def test_bad_tensors_are_400(client: TestClient, request_body: object, words: tuple[str, ...]) -> None:
    content = json.dumps(request_body, allow_nan=True)
    assert_error(client.post(AE, content=content, headers={"content-type": "application/json"}), 400, *words)


def test_malformed_json_is_400(client: TestClient) -> None:
    assert_error(client.post(AE, content=b"{not json", headers={"content-type": "application/json"}), 400, "JSON")
    assert_error(client.post(AE, content=b"\xff\xfe", headers={"content-type": "application/json"}), 400, "JSON")


def test_bad_binary_requests_are_400(client: TestClient) -> None:
    x = np.zeros((1, 1, 28, 28), np.float32)
    header = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}]}).encode()
    short = header + x.tobytes()[:-4]
    assert_error(client.post(AE, content=short, headers={HEADER_LENGTH: str(len(header))}), 400, "ends before")
    longer = header + x.tobytes() + b"\0" * 8
    assert_error(client.post(AE, content=longer, headers={HEADER_LENGTH: str(len(header))}), 400, "no input claims")
    assert_error(client.post(AE, content=header, headers={HEADER_LENGTH: "99999"}), 400, HEADER_LENGTH)
    assert_error(client.post(AE, content=header, headers={HEADER_LENGTH: "x"}), 400, "integer")
    wrong = header.replace(str(x.nbytes).encode(), b"12")
    assert_error(client.post(AE, content=wrong + b"\0" * 12, headers={HEADER_LENGTH: str(len(wrong))}), 400,
                 "binary_data_size")


def test_compressed_bodies_are_refused(client: TestClient) -> None:
    body = zlib.compress(json.dumps(tensor([1, 1, 28, 28])).encode())
    assert_error(client.post(AE, content=body, headers={"content-encoding": "deflate"}), 415, "uncompressed")


def test_unknown_requested_output_is_400(client: TestClient) -> None:
    request = {**tensor([1, 1, 28, 28]), "outputs": [{"name": "nope"}]}
    assert_error(client.post(AE, json=request), 400, "reconstruction")


def test_a_body_over_the_limit_is_413(exports: dict[str, Path]) -> None:
    app = create_app(settings_for(exports, max_request_bytes=64 * 1024))
    with torch_threads(1), TestClient(app, raise_server_exceptions=False) as small:
        big = tensor([40, 1, 28, 28])  # about 130 kB of JSON
        assert_error(small.post(AE, json=big), 413, "larger than")
        upload = {"images": ("big.png", b"\0" * 100_000)}
        assert_error(small.post("/tasks/cyclegan_hair/translate", files=upload), 413)
        assert small.post(AE, json=tensor([1, 1, 28, 28])).status_code == 200


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge canvas: the decompression-bomb shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\0" + b"\0" * 3 * 16
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("payload", "status", "word"), [
    (b"GIF89a not really", 400, "not a readable image"),
    (b"%PDF-1.4 hello", 400, "not a readable image"),
    (_png_header_only(5000, 5000), 413, "pixels"),
    (_png_header_only(100000, 100000), 413, "bomb"),
    (b"", 400, "empty"),
])
def test_bad_uploads(client: TestClient, payload: bytes, status: int, word: str) -> None:
    response = client.post("/tasks/cyclegan_hair/translate", files={"images": ("x.png", payload)})
    assert_error(response, status, word)


def test_truncated_image_is_400(client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    response = client.post("/tasks/cyclegan_hair/translate", files={"images": ("x.png", buffer.getvalue()[:300])})
    assert_error(response, 400, "not a readable image")


def test_invalid_arithmetic_gives_the_parsers_positioned_message(client: TestClient) -> None:
    response = client.post("/tasks/vae_faces/arithmetic", data={"expression": "glasses & & male"})
    assert_error(response, 400, "position 11")
    unknown = client.post("/tasks/vae_faces/arithmetic", data={"expression": "glasses - wings"})
    assert_error(unknown, 400, "wings")


@pytest.mark.parametrize("value", ["/etc/passwd", "../../secret.png", "[/etc/hosts]", "a\\b", "conftest.py"])
def test_no_text_parameter_reaches_a_path(client: TestClient, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).parent)  # so that "conftest.py" names a real file
    for task, field in (("vae_faces/interpolate", "a"), ("vae_faces/arithmetic", "expression")):
        data = {"a": "0", "b": "1"} if field == "a" else {}
        data[field] = value
        response = client.post(f"/tasks/{task}", data=data)
        assert response.status_code == 400, response.text


def test_path_parameters_take_uploads_only(client: TestClient) -> None:
    assert_error(client.post("/tasks/ae_mnist/decode", data={"z_file": "codes.npy"}), 400, "upload a file")
    assert_error(client.post("/tasks/cyclegan_hair/translate", data={"images": "x.png"}), 400, "upload a file")


@pytest.mark.parametrize(("task", "data", "word"), [
    ("vae_faces/sample", {"n": "100000"}, "at most 64"),
    ("vae_faces/sample", {"n": "0"}, "n"),
    ("vae_faces/sample", {"n": "lots"}, "n"),
    ("vae_faces/sample", {"seed": "-1"}, "seed"),
    ("vae_faces/sample", {"colour": "red"}, "unknown field"),
    ("vae_faces/interpolate", {"a": "0"}, "needs 'b'"),
    ("vae_faces/interpolate", {"a": "0", "b": "999999"}, "outside the data set"),
    ("cyclegan_hair/translate", {}, "needs 'images'"),
])
def test_bad_task_parameters_are_400(client: TestClient, task: str, data: dict[str, str], word: str) -> None:
    assert_error(client.post(f"/tasks/{task}", data=data), 400, word)


def test_bad_choice_is_400(client: TestClient) -> None:
    upload = {"images": ("me.png", small_png())}
    assert_error(client.post("/tasks/cyclegan_hair/translate", data={"direction": "up"}, files=upload), 400,
                 "direction")


def small_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_server_bug_is_a_json_500_and_the_server_goes_on(exports: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(settings_for(exports))
    graph = app.state.server.graphs["ae_mnist.autoencoder"]
    monkeypatch.setattr(graph.batcher, "run_batch", lambda inputs: 1 / 0)
    with torch_threads(1), TestClient(app, raise_server_exceptions=False) as http:
        assert_error(http.post(AE, json=tensor([1, 1, 28, 28])), 500, "ZeroDivisionError")
        assert http.get("/v2/health/live").status_code == 200


def test_api_key_guards_inference_and_tasks_only(exports: dict[str, Path]) -> None:
    app = create_app(settings_for(exports, api_key="s3cret"))
    with torch_threads(1), TestClient(app, raise_server_exceptions=False) as guarded:
        assert_error(guarded.post(AE, json=tensor([1, 1, 28, 28])), 401, "Bearer")
        wrong = {"Authorization": "Bearer nope"}
        assert_error(guarded.post(AE, json=tensor([1, 1, 28, 28]), headers=wrong), 401)
        assert_error(guarded.post("/tasks/vae_faces/sample", data={"n": "1"}), 401)
        right = {"Authorization": "Bearer s3cret"}
        assert guarded.post(AE, json=tensor([1, 1, 28, 28]), headers=right).status_code == 200
        assert guarded.post("/tasks/vae_faces/sample", data={"n": "1"}, headers=right).status_code == 200
        assert guarded.get("/v2/health/ready").status_code == 200
        assert guarded.get("/v2/models/ae_mnist.autoencoder").status_code == 200
        assert guarded.get("/api/models").json()["api_key"] is True
