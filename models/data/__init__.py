"""Training data: annotation readers/writers, DATA.yaml and splits, augmentation, dataset."""

from models.data.augment import AugmentConfig, augment_items
from models.data.config import DataConfig, load_data_config, load_splits
from models.data.dataset import DetectionDataset, ImageMeta, build_loader, collate, load_rgb
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
