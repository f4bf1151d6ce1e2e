"""A frame to inspect, as every front-end (REST, gRPC, KServe, Redis) hands it in."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from models.processing import RawLayout
from service.records import DetectionRecord


@dataclass
class Frame:
    """Image bytes plus where they came from and how long they may take.

    ``data`` is an encoded image (JPEG, PNG, BMP, TIFF), or raw camera pixels when
    ``pixels`` gives their layout (:mod:`models.processing.raw`).

    ``deadline`` is wall-clock epoch seconds (``time.time()``) so it stays meaningful
    when the frame crosses processes through Redis.

    ``image_sha256`` is the client's SHA-256 of ``data`` (32 bytes), checked right before
    the decode (:mod:`service.integrity`); None when the client sent none.
    """

    data: bytes
    deadline: float
    frame_id: str = ""  # "" = assign a fresh uuid4 (only then: it costs a syscall)
    line: str | None = None
    camera: str | None = None
    model_ref: str | None = None
    image_name: str | None = None
    pixels: RawLayout | None = None
    image_sha256: bytes | None = None
    received: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        if not self.frame_id:
            self.frame_id = uuid.uuid4().hex

    def remaining(self) -> float:
        """Seconds left until the deadline (negative when passed)."""
        return self.deadline - time.time()


class FrameBackend(Protocol):
    """Turns frames into detection records: in-process batcher or Redis workers."""

    @property
    def ready(self) -> bool:
        """True when frames can be answered (models warm, queue reachable)."""
        ...

    async def inspect(self, frame: Frame) -> DetectionRecord:
        """Inspect one frame; raises a :class:`service.errors.LineInspectError` subclass."""
        ...
