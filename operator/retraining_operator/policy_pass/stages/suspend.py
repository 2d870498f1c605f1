"""Suspended: no new polls or runs; an in-flight training job is stopped (it would only
cost money); a rollout already under way is let finish; a run still Preparing keeps its
claimed samples and resumes when unsuspended."""

from __future__ import annotations

from retraining_operator.api import RunStage
from retraining_operator.flows import training
from retraining_operator.policy_pass.context import PolicyPass
from retraining_operator.reconcile.training_status import JobRef


def step(p: PolicyPass) -> None:
    run = p.run
    if not p.spec.suspend or run is None or run.stage is not RunStage.TRAINING:
        return
    job = JobRef.from_run(run)
    if job is not None and training.stop_training(p.session, job):
        # The next observation records it as Stopped.
        p.event("Normal", "TrainingStopped", f"suspended: stopped {job.name}")
