"""v2 tensors: datatypes, raw (binary) encoding and the BYTES element framing."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.errors import InvalidInput

#: v2 datatype → numpy dtype (little-endian). BYTES is handled apart.
DTYPES: dict[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_LEN = struct.Struct("<I")
#: Most elements one tensor may declare: far above any image batch, far below an
#: allocation that could hurt; shapes are checked against it before anything is read.
MAX_ELEMENTS = 2**31


@dataclass
class Tensor:
    """A named v2 tensor: ``data`` is an array, or a list of elements for BYTES;
    ``parameters`` are the input's own v2 parameters (e.g. ``image_sha256``)."""

    name: str
    datatype: str
    shape: list[int]
    data: np.ndarray | list[bytes]
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Number of elements."""
        return element_count(self.shape)


def element_count(shape: Sequence[int]) -> int:
    """Elements of a tensor of ``shape`` (exact, no integer overflow); rejects negative
    (unresolved) dimensions and products over :data:`MAX_ELEMENTS`."""
    if any(isinstance(d, bool) or not isinstance(d, int) for d in shape):
        raise InvalidInput(f"tensor shape {list(shape)} must be a list of integers")
    if any(d < 0 for d in shape):
        raise InvalidInput(f"tensor shape {list(shape)} has a negative dimension")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise InvalidInput(f"tensor shape {list(shape)} has over {MAX_ELEMENTS} elements")
    return count


def checked_array(name: str, datatype: str, values: Sequence[object]) -> np.ndarray:
    """JSON (or typed protobuf) values as an array of ``datatype``: every value must be
    of the datatype's kind and within its range (no wrap-around, no truncation, finite)."""
    dtype = DTYPES[datatype]
    if not values:
        return np.zeros(0, dtype=dtype)
    try:
        probe = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"input {name!r}: data is not a flat list of numbers") from exc
    kinds = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}[dtype.kind]
    if probe.dtype.kind not in kinds:
        raise InvalidInput(f"input {name!r}: {datatype} data must be {_KIND_WORDS[dtype.kind]}")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)  # type: ignore[type-var]  # an integer dtype here
        if int(probe.min()) < info.min or int(probe.max()) > info.max:
            raise InvalidInput(
                f"input {name!r}: {datatype} values must be within {info.min}..{info.max}"
            )
    arr = probe.astype(dtype)
    if dtype.kind == "f" and not np.isfinite(arr).all():
        raise InvalidInput(f"input {name!r}: {datatype} values must be finite numbers")
    return arr


_KIND_WORDS = {"b": "true/false", "i": "integers", "u": "integers", "f": "numbers"}


def encode_bytes(elements: Sequence[bytes]) -> bytes:
    """BYTES tensor → raw: each element as a 4-byte little-endian length + its bytes."""
    return b"".join(_LEN.pack(len(e)) + e for e in elements)


def decode_bytes(raw: bytes | memoryview, count: int, name: str) -> list[bytes]:
    """Raw BYTES content → its ``count`` elements; raises on any framing mismatch."""
    out: list[bytes] = []
    view, pos = memoryview(raw), 0
    while pos < len(view):
        if pos + 4 > len(view):
            raise InvalidInput(f"input {name!r}: truncated BYTES element length")
        (n,) = _LEN.unpack_from(view, pos)
        pos += 4
        if pos + n > len(view):
            raise InvalidInput(f"input {name!r}: BYTES element of {n} bytes runs past the data")
        out.append(bytes(view[pos : pos + n]))
        pos += n
    if len(out) != count:
        raise InvalidInput(f"input {name!r}: {len(out)} BYTES elements for a shape of {count}")
    return out


def from_raw(name: str, datatype: str, shape: list[int], raw: bytes | memoryview) -> Tensor:
    """Decode one tensor's raw (binary) content, checking its size against the shape."""
    count = element_count(shape)
    if datatype == "BYTES":
        return Tensor(name, datatype, shape, decode_bytes(raw, count, name))
    dtype = DTYPES.get(datatype)
    if dtype is None:
        raise InvalidInput(f"input {name!r}: unknown datatype {datatype!r}")
    if len(raw) != count * dtype.itemsize:
        raise InvalidInput(
            f"input {name!r}: {len(raw)} bytes of {datatype} for shape {shape} "
            f"(expected {count * dtype.itemsize})"
        )
    return Tensor(name, datatype, shape, np.frombuffer(raw, dtype=dtype).reshape(shape))


def to_raw(tensor: Tensor) -> bytes:
    """Raw (binary) content of a tensor, row-major little-endian."""
    if isinstance(tensor.data, list):
        return encode_bytes(tensor.data)
    return np.ascontiguousarray(tensor.data, dtype=DTYPES[tensor.datatype]).tobytes()
