"""lineinspect.v1 over gRPC on a real server: unary, streams, flow control, ops, errors."""

from __future__ import annotations

import dataclasses
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from service.api.app import build_context, create_app
from service.grpc.convert import record_from_proto
from service.grpc.generated.lineinspect.v1 import inspection_pb2 as pb
from service.grpc.generated.lineinspect.v1 import inspection_pb2_grpc as pb_grpc
from service.grpc.server import GrpcEdge
from service.registry import Registry
from tests.conftest import defect_image, encode
from tests.integration.test_rest import metric_samples
from tests.support.grpc_app import Served, serve_grpc, settings_for
from tests.support.http import HTTP
from tests.support.servers import serve_app, wait_until
from tests.support.tiny_onnx import write_artefact

JPEG = encode(defect_image())
STATUS = pb.FrameStatus.Name


@pytest.fixture
def served(tiny_registry: Registry) -> Iterator[Served]:
    settings = settings_for(
        tiny_registry.root,
        grpc_stream_in_flight=2,
        grpc_stream_buffer=16,
        default_deadline_ms=60_000,
        max_pixels=60_000,
        grpc_max_message_bytes=2**20,
    )
    with serve_grpc(settings) as s:
        yield s


def stub_for(target: str, **channel_kw: Any) -> pb_grpc.InspectionServiceStub:
    return pb_grpc.InspectionServiceStub(grpc.insecure_channel(target, **channel_kw))


def test_unary_inspect_returns_the_same_record_as_rest(served: Served) -> None:
    stub = stub_for(served.target)
    req = pb.InspectRequest(
        image=JPEG, encoding="image/jpeg", line="L1", camera="c3", frame_id="f-1"
    )
    resp, call = stub.Inspect.with_call(req, metadata=(("x-request-id", "rid-42"),))
    assert resp.status == pb.FRAME_STATUS_INSPECTED and resp.frame_id == "f-1"
    assert ("x-request-id", "rid-42") in tuple(call.trailing_metadata())
    rec = record_from_proto(resp.record)
    rest = HTTP.post(
        served.url + "/v1/inspect",
        content=JPEG,
        headers={"Content-Type": "image/jpeg"},
        params={"line": "L1", "camera": "c3", "frame_id": "f-1"},
    ).json()
    got = rec.model_dump(exclude={"timing_ms"})
    assert got == {k: v for k, v in rest.items() if k != "timing_ms"}
    assert rec.verdict == "fail" and rec.detections


def test_raw_camera_pixels_get_the_record_of_the_same_image_encoded(served: Served) -> None:
    stub = stub_for(served.target)
    img = defect_image()  # grey levels only: its Mono8 buffer is the same picture
    h, w = img.shape[:2]
    png = pb.InspectRequest(image=encode(img, "PNG"), encoding="png", camera="c", frame_id="f")
    want = record_from_proto(stub.Inspect(png).record).model_dump(exclude={"timing_ms"})
    assert want["detections"]
    raw = {"Mono8": img[..., 0].tobytes(), "RGB8": img.tobytes(), "BGR8": img[..., ::-1].tobytes()}
    for enc, data in raw.items():
        req = pb.InspectRequest(
            image=data, encoding=enc, width=w, height=h, camera="c", frame_id="f"
        )
        got = record_from_proto(stub.Inspect(req).record).model_dump(exclude={"timing_ms"})
        assert got == want, enc
    over = pb.InspectRequest(image=bytes(700 * 500), encoding="Mono8", width=700, height=500)
    with pytest.raises(grpc.RpcError) as err:  # 350k pixels > max_pixels, before any work
        stub.Inspect(over)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(err.value.trailing_metadata())["lineinspect-error"] == "payload_too_large"
    # In a stream, a raw frame whose buffer does not match its size fails alone.
    mono = {"image": raw["Mono8"], "encoding": "Mono8", "width": w}
    reqs = [
        pb.InspectRequest(**mono, height=h, frame_id="a"),
        pb.InspectRequest(**mono, height=h - 1, frame_id="b"),
        pb.InspectRequest(**mono, height=h, frame_id="c"),
    ]
    answers = [(a.frame_id, STATUS(a.status), a.error.code) for a in stub.StreamInspect(iter(reqs))]
    assert answers == [
        ("a", "FRAME_STATUS_INSPECTED", ""),
        ("b", "FRAME_STATUS_FAILED", "invalid_image"),
        ("c", "FRAME_STATUS_INSPECTED", ""),
    ]


