"""The golden set a gate scores models on: a ``data.yaml`` (or a folder holding one).

The golden images are the yaml's ``val`` split when it names one, else its ``train``
split (a materialised golden snapshot names a single split). An image labelled ok is
one whose label file exists and is empty; a YOLO image without a label file is not
labelled at all and is left out of the golden set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.data.config import load_data_config, read_split
from models.data.fingerprint import fingerprint
from models.data.formats.yolo import label_path_for
from models.data.sample import Sample
from service.errors import InvalidInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GoldenSet:
    """Golden samples with their class names, where they came from and their fingerprint."""

    path: Path
    samples: tuple[Sample, ...]
    class_names: tuple[str, ...]
    fingerprint: str
    unlabelled: int = 0  # YOLO images without a label file, left out

    @property
    def present(self) -> np.ndarray:
        """``[N,C]`` bool: which classes each image contains."""
        out = np.zeros((len(self.samples), len(self.class_names)), bool)
        for i, s in enumerate(self.samples):
            out[i, s.labels] = True
        return out

    @property
    def ok(self) -> np.ndarray:
        """``[N]`` bool: the images labelled ok (no defect)."""
        return np.array([s.labels.size == 0 for s in self.samples], bool)


def load_golden(path: Path | str) -> GoldenSet:
    """Read a golden set; raises :class:`InvalidInput` when it is unusable."""
    p = Path(path)
    yaml_path = p / "data.yaml" if p.is_dir() else p
    try:
        cfg = load_data_config(yaml_path)
        samples, names = read_split(cfg, cfg.val if cfg.val is not None else cfg.train, cfg.names)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the golden set {yaml_path}: {exc}") from exc
    unlabelled = 0
    if cfg.format == "yolo":
        labelled = [s for s in samples if label_path_for(s.image_path).is_file()]
        unlabelled = len(samples) - len(labelled)
        if unlabelled:
            log.warning("%s: %d image(s) without a label file left out", yaml_path, unlabelled)
        samples = labelled
    if not samples:
        raise InvalidInput(f"the golden set {yaml_path} has no labelled image")
    return GoldenSet(
        path=yaml_path.resolve(),
        samples=tuple(samples),
        class_names=tuple(names),
        fingerprint=str(fingerprint(samples)),
        unlabelled=unlabelled,
    )
