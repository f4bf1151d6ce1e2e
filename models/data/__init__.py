"""Training data: annotation readers/writers, DATA.yaml and splits, augmentation, dataset.

The torch dataset (:mod:`models.data.dataset`) is imported on first use of its names, so
the readers, splits and fingerprint stay importable on a torch-free install (the
evaluation gate, ``service.gate``, reads golden sets through them).
"""

from typing import Any

from models.data.augment import AugmentConfig, augment_items
from models.data.config import DataConfig, load_data_config, load_splits
from models.data.fingerprint import fingerprint
from models.data.sample import Sample
from models.data.split import stratified_split

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

_DATASET_NAMES = frozenset({"DetectionDataset", "ImageMeta", "build_loader", "collate", "load_rgb"})


def __getattr__(name: str) -> Any:
    if name in _DATASET_NAMES:
        from models.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
