"""Evaluating: the gate against gate.minimum and the serving model's value; a rejected
model is recorded in history and never deployed."""

from __future__ import annotations

from retraining_operator import metrics
from retraining_operator.api import RunStage
from retraining_operator.reconcile.gate import (
    evaluate_gate,
    rejection_history_entry,
    serving_metric_value,
)
from retraining_operator.reconcile.training_status import JobRef
from retraining_operator.workflow import training
from retraining_operator.workflow.context import PolicyPass


def step(p: PolicyPass) -> None:
    run = p.run
    if run is None or p.is_rollback_run or run.stage is not RunStage.EVALUATING:
        return
    seen = p.observed_job
    if seen is None:
        job = JobRef.from_run(run)
        if job is None:
            raise RuntimeError(f"run {run.id} is Evaluating without a training job")
        seen = training.observe_training(p.session, job)
    job_name = seen.training_job_name or seen.job.name
    decision = evaluate_gate(
        p.spec.gate,
        seen.final_metrics,
        serving_value=serving_metric_value(p.status),
        job_name=job_name,
    )
    _export_gate_metric(p, decision.metric, decision.value, decision.serving_value)
    if not decision.passed:
        entry = rejection_history_entry(
            run,
            decision,
            training_job_name=job_name,
            model_data_url=seen.model_data_url,
            finished_at=p.now,
        )
        p.end_run(entry)
        p.event("Warning", "GateRejected", decision.reason)
    else:
        p.event("Normal", "GatePassed", decision.reason)
        p.update_run(stage=RunStage.DEPLOYING, metric_value=decision.value, message=decision.reason)
        p.set_phase()
    p.checkpoint()


def _export_gate_metric(
    p: PolicyPass, metric: str, candidate: float | None, serving: float | None
) -> None:
    """The dashboard plots the candidate against the serving model per evaluation."""
    for model, value in (("candidate", candidate), ("serving", serving)):
        if value is not None:
            metrics.GATE_METRIC.labels(*p.labels, metric, model).set(value)
