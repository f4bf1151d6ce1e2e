"""What a registered candidate gets, by its lineage's promotion policy.

``manual``: ``candidate`` (a person promotes); ``auto``: ``production``; ``shadow``:
``shadow`` and ``candidate`` (the API's checker promotes it to ``production`` once the
shadow criteria hold, :mod:`service.promotion.shadow`). A candidate that failed the gate
stays registered with no serving alias, whatever the policy.
"""

from __future__ import annotations

from typing import Any

from service.config import Settings
from service.promotion.history import move_alias
from service.promotion.spec import DEFAULT, Policy, PromotionSpec
from service.registry import Registry
from service.store.store import Store

#: The aliases a passing candidate gets, in the order they are moved.
ALIASES: dict[Policy, tuple[str, ...]] = {
    "manual": ("candidate",),
    "shadow": ("candidate", "shadow"),
    "auto": ("production",),
}


def spec_of(settings: Settings, name: str) -> PromotionSpec:
    """The promotion settings of lineage ``name`` (manual when not listed)."""
    return settings.promotion.get(name, DEFAULT)


def decide(policy: Policy, gate_passed: bool) -> tuple[str, ...]:
    """The aliases a candidate gets: none when the gate failed (never ``production``)."""
    return ALIASES[policy] if gate_passed else ()


def _gate_details(report: dict[str, Any], gate_passed: bool) -> dict[str, Any]:
    return {"gate_passed": gate_passed, "report": report}


def apply_policy(
    settings: Settings,
    registry: Registry,
    store: Store,
    name: str,
    version: int,
    gate_passed: bool,
    report: dict[str, Any],
    actor: str = "pipeline",
) -> dict[str, Any]:
    """Apply lineage ``name``'s policy to ``version``, registered after the gate; every
    move goes to the history with reason ``gate`` and the report. Returns what it did:
    ``{"policy", "gate_passed", "aliases": {alias: version}, "previous": {alias: v|None}}``
    plus ``"held": "gate failed"`` when the candidate got no alias."""
    policy = spec_of(settings, name).policy
    registry.get(name, version)  # unknown version: ModelNotFound before anything moves
    done: dict[str, Any] = {"policy": policy, "gate_passed": gate_passed, "aliases": {}}
    previous: dict[str, int | None] = {}
    details = _gate_details(report, gate_passed)
    for alias in decide(policy, gate_passed):
        previous[alias] = move_alias(
            registry, store, name, alias, version, actor, "gate", {**details, "policy": policy}
        )
        done["aliases"][alias] = version
    done["previous"] = previous
    if not gate_passed:
        done["held"] = "gate failed"
    return done
