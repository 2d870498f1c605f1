"""Which operator-made Models and EndpointConfigs to delete, pure.

`deployment.retainPreviousModels` = N: besides what serves, keep the N newest Models and
the N newest EndpointConfigs this policy made; delete the older ones. Never delete:

* anything not tagged as made by this operator for this policy (same UID) — a user's own
  resources or another policy's are not even candidates (the caller filters by tags);
* the endpoint's current config, a pending one (an update in flight may roll back to the
  current config, or land on the pending one), and every Model those configs reference;
* the resources of the run in flight and of `status.serving`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class OwnedResource:
    name: str
    created: datetime


@dataclass(frozen=True)
class CleanupPlan:
    delete_models: tuple[str, ...]
    delete_configs: tuple[str, ...]
    keep_models: tuple[str, ...]
    keep_configs: tuple[str, ...]


def _split(
    owned: Sequence[OwnedResource], protected: Collection[str], retain: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    newest_first = sorted(owned, key=lambda r: (r.created, r.name), reverse=True)
    candidates = [r for r in newest_first if r.name not in protected]
    keep = [r.name for r in newest_first if r.name in protected] + [
        r.name for r in candidates[:retain]
    ]
    delete = [r.name for r in candidates[retain:]]
    return tuple(delete), tuple(keep)


def plan_cleanup(
    *,
    models: Sequence[OwnedResource],
    configs: Sequence[OwnedResource],
    protected_models: Collection[str],
    protected_configs: Collection[str],
    retain: int,
) -> CleanupPlan:
    """Delete all but the `retain` newest unprotected Models and EndpointConfigs."""
    if retain < 0:
        raise ValueError("retain must be >= 0")
    delete_models, keep_models = _split(models, protected_models, retain)
    delete_configs, keep_configs = _split(configs, protected_configs, retain)
    return CleanupPlan(
        delete_models=delete_models,
        delete_configs=delete_configs,
        keep_models=keep_models,
        keep_configs=keep_configs,
    )
