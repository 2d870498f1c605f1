"""Training: submit the run's job (describe first, adopt on ResourceInUse), then observe
it at most every observe_seconds until it ends; a finished job goes to Evaluating."""

from __future__ import annotations

from retraining_operator import metrics
from retraining_operator.api import RunStage
from retraining_operator.aws.errors import NotFound
from retraining_operator.flows import training
from retraining_operator.policy_pass.context import PolicyPass
from retraining_operator.reconcile.training_request import TrainingData
from retraining_operator.reconcile.training_status import (
    JobKind,
    JobRef,
    failure_history_entry,
)


def step(p: PolicyPass) -> None:
    run = p.run
    if run is None or p.is_rollback_run or run.stage is not RunStage.TRAINING:
        return
    job = JobRef.from_run(run)
    if job is None:
        if not p.spec.suspend:
            _submit(p)
        return
    if not p.observe_due():
        return
    try:
        seen = training.observe_training(p.session, job)
    except NotFound:
        # The job vanished (or a crash hit before create): submit again, same name.
        p.update_run(training_job_name=None, tuning_job_name=None)
        return
    if not seen.finished:
        p.update_run(
            training_job_status=seen.status,
            secondary_status=seen.secondary_status,
            message=f"{job.name}: {seen.status}"
            + (f" ({seen.secondary_status})" if seen.secondary_status else "")
            + (f"; {seen.spot_interruption}" if seen.spot_interruption else ""),
        )
        return
    if seen.billed_instance_hours is not None:  # the quota counts what was billed from now on
        run = p.update_run(instance_hours=seen.billed_instance_hours)
    if not seen.succeeded:
        entry = failure_history_entry(run, seen, finished_at=p.now)
        p.end_run(entry)
        p.event("Warning", "TrainingFailed", entry.reason or "")
        return
    p.update_run(
        stage=RunStage.EVALUATING,
        training_job_status=seen.status,
        secondary_status=seen.secondary_status,
        model_data_url=seen.model_data_url,
        message=f"{seen.training_job_name or job.name} completed",
        training_job_name=seen.training_job_name or run.training_job_name,
    )
    metrics.TRAINING_SECONDS.labels(*p.labels).observe((p.now - run.started_at).total_seconds())
    p.observed_job = seen  # the gate judges this observation in the same pass


def _submit(p: PolicyPass) -> None:
    run = p.run
    assert run is not None
    submission = training.ensure_training(
        p.session, p.ref, p.spec, run.id, TrainingData.from_run(run)
    )
    job = submission.job
    names = (
        {"tuning_job_name": job.name}
        if job.kind is JobKind.TUNING
        else {"training_job_name": job.name}
    )
    run = p.update_run(**names, message=f"{job.kind} {job.name} submitted")
    p.status.last_training_job_name = job.name
    p.set_phase()
    p.checkpoint()
    verb = "submitted" if submission.created else "adopted"
    p.event("Normal", "TrainingSubmitted", f"run {run.id}: {verb} {job.name}")
    p.memo.last_observed = p.clock.monotonic()
