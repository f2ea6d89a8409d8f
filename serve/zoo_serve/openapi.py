"""The OpenAPI document as the server really behaves, so that a fuzzer driven by it tests the truth.

FastAPI's generated document declares 200 and a 422 that this server never sends; this module rewrites it:
every refusal is ``{"error": message}`` with the status the routes really answer (400, 401 with an API key,
404 for an unknown graph or version, 413 over the body cap, 503 at the connection limit), v2 inference
takes JSON or the binary tensor extension (``application/octet-stream`` after a JSON header of
``Inference-Header-Content-Length`` bytes) and answers the same way, graph names are the served ones,
task forms take only their own fields and answer PNG or JSON, and every response carries X-Request-ID.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}},
                "description": "every refusal: one line saying what is wrong and how to fix it"}
REASONS = {400: "bad parameters or tensors", 401: "the API key is missing or wrong", 404: "no such graph or version",
           413: "the request body is larger than --max-request-mb (the connection is then closed)",
           503: "the server holds its connection limit (--max-connections); retry"}
REQUEST_ID = {"X-Request-ID": {"description": "the client's X-Request-ID if it is 1-128 of [A-Za-z0-9._:-], "
                               "else one the server made; also in the access log", "schema": {"type": "string"}}}
TENSOR = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
    "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    "datatype": {"type": "string", "enum": ["BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
                                            "FP64"]},
    "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}},
    "data": {"type": "array", "description": "row-major values (nested arrays allowed); absent when the values "
                                             "follow the JSON header as binary (binary_data_size bytes)"}}}
INFER_REQUEST = {"type": "object", "required": ["inputs"], "properties": {
    "id": {"type": "string"}, "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/InferTensor"}},
    "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "parameters": {"type": "object", "properties": {
            "binary_data": {"type": "boolean"}}}}}},
    "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}}},
    "description": "KServe v2 inference request. Shapes, datatypes and value ranges must match the graph's "
                   "metadata (GET /v2/models/MODEL.GRAPH) and the data length must match the shape; a request "
                   "that does not gets 400 (JSON Schema cannot state those agreements)."}
INFER_RESPONSE = {"type": "object", "required": ["model_name", "model_version", "outputs"], "properties": {
    "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
    "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/InferTensor"}}}}
HEADER_LENGTH_PARAM = {"name": "Inference-Header-Content-Length", "in": "header", "required": False,
                       "schema": {"type": "integer", "minimum": 0},
                       "description": "binary tensor extension: the length of the JSON header that starts the "
                                      "body; the tensors' raw little-endian bytes follow it"}
TASK_ANSWER = {"type": "object", "required": ["main", "images"], "properties": {
    "main": {"type": "string", "description": "the name of the image a PNG answer would carry"},
    "images": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^data:image/png;base64,"}}}}
TEXT_PATTERN = r"^[^/\\\[\]\x00]*$"  # tasks.FORBIDDEN_TEXT: no file names over HTTP


def _errors(statuses: Iterable[int]) -> dict[str, Any]:
    return {str(s): {"description": REASONS[s], "headers": REQUEST_ID,
                     "content": {"application/json": {"schema": ERROR}}} for s in statuses}


def _task_form(schema: dict[str, Any]) -> dict[str, Any]:
    """A task form's schema: its own fields only; required text cannot be empty or name a file."""
    schema = copy.deepcopy(schema)
    schema["additionalProperties"] = False
    for name, field in schema.get("properties", {}).items():
        if field.get("type") == "string" and field.get("format") != "binary" and "enum" not in field:
            field.setdefault("maxLength", 500)
            field.setdefault("pattern", TEXT_PATTERN)
            if name in schema.get("required", []):
                field["minLength"] = 1
    return schema


def truthful_openapi(document: dict[str, Any], graphs: list[str], api_key: bool) -> dict[str, Any]:
    """Rewrite FastAPI's ``document`` (see the module's docstring); ``graphs``: the served v2 names."""
    document = copy.deepcopy(document)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(Error=ERROR_SCHEMA, InferTensor=TENSOR, InferRequest=INFER_REQUEST, InferResponse=INFER_RESPONSE,
                   TaskImages=TASK_ANSWER)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for answer in responses.values():
                answer.setdefault("headers", {}).update(REQUEST_ID)
            statuses = [503]
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter["name"] == "model":
                    parameter["schema"] = {"type": "string", "enum": sorted(graphs)}
                    statuses.append(404)
                elif parameter.get("in") == "path" and parameter["name"] == "version":
                    parameter["schema"] = {"type": "string", "enum": ["1"]}
            if method == "post":
                statuses += [400, 413] + ([401] if api_key else [])
            if path.endswith("/infer"):
                _infer_operation(operation)
            elif path.startswith("/tasks/"):
                _task_operation(operation)
            responses.update(_errors(sorted(set(statuses))))
    return document


def _infer_operation(operation: dict[str, Any]) -> None:
    operation.setdefault("parameters", []).append(HEADER_LENGTH_PARAM)
    operation["requestBody"] = {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/InferRequest"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                                "description": "binary tensor extension: a JSON InferRequest of "
                                                               "Inference-Header-Content-Length bytes, then the "
                                                               "tensors' bytes"}}}}
    operation["responses"]["200"] = {
        "description": "the outputs: JSON, or (binary outputs asked) a JSON header then the raw tensors",
        "headers": {**REQUEST_ID, "Inference-Header-Content-Length": {
            "description": "binary answers only: the length of the JSON header", "schema": {"type": "integer"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferResponse"}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}


def _task_operation(operation: dict[str, Any]) -> None:
    body = operation.get("requestBody", {})
    required = False
    for media in body.get("content", {}).values():
        media["schema"] = _task_form(media.get("schema", {}))
        required = required or bool(media["schema"].get("required"))
    if body:
        body["required"] = required
    operation["responses"]["200"] = {
        "description": "the task's main image as PNG, or (?format=json) every image it made, base64",
        "headers": REQUEST_ID,
        "content": {"image/png": {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {"schema": {"$ref": "#/components/schemas/TaskImages"}}}}
