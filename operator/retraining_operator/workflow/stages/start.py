"""No run: start one when minNewSamples, maxWait or the retrain-now annotation says so.

The run id is checkpointed to `status.currentRun` before anything is written under it.
"""

from __future__ import annotations

from retraining_operator.api import RETRAIN_NOW_ANNOTATION, CurrentRun, RunStage
from retraining_operator.reconcile.ingest import should_train
from retraining_operator.reconcile.naming import run_id_for
from retraining_operator.workflow.context import PolicyPass


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
    if forced:
        p.result.clear_annotations.append(RETRAIN_NOW_ANNOTATION)
    if not decision.train:
        if forced:
            p.event("Warning", "RetrainNowIgnored", decision.message)
        if decision.due_in is not None:
            p.due_in(decision.due_in.total_seconds())
        return
    status.validation_wait = None  # pending samples changed: count the holdout again
    run_id = run_id_for(p.now)
    if any(h.run_id == run_id for h in status.history):  # two runs in one second
        return
    status.current_run = CurrentRun(
        id=run_id,
        stage=RunStage.PREPARING,
        trigger=str(decision.reason),
        started_at=p.now,
        message=decision.message,
    )
    p.set_phase()
    p.checkpoint()  # the run id must be durable before anything is written under it
    p.event("Normal", "RunStarted", f"run {run_id}: {decision.message}")
