"""Adaptive loss-weight updater (paper eq. 18): ``W_i = exp(L_i) / sum_j exp(L_j) * n * w_k``.

Applied once per epoch from the epoch-mean loss values. Two deviations keep it stable, both
documented in docs/models.md:

* ``L_i`` is each loss relative to its value in the first epoch (``L_i(t) / L_i(0)``, as
  in Dynamic Weight Averaging). Raw magnitudes differ by an order of magnitude between
  QFocal and CIoU terms, and a softmax over them gives nearly all weight to whichever
  term happens to be numerically largest; the ratio gives more weight to the terms that
  have progressed least, which is the paper's stated intent ("all tasks optimised almost
  simultaneously").
* ``w_k`` is the initial weight (1), not the previous one (``compound=False``): read
  literally, repeated application compounds geometrically. Weights are renormalised to
  mean 1 and clamped to ``[lo, hi]`` in both modes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


class AdaptiveLossWeights:
    """Per-term multipliers for a weighted sum of losses, updated by eq. 18."""

    def __init__(
        self,
        names: Sequence[str],
        lo: float = 0.5,
        hi: float = 2.0,
        enabled: bool = True,
        compound: bool = False,
        relative: bool = True,
    ) -> None:
        self.names = list(names)
        self.lo, self.hi = lo, hi
        self.enabled, self.compound, self.relative = enabled, compound, relative
        self.weights = dict.fromkeys(self.names, 1.0)
        self.reference: dict[str, float] | None = None

    def update(self, losses: dict[str, float]) -> dict[str, float]:
        """Apply eq. 18 with the latest (epoch-mean) loss values; returns the new weights."""
        if not self.enabled:
            return dict(self.weights)
        if self.relative and self.reference is None:
            self.reference = {k: max(float(losses[k]), 1e-8) for k in self.names}
            return dict(self.weights)
        ref = self.reference or {}
        vals = [float(losses[k]) / (ref[k] if self.relative else 1.0) for k in self.names]
        m = max(vals)
        exps = [math.exp(v - m) for v in vals]
        z = sum(exps)
        n = len(self.names)
        prev = [self.weights[k] if self.compound else 1.0 for k in self.names]
        new = [e / z * n * p for e, p in zip(exps, prev, strict=True)]
        mean = sum(new) / n
        self.weights = {
            k: min(self.hi, max(self.lo, w / mean)) for k, w in zip(self.names, new, strict=True)
        }
        return dict(self.weights)

    def state_dict(self) -> dict[str, object]:
        """Serializable state."""
        return {"weights": dict(self.weights), "reference": self.reference}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore from :meth:`state_dict`."""
        w = state.get("weights", {})
        assert isinstance(w, dict)
        self.weights = {k: float(w.get(k, 1.0)) for k in self.names}
        ref = state.get("reference")
        self.reference = dict(ref) if isinstance(ref, dict) else None
