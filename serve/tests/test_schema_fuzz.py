"""The API fuzzed from its own OpenAPI document (issue 22, defect 9): Schemathesis with every check on a real
`zoo serve` (the raw-ASGI v2 infer path included), a fixed seed and a bounded number of cases; and the
document's claims checked directly."""

from __future__ import annotations

import httpx
from zoo_serve.testing import run_schemathesis
from zoo_serve_live import LiveServer

EXAMPLES = 8  # per operation and phase: about 700 cases, well under a minute here; `make fuzz` runs 300


def test_schemathesis_finds_no_server_error_schema_violation_or_hang(live: LiveServer) -> None:
    outcome = run_schemathesis(live.url, EXAMPLES, seed=7, request_timeout_s=20)
    assert outcome["exit_code"] == 0, outcome["output"]
    assert outcome["generated"] >= 300 and outcome["passed"] == outcome["generated"], outcome["output"]
    assert outcome["failures"] == outcome["errors"] == 0
    assert "Exception in ASGI application" not in live.log.read_text()


def test_the_document_states_the_real_answers(live: LiveServer) -> None:
    document = httpx.get(f"{live.url}/openapi.json").json()
    infer = document["paths"]["/v2/models/{model}/infer"]["post"]
    assert {"200", "400", "404", "413", "503"} <= set(infer["responses"]) and "422" not in infer["responses"]
    assert set(infer["requestBody"]["content"]) == {"application/json", "application/octet-stream"}
    assert set(infer["responses"]["200"]["content"]) == {"application/json", "application/octet-stream"}
    assert "ae_mnist.autoencoder" in infer["parameters"][0]["schema"]["enum"]
    task = document["paths"]["/tasks/vae_faces/interpolate"]["post"]
    form = task["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["additionalProperties"] is False and task["requestBody"]["required"] is True
    assert form["properties"]["a"]["minLength"] == 1
    assert set(task["responses"]["200"]["content"]) == {"image/png", "application/json"}
    assert all("422" not in op["responses"] for path in document["paths"].values() for op in path.values())


def test_405_names_the_allowed_methods_and_bad_format_is_400(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        wrong = client.request("TRACE", "/v2/models/ae_mnist.autoencoder/infer")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST", wrong.headers
        assert client.put("/v2/health/ready").headers["allow"] in ("GET", "GET, HEAD", "HEAD, GET")
        bad = client.post("/tasks/ae_mnist/reconstruct?format=gif", data={"n": "2"})
        assert bad.status_code == 400 and "png or json" in bad.json()["error"]
        unknown = client.post("/tasks/ae_mnist/reconstruct", data={"n": "2", "colour": "red"})
        assert unknown.status_code == 400 and "unknown field" in unknown.json()["error"]


def test_fuzz_finding_unicode_digits_are_400_not_500(live: LiveServer) -> None:
    """Schemathesis (seed 7) found `a=³` on interpolate a 500: "³".isdigit() holds but int("³") fails."""
    with httpx.Client(base_url=live.url, timeout=60) as client:
        for path, form in [("/tasks/vae_faces/interpolate", {"a": "³", "b": "0", "steps": "2"}),
                           ("/tasks/ae_mnist/reconstruct", {"n": "²"}),
                           ("/tasks/ae_mnist/reconstruct", {"n": "2", "seed": "¹"})]:
            answer = client.post(path, data=form)
            assert answer.status_code == 400, (form, answer.text)
