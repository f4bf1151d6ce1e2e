"""Tokens with scopes: how they are configured, made and verified.

Settings hold only the SHA-256 of each token (``tokens: [{name, sha256, scopes}]``), so
the configuration can be read by anyone who may read it without granting access. A
presented token is hashed and compared with every configured hash in constant time
(:func:`hmac.compare_digest`, no early exit), so timing tells nothing about which token
or how much of one matched.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from service.errors import Forbidden, Unauthorized

TOKEN_PREFIX = "li_"


class Scope(StrEnum):
    """What a token may do."""

    INFER = "infer"  # inspect frames: /v1/inspect, KServe infer, gRPC Inspect/ModelInfer
    LABEL = "label"  # datasets and samples (labelling)
    ADMIN = "admin"  # change the service: promote models, jobs
    READ = "read"  # model cards, metadata, statistics, audit
    METRICS = "metrics"  # the Prometheus exposition


class TokenEntry(BaseModel):
    """One configured token: a name for logs, the hex SHA-256 of the token, its scopes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@:-]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the token")
    scopes: tuple[Scope, ...] = Field(min_length=1)


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token, as settings hold it."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class TokenVerifier:
    """Checks a presented credential against the configured tokens.

    With no tokens configured it is disabled and every check passes: the service is
    open, as the embedded defaults are meant for a bench or a closed network.
    """

    def __init__(self, entries: Sequence[TokenEntry]) -> None:
        self._entries = tuple(entries)
        self._hashes = tuple(e.sha256.encode() for e in self._entries)

    @property
    def enabled(self) -> bool:
        """True when at least one token is configured."""
        return bool(self._entries)

    def identify(self, token: str) -> TokenEntry | None:
        """The entry whose hash matches ``token`` (every hash compared), else None."""
        digest = hash_token(token).encode()
        found: TokenEntry | None = None
        for entry, expected in zip(self._entries, self._hashes, strict=True):
            if hmac.compare_digest(digest, expected):
                found = entry
        return found

    def authenticate(self, authorization: str | None) -> TokenEntry:
        """The entry of a valid bearer token, whatever its scopes; raises
        :class:`Unauthorized` for no or an invalid token."""
        token = bearer(authorization)
        if token is None:
            raise Unauthorized("this operation needs 'Authorization: Bearer <token>'")
        entry = self.identify(token)
        if entry is None:
            raise Unauthorized("the bearer token is not valid")
        return entry

    def authorize(self, authorization: str | None, scope: Scope | None) -> TokenEntry | None:
        """Check an ``Authorization`` value for ``scope`` (None = open).

        Raises :class:`Unauthorized` (no or invalid token) or :class:`Forbidden` (a
        valid token without the scope); returns the matching entry, or None when no
        check was needed.
        """
        if scope is None or not self.enabled:
            return None
        entry = self.authenticate(authorization)
        if scope not in entry.scopes:
            raise Forbidden(f"token '{entry.name}' lacks the '{scope.value}' scope")
        return entry
