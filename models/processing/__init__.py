"""Torch-free pre/post-processing shared by evaluation, ``predict`` and every server.

This is the one implementation of decode → letterbox → box decoding → NMS → verdict,
so the accuracy measured offline is the accuracy served. Only numpy and Pillow.
"""

from models.processing.boxes import batched_nms, box_iou, nms, xywh_to_xyxy
from models.processing.decode import decode_predictions
from models.processing.errors import ImageDecodeError, ImageTooLargeError, ProcessingError
from models.processing.image import decode_image, probe_image
from models.processing.letterbox import (
    LetterboxInfo,
    letterbox,
    preprocess_batch,
    unletterbox_boxes,
)
from models.processing.postprocess import Detections, postprocess
from models.processing.spec import SPEC_METADATA_KEY, ModelSpec
from models.processing.verdict import verdict

__all__ = [
    "SPEC_METADATA_KEY",
    "Detections",
    "ImageDecodeError",
    "ImageTooLargeError",
    "LetterboxInfo",
    "ModelSpec",
    "ProcessingError",
    "batched_nms",
    "box_iou",
    "decode_image",
    "decode_predictions",
    "letterbox",
    "nms",
    "postprocess",
    "preprocess_batch",
    "probe_image",
    "unletterbox_boxes",
    "verdict",
    "xywh_to_xyxy",
]
