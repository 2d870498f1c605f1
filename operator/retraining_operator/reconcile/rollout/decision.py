"""What a rollout step machine answers: one frozen dataclass per kind of step.

`decide_update` (blue/green, rolling) and `decide_shift` (variant shift) look at the
endpoint and the run and answer one `Decision`; the workflow's executor `match`es it,
so each kind carries exactly the fields it needs (kopf's causes, one class per cause).
`Analyse` is only an intermediate answer of the variant shift: the caller fetches the
numbers and asks again, which answers an `Action`.

`run_updates` are fields of `status.currentRun` to record with the step (see the
conventions in `reconcile/rollout/__init__.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from retraining_operator.api import CurrentRun, HistoryEntry, Outcome, ServingStatus

DEFAULT_POLL = timedelta(seconds=30)

_NO_UPDATES: Mapping[str, Any] = MappingProxyType({})


def run_updates(**fields: Any) -> Mapping[str, Any]:
    """Fields of the current run to record with a step (read-only)."""
    return MappingProxyType(fields)


class RolloutResult(StrEnum):
    """How a rollout ended."""

    SERVING = "Serving"  # the endpoint serves the run's model
    DEGRADED = "Degraded"  # rolled back (by SageMaker or by the operator); old model serves
    FAILED = "Failed"  # the endpoint itself failed; nothing can be rolled out
    SKIPPED = "Skipped"  # strategy None: trained and gated, not deployed

    @property
    def outcome(self) -> Outcome:
        return {
            RolloutResult.SERVING: Outcome.DEPLOYED,
            RolloutResult.DEGRADED: Outcome.ROLLED_BACK,
            RolloutResult.FAILED: Outcome.FAILED,
            RolloutResult.SKIPPED: Outcome.TRAINED,
        }[self]


@dataclass(frozen=True)
class _ToConfig:
    """A step that puts the endpoint on `config_name` (made first when missing)."""

    message: str
    config_name: str
    run_updates: Mapping[str, Any] = field(default_factory=lambda: _NO_UPDATES)


@dataclass(frozen=True)
class CreateEndpoint(_ToConfig):
    """First deployment: make `config_name` (one variant) and the endpoint on it."""


@dataclass(frozen=True)
class UpdateEndpoint(_ToConfig):
    """Make sure `config_name` exists, then UpdateEndpoint to it."""


@dataclass(frozen=True)
class SetWeights:
    """UpdateEndpointWeightsAndCapacities: (variant, desired weight) pairs (variant shift)."""

    message: str
    weights: tuple[tuple[str, float], ...]
    run_updates: Mapping[str, Any] = field(default_factory=lambda: _NO_UPDATES)


@dataclass(frozen=True)
class Wait:
    """Nothing to change now; look again after `delay`."""

    message: str
    delay: timedelta
    run_updates: Mapping[str, Any] = field(default_factory=lambda: _NO_UPDATES)


@dataclass(frozen=True)
class Finish:
    """Terminal: the rollout ended with `result`; `reason` says why when it did not serve."""

    message: str
    result: RolloutResult
    reason: str | None = None


@dataclass(frozen=True)
class AnalysisWindow:
    """What a variant-shift step is judged on.

    The new variant's numbers count from `new_since` (the step's start); the old variant's
    latency baseline from `baseline_since` (before the shift began, so the 100 % step still
    has a baseline). `full` is False for the alarms-only check during the bake.
    """

    new_since: datetime
    baseline_since: datetime
    until: datetime
    full: bool


@dataclass(frozen=True)
class Analyse:
    """Fetch the alarms (and, when `window.full`, the two variants' metrics), then decide
    again with the verdict (variant shift only)."""

    message: str
    endpoint_name: str
    old_variant: str
    new_variant: str
    window: AnalysisWindow


# What the executor carries out; `Decision` adds the variant shift's request for numbers.
Action = CreateEndpoint | UpdateEndpoint | SetWeights | Wait | Finish
Decision = Action | Analyse


def wait(message: str, delay: timedelta, **fields: Any) -> Wait:
    return Wait(message, delay, run_updates(**fields))


def finish(result: RolloutResult, message: str, reason: str | None = None) -> Finish:
    return Finish(message, result, reason)


# ---------------------------------------------------------------------------------------
# Records of a finished rollout


def history_entry(
    run: CurrentRun, *, result: RolloutResult, now: datetime, reason: str | None
) -> HistoryEntry:
    return HistoryEntry(
        run_id=run.id,
        outcome=result.outcome,
        training_job_name=run.training_job_name,
        metric_value=run.metric_value,
        model_name=run.model_name if result is not RolloutResult.SKIPPED else None,
        model_data_url=run.model_data_url,
        model_package_arn=run.model_package_arn,
        endpoint_config_name=run.endpoint_config_name,
        started_at=run.started_at,
        finished_at=now,
        reason=reason,
    )


def serving_status(run: CurrentRun, *, now: datetime) -> ServingStatus:
    return ServingStatus(
        model_name=run.model_name,
        endpoint_config_name=run.endpoint_config_name,
        model_data_url=run.model_data_url,
        model_package_arn=run.model_package_arn,
        run_id=run.id,
        metric_value=run.metric_value,
        since=now,
    )