def _stream(stub: pb_grpc.InspectionServiceStub, camera: str, n: int) -> list[pb.InspectResponse]:
    def frames() -> Iterator[pb.InspectRequest]:
        for i in range(n):
            expired = i % 50 == 25  # a budget no frame can meet
            yield pb.InspectRequest(
                image=JPEG,
                line="L1",
                camera=camera,
                frame_id=f"{camera}-{i}",
                deadline_ms=0.001 if expired else 0,
            )

    return list(stub.StreamInspect(frames()))


def test_four_camera_streams_answer_every_frame_once_in_order(served: Served) -> None:
    stub, n = stub_for(served.target), 500
    results: dict[str, list[pb.InspectResponse]] = {}
    threads = [
        threading.Thread(target=lambda c=c: results.__setitem__(c, _stream(stub, c, n)))
        for c in ("c0", "c1", "c2", "c3")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == ["c0", "c1", "c2", "c3"]
    totals = {"FRAME_STATUS_SKIPPED": 0, "FRAME_STATUS_EXPIRED": 0, "FRAME_STATUS_INSPECTED": 0}
    for cam, answers in results.items():
        ids = [int(a.frame_id.split("-")[1]) for a in answers]
        assert ids == list(range(n)), f"{cam}: not every frame answered once, in order"
        for i, a in zip(ids, answers, strict=True):
            totals[STATUS(a.status)] += 1
            assert a.camera == cam and a.line == "L1"
            if a.status == pb.FRAME_STATUS_INSPECTED:
                assert a.record.frame_id == a.frame_id and a.record.camera == cam
            elif i % 50 == 25:
                assert a.status in (pb.FRAME_STATUS_EXPIRED, pb.FRAME_STATUS_SKIPPED)
            else:
                assert a.status == pb.FRAME_STATUS_SKIPPED
        assert answers[-1].status == pb.FRAME_STATUS_INSPECTED  # the newest frame wins
    assert sum(totals.values()) == 4 * n and totals["FRAME_STATUS_EXPIRED"] >= 1
    dropped = {
        s.labels["reason"]: s.value
        for s in metric_samples(served.url)["lineinspect_dropped_frames_total"]
    }
    assert dropped.get("superseded", 0) == totals["FRAME_STATUS_SKIPPED"]
    assert dropped.get("deadline", 0) == totals["FRAME_STATUS_EXPIRED"]
    assert served.edge.inspection is not None and served.edge.inspection.streams == []


def test_slow_consumer_pauses_reading_and_server_buffers_stay_bounded(served: Served) -> None:
    big = encode(defect_image(600, 560), "BMP")  # ~1 MB per frame
    sent: list[int] = []

    def frames() -> Iterator[pb.InspectRequest]:
        for i in range(200):
            sent.append(i)
            yield pb.InspectRequest(image=big, camera="c", frame_id=str(i))

    # A client that does not read: a tiny receive window and no window growth.
    opts = [
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.lookahead_bytes", 1024),
        ("grpc.max_send_message_length", 2**21),
    ]
    responses = stub_for(served.target, options=opts).StreamInspect(frames())
    servicer = served.edge.inspection
    assert servicer is not None

    def paused() -> bool:
        st = servicer.streams
        return bool(st) and st[0].outstanding == 16 and st[0].running == 0 and st[0].waiting == 0

    wait_until(paused)  # every admitted frame is answered, the answers cannot leave
    stats = servicer.streams[0]
    assert stats.peak_outstanding == 16 and stats.peak_running <= 2
    assert len(sent) < 100, "the server kept reading although its answers could not leave"
    ids = [int(r.frame_id) for r in responses]  # now read: everything flows again
    assert ids == list(range(200)) and stats.peak_outstanding == 16


def test_health_follows_readiness_and_reflection_lists_services(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    reg.root.mkdir()
    reg.register(write_artefact(tmp_path / "slow", extra_cost=300), "slow", alias="production")
    settings = settings_for(reg.root, models=["slow"], warmup_runs=15, max_batch=32)
    with serve_grpc(settings, ready_path=None) as s:
        channel = grpc.insecure_channel(s.target)
        health = health_pb2_grpc.HealthStub(channel)

        def status(service: str = "") -> int:
            return int(health.Check(health_pb2.HealthCheckRequest(service=service)).status)

        assert status() == health_pb2.HealthCheckResponse.NOT_SERVING  # still warming up
        wait_until(lambda: status() == health_pb2.HealthCheckResponse.SERVING, timeout=120)
        assert status("lineinspect.v1.InspectionService") == health_pb2.HealthCheckResponse.SERVING
        assert status("inference.GRPCInferenceService") == health_pb2.HealthCheckResponse.SERVING
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert {
            "lineinspect.v1.InspectionService",
            "inference.GRPCInferenceService",
            "grpc.health.v1.Health",
        } <= services
        pool = DescriptorPool(db)
        methods = {
            m.name for m in pool.FindServiceByName("lineinspect.v1.InspectionService").methods
        }
        assert methods == {"Inspect", "StreamInspect"}
        infer = pool.FindMessageTypeByName("inference.ModelInferRequest")
        assert infer.fields_by_name["raw_input_contents"].number == 7


def test_errors_are_clean_status_codes_and_the_server_keeps_serving(served: Served) -> None:
    stub = stub_for(served.target, options=[("grpc.max_send_message_length", 2**22)])

    def code(**kw: Any) -> tuple[grpc.StatusCode, str]:
        try:
            stub.Inspect(pb.InspectRequest(**kw))
        except grpc.RpcError as exc:
            meta = dict(exc.trailing_metadata() or ())
            return exc.code(), str(meta.get("lineinspect-error", ""))
        raise AssertionError("no error")

    assert code(image=b"\0" * (2**20 + 10)) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "",
    )  # message size
    assert code(image=b"junk") == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_image")
    assert code(image=b"") == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_image")
    big = encode(defect_image(300, 300))  # 90k pixels > max_pixels
    assert code(image=big) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "payload_too_large")
    assert code(image=JPEG, model="nope") == (grpc.StatusCode.NOT_FOUND, "model_not_found")
    assert code(image=JPEG, line="x" * 65) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_input")
    assert code(image=JPEG, encoding="gif") == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "unsupported_media_type",
    )
    assert code(image=JPEG, deadline_ms=0.001) == (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "deadline_exceeded",
    )
    assert stub.Inspect(pb.InspectRequest(image=JPEG)).status == pb.FRAME_STATUS_INSPECTED
    # In a stream a bad frame is answered and the stream goes on.
    reqs = [
        pb.InspectRequest(image=JPEG, camera="c", frame_id="a"),
        pb.InspectRequest(image=b"junk", camera="c", frame_id="b"),
        pb.InspectRequest(image=JPEG, camera="c", frame_id="c", encoding="gif"),
        pb.InspectRequest(image=JPEG, camera="c", frame_id="d"),
    ]
    answers = list(stub.StreamInspect(iter(reqs)))
    assert [(a.frame_id, STATUS(a.status), a.error.code) for a in answers] == [
        ("a", "FRAME_STATUS_INSPECTED", ""),
        ("b", "FRAME_STATUS_FAILED", "invalid_image"),
        ("c", "FRAME_STATUS_FAILED", "unsupported_media_type"),
        ("d", "FRAME_STATUS_INSPECTED", ""),
    ]
    assert answers[1].error.grpc_code == "INVALID_ARGUMENT"
    errors = metric_samples(served.url)["lineinspect_errors_total"]
    assert any(
        e.labels["protocol"] == "grpc" and e.labels["status"] == "INVALID_ARGUMENT" for e in errors
    )


