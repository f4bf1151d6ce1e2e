"""A bad large frame over gRPC is freed as soon as it is answered.

Why ``gc.disable()``: with the garbage collector off, memory is returned only by
reference counting. A reference cycle that reaches the request buffer (an exception's
traceback chained to grpc's own AbortError, for instance) then keeps every 40 MiB
frame alive, and RSS climbs by ~40-80 MB per request; without such a cycle it stays
flat however the collector is tuned. So the bound below holds exactly when no cycle
holds a frame, independent of when (or whether) the collector would have run.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from service.grpc.generated.kserve import grpc_predict_v2_pb2 as kpb
from service.grpc.generated.kserve import grpc_predict_v2_pb2_grpc as kpb_grpc
from service.grpc.generated.lineinspect.v1 import inspection_pb2 as pb
from service.grpc.generated.lineinspect.v1 import inspection_pb2_grpc as pb_grpc
from service.registry import Registry
from tests.support.grpc_app import Served, serve_grpc, settings_for
from tests.support.http import HTTP
from tests.support.tiny_onnx import write_artefact

FRAME = 40 * 2**20
FRAMES = 50
GROWTH_MB = 640  # transient copies of a frame in flight reach ~250 MB; 50 leaked frames: 2,000+


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("memory")
    reg = Registry(tmp / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp / "a1"), "tiny", alias="production")
    with serve_grpc(settings_for(reg.root, grpc_max_message_bytes=64 * 2**20)) as s:
        yield s


@pytest.mark.slow
@pytest.mark.parametrize(
    ("head", "sha256"),
    [(b"", b""), (b"\xff\xd8\xff\xe0", b""), (b"\xff\xd8\xff\xe0", b"\0" * 32)],
    ids=["random", "jpeg-like", "digest-mismatch"],
)
def test_rss_stays_flat_across_bad_large_frames(served: Served, head: bytes, sha256: bytes) -> None:
    options = [("grpc.max_send_message_length", 64 * 2**20)]
    channel = grpc.insecure_channel(served.target, options=options)
    stub = pb_grpc.InspectionServiceStub(channel)
    kstub = kpb_grpc.GRPCInferenceServiceStub(channel)
    bad = head + os.urandom(FRAME - len(head))
    kreq = kpb.ModelInferRequest(model_name="tiny")
    tensor = kreq.inputs.add(name="image_bytes", datatype="BYTES", shape=[1])
    if sha256:
        tensor.parameters["image_sha256"].string_param = sha256.hex()
    kreq.raw_input_contents.append(len(bad).to_bytes(4, "little") + bad)
    gc.collect()
    gc.disable()
    try:
        start = rss_mb()
        for i in range(FRAMES):
            with pytest.raises(grpc.RpcError) as err:
                if i % 5 == 4:  # the KServe edge shares the interceptor
                    kstub.ModelInfer(kreq, timeout=120)
                else:
                    req = pb.InspectRequest(image=bad, encoding="jpeg", image_sha256=sha256)
                    stub.Inspect(req, timeout=120)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            growth = rss_mb() - start
            assert growth < GROWTH_MB, f"RSS grew {growth:.0f} MB after {i + 1} bad frames"
    finally:
        gc.enable()
    channel.close()
    assert HTTP.get(served.url + "/readyz").status_code == 200
