"""The in-process frame backend: decode off the loop, batch, post-process, record.

Used directly by the single-node service and by the Redis inference workers, so both
paths run exactly the same code.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from models.processing import (
    Detections,
    ImageDecodeError,
    ImageTooLargeError,
    LetterboxInfo,
    RawLayout,
    decode_scaled,
    letterbox,
    raw_pixels,
)
from service.batcher import BatchItem
from service.config import Settings
from service.errors import (
    DeadlineExceeded,
    InvalidImage,
    InvalidInput,
    NotReady,
    PayloadTooLarge,
)
from service.frames import Frame
from service.integrity import check_present
from service.integrity import verify as verify_digest
from service.manager import ModelManager, Runner
from service.metrics import Metrics
from service.records import DetectionRecord, build_record
from service.registry import Registry, parse_ref
from service.threads import name_os_thread

# Raw frames up to this many pixels (a 640x480 Mono8 VGA frame) are letterboxed on
# the event loop; larger ones and every encoded image go to the decode threads.
INLINE_RAW_PIXELS = 640 * 480


def prepare(
    data: bytes,
    size: int,
    max_pixels: int,
    pixels: RawLayout | None = None,
    sha256: bytes | None = None,
) -> tuple[np.ndarray, LetterboxInfo, tuple[int, int]]:
    """Decode and letterbox one image into an ``SxSx3`` uint8 model input (CPU-bound).

    The float conversion happens when the batch is assembled
    (:func:`models.processing.batch_inputs`). Large JPEG frames are decoded at a reduced
    scale (DCT scaling), never below the letterbox size; boxes still map to the original
    frame's pixels. With ``pixels``, ``data`` is a raw buffer of that layout (a ``mono8``
    frame gives an ``SxS`` input). With ``sha256``, ``data`` must hash to it first (the
    client's integrity digest, :mod:`service.integrity`), else :class:`InvalidImage`."""
    verify_digest(data, sha256)
    try:
        if pixels is None:
            img, orig = decode_scaled(data, max_pixels, fit=size)
        else:
            img, orig = raw_pixels(data, pixels, max_pixels), (pixels.width, pixels.height)
    except ImageTooLargeError as exc:
        raise PayloadTooLarge(str(exc)) from exc
    except ImageDecodeError as exc:
        raise InvalidImage(str(exc)) from exc
    boxed, info = letterbox(img, size, orig_size=orig)
    return boxed, info, orig


def _as_input(tensor: np.ndarray, size: int) -> tuple[np.ndarray, LetterboxInfo, tuple[int, int]]:
    """Check a preprocessed ``[3,S,S]`` tensor; its "original image" is the input itself."""
    if tensor.shape != (3, size, size):
        raise InvalidInput(
            f"preprocessed tensor must be [3,{size},{size}], got {list(tensor.shape)}"
        )
    return tensor.astype(np.float32, copy=False), LetterboxInfo(1.0, 0.0, 0.0), (size, size)


class Inspector:
    """Inspect frames with the local models (implements ``FrameBackend``)."""

    def __init__(
        self,
        manager: ModelManager,
        metrics: Metrics,
        executor: ThreadPoolExecutor,
        max_pixels: int,
        fail_classes: list[str] | None = None,
        require_digest: bool = False,
    ) -> None:
        self.manager, self.metrics, self.executor = manager, metrics, executor
        self.max_pixels = max_pixels
        self.require_digest = require_digest
        self.fail_classes = None if fail_classes is None else tuple(fail_classes)

    @property
    def ready(self) -> bool:
        """True once every configured model is warm."""
        return self.manager.ready

    async def inspect(self, frame: Frame) -> DetectionRecord:
        """Decode, batch, infer and build the detection record of one frame."""
        return await self._inspect(frame, None)

    async def inspect_tensor(self, frame: Frame, tensor: np.ndarray) -> DetectionRecord:
        """Like :meth:`inspect` for an already preprocessed ``[3,S,S]`` float32 tensor
        (letterboxed, RGB, 0..1; KServe's FP32 input). ``frame.data`` is ignored and the
        boxes are in model-input pixels."""
        return await self._inspect(frame, tensor)

    async def _inspect(self, frame: Frame, pre: np.ndarray | None) -> DetectionRecord:
        if not self.manager.ready:
            raise NotReady("models are still warming up")
        if frame.remaining() <= 0:
            self.metrics.dropped.labels("deadline").inc()
            raise DeadlineExceeded("frame arrived after its deadline")
        check_present(frame.image_sha256, self.require_digest)
        runner = await self.manager.acquire(frame.model_ref)
        try:
            item = await self._prepare(runner, frame, pre)
            dets = await self._wait(runner, item)
        except Exception:
            self.metrics.model_stats.failure(
                (runner.version.name, runner.version.version), time.perf_counter() - frame.received
            )
            raise
        finally:
            self.manager.release(runner)
        return self._record(runner, frame, item, dets)

    async def _prepare(self, runner: Runner, frame: Frame, pre: np.ndarray | None) -> BatchItem:
        """The frame as a model input of ``runner``, with its deadline."""
        imgsz = runner.session.spec.imgsz
        px, digest = frame.pixels, frame.image_sha256
        if px is not None and px.width * px.height <= INLINE_RAW_PIXELS:
            # A small raw frame is one resize (~25 us): cheaper here than the
            # executor round trip it would need (~75 us of thread hand-offs).
            tensor, info, size = prepare(frame.data, imgsz, self.max_pixels, px, digest)
        elif pre is None:
            tensor, info, size = await asyncio.get_running_loop().run_in_executor(
                self.executor, prepare, frame.data, imgsz, self.max_pixels, px, digest
            )
        else:
            tensor, info, size = _as_input(pre, imgsz)
        return BatchItem(tensor, info, size, time.monotonic() + frame.remaining())

    async def _wait(self, runner: Runner, item: BatchItem) -> Detections:
        """Submit ``item`` to the runner's batcher and wait for it until its deadline."""
        remaining = item.deadline - time.monotonic()
        item.waiter = asyncio.get_running_loop().create_future()  # woken once per batch
        future = runner.batcher.submit(item)
        try:
            async with asyncio.timeout(max(remaining, 0.0)):  # lighter than wait_for
                await item.waiter
        except TimeoutError:
            future.cancel()  # never run it if it is still queued
            self.metrics.dropped.labels("deadline").inc()
            raise DeadlineExceeded(
                f"no result within the deadline ({remaining * 1000:.0f} ms)"
            ) from None
        return future.result()  # settled before its waiter was woken

    def _record(
        self, runner: Runner, frame: Frame, item: BatchItem, dets: Detections
    ) -> DetectionRecord:
        """Build the frame's record and count it in the metrics."""
        v = runner.version
        record = build_record(
            v,
            runner.session.spec.class_names,
            dets,
            self.fail_classes,
            image=frame.image_name,
            frame_id=frame.frame_id,
            line=frame.line,
            camera=frame.camera,
            queue_s=item.queue_wait,
            inference_s=item.inference_time,
            total_s=time.perf_counter() - frame.received,
        )
        self.metrics.observe_frame(
            frame.line,
            frame.camera,
            v.name,
            v.version,
            record.verdict,
            (d.label for d in record.detections),
        )
        self.metrics.model_stats.success(
            (v.name, v.version),
            record.timing_ms.total / 1000,
            item.queue_wait,
            item.inference_time,
            item.input_time,
            item.output_time,
        )
        return record


def decode_executor(settings: Settings) -> ThreadPoolExecutor:
    """The decode threads (named ``decode`` in the OS, for profilers and top)."""
    return ThreadPoolExecutor(
        settings.decode_threads,
        thread_name_prefix="decode",
        initializer=name_os_thread,
        initargs=("decode",),
    )


def local_inspector(
    settings: Settings, registry: Registry, metrics: Metrics, executor: ThreadPoolExecutor
) -> Inspector:
    """The in-process backend of ``settings.models``, with its model manager (not started).

    Resolves every configured reference first, so a typo fails start-up with a clear
    message instead of leaving the process unready forever."""
    for ref in settings.models:
        registry.resolve(parse_ref(ref))
    manager = ModelManager(registry, settings, metrics)
    return Inspector(
        manager,
        metrics,
        executor,
        settings.max_pixels,
        settings.fail_classes,
        settings.require_image_digest,
    )
