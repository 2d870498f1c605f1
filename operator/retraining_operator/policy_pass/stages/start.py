"""No run: start one when minNewSamples, maxWait or the retrain-now annotation says so.

The run id is checkpointed to `status.currentRun` before anything is written under it.
"""

from __future__ import annotations

from retraining_operator.api import RETRAIN_NOW_ANNOTATION, ConditionType, CurrentRun, RunStage
from retraining_operator.policy_pass.context import PolicyPass
from retraining_operator.reconcile import status as st
from retraining_operator.reconcile.governance import instance_hours
from retraining_operator.reconcile.ingest import should_train
from retraining_operator.reconcile.naming import run_id_for


def step(p: PolicyPass) -> None:
    status = p.status
    if p.spec.suspend or status.current_run is not None:
        return
    forced = RETRAIN_NOW_ANNOTATION in p.view.annotations
    decision = should_train(
        status.ingest.pending_samples,
        status.ingest.oldest_pending_time,
        p.now,
        p.spec.dataset,
        force=forced,
        validation_wait=status.validation_wait,
    )
    if not decision.train:
        if forced:
            p.done_with_annotation(RETRAIN_NOW_ANNOTATION)  # refused, with an Event
            p.event("Warning", "RetrainNowIgnored", decision.message)
        if decision.due_in is not None:
            p.due_in(decision.due_in.total_seconds())
        return
    run_id = run_id_for(p.now)
    if any(h.run_id == run_id for h in status.history):  # two runs in one second
        return
    hours = instance_hours(p.spec)
    if not _within_quota(p, run_id, hours):
        return  # waits (a retrain-now annotation stays until the run starts)
    status.validation_wait = None  # pending samples changed: count the holdout again
    status.current_run = CurrentRun(
        id=run_id,
        stage=RunStage.PREPARING,
        trigger=str(decision.reason),
        started_at=p.now,
        instance_hours=hours,
        message=decision.message,
    )
    p.set_phase()
    p.checkpoint()  # the run id must be durable before anything is written under it
    if forced:
        p.done_with_annotation(RETRAIN_NOW_ANNOTATION)  # the run is started, durably
    p.event("Normal", "RunStarted", f"run {run_id}: {decision.message}")


def _within_quota(p: PolicyPass, run_id: str, hours: float) -> bool:
    """Scoped mode: the run fits its tenant's quota (reserved at once), or it waits with the
    condition QuotaExceeded (an Event when that changes) and is looked at again."""
    if p.tenant is None or p.quota is None:
        return True
    verdict = p.quota.try_start(p.tenant, p.ref.uid, run_id, hours, p.now)
    known = st.get_condition(p.status.conditions, ConditionType.QUOTA_EXCEEDED)
    if verdict.allowed:
        if known is not None and known.status == "True":
            _quota_condition(p, False, "WithinQuota", "the run fits its tenant's quota")
            p.event("Normal", "QuotaAvailable", f"run {run_id} starts: {verdict.message}")
        return True
    if known is None or known.status != "True" or known.message != verdict.message:
        _quota_condition(p, True, "QuotaExceeded", verdict.message)
        p.event("Warning", "QuotaExceeded", f"a run is due but waits: {verdict.message}")
    wait = p.config.tick_seconds
    if verdict.due_in is not None:
        wait = min(wait, max(1.0, verdict.due_in.total_seconds()))
    p.due_in(wait)
    return False


def _quota_condition(p: PolicyPass, exceeded: bool, reason: str, message: str) -> None:
    p.status.conditions = st.set_condition(
        p.status.conditions,
        type=ConditionType.QUOTA_EXCEEDED,
        status=exceeded,
        reason=reason,
        message=message,
        observed=st.Observation(p.now, p.view.generation),
    )
