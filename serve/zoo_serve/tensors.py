"""Open Inference Protocol (KServe v2) tensors: JSON and the binary tensor extension, both ways.

A request body is either pure JSON, or (binary extension, what ``tritonclient.http`` sends by default)
a JSON header of ``Inference-Header-Content-Length`` bytes followed by the raw little-endian tensors
whose ``parameters.binary_data_size`` say how long each is. Every size and count is checked against
the declared shape before anything is allocated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo_serve.errors import BadRequest

HEADER_LENGTH = "Inference-Header-Content-Length"
# v2 datatype names and the numpy types they carry (BYTES and BF16 are not used by zoo graphs)
V2_TO_NUMPY: dict[str, Any] = {"BOOL": np.bool_, "UINT8": np.uint8, "INT8": np.int8, "INT16": np.int16,
                               "INT32": np.int32, "INT64": np.int64, "FP16": np.float16, "FP32": np.float32,
                               "FP64": np.float64}
# numpy dtype -> v2 name, looked up per response (str(dtype) runs Python code in numpy)
NUMPY_TO_V2 = {np.dtype(numpy_type): name for name, numpy_type in V2_TO_NUMPY.items()}
ZOO_TO_V2 = {"float32": "FP32", "float16": "FP16", "float64": "FP64", "int64": "INT64", "int32": "INT32",
             "uint8": "UINT8", "bool": "BOOL"}


def v2_datatype(zoo_dtype: str) -> str:
    """The v2 datatype name of a manifest dtype such as ``float32``."""
    return ZOO_TO_V2.get(zoo_dtype, zoo_dtype.upper())


@dataclass(frozen=True)
class TensorIn:
    """One decoded request input."""

    name: str
    array: np.ndarray


@dataclass(frozen=True)
class InferRequest:
    """A decoded v2 inference request: inputs by name, the outputs asked for, and how to send them."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None
    binary_outputs: set[str]
    binary_default: bool


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(f"{what} is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value


def _shape(record: Mapping[str, Any], name: str) -> tuple[int, ...]:
    shape = record.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise BadRequest(f"input {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    return tuple(shape)


def _flat_json_data(data: Any, name: str, dtype: Any, count: int) -> np.ndarray:
    if not isinstance(data, list):
        raise BadRequest(f"input {name!r}: data must be a JSON array")
    try:
        array = np.asarray(data, dtype=dtype).reshape(-1)
    except (ValueError, TypeError):
        raise BadRequest(f"input {name!r}: data must be a (nested) array of numbers") from None
    if array.size != count:
        raise BadRequest(f"input {name!r}: data holds {array.size} values, its shape needs {count}")
    return array


def decode_request(body: bytes, header_length: str | None, expected: Mapping[str, tuple[str, int]],
                   max_elements: int) -> InferRequest:
    """Decode a request body; ``expected`` maps each input name to (v2 datatype, rank).

    Unknown or missing inputs, wrong datatypes, ranks or sizes are a :class:`BadRequest` (400).
    """
    if header_length is not None:
        try:
            split = int(header_length)
        except ValueError:
            raise BadRequest(f"{HEADER_LENGTH} must be an integer, got {header_length!r}") from None
        if not 0 < split <= len(body):
            raise BadRequest(f"{HEADER_LENGTH} {split} is outside the body's {len(body)} bytes")
        header, binary = body[:split], memoryview(body)[split:]
    else:
        header, binary = body, memoryview(b"")
    request = _json_object(header, "the request")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("the request needs an 'inputs' array with one entry per graph input")
    decoded: dict[str, np.ndarray] = {}
    offset = 0
    for record in inputs:
        if not isinstance(record, dict) or not isinstance(record.get("name"), str):
            raise BadRequest("each input must be an object with a 'name'")
        name = record["name"]
        if name not in expected:
            raise BadRequest(f"unknown input {name!r}; this model takes {', '.join(expected)}")
        if name in decoded:
            raise BadRequest(f"input {name!r} is given twice")
        datatype, rank = expected[name]
        if record.get("datatype") != datatype:
            raise BadRequest(f"input {name!r} must have datatype {datatype}, got {record.get('datatype')!r}")
        shape = _shape(record, name)
        if len(shape) != rank:
            raise BadRequest(f"input {name!r} must have {rank} dimensions, got shape {list(shape)}")
        count = math.prod(shape)
        if count > max_elements:
            raise BadRequest(f"input {name!r} has {count} values, more than the {max_elements} this server takes",
                             status=413)
        dtype = np.dtype(V2_TO_NUMPY[datatype]).newbyteorder("<")
        parameters = record.get("parameters") or {}
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is not None:
            if not isinstance(size, int) or size != count * dtype.itemsize:
                raise BadRequest(f"input {name!r}: binary_data_size {size!r} does not match shape {list(shape)} "
                                 f"of {datatype} ({count * dtype.itemsize} bytes)")
            if offset + size > len(binary):
                raise BadRequest(f"input {name!r}: the body ends before its {size} binary bytes")
            array = np.frombuffer(binary[offset:offset + size], dtype=dtype)
            offset += size
        else:
            array = _flat_json_data(record.get("data"), name, dtype, count)
        decoded[name] = array.astype(dtype.newbyteorder("="), copy=True).reshape(shape)
    if offset != len(binary):
        raise BadRequest(f"the body holds {len(binary) - offset} binary bytes that no input claims")
    missing = [name for name in expected if name not in decoded]
    if missing:
        raise BadRequest(f"missing input(s) {', '.join(missing)}")
    return InferRequest(id=_request_id(request), inputs=decoded, outputs=_requested(request)[0],
                        binary_outputs=_requested(request)[1], binary_default=_binary_default(request))


def _request_id(request: Mapping[str, Any]) -> str | None:
    value = request.get("id")
    return value if isinstance(value, str) else None


def _requested(request: Mapping[str, Any]) -> tuple[list[str] | None, set[str]]:
    outputs = request.get("outputs")
    if outputs is None:
        return None, set()
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                for o in outputs):
        raise BadRequest("'outputs' must be an array of objects with a 'name'")
    binary = {o["name"] for o in outputs
              if isinstance(o.get("parameters"), dict) and o["parameters"].get("binary_data")}
    return [o["name"] for o in outputs], binary


def _binary_default(request: Mapping[str, Any]) -> bool:
    parameters = request.get("parameters")
    return isinstance(parameters, dict) and bool(parameters.get("binary_data_output"))


def encode_response(model: str, request: InferRequest, outputs: Sequence[tuple[str, np.ndarray]]
                    ) -> tuple[bytes, dict[str, str]]:
    """The response body and extra headers: JSON data, or binary outputs after a JSON header."""
    records: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, array in outputs:
        datatype = NUMPY_TO_V2.get(array.dtype) or v2_datatype(str(array.dtype))
        record: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if name in request.binary_outputs or request.binary_default:
            raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            record["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            record["data"] = array.reshape(-1).tolist()
        records.append(record)
    response: dict[str, Any] = {"model_name": model, "model_version": "1", "outputs": records}
    if request.id is not None:
        response["id"] = request.id
    header = json.dumps(response, separators=(",", ":")).encode()
    if not chunks:
        return header, {"content-type": "application/json"}
    return header + b"".join(chunks), {"content-type": "application/octet-stream",
                                       HEADER_LENGTH: str(len(header))}
