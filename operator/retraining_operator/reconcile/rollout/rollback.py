"""Manual rollback (`retraining.hitl.dev/rollback-to`): which model to serve again, pure.

A rollback is a deploy-only run: it puts a model from the history back with the
policy's own strategy and guardrails (the workflow runs it like any other rollout).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from retraining_operator.api import CurrentRun, HistoryEntry, Outcome, RunStage, ServingStatus
from retraining_operator.reconcile.registry import names_package
from retraining_operator.reconcile.rollout.errors import UnknownRollbackTarget

ROLLBACK_RUN_PREFIX = "rb"
# `rollback-to: pre-operator`: the model the endpoint served before the operator's first
# rollout there (recorded in `status.preOperator` when the operator took the endpoint).
PRE_OPERATOR = "pre-operator"


def rollback_candidates(
    history: Sequence[HistoryEntry], pre_operator: ServingStatus | None
) -> list[HistoryEntry]:
    """The history, plus the pre-operator model as the oldest entry when it is known."""
    entries = list(history)
    if pre_operator is not None and pre_operator.model_name:
        entries.append(
            HistoryEntry(
                run_id=PRE_OPERATOR,
                outcome=Outcome.DEPLOYED,
                model_name=pre_operator.model_name,
                model_data_url=pre_operator.model_data_url,
                endpoint_config_name=pre_operator.endpoint_config_name,
                started_at=pre_operator.since,
                reason="served before the operator's first rollout",
            )
        )
    return entries


def _usable(entry: HistoryEntry) -> bool:
    # The pre-operator Model is not the operator's: it is served as it is, never recreated
    # from artifacts, so it needs no modelDataUrl.
    return bool(entry.model_name) and (bool(entry.model_data_url) or entry.run_id == PRE_OPERATOR)


def resolve_rollback_target(history: Sequence[HistoryEntry], target: str) -> HistoryEntry:
    """The newest history entry whose run id, model name or Model Package (ARN,
    `<group>/<version>` or version) is `target`, with a model.

    Raises `UnknownRollbackTarget` naming the candidates when nothing matches, or when
    the match never produced a model (e.g. a gate-rejected run).
    """
    target = target.strip()
    matches = [
        h
        for h in history
        if target in (h.run_id, h.model_name) or names_package(h.model_package_arn, target)
    ]
    usable = [h for h in matches if _usable(h)]
    if usable:
        return usable[0]
    candidates = [f"{h.run_id} ({h.model_name})" for h in history if _usable(h)]
    known = ", ".join(candidates) or "none"
    if matches:
        raise UnknownRollbackTarget(
            f"rollback-to {target!r}: run {matches[0].run_id} ended {matches[0].outcome} "
            f"and has no model to serve; models in history: {known}"
        )
    raise UnknownRollbackTarget(
        f"rollback-to {target!r} names no run id, model or model package in the history; "
        "models in history: "
        f"{known}"
    )


def rollback_run(entry: HistoryEntry, *, target: str, now: datetime) -> CurrentRun:
    """A deploy-only run that puts `entry`'s model back, under a new run id (new configs).

    The id `rb<yyyymmdd-hhmmss>` is new per request, so a rollback whose update failed is
    never retried with the same config; the Model is the history's own (recreated from its
    artifacts if cleanup deleted it).
    """
    return CurrentRun(
        id=now.astimezone(UTC).strftime(f"{ROLLBACK_RUN_PREFIX}%Y%m%d-%H%M%S"),
        stage=RunStage.DEPLOYING,
        trigger=f"rollback-to:{target}",
        started_at=now,
        training_job_name=entry.training_job_name,
        model_data_url=entry.model_data_url,
        metric_value=entry.metric_value,
        model_name=entry.model_name,
        model_package_arn=entry.model_package_arn,
        message=f"rolling back to {entry.model_name} (run {entry.run_id})",
    )
