"""``calibrate``: per-class score thresholds from a golden set for a target escape rate,
and a new registry version whose card carries them (serving applies a card's
``class_thresholds``: :meth:`service.batcher.PostprocessConfig.for_classes`)."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from service.config import Settings
from service.gate.escape import calibrate_thresholds, escape_rates, failed_at, false_reject_rate
from service.gate.golden import GoldenSet
from service.gate.scoring import (
    RateFigure,
    detect,
    label,
    max_scores,
    open_session,
    served_postprocess,
)
from service.records import fail_class_ids
from service.registry import ModelVersion, Registry

#: Card fields that describe one registered version and are not carried to a new one.
_VERSION_FIELDS = ("name", "version", "created", "onnx_sha256", "gate")


class ClassCalibration(BaseModel):
    """One class: the threshold chosen, the one served before, and the escape rates."""

    threshold: float
    previous: float
    images: int
    status: str
    note: str
    own_escape: RateFigure  # images not caught by this class's own detections
    escape: RateFigure  # served: any failing class's detection catches an image
    escape_before: RateFigure


class Calibration(BaseModel):
    """What ``calibrate`` chose, and what it costs on the golden set's ok images."""

    model: str
    target: float
    golden: str
    golden_fingerprint: str
    golden_images: int
    fail_classes: list[str] | None
    classes: dict[str, ClassCalibration]
    false_reject: RateFigure
    false_reject_before: RateFigure
    created: str

    @property
    def thresholds(self) -> dict[str, float]:
        """Class name → chosen threshold."""
        return {n: c.threshold for n, c in self.classes.items()}


def calibrate(
    model: ModelVersion, golden: GoldenSet, target: float, settings: Settings
) -> Calibration:
    """Choose each failing class's threshold (:func:`calibrate_thresholds`) and report the
    escape and false-reject rates at the chosen thresholds next to the served ones."""
    session = open_session(model, settings)
    post = served_postprocess(session, settings)
    names = golden.class_names
    low, _ = detect(session, golden, post, settings.max_pixels)
    scores = max_scores(low, len(names))
    fails = None if settings.fail_classes is None else tuple(settings.fail_classes)
    fail_ids = fail_class_ids(names, fails)
    before = np.broadcast_to(np.asarray(post.conf_thr, np.float32), (len(names),))
    choices = calibrate_thresholds(scores, golden.present, names, target, before, fail_ids)
    after = np.array([c.threshold for c in choices], np.float32)
    failed_before, failed_after = (
        failed_at(scores, before, fail_ids),
        failed_at(scores, after, fail_ids),
    )
    esc_before = escape_rates(golden.present, failed_before, names)
    esc_after = escape_rates(golden.present, failed_after, names)
    classes = {
        c.name: ClassCalibration(
            threshold=c.threshold,
            previous=round(float(before[i]), 6),
            images=c.images,
            status=c.status,
            note=c.note,
            own_escape=RateFigure.of(c.own_escape),
            escape=RateFigure.of(esc_after[c.name]),
            escape_before=RateFigure.of(esc_before[c.name]),
        )
        for i, c in enumerate(choices)
    }
    return Calibration(
        model=label(model),
        target=target,
        golden=str(golden.path),
        golden_fingerprint=golden.fingerprint,
        golden_images=len(golden.samples),
        fail_classes=None if fails is None else list(fails),
        classes=classes,
        false_reject=RateFigure.of(false_reject_rate(golden.ok, failed_after)),
        false_reject_before=RateFigure.of(false_reject_rate(golden.ok, failed_before)),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def register_calibrated(
    registry: Registry, model: ModelVersion, cal: Calibration, name: str | None = None
) -> ModelVersion:
    """Register a copy of ``model`` as a new version of ``name`` (default: its own name)
    whose card has the calibrated ``class_thresholds`` and the ``calibration`` record."""
    card = {k: v for k, v in model.card.items() if k not in _VERSION_FIELDS}
    card["class_thresholds"] = cal.thresholds
    card["calibration"] = {**cal.model_dump(mode="json"), "from": label(model)}
    with tempfile.TemporaryDirectory(prefix="lineinspect-calibrate-") as tmp:
        staged = Path(tmp)
        shutil.copy2(model.onnx_path, staged / "model.onnx")
        if (model.path / "model.pt").is_file():
            shutil.copy2(model.path / "model.pt", staged / "model.pt")
        (staged / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True))
        return registry.register(staged, name or model.name)
