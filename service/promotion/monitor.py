"""The automatic-rollback monitor: after a promotion, judge the new production version's
first window of verdicts per line against the previous version's last window.

It is a frame observer (:func:`service.observers.observe`): on the hot path it only
updates counters (O(1) per frame). Which version is ``production`` comes from
:meth:`RollbackMonitor.set_production`, called by the API's promotion loop from the
registry. When a promoted version's fail rate on a line leaves
``baseline ± rollback_fail_rate_band``, or more than ``rollback_max_error_rate`` of its
first ``rollback_window_frames`` requests fail with a server error, the monitor calls
``trigger`` once for that promotion; the loop moves the alias off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from models.registry import MalformedReference, ModelRef
from service.errors import LineInspectError
from service.frames import Frame
from service.promotion.band import Window, error_rate_too_high, leaves_band
from service.records import DetectionRecord

#: trigger(name, bad_version, back_to_version, details)
Trigger = Callable[[str, int, int, dict[str, Any]], None]


@dataclass
class _Lineage:
    production: int | None = None
    previous: int | None = None  # where a rollback goes (the version before the promotion)
    armed: bool = False  # this promotion may still be rolled back (at most once)
    baseline: dict[str, float] = field(default_factory=dict)  # line -> previous fail rate
    windows: dict[str, Window] = field(default_factory=dict)  # line -> this version's
    requests: int = 0  # answered + server errors since the promotion
    errors: int = 0


def counts_as_error(exc: BaseException) -> bool:
    """A server-side failure (not bad input, auth, overload, deadline or not-ready)."""
    return not isinstance(exc, LineInspectError) or exc.http_status == 500


class RollbackMonitor:
    """Counts the production version's verdicts per lineage and line."""

    def __init__(
        self,
        window: int,
        band: float,
        max_error_rate: float,
        default_model: str,
        line_label: Callable[[str | None], str],
        trigger: Trigger,
    ) -> None:
        self.window, self.band, self.max_error_rate = window, band, max_error_rate
        self.default_model = default_model
        self.line_label = line_label
        self.trigger = trigger
        self._lineages: dict[str, _Lineage] = {}

    def names(self) -> list[str]:
        """Lineages seen so far."""
        return list(self._lineages)

    def set_production(self, name: str, version: int | None, rolled_back: bool = False) -> None:
        """Where ``name@production`` points now. A change is a promotion: the old
        version's full windows become the baseline and the new version is on probation,
        unless the change is a rollback (never rolled back in turn)."""
        st = self._lineages.setdefault(name, _Lineage())
        if version == st.production:
            return
        old = st.production
        st.baseline = {line: w.fail_rate for line, w in st.windows.items() if w.full}
        st.windows, st.requests, st.errors = {}, 0, 0
        st.previous, st.production = old, version
        st.armed = old is not None and version is not None and not rolled_back

    def observe(self, frame: Frame, record: DetectionRecord) -> None:
        st = self._lineages.get(record.model.name)
        if st is None:
            self._lineages[record.model.name] = _Lineage()
            return
        if record.model.version != st.production:
            return
        line = self.line_label(record.line)
        w = st.windows.get(line)
        if w is None:
            w = st.windows[line] = Window(self.window)
        filled = w.add(record.verdict == "fail")
        if not st.armed:
            return
        st.requests += 1
        if (
            filled
            and line in st.baseline
            and leaves_band(st.baseline[line], w.fail_rate, self.band)
        ):
            self._fire(
                record.model.name,
                st,
                {
                    "cause": "fail_rate",
                    "line": line,
                    "fail_rate": round(w.fail_rate, 6),
                    "baseline_fail_rate": round(st.baseline[line], 6),
                    "band": self.band,
                    "window_frames": self.window,
                },
            )
        else:
            self._judge_errors(record.model.name, st)

    def observe_error(self, frame: Frame, exc: BaseException) -> None:
        if not counts_as_error(exc):
            return
        name = self._name_of(frame.model_ref)
        st = self._lineages.get(name)
        if st is None or not st.armed:
            return
        st.requests += 1
        st.errors += 1
        self._judge_errors(name, st)

    def _judge_errors(self, name: str, st: _Lineage) -> None:
        if st.requests != self.window:  # judged once, on the first window of requests
            return
        if error_rate_too_high(st.errors, st.requests, self.max_error_rate):
            self._fire(
                name,
                st,
                {
                    "cause": "error_rate",
                    "error_rate": round(st.errors / st.requests, 6),
                    "max_error_rate": self.max_error_rate,
                    "window_frames": self.window,
                },
            )

    def _fire(self, name: str, st: _Lineage, details: dict[str, Any]) -> None:
        if not st.armed or st.production is None or st.previous is None:
            return
        st.armed = False
        self.trigger(name, st.production, st.previous, details)

    def _name_of(self, ref: str | None) -> str:
        if not ref:
            return self.default_model
        try:
            return ModelRef.parse(ref).name
        except MalformedReference:
            return self.default_model