class _Exploding:
    """A backend with a bug: every frame raises a non-LineInspectError."""

    ready = True

    async def inspect(self, frame: Any) -> Any:
        raise RuntimeError("bug")


def test_unknown_errors_become_internal_with_the_request_id(
    tiny_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    def context(settings: Any) -> Any:
        return dataclasses.replace(build_context(settings), backend=_Exploding())

    edge = GrpcEdge(port=0)
    app = create_app(settings_for(tiny_registry.root), context_factory=context, edges=(edge,))
    with serve_app(app):
        stub = stub_for(f"127.0.0.1:{edge.port}")
        with pytest.raises(grpc.RpcError) as err:
            stub.Inspect(pb.InspectRequest(image=JPEG), metadata=(("x-request-id", "rid-7"),))
        assert err.value.code() == grpc.StatusCode.INTERNAL and "rid-7" in err.value.details()
        assert "bug" not in err.value.details()  # internals stay in the log
        answers = list(stub.StreamInspect(iter([pb.InspectRequest(image=JPEG, frame_id="x")])))
        assert (
            answers[0].status == pb.FRAME_STATUS_FAILED and answers[0].error.grpc_code == "INTERNAL"
        )
    assert any("rid-7" in r.getMessage() for r in caplog.records)


def test_shutdown_answers_admitted_frames_then_ends_the_stream(tiny_registry: Registry) -> None:
    release = threading.Event()

    def frames() -> Iterator[pb.InspectRequest]:
        for i in range(20):
            yield pb.InspectRequest(image=JPEG, camera=f"c{i % 4}", frame_id=str(i))
        release.wait(60)  # keep the stream open until the server goes away

    settings = settings_for(tiny_registry.root)
    with serve_grpc(settings) as s:
        responses = stub_for(s.target).StreamInspect(frames())
        first = next(responses)
        servicer = s.edge.inspection
        assert servicer is not None
        wait_until(lambda: bool(servicer.streams) and servicer.streams[0].admitted == 20)
    # serve_app has shut the server down: the rest of the admitted frames were answered
    answers = [first]
    with pytest.raises(grpc.RpcError) as err:
        answers.extend(responses)
    release.set()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert sorted(int(a.frame_id) for a in answers) == list(range(20))
    assert all(a.status in (pb.FRAME_STATUS_INSPECTED, pb.FRAME_STATUS_SKIPPED) for a in answers)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def test_tls_requires_a_client_certificate(tiny_registry: Registry, tmp_path: Path) -> None:
    d = tmp_path
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=d,
    )
    exts = {
        "server": "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "client": "extendedKeyUsage=clientAuth",
    }
    for name, ext in exts.items():
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=d,
        )
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.pem",
            cwd=d,
        )
    settings = settings_for(
        tiny_registry.root,
        grpc_tls_cert=d / "server.pem",
        grpc_tls_key=d / "server.key",
        grpc_tls_client_ca=d / "ca.pem",
    )
    ca = (d / "ca.pem").read_bytes()
    with serve_grpc(settings) as s:
        target = f"localhost:{s.edge.port}"
        good = grpc.ssl_channel_credentials(
            ca, (d / "client.key").read_bytes(), (d / "client.pem").read_bytes()
        )
        stub = pb_grpc.InspectionServiceStub(grpc.secure_channel(target, good))
        assert stub.Inspect(pb.InspectRequest(image=JPEG)).status == pb.FRAME_STATUS_INSPECTED
        anonymous = pb_grpc.InspectionServiceStub(
            grpc.secure_channel(target, grpc.ssl_channel_credentials(ca))
        )
        with pytest.raises(grpc.RpcError) as err:
            anonymous.Inspect(pb.InspectRequest(image=JPEG), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        plaintext = stub_for(s.target)
        with pytest.raises(grpc.RpcError):
            plaintext.Inspect(pb.InspectRequest(image=JPEG), timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_serve_with_grpc_port_serves_both_and_stops_cleanly(tiny_registry: Registry) -> None:
    rest, grpc_port = _free_port(), _free_port()
    cmd = [
        sys.executable,
        "-m",
        "service.cli",
        "serve",
        "--registry",
        str(tiny_registry.root),
        "--model",
        "tiny",
        "--port",
        str(rest),
        "--grpc-port",
        str(grpc_port),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{grpc_port}"))

        def serving() -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                r = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.RpcError:
                return False
            return bool(r.status == health_pb2.HealthCheckResponse.SERVING)

        wait_until(serving, timeout=60, interval=0.1)
        ok = stub_for(f"127.0.0.1:{grpc_port}").Inspect(pb.InspectRequest(image=JPEG))
        assert ok.status == pb.FRAME_STATUS_INSPECTED
        assert HTTP.get(f"http://127.0.0.1:{rest}/v2/health/ready").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    log = out.decode(errors="replace")
    # uvicorn re-raises the signal after its graceful shutdown
    assert proc.returncode in (0, -signal.SIGTERM), log[-2000:]
    assert "gRPC stopped" in log and "Application shutdown complete" in log, log[-2000:]
