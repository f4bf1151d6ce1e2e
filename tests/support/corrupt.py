"""A corruption corpus built on the fly from one intact image (never from shared data).

Every case is a frame a camera node, a network or a careless client may really send:
truncations with and without an appended end-of-image marker, markers and invalid
Huffman codes stamped into the entropy-coded data, SOF headers that lie about the
size, and 16-bit and palette PNGs (which must decode correctly, not be refused).

:func:`flipped_bytes` are the cases no decoder can catch (a baseline JPEG has no
checksum): single bytes flipped inside the entropy-coded data mostly decode to a
different, well-formed picture. Only the client's digest (service/integrity.py)
refuses them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json

import numpy as np
from PIL import Image

from service.grpc.generated.kserve import grpc_predict_v2_pb2 as kpb

EOI = b"\xff\xd9"


def _segment(data: bytes, marker: bytes) -> int:
    pos = data.find(marker)
    assert pos > 0, f"no {marker.hex()} marker"
    return pos


def scan_start(jpeg: bytes) -> int:
    """Offset of the first byte of entropy-coded data (after the SOS header)."""
    sos = _segment(jpeg, b"\xff\xda")
    return sos + 2 + int.from_bytes(jpeg[sos + 2 : sos + 4], "big")


def with_sof_size(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its baseline SOF header claiming ``width`` x ``height``."""
    sof = _segment(jpeg, b"\xff\xc0")
    out = bytearray(jpeg)
    out[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(out)


def jpeg_corpus(jpeg: bytes) -> dict[str, bytes]:
    """Corrupted variants of an intact baseline JPEG, by case name."""
    start, end = scan_start(jpeg), len(jpeg) - 2
    cases: dict[str, bytes] = {}
    for frac in (0.1, 0.25, 0.5, 0.75, 0.9, 0.99):
        cut = start + int((end - start) * frac)
        cases[f"truncated-{frac:.0%}"] = jpeg[:cut]
        cases[f"truncated-{frac:.0%}+eoi"] = jpeg[:cut] + EOI
    cases["eoi-missing"] = jpeg[:-2]
    cases["eoi-half"] = jpeg[:-1]
    cases["header-only"] = jpeg[:start]
    cases["header-only+eoi"] = jpeg[:start] + EOI
    for frac in (0.2, 0.5, 0.8):
        pos = start + int((end - start) * frac)
        stamped = bytearray(jpeg)
        stamped[pos : pos + 2] = b"\xff\xd0"  # a restart marker where none is due
        cases[f"stray-rst-{frac:.0%}"] = bytes(stamped)
        stamped[pos : pos + 2] = b"\xff\xc4"  # a table marker inside the scan
        cases[f"stray-marker-{frac:.0%}"] = bytes(stamped)
        stamped[pos : pos + 5] = b"\xff\x00\xff\x00\xff"  # 16+ one bits: no Huffman code
        cases[f"bad-huffman-{frac:.0%}"] = bytes(stamped)
    cases["cut-middle+eoi"] = jpeg[: (start + end) // 2] + jpeg[(start + end) // 2 + 64 :]
    width, height = Image.open(io.BytesIO(jpeg)).size
    cases["sof-7000x7000"] = with_sof_size(jpeg, 7000, 7000)
    cases["sof-double"] = with_sof_size(jpeg, width * 2, height * 2)
    cases["sof-one-more-row"] = with_sof_size(jpeg, width, height + 16)
    cases["sof-half"] = with_sof_size(jpeg, width // 2, height // 2)
    return cases


def flipped_bytes(jpeg: bytes) -> dict[str, bytes]:
    """``jpeg`` with one byte of its entropy-coded data flipped (all bits, or the lowest),
    at 10 % .. 90 % of the scan, by case name."""
    start, end = scan_start(jpeg), len(jpeg) - 2
    cases: dict[str, bytes] = {}
    for mask, kind in ((0xFF, "byte"), (0x01, "bit")):
        for tenth in range(1, 10):
            pos = start + (end - start) * tenth // 10
            flipped = bytearray(jpeg)
            flipped[pos] ^= mask
            cases[f"flip-{kind}-{tenth * 10}%"] = bytes(flipped)
    return cases


def content_digest(data: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` value a client sends with ``data``."""
    return f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"


def kserve_body(data: bytes, sha256_hex: str | None = None) -> str:
    """A KServe v2 JSON request of one ``image_bytes`` image, with its digest if given."""
    spec: dict[str, object] = {
        "name": "image_bytes",
        "datatype": "BYTES",
        "shape": [1],
        "data": [{"b64": base64.b64encode(data).decode()}],
    }
    if sha256_hex is not None:
        spec["parameters"] = {"image_sha256": sha256_hex}
    return json.dumps({"inputs": [spec]})


def kserve_grpc_request(data: bytes, sha256_hex: str | None = None) -> kpb.ModelInferRequest:
    """The same as a gRPC ModelInferRequest (raw contents)."""
    req = kpb.ModelInferRequest(model_name="tiny")
    tensor = req.inputs.add(name="image_bytes", datatype="BYTES", shape=[1])
    if sha256_hex is not None:
        tensor.parameters["image_sha256"].string_param = sha256_hex
    req.raw_input_contents.append(len(data).to_bytes(4, "little") + data)
    return req


def png16(grey16: np.ndarray) -> bytes:
    """A 16-bit greyscale PNG of ``grey16`` (uint16)."""
    buf = io.BytesIO()
    Image.fromarray(grey16.astype(np.uint16)).save(buf, "PNG")
    return buf.getvalue()


def palette_png(rgb: np.ndarray) -> bytes:
    """A palette (mode P) PNG of ``rgb``."""
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(buf, "PNG")
    return buf.getvalue()
