from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FrameStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRAME_STATUS_UNSPECIFIED: _ClassVar[FrameStatus]
    FRAME_STATUS_INSPECTED: _ClassVar[FrameStatus]
    FRAME_STATUS_SKIPPED: _ClassVar[FrameStatus]
    FRAME_STATUS_EXPIRED: _ClassVar[FrameStatus]
    FRAME_STATUS_FAILED: _ClassVar[FrameStatus]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_PASS: _ClassVar[Verdict]
    VERDICT_FAIL: _ClassVar[Verdict]
FRAME_STATUS_UNSPECIFIED: FrameStatus
FRAME_STATUS_INSPECTED: FrameStatus
FRAME_STATUS_SKIPPED: FrameStatus
FRAME_STATUS_EXPIRED: FrameStatus
FRAME_STATUS_FAILED: FrameStatus
VERDICT_UNSPECIFIED: Verdict
VERDICT_PASS: Verdict
VERDICT_FAIL: Verdict

class InspectRequest(_message.Message):
    __slots__ = ("image", "encoding", "line", "camera", "frame_id", "deadline_ms", "model", "image_name", "width", "height", "image_sha256")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SHA256_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    encoding: str
    line: str
    camera: str
    frame_id: str
    deadline_ms: float
    model: str
    image_name: str
    width: int
    height: int
    image_sha256: bytes
    def __init__(self, image: _Optional[bytes] = ..., encoding: _Optional[str] = ..., line: _Optional[str] = ..., camera: _Optional[str] = ..., frame_id: _Optional[str] = ..., deadline_ms: _Optional[float] = ..., model: _Optional[str] = ..., image_name: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., image_sha256: _Optional[bytes] = ...) -> None: ...

class InspectResponse(_message.Message):
    __slots__ = ("frame_id", "line", "camera", "status", "record", "error")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    line: str
    camera: str
    status: FrameStatus
    record: DetectionRecord
    error: Error
    def __init__(self, frame_id: _Optional[str] = ..., line: _Optional[str] = ..., camera: _Optional[str] = ..., status: _Optional[_Union[FrameStatus, str]] = ..., record: _Optional[_Union[DetectionRecord, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "grpc_code")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    GRPC_CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    grpc_code: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., grpc_code: _Optional[str] = ...) -> None: ...

class DetectionRecord(_message.Message):
    __slots__ = ("image", "frame_id", "line", "camera", "model", "verdict", "detections", "timing_ms")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    TIMING_MS_FIELD_NUMBER: _ClassVar[int]
    image: str
    frame_id: str
    line: str
    camera: str
    model: ModelInfo
    verdict: Verdict
    detections: _containers.RepeatedCompositeFieldContainer[Detection]
    timing_ms: Timing
    def __init__(self, image: _Optional[str] = ..., frame_id: _Optional[str] = ..., line: _Optional[str] = ..., camera: _Optional[str] = ..., model: _Optional[_Union[ModelInfo, _Mapping]] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., detections: _Optional[_Iterable[_Union[Detection, _Mapping]]] = ..., timing_ms: _Optional[_Union[Timing, _Mapping]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "role")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    role: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., role: _Optional[str] = ...) -> None: ...

class Detection(_message.Message):
    __slots__ = ("box", "score", "label")
    BOX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    box: Box
    score: float
    label: str
    def __init__(self, box: _Optional[_Union[Box, _Mapping]] = ..., score: _Optional[float] = ..., label: _Optional[str] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("queue", "inference", "total")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    queue: float
    inference: float
    total: float
    def __init__(self, queue: _Optional[float] = ..., inference: _Optional[float] = ..., total: _Optional[float] = ...) -> None: ...
