"""Every task of every served model over HTTP: PNG (or JSON) out, uploads in, same pictures as `zoo generate`."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from zoo_core.testing import invoke

SERVED_TASKS = ["ae_mnist/reconstruct", "ae_mnist/decode", "vae_faces/sample", "vae_faces/reconstruct",
                "vae_faces/interpolate", "vae_faces/arithmetic", "cyclegan_hair/translate", "cyclegan_hair/roundtrip"]


def png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def assert_picture(array: np.ndarray) -> None:
    """Not blank: the pixels vary."""
    assert array.size and float(array.std()) > 1.0, "the image is blank"


def portrait_png(size: int = 48, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def form_for(task: str) -> tuple[dict[str, str], list[tuple[str, tuple[str, bytes]]] | None]:
    """A small request for each task (the defaults otherwise)."""
    if task == "vae_faces/interpolate":
        return {"a": "0", "b": "3", "steps": "4"}, None
    if task == "vae_faces/arithmetic":
        return {"expression": "glasses&male - glasses&~male + ~glasses&~male"}, None
    if task == "cyclegan_hair/translate":
        return {}, [("images", ("me.png", portrait_png()))]
    if task == "cyclegan_hair/roundtrip":
        return {"n": "2"}, None
    return {"n": "4", "seed": "3"}, None


def test_every_task_of_every_model_has_a_route(client: TestClient) -> None:
    paths = {t["path"] for m in client.get("/api/models").json()["models"] for t in m["tasks"]}
    assert paths == {f"/tasks/{task}" for task in SERVED_TASKS}


@pytest.mark.parametrize("task", SERVED_TASKS)
def test_task_returns_a_png(client: TestClient, task: str) -> None:
    data, files = form_for(task)
    response = client.post(f"/tasks/{task}", data=data, files=files)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert_picture(png(response.content))


def test_json_format_returns_every_image_the_task_wrote(client: TestClient) -> None:
    files = [("images", ("a.png", portrait_png(seed=1))), ("images", ("b.png", portrait_png(seed=2)))]
    response = client.post("/tasks/cyclegan_hair/translate?format=json", data={"direction": "blond2black"},
                           files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["images"]) == {"images_0_black.png", "images_1_black.png", "translate_grid.png"}
    assert body["main"] == "translate_grid.png"
    single = png(base64.b64decode(body["images"]["images_0_black.png"].split(",", 1)[1]))
    assert single.shape == (48, 48, 3)  # the upload's own size: the export's spatial axes are dynamic


def test_same_picture_as_zoo_generate(client: TestClient, exports: dict[str, Path], tmp_path: Path) -> None:
    """The HTTP task and `zoo generate --runtime onnxruntime` agree on the same seed and parameters."""
    response = client.post("/tasks/vae_faces/sample", data={"n": "6", "columns": "3", "seed": "7"})
    out = tmp_path / "samples.png"
    result = invoke("generate", "vae_faces", "sample", "--n", "6", "--columns", "3", "--seed", "7",
                    "--runtime", "onnxruntime", "--export", exports["vae_faces"], "--device", "cpu", "--out", out)
    assert result.exit_code == 0, result.output
    served, generated = png(response.content).astype(int), png(out.read_bytes()).astype(int)
    assert served.shape == generated.shape and np.abs(served - generated).max() <= 2


def test_interpolate_takes_uploaded_faces(client: TestClient) -> None:
    response = client.post("/tasks/vae_faces/interpolate", data={"b": "1", "steps": "3"},
                           files={"a": ("face.png", portrait_png(seed=4))})
    assert response.status_code == 200, response.text
    # A, three decodes, B: five 32-pixel tiles, enlarged 4x, with padding
    assert png(response.content).shape[1] == (2 + 5 * 34) * 4


def test_a_photo_of_several_megabytes_is_taken(client: TestClient) -> None:
    """Uploads are limited by --max-request-mb (16 MB), not by the form parser's 1 MB default per part."""
    pixels = np.random.default_rng(5).integers(0, 255, (1200, 1200, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    assert len(buffer.getvalue()) > 2 * 1024 * 1024
    response = client.post("/tasks/cyclegan_hair/translate", files={"images": ("big.png", buffer.getvalue())})
    assert response.status_code == 200, response.text


def test_decode_takes_an_uploaded_npy(client: TestClient) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).standard_normal((5, 20)).astype(np.float32))
    response = client.post("/tasks/ae_mnist/decode", files={"z_file": ("codes.npy", buffer.getvalue())})
    assert response.status_code == 200, response.text
    assert_picture(png(response.content))


def test_seed_changes_the_samples(client: TestClient) -> None:
    first = client.post("/tasks/vae_faces/sample", data={"n": "4", "seed": "1"}).content
    again = client.post("/tasks/vae_faces/sample", data={"n": "4", "seed": "1"}).content
    other = client.post("/tasks/vae_faces/sample", data={"n": "4", "seed": "2"}).content
    assert first == again and first != other


def test_task_routes_write_no_file(client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Uploads are decoded and results encoded in memory: every way zoo or Python writes a file fails here."""
    import builtins
    import tempfile

    from zoo_core import io as zio

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a task route wrote a file: {args[:1]}")

    real_open = builtins.open

    def read_only_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if any(flag in mode for flag in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    for name in ("write_bytes", "write_json", "atomic_path"):
        if hasattr(zio, name):
            monkeypatch.setattr(zio, name, refuse)
    for name in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryDirectory"):
        monkeypatch.setattr(tempfile, name, refuse)
    monkeypatch.setattr(Path, "write_bytes", refuse)
    monkeypatch.setattr(Path, "mkdir", refuse)
    monkeypatch.setattr(builtins, "open", read_only_open)
    for task in SERVED_TASKS:
        data, files = form_for(task)
        response = client.post(f"/tasks/{task}?format=json", data=data, files=files)
        assert response.status_code == 200, (task, response.text)
