"""Image integrity: a client's SHA-256 of a frame's bytes, checked before they are decoded.

A baseline JPEG has no checksum: a byte flipped inside its entropy-coded data often
decodes, strict decoder or not, to a different, well-formed picture. A client that
sends the digest of the bytes it meant to send makes every such change a refusal.

Each edge turns its own spelling of the digest into ``Frame.image_sha256`` (32 bytes):

* REST ``POST /v1/inspect``: an RFC 9530 ``Content-Digest: sha-256=:<base64>:`` header
  on the request for a raw body, on the ``image`` part for multipart/form-data;
* gRPC ``InspectRequest.image_sha256`` (unary and stream): the 32 raw digest bytes;
* KServe v2 (HTTP and gRPC): the input parameter ``image_sha256``, the hex digests of
  the batch's images, comma-separated, in order.

:func:`verify` is called by :func:`service.inspector.prepare`, right before the decode,
on every edge and in every topology (in-process or on the Redis workers);
:func:`check_present` enforces ``require_image_digest``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from service.errors import DigestRequired, InvalidImage, InvalidInput

SHA256_BYTES = 32
CONTENT_DIGEST = "content-digest"
# One member of an RFC 8941 dictionary whose value is a byte sequence (":base64:"),
# parameters allowed and ignored.
_MEMBER = re.compile(r"\s*([a-z*][a-z0-9_.*-]*)\s*=\s*:([A-Za-z0-9+/=]*):\s*(?:;.*)?")
_HEX = re.compile(r"[0-9a-fA-F]{64}")


def _sized(raw: bytes, what: str) -> bytes:
    if len(raw) != SHA256_BYTES:
        raise InvalidInput(f"{what}: a SHA-256 digest is 32 bytes, got {len(raw)}")
    return raw


def from_content_digest(value: str) -> bytes:
    """The SHA-256 of an RFC 9530 ``Content-Digest`` field value (``sha-256=:…:``).

    Other algorithms in the field are ignored, but ``sha-256`` must be among them: a
    digest that cannot be checked is refused, never skipped."""
    found: bytes | None = None
    for member in value.split(","):
        m = _MEMBER.fullmatch(member)
        if m is None:
            if member.strip().lower().startswith("sha-256"):
                raise InvalidInput("Content-Digest: sha-256 must be a byte sequence, :<base64>:")
            continue
        if m.group(1) == "sha-256":
            try:
                found = base64.b64decode(m.group(2), validate=True)
            except binascii.Error:
                raise InvalidInput("Content-Digest: sha-256 is not valid base64") from None
    if found is None:
        raise InvalidInput("Content-Digest must carry sha-256=:<base64 of the SHA-256>:")
    return _sized(found, "Content-Digest sha-256")


def from_bytes(raw: bytes, what: str = "image_sha256") -> bytes | None:
    """A raw digest field (gRPC ``bytes``): empty = none, else exactly 32 bytes."""
    return _sized(bytes(raw), what) if raw else None


def from_hex_list(value: object, count: int, what: str = "image_sha256") -> list[bytes]:
    """``count`` comma-separated hex SHA-256 digests (KServe's ``image_sha256``)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string of hex SHA-256 digests")
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != count:
        raise InvalidInput(f"{what}: {len(parts)} digests for a batch of {count} images")
    if not all(_HEX.fullmatch(p) for p in parts):
        raise InvalidInput(f"{what}: each digest is 64 hex digits (SHA-256)")
    return [bytes.fromhex(p) for p in parts]


def verify(data: bytes, expected: bytes | None) -> None:
    """Raise :class:`InvalidImage` unless ``data`` hashes to ``expected`` (None: no digest)."""
    if expected is not None and not hmac.compare_digest(hashlib.sha256(data).digest(), expected):
        raise InvalidImage(
            "the image bytes do not match their SHA-256 digest: changed on the way, refused"
        )


def check_present(digest: bytes | None, required: bool) -> None:
    """Raise :class:`DigestRequired` when ``required`` and the frame has no digest."""
    if required and digest is None:
        raise DigestRequired(
            "this service requires the SHA-256 of every image (require_image_digest): send "
            "Content-Digest (REST), image_sha256 (gRPC) or the image_sha256 input parameter "
            "(KServe v2)"
        )
