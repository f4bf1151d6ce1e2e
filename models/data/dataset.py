"""Torch ``Dataset`` over samples with a RAM image cache, the batch collate and the loader.

Preprocessing is exactly the served one (docs/contracts.md): RGB, letterbox to a square
``imgsz`` with pad 114 (:func:`models.processing.letterbox`), ``/255`` float32, NCHW.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from models.data.augment import AugmentConfig, Item, augment_items, to_rgb
from models.data.sample import Sample
from models.processing.image import decode_image
from models.processing.letterbox import LetterboxInfo, letterbox, letterbox_boxes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageMeta:
    """Where a batch image came from: sample index, original ``(width, height)``, letterbox."""

    index: int
    orig_size: tuple[int, int]
    info: LetterboxInfo


def load_rgb(path: Path) -> np.ndarray:
    """Decode an image file to ``HxWx3`` uint8 RGB with the serving decoder."""
    return decode_image(Path(path).read_bytes())


class DetectionDataset(Dataset[tuple[np.ndarray, np.ndarray, ImageMeta]]):
    """Samples → ``(image SxSx3 uint8, targets [K,5] float32 (cls, x1, y1, x2, y2), meta)``.

    With ``cache`` every image is decoded once, up front, into RAM as uint8 (before any
    loader worker forks, so workers share it copy-on-write); with ``grey_cache`` an image
    whose three channels are identical (NEU-DET: all) is kept as one channel, which is
    lossless, saves 2/3 of the RAM and makes augmentation ~3x cheaper. With ``augment`` each item
    is a mosaic with probability ``mosaic_prob`` (while :attr:`mosaic_enabled`), else a
    single augmented image; randomness is drawn from a generator seeded with
    ``(seed, epoch, index)``, so an epoch is reproducible whatever the worker count.
    Call :meth:`set_epoch` at the start of every epoch; with ``close_mosaic = N`` it turns
    mosaic off for the last ``N`` epochs.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        imgsz: int,
        augment: bool,
        mosaic_prob: float = 1.0,
        cache: bool = True,
        aug_cfg: AugmentConfig | None = None,
        close_mosaic: int = 0,
        seed: int = 0,
        grey_cache: bool = True,
    ) -> None:
        self.samples = list(samples)
        self.imgsz = imgsz
        self.augment = augment
        self.mosaic_prob = mosaic_prob
        self.aug_cfg = aug_cfg or AugmentConfig()
        self.close_mosaic = close_mosaic
        self.seed = seed
        self.epoch = 0
        self.mosaic_enabled = True
        self.grey_cache = grey_cache
        self._cache: list[np.ndarray] | None = None
        if cache:
            t0 = time.perf_counter()
            self._cache = [self._read(i) for i in range(len(self.samples))]
            mb = sum(a.nbytes for a in self._cache) / 2**20
            log.info(
                "cached %d images (%.0f MB) in %.1f s",
                len(self._cache),
                mb,
                time.perf_counter() - t0,
            )

    def __len__(self) -> int:
        return len(self.samples)

    def _read(self, i: int) -> np.ndarray:
        s = self.samples[i]
        img = load_rgb(s.image_path)
        if img.shape[:2] != (s.height, s.width):
            raise ValueError(
                f"{s.image_path}: decoded {img.shape[1]}x{img.shape[0]}, "
                f"labels say {s.width}x{s.height}"
            )
        if (
            self.grey_cache
            and (img[..., 0] == img[..., 1]).all()
            and (img[..., 1] == img[..., 2]).all()
        ):
            return np.ascontiguousarray(img[..., 0])  # exactly grey: keep one channel (lossless)
        return img

    def _raw(self, i: int) -> np.ndarray:
        return self._cache[i] if self._cache is not None else self._read(i)

    def load_image(self, i: int) -> np.ndarray:
        """The original ``HxWx3`` uint8 RGB image of sample ``i`` (may be a cached array)."""
        return to_rgb(self._raw(i))

    def set_epoch(self, epoch: int, total_epochs: int | None = None) -> None:
        """Set the epoch (seeds augmentation, shuffle); mosaic off in the last ``close_mosaic``."""
        self.epoch = epoch
        if total_epochs is not None:
            self.mosaic_enabled = not (
                self.close_mosaic > 0 and epoch >= total_epochs - self.close_mosaic
            )

    def _item(self, i: int) -> Item:
        s = self.samples[i]
        return self._raw(i), s.boxes, s.labels

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, ImageMeta]:
        s = self.samples[i]
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            if self.mosaic_enabled and self.mosaic_prob > 0 and rng.random() < self.mosaic_prob:
                idx = [i, *rng.integers(0, len(self.samples), 3).tolist()]
                items = [self._item(j) for j in rng.permutation(idx).tolist()]
            else:
                items = [self._item(i)]
            img, boxes, labels, info = augment_items(items, self.imgsz, rng, self.aug_cfg)
        else:
            img, info = letterbox(self.load_image(i), self.imgsz)
            boxes, labels = letterbox_boxes(s.boxes, info), s.labels
        targets = np.concatenate([labels[:, None].astype(np.float32), boxes], axis=1)
        return img, targets, ImageMeta(i, (s.width, s.height), info)


def collate(
    batch: Sequence[tuple[np.ndarray, np.ndarray, ImageMeta]],
) -> tuple[torch.Tensor, torch.Tensor, list[ImageMeta]]:
    """Stack items into ``images [B,3,S,S]`` float32 0..1 RGB, ``targets [M,6]``, metas.

    ``targets`` rows are ``(batch_index, class, x1, y1, x2, y2)`` in input (letterboxed)
    pixels. The ``/255`` is the same float32 multiply as ``models.processing.preprocess_batch``.
    """
    imgs = np.stack([b[0] for b in batch]).transpose(0, 3, 1, 2).astype(np.float32)
    imgs *= 1.0 / 255.0  # numpy, as in preprocess_batch: bit-identical to serving
    images = torch.from_numpy(imgs)
    rows = [
        np.concatenate([np.full((t.shape[0], 1), k, np.float32), t], axis=1)
        for k, (_, t, _) in enumerate(batch)
    ]
    targets = torch.from_numpy(np.concatenate(rows).reshape(-1, 6)) if rows else torch.zeros((0, 6))
    return images, targets, [b[2] for b in batch]


class EpochSampler(Sampler[int]):
    """Shuffles with a generator seeded by ``(seed, dataset.epoch)``: resumable, reproducible."""

    def __init__(self, dataset: DetectionDataset, shuffle: bool, seed: int) -> None:
        self.dataset, self.shuffle, self.seed = dataset, shuffle, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if not self.shuffle:
            return iter(range(n))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.dataset.epoch)
        return iter(torch.randperm(n, generator=g).tolist())


def build_loader(
    dataset: DetectionDataset,
    batch_size: int,
    shuffle: bool,
    workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
    sampler: Sampler[int] | None = None,
) -> DataLoader[tuple[np.ndarray, np.ndarray, ImageMeta]]:
    """A ``DataLoader`` with :func:`collate` and an epoch-seeded shuffle (:class:`EpochSampler`).

    Workers are not persistent, so :meth:`DetectionDataset.set_epoch` (epoch, mosaic
    switch) reaches them at every new epoch's iterator. On a 2-core machine ``workers=0``
    or ``1``: the cached loader does several hundred augmented images/s on one core.
    ``sampler`` replaces the epoch-seeded one (a ``DistributedSampler`` under torchrun).
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler or EpochSampler(dataset, shuffle, seed),
        num_workers=workers,
        collate_fn=collate,
        drop_last=drop_last,
        persistent_workers=False,
    )
