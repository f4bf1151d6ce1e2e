"""Torch-free pre/post-processing shared by evaluation, ``predict`` and every server.

This is the one implementation of decode → letterbox → box decoding → NMS → verdict,
so the accuracy measured offline is the accuracy served. numpy, OpenCV and Pillow only.
"""

from models.processing.boxes import batched_nms, box_iou, nms, xywh_to_xyxy
from models.processing.decode import decode_predictions
from models.processing.errors import ImageDecodeError, ImageTooLargeError, ProcessingError
from models.processing.image import decode_image, decode_scaled, probe_image
from models.processing.letterbox import (
    LetterboxInfo,
    batch_inputs,
    letterbox,
    preprocess_batch,
    to_tensor,
    unletterbox_boxes,
)
from models.processing.postprocess import (
    DEFAULT_IOU_THRESHOLD,
    FALLBACK_SCORE_THRESHOLD,
    Detections,
    PostprocessConfig,
    postprocess,
)
from models.processing.raw import PIXEL_FORMATS, RawLayout, pixel_format, raw_pixels
from models.processing.spec import SPEC_METADATA_KEY, ModelSpec
from models.processing.verdict import verdict

__all__ = [
    "DEFAULT_IOU_THRESHOLD",
    "FALLBACK_SCORE_THRESHOLD",
    "PIXEL_FORMATS",
    "SPEC_METADATA_KEY",
    "Detections",
    "ImageDecodeError",
    "ImageTooLargeError",
    "LetterboxInfo",
    "ModelSpec",
    "PostprocessConfig",
    "ProcessingError",
    "RawLayout",
    "batch_inputs",
    "batched_nms",
    "box_iou",
    "decode_image",
    "decode_predictions",
    "decode_scaled",
    "letterbox",
    "nms",
    "pixel_format",
    "postprocess",
    "preprocess_batch",
    "probe_image",
    "raw_pixels",
    "to_tensor",
    "unletterbox_boxes",
    "verdict",
    "xywh_to_xyxy",
]
