"""Security basics of `zoo serve` (issue 22): the API key, TLS with a certificate made here, CORS off unless
asked, the gallery's Content Security Policy, request ids in the access log, no stack trace in a body."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from zoo_serve.app import create_app
from zoo_serve_live import LOOPBACK, LiveServer, settings_for, start_server

from zoo_core.testing import torch_threads

KEY = "s3cret-token"


@pytest.fixture(scope="module")
def guarded(exports: dict[str, Path]) -> Iterator[TestClient]:
    settings = settings_for({"ae_mnist": exports["ae_mnist"]}, api_key=KEY)
    with torch_threads(1), TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_api_key_is_required_and_compared_in_constant_time(guarded: TestClient, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    import hmac

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    path = "/v2/models/ae_mnist.autoencoder/infer"
    assert guarded.post(path, content=b"{}").status_code == 401
    assert guarded.post(path, content=b"{}", headers={"authorization": "Bearer s3cret-tokeN"}).status_code == 401
    assert guarded.post(path, content=b"{}", headers={"authorization": f"Bearer {KEY}"}).status_code == 400  # past it
    assert guarded.post("/tasks/ae_mnist/reconstruct", data={"n": "1"}).status_code == 401
    assert compared and all(b == KEY.encode() for _, b in compared)
    assert guarded.get("/v2/health/ready").status_code == 200  # health stays open to probes


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zoo-serve-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_tls_with_a_self_signed_certificate(exports: dict[str, Path], tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    server = start_server({"ae_mnist": exports["ae_mnist"]}, tmp_path, "--ssl-certfile", str(cert),
                          "--ssl-keyfile", str(key), scheme="https", verify=trust)
    try:
        with httpx.Client(base_url=server.url, verify=trust, timeout=30) as client:
            assert client.get("/v2/health/ready").json() == {"ready": True}
            assert client.get("/v2/models/ae_mnist.autoencoder").status_code == 200
        with pytest.raises(httpx.ConnectError):  # the certificate is what protects it: an unknown one is refused
            httpx.get(f"{server.url}/v2/health/ready", timeout=10)
        with pytest.raises(httpx.TransportError):  # and plain HTTP is not served on the port
            httpx.get(f"http://{LOOPBACK}:{server.port}/v2/health/ready", timeout=10)
    finally:
        assert server.stop() == 0, server.log.read_text()
    assert "https://127.0.0.1" in server.log.read_text()


def test_cors_is_off_unless_an_origin_is_given(client: TestClient, exports: dict[str, Path]) -> None:
    origin = {"origin": "https://app.example"}
    plain = client.get("/v2/health/ready", headers=origin)
    assert "access-control-allow-origin" not in plain.headers
    preflight = {**origin, "access-control-request-method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v2/models/ae_mnist.autoencoder/infer",
                                                                headers=preflight).headers
    settings = settings_for({"ae_mnist": exports["ae_mnist"]}, cors_origins=("https://app.example",))
    with torch_threads(1), TestClient(create_app(settings), raise_server_exceptions=False) as allowed:
        answer = allowed.options("/v2/models/ae_mnist.autoencoder/infer", headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "https://app.example"
        infer = allowed.post("/v2/models/ae_mnist.autoencoder/infer", content=b"{}", headers=origin)
        assert infer.headers["access-control-allow-origin"] == "https://app.example"  # the raw path too
        other = allowed.get("/v2/health/ready", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_the_gallery_allows_only_its_own_files(client: TestClient) -> None:
    for path in ("/", "/static/gallery.js", "/static/gallery.css"):
        policy = client.get(path).headers["content-security-policy"]
        assert "default-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy and "http" not in policy
    page = client.get("/").text
    assert "<script>" not in page and "style=" not in page  # nothing inline that the policy would block


def test_request_ids_are_echoed_made_and_logged(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        echoed = http.get("/v2/health/live", headers={"x-request-id": "trace-42.a"})
        made = http.post("/v2/models/ae_mnist.autoencoder/infer", content=b"{oops")
        hostile = http.get("/v2/health/live", headers={"x-request-id": "bad id\tinjected"})
    assert echoed.headers["x-request-id"] == "trace-42.a"
    assert made.status_code == 400 and len(made.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "bad id\tinjected"
    log = live.log.read_text()
    assert '"GET /v2/health/live HTTP/1.1" 200' in log and "id=trace-42.a" in log
    assert f"id={made.headers['x-request-id']}" in log and "injected" not in log


def test_no_stack_trace_in_any_response_body(exports: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for({"ae_mnist": exports["ae_mnist"]})
    with torch_threads(1), TestClient(create_app(settings), raise_server_exceptions=False) as broken:
        graph = broken.app.state.server.graphs["ae_mnist.autoencoder"]

        def fail(inputs: object) -> object:
            raise KeyError("a bug deep inside")

        monkeypatch.setattr(graph.batcher, "run_batch", fail)
        import numpy as np

        body = {"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32",
                            "data": np.zeros(784).tolist()}]}
        answer = broken.post("/v2/models/ae_mnist.autoencoder/infer", json=body)
        assert answer.status_code == 500
        assert answer.json() == {"error": "internal error (KeyError); the server log has the details"}
        for text in ("Traceback", "File \"", "a bug deep inside", ".py"):
            assert text not in answer.text
