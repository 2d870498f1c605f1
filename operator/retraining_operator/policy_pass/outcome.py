"""What a rollout step means for the policy: shared by the deploy and rollback stages."""

from __future__ import annotations

from datetime import timedelta

from retraining_operator import metrics
from retraining_operator.api import (
    CurrentRun,
    HistoryEntry,
    Outcome,
    RetrainingPolicySpec,
    RunStage,
    ServingStatus,
)
from retraining_operator.aws.errors import AwsError
from retraining_operator.flows import rollout
from retraining_operator.policy_pass.context import PolicyPass
from retraining_operator.reconcile.rollout import RolloutResult


def next_stage_after_gate(spec: RetrainingPolicySpec) -> RunStage:
    """A candidate that passed the gate (and approval) is shadow tested first, if asked."""
    return RunStage.SHADOW_TESTING if spec.deployment.shadow is not None else RunStage.DEPLOYING


def observe_interval(p: PolicyPass) -> timedelta:
    return timedelta(seconds=p.config.observe_seconds)


def apply_rollout(p: PolicyPass, progress: rollout.RolloutProgress) -> None:
    """Record a step: Events for its actions; when done, serving/history and cleanup."""
    for action in progress.actions:
        p.event("Normal", "RolloutStep", action)
    if progress.pre_operator is not None and p.status.pre_operator is None:
        p.status.pre_operator = progress.pre_operator  # the first take is the one that counts
    if not progress.done:
        p.status.current_run = progress.run.model_copy(update={"message": progress.message})
        if progress.retry_after is not None:
            # The step knows its deadline (a bake ending, an update to look at again).
            p.due_in(progress.retry_after.total_seconds())
        return
    run = progress.run
    entry = progress.history_entry or HistoryEntry(
        run_id=run.id, outcome=Outcome.FAILED, reason=progress.reason
    )
    if progress.result is RolloutResult.SERVING and progress.serving is not None:
        p.status.serving = progress.serving
        metrics.ROLLOUT_SECONDS.labels(*p.labels).observe(
            (p.now - (run.deploy_step_started_at or run.started_at)).total_seconds()
        )
        p.event(
            "Normal",
            "Serving",
            f"run {run.id}: endpoint serves model {progress.serving.model_name}",
        )
        _cleanup(p)
    elif progress.result is RolloutResult.SKIPPED:
        p.event("Normal", "Trained", progress.message)
    else:
        reason = "RolledBack" if progress.result is RolloutResult.DEGRADED else "RolloutFailed"
        p.event("Warning", reason, progress.reason or progress.message)
    p.end_run(entry)


def after_deployed(
    p: PolicyPass, run: CurrentRun, serving: ServingStatus, entry: HistoryEntry
) -> None:
    """A model put in production other than by the rollout (a promoting shadow test):
    recorded as the rollout records its own."""
    p.status.serving = serving
    metrics.ROLLOUT_SECONDS.labels(*p.labels).observe(
        (p.now - (run.deploy_step_started_at or run.started_at)).total_seconds()
    )
    p.event("Normal", "Serving", f"run {run.id}: endpoint serves model {serving.model_name}")
    _cleanup(p)
    p.end_run(entry)


def _cleanup(p: PolicyPass) -> None:
    try:
        report = rollout.cleanup(p.session, p.ref, p.spec, status=p.status)
    except AwsError as error:  # cleanup is best effort; the next success retries it
        p.event("Warning", "CleanupFailed", str(error))
        return
    deleted = [*report.deleted_models, *report.deleted_configs]
    if deleted:
        p.event("Normal", "CleanedUp", "deleted " + ", ".join(deleted))
