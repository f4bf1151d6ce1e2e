"""When a shadow version has earned ``production``: the criteria of a ``shadow`` policy
read from the shadow comparison's summary (``app.state.shadow.summary(name)``)."""

from __future__ import annotations

from typing import Any, Protocol

from service.promotion.spec import PromotionSpec


class ShadowSummaryLike(Protocol):
    """The attributes of :class:`service.shadow.ShadowSummary` this module reads (read-only,
    so a frozen dataclass satisfies it)."""

    @property
    def name(self) -> str: ...
    @property
    def production_version(self) -> int: ...
    @property
    def shadow_version(self) -> int: ...
    @property
    def compared(self) -> int: ...
    @property
    def agreement(self) -> float: ...
    @property
    def pass_to_fail(self) -> int: ...
    @property
    def fail_to_pass(self) -> int: ...
    @property
    def precision(self) -> float | None: ...
    @property
    def recall(self) -> float | None: ...
    @property
    def class_rate_delta(self) -> dict[str, float]: ...


class ShadowSource(Protocol):
    """What the shadow serving installs on ``app.state.shadow``."""

    def summary(self, name: str) -> ShadowSummaryLike | None: ...


def figures(summary: ShadowSummaryLike) -> dict[str, Any]:
    """The summary as the history row's details."""
    return {
        "production_version": summary.production_version,
        "shadow_version": summary.shadow_version,
        "compared": summary.compared,
        "agreement": summary.agreement,
        "pass_to_fail": summary.pass_to_fail,
        "fail_to_pass": summary.fail_to_pass,
        "precision": summary.precision,
        "recall": summary.recall,
        "class_rate_delta": dict(summary.class_rate_delta),
    }


def criteria_met(spec: PromotionSpec, summary: ShadowSummaryLike) -> bool:
    """``compared >= N``, ``agreement >= X`` and every ``|class_rate_delta| <= Y``."""
    return (
        summary.compared >= spec.shadow_min_frames
        and summary.agreement >= spec.shadow_min_agreement
        and all(
            abs(d) <= spec.shadow_max_class_rate_delta for d in summary.class_rate_delta.values()
        )
    )


def due(spec: PromotionSpec, summary: ShadowSummaryLike, aliases: dict[str, int]) -> bool:
    """Whether to promote now: the summary compares the current ``shadow`` with the
    current ``production`` (not a stale pair), they differ, and the criteria hold."""
    return (
        aliases.get("shadow") == summary.shadow_version
        and aliases.get("production") == summary.production_version
        and summary.shadow_version != summary.production_version
        and criteria_met(spec, summary)
    )
