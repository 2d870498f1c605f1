"""Suspended: no new polls or runs; an in-flight training job, the held-out evaluation's
transform jobs, or a running shadow test's experiment, are stopped (they would only cost
money); a rollout already under way is let finish; a run still Preparing keeps its claimed
samples and resumes when unsuspended."""

from __future__ import annotations

from retraining_operator.api import CurrentRun, HistoryEntry, Outcome, RunStage
from retraining_operator.flows import evaluation, shadow, training
from retraining_operator.policy_pass.context import PolicyPass
from retraining_operator.reconcile.training_status import JobRef


def step(p: PolicyPass) -> None:
    run = p.run
    if not p.spec.suspend or run is None:
        return
    if run.stage is RunStage.EVALUATING and run.evaluation is not None and not run.comparison:
        _stop_evaluation(p, run)
        return
    if run.stage is RunStage.SHADOW_TESTING:
        _stop_shadow(p, run)
        return
    if run.stage is not RunStage.TRAINING:
        return
    job = JobRef.from_run(run)
    if job is not None and training.stop_training(p.session, job):
        # The next observation records it as Stopped.
        p.event("Normal", "TrainingStopped", f"suspended: stopped {job.name}")


def _stop_shadow(p: PolicyPass, run: CurrentRun) -> None:
    """The shadow variant's instances would only cost money: stop the experiment with the
    shadow removed (production untouched), and end the run Stopped. A shadow test that has
    reached its verdict is let finish (its stop is under way)."""
    if run.shadow is not None and run.shadow.stopping is not None:
        return
    stopped = shadow.stop_shadow(p.session, p.ref, run, "suspended (spec.suspend)")
    if stopped is None and run.shadow is not None and run.shadow.status not in (None, "Running"):
        return  # starting: stopped once it runs (SageMaker stops a running experiment)
    _end_stopped(p, run, "suspended during the shadow test")
    if stopped:
        p.event("Normal", "ShadowStopped", f"suspended: stopped {stopped} (shadow removed)")


def _stop_evaluation(p: PolicyPass, run: CurrentRun) -> None:
    """The held-out evaluation's transform jobs would only cost money: stop them, and end
    the run Stopped (nothing judged, nothing deployed)."""
    stopped = evaluation.stop_evaluation(p.session, p.ref, run.id)
    _end_stopped(p, run, "suspended during the held-out evaluation")
    for name in stopped:
        p.event("Normal", "EvaluationStopped", f"suspended: stopped {name}")


def _end_stopped(p: PolicyPass, run: CurrentRun, reason: str) -> None:
    """The run ends Stopped (nothing judged or deployed), durably before any Event."""
    p.end_run(
        HistoryEntry(
            run_id=run.id,
            outcome=Outcome.STOPPED,
            training_job_name=run.training_job_name,
            model_data_url=run.model_data_url,
            started_at=run.started_at,
            finished_at=p.now,
            reason=reason,
            instance_hours=run.instance_hours,
        )
    )
    p.checkpoint()
