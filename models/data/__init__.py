"""Training data: annotation readers/writers, DATA.yaml and splits, augmentation, dataset.

The torch-free parts are imported here; the dataset names (which need torch) are
imported on first use (PEP 562), so the torch-free data store (service/store) can use
the readers, writers and fingerprint without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from models.data.augment import AugmentConfig, augment_items
from models.data.config import DataConfig, load_data_config, load_splits
from models.data.fingerprint import fingerprint
from models.data.sample import Sample
from models.data.split import stratified_split

_TORCH_NAMES = ("DetectionDataset", "ImageMeta", "build_loader", "collate", "load_rgb")

__all__ = [
    "AugmentConfig",
    "DataConfig",
    "DetectionDataset",
    "ImageMeta",
    "Sample",
    "augment_items",
    "build_loader",
    "collate",
    "fingerprint",
    "load_data_config",
    "load_rgb",
    "load_splits",
    "stratified_split",
]


def __getattr__(name: str) -> Any:
    if name not in _TORCH_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("models.data.dataset"), name)
    globals()[name] = value
    return value
