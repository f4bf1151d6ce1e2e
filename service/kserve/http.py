"""The v2 HTTP/REST body format: JSON tensors plus the binary data extension.

With the extension, a body is a JSON header of ``Inference-Header-Content-Length``
bytes followed by the raw contents of every tensor whose parameters carry
``binary_data_size``, in tensor order (BYTES elements framed by a 4-byte
little-endian length). tritonclient.http sends inputs this way by default and asks
for binary outputs with ``binary_data_output`` / per-output ``binary_data``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from service.kserve.core import InferResult
from service.kserve.tensors import DTYPES, Tensor, checked_array, element_count, from_raw, to_raw

HEADER_LENGTH = "Inference-Header-Content-Length"
#: Deepest JSON nesting accepted: the request object, its inputs list, one input and
#: one level per tensor dimension leave ample room; checked before the JSON is parsed.
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENS = np.frombuffer(b"[{", np.uint8)


@dataclass
class InferRequest:
    """A parsed v2 HTTP inference request."""

    id: str
    inputs: list[Tensor]
    outputs: list[str] | None  # None: every output
    binary: dict[str, bool]  # output name → send as binary
    binary_default: bool
    timeout_s: float | None


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding: gzip|deflate`` without ever holding more than ``limit``."""
    enc = (encoding or "identity").strip().lower()
    if enc == "identity":
        return body
    if enc not in ("gzip", "deflate"):
        raise UnsupportedMediaType(f"content encoding {encoding!r} is not supported")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if enc == "gzip" else zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"body is not valid {enc}: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body is over the limit of {limit} bytes")
    return out


def json_depth(doc: bytes) -> int:
    """The deepest array/object nesting of a JSON document, without parsing it (linear
    time, no recursion): strings are removed, then the brackets are counted."""
    skeleton = _JSON_STRING.sub(b"", doc).translate(None, _NOT_BRACKETS)
    if not skeleton:
        return 0
    steps = np.where(np.isin(np.frombuffer(skeleton, np.uint8), _OPENS), 1, -1)
    return int(np.cumsum(steps).max())


def _params(obj: dict[str, Any], where: str) -> dict[str, Any]:
    """The ``parameters`` object of a request, input or output ({} when absent)."""
    params = obj.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidInput(f"{where} 'parameters' must be a JSON object")
    return params


def _json_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict) and isinstance(value.get("b64"), str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except binascii.Error as exc:
            raise InvalidInput(f"invalid base64 element: {exc}") from exc
    raise InvalidInput('BYTES elements in JSON must be strings or {"b64": "..."} objects')


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    return [x for item in data for x in _flatten(item)]


def _tensor(spec: Any, binary: memoryview, offset: int) -> tuple[Tensor, int]:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise InvalidInput("each input needs a name, a datatype and a shape")
    name, datatype, shape = spec["name"], spec.get("datatype"), spec.get("shape")
    if (
        not isinstance(datatype, str)
        or not isinstance(shape, list)
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
    ):
        raise InvalidInput(f"input {name!r} needs a datatype and an integer shape")
    count = element_count(shape)
    params = _params(spec, f"input {name!r}")
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise InvalidInput(f"input {name!r}: binary_data_size {size} does not fit the body")
        tensor = from_raw(name, datatype, shape, binary[offset : offset + size])
        tensor.parameters = params
        return tensor, offset + size
    if "data" not in spec:
        raise InvalidInput(f"input {name!r} has neither data nor binary_data_size")
    values = _flatten(spec["data"])
    if len(values) != count:
        raise InvalidInput(f"input {name!r}: {len(values)} values for shape {shape}")
    if datatype == "BYTES":
        return Tensor(name, datatype, shape, [_json_bytes(v) for v in values], params), offset
    if datatype not in DTYPES:
        raise InvalidInput(f"input {name!r}: unknown datatype {datatype!r}")
    arr = checked_array(name, datatype, values).reshape(shape)
    return Tensor(name, datatype, shape, arr, params), offset


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """Parse a JSON (+ binary) inference request body."""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise InvalidInput(f"{HEADER_LENGTH} {header_length!r} does not fit the body")
        cut = int(header_length)
    else:
        cut = len(body)
    if json_depth(body[:cut]) > MAX_JSON_DEPTH:
        raise InvalidInput(f"request JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        req = json.loads(body[:cut])
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput(f"request header is not JSON: {exc}") from None
    if not isinstance(req, dict) or not isinstance(req.get("inputs"), list):
        raise InvalidInput("request must be a JSON object with an 'inputs' list")
    data, offset, inputs = memoryview(body)[cut:], 0, []
    for spec in req["inputs"]:
        tensor, offset = _tensor(spec, data, offset)
        inputs.append(tensor)
    if offset != len(data):
        raise InvalidInput(f"{len(data) - offset} bytes of binary data belong to no input")
    params = _params(req, "request")
    outs = req.get("outputs")
    if outs is not None and not (
        isinstance(outs, list)
        and all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outs)
    ):
        raise InvalidInput("'outputs' must be a list of objects with a name")
    timeout = params.get("timeout")
    if timeout is not None and (not isinstance(timeout, int) or timeout <= 0):
        raise InvalidInput("parameter 'timeout' must be a positive integer (microseconds)")
    binary = {
        str(o["name"]): bool(_params(o, f"output {o['name']!r}").get("binary_data", False))
        for o in outs or []
    }
    return InferRequest(
        id=str(req.get("id", "")),
        inputs=inputs,
        outputs=[str(o["name"]) for o in outs] if outs else None,
        binary=binary,
        binary_default=bool(params.get("binary_data_output", False)),
        timeout_s=timeout / 1e6 if timeout else None,
    )


def encode_response(result: InferResult, req: InferRequest) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length."""
    outputs, chunks = [], []
    for t in result.outputs:
        entry: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": t.shape}
        if req.binary.get(t.name, req.binary_default):
            raw = to_raw(t)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            data = t.data if isinstance(t.data, list) else t.data.reshape(-1).tolist()
            entry["data"] = [d.decode("latin-1") if isinstance(d, bytes) else d for d in data]
        outputs.append(entry)
    head: dict[str, Any] = {"model_name": result.model_name, "model_version": result.model_version}
    if result.id:
        head["id"] = result.id
    header = json.dumps({**head, "outputs": outputs}, separators=(",", ":")).encode()
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)
