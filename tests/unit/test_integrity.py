"""The client's image digest: parsed strictly on every edge, verified before the decode."""

from __future__ import annotations

import base64
import hashlib

import pytest

from service.errors import DigestRequired, InvalidImage, InvalidInput
from service.frames import Frame
from service.integrity import (
    check_present,
    from_bytes,
    from_content_digest,
    from_hex_list,
    verify,
)
from service.queue.codec import decode_entry, encode_entry, frame_identity

DATA = b"\xff\xd8 some jpeg bytes \xff\xd9"
SHA = hashlib.sha256(DATA).digest()
B64 = base64.b64encode(SHA).decode()


@pytest.mark.parametrize(
    "value",
    [
        f"sha-256=:{B64}:",
        f"  sha-256 = :{B64}:  ",
        f"sha-512=:{base64.b64encode(hashlib.sha512(DATA).digest()).decode()}:, sha-256=:{B64}:",
        f"sha-256=:{B64}:;note=1",
        f'unixsum=42, sha-256=:{B64}:, x="y"',
    ],
    ids=["plain", "spaces", "beside-sha-512", "parameter", "beside-other-members"],
)
def test_content_digest_gives_the_sha_256(value: str) -> None:
    assert from_content_digest(value) == SHA


@pytest.mark.parametrize(
    "value",
    [
        "",
        f"sha-512=:{B64}:",  # no sha-256: a digest that cannot be checked is refused
        "sha-256=:not base64!:",
        f"sha-256={B64}",  # not a byte sequence
        f"sha-256=:{base64.b64encode(SHA[:20]).decode()}:",  # not 32 bytes
        SHA.hex(),
    ],
    ids=["empty", "only-sha-512", "bad-base64", "no-colons", "short", "bare-hex"],
)
def test_a_malformed_content_digest_is_invalid_input(value: str) -> None:
    with pytest.raises(InvalidInput) as err:
        from_content_digest(value)
    assert err.value.code == "invalid_input"


def test_raw_digest_bytes() -> None:
    assert from_bytes(b"") is None and from_bytes(SHA) == SHA
    with pytest.raises(InvalidInput, match="32 bytes"):
        from_bytes(SHA.hex().encode())  # hex where raw bytes belong


def test_hex_list_one_per_image() -> None:
    other = hashlib.sha256(b"x").digest()
    assert from_hex_list(f"{SHA.hex()}, {other.hex().upper()}", 2) == [SHA, other]
    for bad, n in ((SHA.hex(), 2), (f"{SHA.hex()},zz", 2), (SHA.hex()[:-1], 1), (7, 1)):
        with pytest.raises(InvalidInput):
            from_hex_list(bad, n)


def test_verify_refuses_changed_bytes_as_invalid_image() -> None:
    verify(DATA, SHA)
    verify(DATA[:-1], None)  # no digest: nothing to check
    with pytest.raises(InvalidImage) as err:
        verify(DATA[:-1] + b"\xd8", SHA)
    assert err.value.code == "invalid_image" and err.value.http_status == 400


def test_a_required_digest_must_be_there() -> None:
    check_present(SHA, True)
    check_present(None, False)
    with pytest.raises(DigestRequired) as err:
        check_present(None, True)
    assert (err.value.code, err.value.http_status) == ("digest_required", 400)


def test_the_digest_travels_through_redis_and_is_part_of_the_identity() -> None:
    frame = Frame(data=DATA, deadline=0.0, frame_id="f-1", image_sha256=SHA)
    flat = encode_entry(frame, "rid-1", "replies")
    queued = decode_entry(dict(zip(flat[::2], flat[1::2], strict=True)))
    assert queued.frame.image_sha256 == SHA
    plain = Frame(data=DATA, deadline=0.0, frame_id="f-1")
    flat = encode_entry(plain, "rid-2", "replies")
    assert decode_entry(dict(zip(flat[::2], flat[1::2], strict=True))).frame.image_sha256 is None
    # a retry with a corrected digest is not answered with the refusal of the first try
    assert frame_identity(frame) != frame_identity(plain)
