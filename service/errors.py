"""The one error hierarchy of lineinspect.

Every edge maps it exactly once: REST via ``http_status`` (service/api/errors.py),
gRPC via ``grpc_code`` (service/grpc). Anything not derived from
:class:`LineInspectError` is a bug: logged with the request id, answered 500/INTERNAL.
"""

from __future__ import annotations

import re
from typing import ClassVar

# ``<_io.BytesIO object at 0x7f…>``: library messages may name objects; clients never see it.
_OBJECT_REPR = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")


def client_message(text: str) -> str:
    """``text`` fit for a client: object reprs replaced, at most 1,000 characters."""
    return _OBJECT_REPR.sub("<object>", text)[:1000]


class LineInspectError(Exception):
    """Base of all errors a client may see. ``code`` is a stable machine-readable name."""

    http_status: ClassVar[int] = 500
    grpc_code: ClassVar[str] = "INTERNAL"  # name of a grpc.StatusCode member
    code: ClassVar[str] = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(LineInspectError):
    """The request is malformed (bad parameter, missing image, corrupt image)."""

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"
    code = "invalid_input"


class InvalidImage(InvalidInput):
    """The image bytes are empty, truncated, corrupt or of an unsupported format."""

    code = "invalid_image"


class DigestRequired(InvalidInput):
    """``require_image_digest`` is on and the frame came without the SHA-256 of its bytes."""

    code = "digest_required"


class UnsupportedMediaType(InvalidInput):
    """The request's content type is not an accepted image type."""

    http_status = 415
    code = "unsupported_media_type"


class PayloadTooLarge(LineInspectError):
    """The body or the image's pixel count is over the configured limit."""

    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"
    code = "payload_too_large"


class Unauthorized(LineInspectError):
    """A protected operation was called without the right admin token."""

    http_status = 401
    grpc_code = "UNAUTHENTICATED"
    code = "unauthorized"


class Forbidden(LineInspectError):
    """A valid token that lacks the scope the operation needs."""

    http_status = 403
    grpc_code = "PERMISSION_DENIED"
    code = "forbidden"


class ModelNotFound(LineInspectError):
    """The model reference names no model, alias or version in the registry."""

    http_status = 404
    grpc_code = "NOT_FOUND"
    code = "model_not_found"


class RegistryError(LineInspectError):
    """The registry on disk is inconsistent or an artefact is invalid."""

    http_status = 422
    grpc_code = "FAILED_PRECONDITION"
    code = "registry_error"


class QueueFull(LineInspectError):
    """Backpressure: the frame queue is at its bound; retry after ``retry_after`` seconds."""

    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"
    code = "queue_full"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_s(max_delay_s: float) -> float:
    """The ``retry_after`` of a full queue batched every ``max_delay_s``: four batching
    delays, at least 50 ms."""
    return max(0.05, max_delay_s * 4)


class DeadlineExceeded(LineInspectError):
    """The frame's deadline passed before it was inspected; it was never run."""

    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"
    code = "deadline_exceeded"


class NotReady(LineInspectError):
    """The service (or the needed model) is not warm yet, or a dependency is down."""

    http_status = 503
    grpc_code = "UNAVAILABLE"
    code = "not_ready"


class Unavailable(NotReady):
    """A backing service (e.g. Redis) is unreachable; fail fast, retry later."""

    code = "unavailable"


class AuditUnavailable(Unavailable):
    """``audit: required`` and the frame could not be audited (the audit queue is full,
    or its database is failing): the answer is refused rather than left unaudited."""

    code = "audit_unavailable"


class RegistryReadOnly(LineInspectError):
    """The registry directory cannot be written by this process (promotion, registration)."""

    http_status = 503
    grpc_code = "FAILED_PRECONDITION"
    code = "registry_read_only"


class ProviderUnavailable(LineInspectError):
    """A requested ONNX Runtime execution provider is not the one a model got, and
    ``strict_providers`` refuses to serve on a fallback."""

    http_status = 503
    grpc_code = "UNAVAILABLE"
    code = "provider_unavailable"


class DeadLettered(LineInspectError):
    """The frame was delivered to workers too often (each died): it is set aside, not run."""

    http_status = 422
    grpc_code = "FAILED_PRECONDITION"
    code = "dead_lettered"


# --- data store ---------------------------------------------------------------------


class NotFound(LineInspectError):
    """A dataset, sample, snapshot or job named by the request does not exist."""

    http_status = 404
    grpc_code = "NOT_FOUND"
    code = "not_found"


class Conflict(LineInspectError):
    """The request contradicts the stored state (an ambiguous sample reference, cancelling
    a finished job)."""

    http_status = 409
    grpc_code = "FAILED_PRECONDITION"
    code = "conflict"


class StoreError(LineInspectError):
    """The data store cannot be used (unreachable database, schema newer than the code)."""

    http_status = 503
    grpc_code = "UNAVAILABLE"
    code = "store_unavailable"
