"""Preparing: assemble the run's dataset (idempotent per run id), resolve the base model,
then checkpoint both before the training job that depends on them is submitted."""

from __future__ import annotations

from retraining_operator.api import RunSamples, RunStage
from retraining_operator.workflow import dataset, training
from retraining_operator.workflow.context import PolicyPass


def step(p: PolicyPass) -> None:
    run = p.run
    if p.spec.suspend or run is None or p.is_rollback_run or run.stage is not RunStage.PREPARING:
        return
    try:
        built = dataset.assemble_run_dataset(
            p.session, p.spec, run.id, clock=p.clock.wall, owner=p.ledger_owner
        )
    except dataset.NothingToTrain as error:
        p.status.current_run = None
        p.event("Normal", "RunSkipped", f"run {run.id}: {error}")
        return
    p.update_run(
        manifest_s3_uri=built.train_manifest_s3_uri,
        validation_manifest_s3_uri=built.validation_manifest_s3_uri,
        samples=RunSamples.model_validate(built.samples.model_dump()),
        message=f"dataset: {built.samples.train} train / {built.samples.validation} "
        "validation lines",
    )
    p.event(
        "Normal",
        "DatasetWritten",
        f"run {run.id}: {built.samples.new} new + {built.samples.replay} replay samples -> "
        f"{built.train_manifest_s3_uri}",
    )
    base = training.resolve_base_model(p.session, p.spec)
    p.update_run(base_model_data_url=base, stage=RunStage.TRAINING)
    p.set_phase()
    p.checkpoint()
