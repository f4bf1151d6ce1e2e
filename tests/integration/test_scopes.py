"""Scoped tokens on every route and RPC, parametrised over the one scope table.

Every HTTP route of the API (REST + KServe v2) and of the worker, and every gRPC method
the server offers, must have a row in service/auth/policy.py; each is then called with
no token, an invalid token, a token holding every scope but the needed one (403) and
a token holding just that scope (passes the check).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from service.api import kserve
from service.api.app import create_app
from service.api.routes import app_routes
from service.auth.policy import GRPC_SCOPES, HTTP_SCOPES, OPEN
from service.auth.tokens import Scope, TokenEntry, hash_token, new_token
from service.config import load_settings
from service.grpc.generated.kserve import grpc_predict_v2_pb2
from service.grpc.generated.lineinspect.v1 import inspection_pb2
from service.registry import Registry
from service.worker_app import create_worker_app
from tests.conftest import defect_image, encode
from tests.support.grpc_app import Served, serve_grpc, settings_for
from tests.support.tiny_onnx import write_artefact

ONLY = {scope: new_token() for scope in Scope}  # a token with just this scope
ALL_BUT = {scope: new_token() for scope in Scope}  # a token with every other scope
ENTRIES = [
    *(TokenEntry(name=f"only-{s}", sha256=hash_token(t), scopes=(s,)) for s, t in ONLY.items()),
    *(
        TokenEntry(name=f"all-but-{s}", sha256=hash_token(t), scopes=tuple(set(Scope) - {s}))
        for s, t in ALL_BUT.items()
    ),
]
DENIED = (401, 403)
GRPC_DENIED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def _routes(app: Any) -> list[tuple[str, str]]:
    return sorted((m, r.path) for r in app_routes(app) for m in r.methods or () if m != "HEAD")


def _rpcs() -> list[tuple[str, bool, bool]]:
    files = (inspection_pb2, grpc_predict_v2_pb2, health_pb2, reflection_pb2)
    return sorted(
        (f"/{svc.full_name}/{m.name}", m.client_streaming, m.server_streaming)
        for f in files
        for svc in f.DESCRIPTOR.services_by_name.values()
        for m in svc.methods
    )


_settings = load_settings(None)  # the bundled registry: enough to list the routes
API_ROUTES = _routes(create_app(_settings, extra_routers=(kserve.install,)))
WORKER_ROUTES = _routes(create_worker_app(_settings))
RPCS = _rpcs()


@pytest.mark.parametrize("method,path", sorted({*API_ROUTES, *WORKER_ROUTES}))
def test_every_route_has_a_scope_in_the_table(method: str, path: str) -> None:
    assert (method, path) in HTTP_SCOPES, f"{method} {path}: add it to service/auth/policy.py"


@pytest.mark.parametrize("method,_cs,_ss", RPCS)
def test_every_rpc_has_a_scope_in_the_table(method: str, _cs: bool, _ss: bool) -> None:
    assert method in GRPC_SCOPES, f"{method}: add it to service/auth/policy.py"


def test_the_table_names_only_routes_and_rpcs_that_exist() -> None:
    assert set(HTTP_SCOPES) <= {*API_ROUTES, *WORKER_ROUTES}
    assert set(GRPC_SCOPES) <= {m for m, _, _ in RPCS}
    health_like = {k for k, v in HTTP_SCOPES.items() if v is OPEN}
    assert {("GET", p) for p in ("/healthz", "/readyz", "/v2/health/live")} <= health_like


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("scopes")
    reg = Registry(tmp / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp / "art"), "tiny", alias="production")
    with serve_grpc(settings_for(reg.root, tokens=ENTRIES)) as s:
        yield s


PATH_VALUES = {
    "name": "tiny",
    "alias": "production",
    "model_name": "tiny",
    "model_version": "1",
    "sha256": "0" * 64,
    "job_id": "1",
    "frame_id": "frame-1",
    "asset": "index.html",
}
JPEG = encode(defect_image())


def _call(url: str, method: str, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kw: dict[str, Any] = {}
    if path == "/v1/inspect":
        kw = {"content": JPEG, "headers": {**headers, "Content-Type": "image/jpeg"}}
    elif path == "/v1/samples/{sha256}/labels":
        kw = {"json": {"ok": True}, "headers": headers}
    elif method == "PUT":
        kw = {"json": {"version": 1}, "headers": headers}
    elif method == "POST":
        kw = {"json": {"inputs": []}, "headers": headers}
    else:
        kw = {"headers": headers}
    return httpx.request(method, url + path.format(**PATH_VALUES), timeout=30, **kw)


@pytest.mark.parametrize("method,path", API_ROUTES)
def test_http_route_needs_its_scope(served: Served, method: str, path: str) -> None:
    scope = HTTP_SCOPES[(method, path)]
    anonymous = _call(served.url, method, path, None)
    if scope is OPEN:
        assert anonymous.status_code not in DENIED
        return
    for token in (None, "li_not-a-configured-token"):
        r = _call(served.url, method, path, token)
        assert r.status_code == 401, r.text
        assert set(r.json()) == {"error", "message", "request_id"} and r.json()["request_id"]
        assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"]
    r = _call(served.url, method, path, ALL_BUT[scope])
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden" and scope.value in r.json()["message"]
    assert r.json()["request_id"] == r.headers["x-request-id"]
    assert _call(served.url, method, path, ONLY[scope]).status_code not in DENIED


def _rpc(
    target: str, method: str, client_streaming: bool, server_streaming: bool, token: str | None
) -> grpc.StatusCode:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(target) as channel:
        try:
            if client_streaming:
                call = channel.stream_stream(method)(iter([b""]), metadata=metadata, timeout=10)
                list(call)
            elif server_streaming:
                call = channel.unary_stream(method)(b"", metadata=metadata, timeout=10)
                next(call)  # Watch streams forever: its first answer is enough
                call.cancel()
            else:
                channel.unary_unary(method)(b"", metadata=metadata, timeout=10)
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


@pytest.mark.parametrize("method,client_streaming,server_streaming", RPCS)
def test_rpc_needs_its_scope(
    served: Served, method: str, client_streaming: bool, server_streaming: bool
) -> None:
    scope = GRPC_SCOPES[method]

    def code(token: str | None) -> grpc.StatusCode:
        return _rpc(served.target, method, client_streaming, server_streaming, token)

    if scope is OPEN:
        assert code(None) not in GRPC_DENIED
        return
    assert code(None) == grpc.StatusCode.UNAUTHENTICATED
    assert code("li_not-a-configured-token") == grpc.StatusCode.UNAUTHENTICATED
    assert code(ALL_BUT[scope]) == grpc.StatusCode.PERMISSION_DENIED
    assert code(ONLY[scope]) not in GRPC_DENIED


def test_an_unknown_path_needs_a_valid_token_before_its_404(served: Served) -> None:
    for path in ("/v1/nothing", "/v1/models/..%2F..%2Fetc/aliases/x", "/v1/inspect/"):
        assert httpx.get(served.url + path).status_code == 401
        bearer = {"Authorization": f"Bearer {ONLY[Scope.READ]}"}
        r = httpx.get(served.url + path, headers=bearer)
        assert r.status_code in (404, 405, 307), (path, r.status_code)
    r = httpx.delete(served.url + "/v1/inspect")  # a known path, another method
    assert r.status_code == 401


def test_a_grpc_refusal_carries_the_error_code_and_request_id(served: Served) -> None:
    stub = grpc.insecure_channel(served.target).unary_unary(
        "/lineinspect.v1.InspectionService/Inspect"
    )
    with pytest.raises(grpc.RpcError) as err:
        stub(b"", metadata=(("authorization", f"Bearer {ALL_BUT[Scope.INFER]}"),), timeout=10)
    trailer = dict(err.value.trailing_metadata())  # type: ignore[attr-defined]
    assert trailer["lineinspect-error"] == "forbidden" and trailer["x-request-id"]
    assert "infer" in err.value.details()  # type: ignore[attr-defined]


def test_without_tokens_everything_is_open_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = Registry(tmp_path / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp_path / "art"), "tiny", alias="production")
    with caplog.at_level(logging.WARNING), serve_grpc(settings_for(reg.root)) as s:
        r = httpx.put(s.url + "/v1/models/tiny/aliases/production", json={"version": 1})
        assert r.status_code == 200
        assert httpx.get(s.url + "/metrics").status_code == 200
        method = "/inference.GRPCInferenceService/ModelStatistics"
        assert _rpc(s.target, method, False, False, None) == grpc.StatusCode.OK
    warnings = [r for r in caplog.records if "no tokens configured" in r.getMessage()]
    assert len(warnings) == 1


def test_reflection_can_be_switched_off(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp_path / "art"), "tiny", alias="production")
    method = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    with serve_grpc(settings_for(reg.root, grpc_reflection=False)) as s:
        assert _rpc(s.target, method, True, True, None) == grpc.StatusCode.UNIMPLEMENTED


def test_worker_metrics_need_the_metrics_scope(tmp_path: Path) -> None:
    from tests.support.redis_server import free_port
    from tests.support.servers import serve_app

    reg = Registry(tmp_path / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp_path / "art"), "tiny", alias="production")
    settings = settings_for(
        reg.root, tokens=ENTRIES, queue="redis", redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    with serve_app(create_worker_app(settings), ready_path="/healthz") as url:
        assert httpx.get(url + "/healthz").status_code == 200
        assert httpx.get(url + "/readyz").status_code == 503  # open, and no Redis here
        assert httpx.get(url + "/metrics").status_code == 401
        bearer = {"Authorization": f"Bearer {ALL_BUT[Scope.METRICS]}"}
        assert httpx.get(url + "/metrics", headers=bearer).status_code == 403
        bearer = {"Authorization": f"Bearer {ONLY[Scope.METRICS]}"}
        assert httpx.get(url + "/metrics", headers=bearer).status_code == 200
