"""Readers and writers for the three supported annotation layouts: YOLO, Pascal VOC, COCO."""

from models.data.formats.coco import read_coco, samples_to_coco, write_coco
from models.data.formats.voc import parse_annotation, read_voc, write_voc
from models.data.formats.yolo import (
    IMAGE_SUFFIXES,
    label_path_for,
    list_yolo_images,
    read_yolo,
    read_yolo_image,
    write_yolo,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "label_path_for",
    "list_yolo_images",
    "parse_annotation",
    "read_coco",
    "read_voc",
    "read_yolo",
    "read_yolo_image",
    "samples_to_coco",
    "write_coco",
    "write_voc",
    "write_yolo",
]
