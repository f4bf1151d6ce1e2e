"""The scope table's lookups: HEAD as GET, and fail closed for what it does not list."""

from __future__ import annotations

from service.auth.policy import OPEN, UNLISTED, http_scope, rpc_scope
from service.auth.tokens import Scope


def test_lookups() -> None:
    assert http_scope("POST", "/v1/inspect") == Scope.INFER
    assert http_scope("HEAD", "/v1/models") == http_scope("GET", "/v1/models") == Scope.READ
    assert http_scope("GET", "/healthz") is OPEN
    assert rpc_scope("/lineinspect.v1.InspectionService/StreamInspect") == Scope.INFER
    assert rpc_scope("/grpc.health.v1.Health/Check") is OPEN


def test_what_the_table_does_not_list_needs_admin() -> None:
    assert UNLISTED == Scope.ADMIN
    assert http_scope("DELETE", "/v1/models/{name}") == Scope.ADMIN
    assert rpc_scope("/lineinspect.v1.InspectionService/Unknown") == Scope.ADMIN
