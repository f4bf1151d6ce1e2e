"""The committed gRPC stubs match proto/, and the v2 proto matches tritonclient's wire format."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from service.grpc import codegen
from service.grpc.generated.kserve import grpc_predict_v2_pb2 as ours
from service.grpc.generated.lineinspect.v1 import inspection_pb2


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_committed_stubs_are_up_to_date(tmp_path: Path) -> None:
    import grpc_tools  # noqa: F401  (dev extra; a missing one fails here)

    codegen.generate(tmp_path)
    fresh, committed = _files(tmp_path), _files(codegen.GENERATED)
    stale = sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))
    assert not stale, f"stubs are stale, run `make proto`: {stale}"


def _field_sig(f: FieldDescriptor) -> tuple[object, ...]:
    target = (
        f.message_type.full_name if f.message_type else f.enum_type.full_name if f.enum_type else ""
    )
    return (f.number, f.type, f.is_repeated, target)


def _assert_compatible(mine: Descriptor, theirs: Descriptor) -> None:
    for f in mine.fields:
        other = theirs.fields_by_name.get(f.name)
        assert other is not None, f"{mine.full_name}.{f.name} is not in tritonclient's proto"
        assert _field_sig(f) == _field_sig(other), f"{mine.full_name}.{f.name} differs"
    for nested in mine.nested_types:
        _assert_compatible(nested, theirs.nested_types_by_name[nested.name])


def test_kserve_proto_matches_tritonclient_field_for_field() -> None:
    from tritonclient.grpc import service_pb2 as triton

    for name, msg in ours.DESCRIPTOR.message_types_by_name.items():
        theirs = triton.DESCRIPTOR.message_types_by_name.get(name)
        if theirs is None:  # ModelConfig & co. live in tritonclient's model_config.proto
            theirs = triton.DESCRIPTOR.pool.FindMessageTypeByName(f"inference.{name}")
        _assert_compatible(msg, theirs)
    service = ours.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    upstream = triton.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    for method in service.methods:
        other = upstream.methods_by_name[method.name]
        assert method.input_type.full_name == other.input_type.full_name
        assert method.output_type.full_name == other.output_type.full_name
        assert (method.client_streaming, method.server_streaming) == (
            other.client_streaming,
            other.server_streaming,
        )


def test_stubs_use_private_pools_so_they_coexist_with_other_v2_stubs() -> None:
    default = descriptor_pool.Default()
    assert ours.DESCRIPTOR.pool is not default and inspection_pb2.DESCRIPTOR.pool is not default
    import tritonclient.grpc  # noqa: F401  (registers inference.* in the default pool)

    assert ours.ModelInferRequest(model_name="m").model_name == "m"


def test_benchmark_frames_are_valid_requests() -> None:
    """The stream benchmark's pre-serialised frames parse as the request it means."""
    from benchmarks.stream_bench import frame_bytes
    from service.grpc.generated.lineinspect.v1 import inspection_pb2 as pb

    header = pb.InspectRequest(image=b"\xff\xd8" * 5000, encoding="jpeg", line="L1", camera="c2")
    msg = pb.InspectRequest.FromString(frame_bytes(header.SerializeToString(), "c2-41"))
    assert (msg.frame_id, msg.camera, msg.line, msg.encoding) == ("c2-41", "c2", "L1", "jpeg")
    assert msg.image == header.image
