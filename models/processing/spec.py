"""ModelSpec: what post-processing needs to know about a detector's raw output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

SPEC_METADATA_KEY = "lineinspect.spec"

HeadKind = Literal["anchor_free", "anchor_based"]


@dataclass(frozen=True)
class ModelSpec:
    """Static description of a detector's input and raw output layout (docs/contracts.md).

    ``anchors`` is ``None`` for anchor-free heads, else one tuple of ``(w, h)`` pairs
    (input pixels) per level, in the order of ``strides``.
    """

    class_names: tuple[str, ...]
    imgsz: int
    strides: tuple[int, ...]
    head: HeadKind = "anchor_free"
    anchors: tuple[tuple[tuple[float, float], ...], ...] | None = None

    def __post_init__(self) -> None:
        if not self.class_names:
            raise ValueError("ModelSpec needs at least one class name")
        if self.imgsz <= 0 or any(self.imgsz % s for s in self.strides):
            raise ValueError(f"imgsz {self.imgsz} must be a positive multiple of every stride")
        if self.head == "anchor_based":
            if self.anchors is None or len(self.anchors) != len(self.strides):
                raise ValueError("anchor_based head needs one anchor set per stride")
        elif self.head != "anchor_free":
            raise ValueError(f"unknown head kind {self.head!r}")

    @property
    def num_classes(self) -> int:
        """Number of classes the detector predicts."""
        return len(self.class_names)

    @property
    def anchors_per_level(self) -> int:
        """Anchors per grid cell (1 for anchor-free heads)."""
        return 1 if self.anchors is None else len(self.anchors[0])

    @property
    def num_predictions(self) -> int:
        """Rows ``A`` of the raw output for one image."""
        return sum(self.anchors_per_level * (self.imgsz // s) ** 2 for s in self.strides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists, not tuples)."""
        return {
            "class_names": list(self.class_names),
            "imgsz": self.imgsz,
            "strides": list(self.strides),
            "head": self.head,
            "anchors": None
            if self.anchors is None
            else [[list(a) for a in level] for level in self.anchors],
        }

    def to_json(self) -> str:
        """Serialise for the ONNX metadata entry ``lineinspect.spec``."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on malformed input."""
        try:
            anchors = d.get("anchors")
            return cls(
                class_names=tuple(str(c) for c in d["class_names"]),
                imgsz=int(d["imgsz"]),
                strides=tuple(int(s) for s in d["strides"]),
                head=d.get("head", "anchor_free"),
                anchors=None
                if anchors is None
                else tuple(tuple((float(w), float(h)) for w, h in lvl) for lvl in anchors),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed model spec: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        """Parse the JSON written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))
