"""Evaluating: the gate against gate.minimum and the serving model's value, or, with
gate.evaluation, both models on the same held-out images (flows/evaluation.py; one step per
pass while the transform jobs run); a rejected model is recorded in history and never
deployed. With `spec.registry` every candidate is
registered as a Model Package first (Rejected, Approved, or PendingManualApproval: then
the run waits in AwaitingApproval, see `approve.py`)."""

from __future__ import annotations

import dataclasses

from retraining_operator import metrics
from retraining_operator.api import (
    Approval,
    Comparison,
    CurrentRun,
    HistoryEntry,
    Outcome,
    RunStage,
)
from retraining_operator.aws.images import ImageLookupError
from retraining_operator.flows import evaluation, registry, training
from retraining_operator.policy_pass.context import PolicyPass
from retraining_operator.policy_pass.outcome import next_stage_after_gate, observe_interval
from retraining_operator.reconcile.gate import (
    GateDecision,
    evaluate_gate,
    rejection_history_entry,
    serving_metric_value,
)
from retraining_operator.reconcile.registry import Candidate, RegistryError
from retraining_operator.reconcile.training_status import JobRef


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
    held_out = p.spec.gate.evaluation is not None
    decision = evaluate_gate(
        p.spec.gate,
        seen.final_metrics,
        # With gate.evaluation the serving model is compared on the same held-out images,
        # not by the number its own run measured on other images.
        serving_value=None if held_out else serving_metric_value(p.status),
        job_name=job_name,
    )
    _export_gate_metric(p, decision.metric, decision.value, decision.serving_value)
    if held_out and decision.passed:
        judged = _held_out_comparison(p, seen.model_data_url)
        if judged is None:
            return  # predicting (or the run ended Failed): a later pass goes on
        run = p.run or run
        decision = dataclasses.replace(
            decision, passed=judged.passed, reason=f"{decision.reason}; {judged.reason}"
        )
    if p.spec.registry is not None and run.model_package_arn is None:
        run = _register(p, run, decision, job_name, seen.model_data_url)
    if not decision.passed:
        entry = rejection_history_entry(
            run,
            decision,
            training_job_name=job_name,
            model_data_url=seen.model_data_url,
            finished_at=p.now,
        )
        p.end_run(
            entry.model_copy(
                update={"model_package_arn": run.model_package_arn, "comparison": run.comparison}
            )
        )
        failed_held_out = run.comparison is not None and not run.comparison.passed
        p.event("Warning", "GateFailed" if failed_held_out else "GateRejected", decision.reason)
    elif p.spec.registry is not None and p.spec.registry.approval is Approval.MANUAL:
        p.event("Normal", "GatePassed", decision.reason)
        message = (
            f"run {run.id}: {run.model_package_arn} awaits approval (approve it in SageMaker, "
            f"or annotate retraining.hitl.dev/approve={run.id})"
        )
        p.update_run(
            stage=RunStage.AWAITING_APPROVAL,
            metric_value=decision.value,
            approval_requested_at=p.now,
            message=message,
        )
        p.set_phase()
        p.event("Normal", "AwaitingApproval", message)
    else:
        p.event("Normal", "GatePassed", decision.reason)
        p.update_run(
            stage=next_stage_after_gate(p.spec),
            metric_value=decision.value,
            message=decision.reason,
        )
        p.set_phase()
    p.checkpoint()


def _held_out_comparison(p: PolicyPass, model_data_url: str | None) -> Comparison | None:
    """The run's held-out comparison (gate.evaluation): done, or one more step of it."""
    run = p.run
    assert run is not None
    if run.comparison is not None:
        return run.comparison
    if run.model_data_url is None and model_data_url:
        run = p.update_run(model_data_url=model_data_url)
    subject = evaluation.EvaluationSubject(p.ref, p.spec, run, p.status.held_out, p.now)
    step = evaluation.advance_evaluation(p.session, subject, poll=observe_interval(p))
    for action in step.actions:
        p.event("Normal", "EvaluationStep", action)
    if step.held_out is not None:
        p.status.held_out = step.held_out
    hours = (step.run.instance_hours or 0.0) + step.instance_hours
    p.status.current_run = step.run.model_copy(
        update={"instance_hours": hours or step.run.instance_hours}
    )
    if step.failed is not None:
        p.end_run(
            HistoryEntry(
                run_id=run.id,
                outcome=Outcome.FAILED,
                training_job_name=run.training_job_name,
                model_data_url=run.model_data_url,
                started_at=run.started_at,
                finished_at=p.now,
                reason=f"EvaluationFailed: {step.failed}",
                instance_hours=hours or None,
            )
        )
        p.event("Warning", "EvaluationFailed", f"run {run.id}: {step.failed}; nothing deployed")
        p.checkpoint()
        return None
    if step.comparison is None:
        p.checkpoint()  # the job names are durable before the next pass looks
        p.due_in((step.retry_after or observe_interval(p)).total_seconds())
        return None
    p.update_run(comparison=step.comparison)
    return step.comparison


def _export_gate_metric(
    p: PolicyPass, metric: str, candidate: float | None, serving: float | None
) -> None:
    """The dashboard plots the candidate against the serving model per evaluation."""
    for model, value in (("candidate", candidate), ("serving", serving)):
        if value is not None:
            metrics.GATE_METRIC.labels(*p.labels, metric, model).set(value)


def _register(
    p: PolicyPass,
    run: CurrentRun,
    decision: GateDecision,
    job_name: str,
    model_data_url: str | None,
) -> CurrentRun:
    """Register the candidate and make its ARN durable before the run moves on."""
    if not model_data_url:
        raise RegistryError(f"run {run.id}: {job_name} reported no model artifacts to register")
    try:
        image = training.training_image_uri(p.spec)
    except ImageLookupError as error:
        raise RegistryError(f"no inference image to register: {error}") from error
    candidate = Candidate(
        run=run,
        training_job_name=job_name,
        model_data_url=model_data_url,
        image=image,
        decision=decision,
    )
    arn = registry.register(p.session, p.ref, p.spec, candidate)
    run = p.update_run(model_package_arn=arn, model_data_url=model_data_url)
    p.checkpoint()
    p.event("Normal", "ModelRegistered", f"run {run.id}: registered {arn}")
    return run
