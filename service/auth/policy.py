"""The one table of who may call what: every HTTP route and gRPC method → its scope.

How a new route declares its scope: add one row here, keyed by its HTTP method and
its path template exactly as the router declares it (``("GET", "/v1/audit"):
Scope.READ``), or by its full gRPC method name (``"/package.Service/Method"``).
``OPEN`` (None) means no token is ever needed; keep that to liveness, readiness and
the API description. Nothing else is needed in the route itself: the HTTP middleware
(:mod:`service.auth.http`) and the gRPC interceptor (:mod:`service.auth.grpc`) look the
route up here before it runs.

A route missing from the table needs the ``admin`` scope (fail closed), and the scope
tests (tests/integration/test_scopes.py) fail for it, so it cannot be forgotten. Planned
routes name their scope the same way: datasets and samples ``label``, jobs ``admin``,
audit ``read``.
"""

from __future__ import annotations

from typing import Final

from service.auth.tokens import Scope

OPEN: Final = None
#: The scope a route or method missing from the tables needs (fail closed).
UNLISTED: Final = Scope.ADMIN

_V2_MODEL = ("/v2/models/{model_name}", "/v2/models/{model_name}/versions/{model_version}")

HTTP_SCOPES: Final[dict[tuple[str, str], Scope | None]] = {
    # liveness, readiness and the API description: always open
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/v2/health/live"): OPEN,
    ("GET", "/v2/health/ready"): OPEN,
    **{("GET", f"{m}/ready"): OPEN for m in _V2_MODEL},
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/docs/oauth2-redirect"): OPEN,
    ("GET", "/redoc"): OPEN,
    # inspection
    ("POST", "/v1/inspect"): Scope.INFER,
    **{("POST", f"{m}/infer"): Scope.INFER for m in _V2_MODEL},
    # model cards, metadata, statistics
    ("GET", "/v1/models"): Scope.READ,
    ("GET", "/v1/models/{name}"): Scope.READ,
    ("GET", "/v1/models/{name}/history"): Scope.READ,
    ("GET", "/v2"): Scope.READ,
    ("GET", "/v2/models/stats"): Scope.READ,
    **{("GET", m): Scope.READ for m in _V2_MODEL},
    **{("GET", f"{m}/config"): Scope.READ for m in _V2_MODEL},
    **{("GET", f"{m}/stats"): Scope.READ for m in _V2_MODEL},
    # labelled data: the store, intake and Label Studio (docs/data.md)
    ("GET", "/v1/datasets"): Scope.LABEL,
    ("GET", "/v1/datasets/{name}"): Scope.LABEL,
    ("POST", "/v1/datasets/{name}/samples"): Scope.LABEL,
    ("PUT", "/v1/samples/{sha256}/labels"): Scope.LABEL,
    ("GET", "/v1/samples"): Scope.LABEL,
    ("GET", "/v1/samples/{sha256}"): Scope.LABEL,
    ("GET", "/v1/samples/{sha256}/image"): Scope.LABEL,
    ("POST", "/v1/integrations/label-studio"): Scope.LABEL,
    # a PLC or operator flags a frame it was answered for: the inspecting client's scope
    ("POST", "/v1/frames/{frame_id}/flag"): Scope.INFER,
    # training jobs (docs/learning.md)
    ("POST", "/v1/jobs"): Scope.ADMIN,
    ("GET", "/v1/jobs"): Scope.ADMIN,
    ("GET", "/v1/jobs/{job_id}"): Scope.ADMIN,
    ("DELETE", "/v1/jobs/{job_id}"): Scope.ADMIN,
    ("GET", "/v1/jobs/{job_id}/log"): Scope.ADMIN,
    # changes to the service
    ("PUT", "/v1/models/{name}/aliases/{alias}"): Scope.ADMIN,
    ("POST", "/v1/models/{name}/rollback"): Scope.ADMIN,
    # Prometheus
    ("GET", "/metrics"): Scope.METRICS,
}

_INSPECTION = "/lineinspect.v1.InspectionService/"
_KSERVE = "/inference.GRPCInferenceService/"

GRPC_SCOPES: Final[dict[str, Scope | None]] = {
    "/grpc.health.v1.Health/Check": OPEN,
    "/grpc.health.v1.Health/Watch": OPEN,
    _KSERVE + "ServerLive": OPEN,
    _KSERVE + "ServerReady": OPEN,
    _KSERVE + "ModelReady": OPEN,
    _INSPECTION + "Inspect": Scope.INFER,
    _INSPECTION + "StreamInspect": Scope.INFER,
    _KSERVE + "ModelInfer": Scope.INFER,
    _KSERVE + "ModelStreamInfer": Scope.INFER,
    _KSERVE + "ServerMetadata": Scope.READ,
    _KSERVE + "ModelMetadata": Scope.READ,
    _KSERVE + "ModelConfig": Scope.READ,
    _KSERVE + "ModelStatistics": Scope.READ,
    # the service description; reflection can also be switched off (grpc_reflection)
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Scope.READ,
}


def http_scope(method: str, path_template: str) -> Scope | None:
    """The scope an HTTP route needs (HEAD as GET); ``UNLISTED`` when not in the table."""
    key = ("GET" if method == "HEAD" else method, path_template)
    return HTTP_SCOPES.get(key, UNLISTED)


def rpc_scope(method: str) -> Scope | None:
    """The scope a gRPC method needs; ``UNLISTED`` when not in the table."""
    return GRPC_SCOPES.get(method, UNLISTED)
