"""Preparing: assemble the run's dataset (idempotent per run id), resolve the base model,
then checkpoint both before the training job that depends on them is submitted."""

from __future__ import annotations

from retraining_operator.api import RunSamples, RunStage, ValidationWait
from retraining_operator.flows import dataset, training
from retraining_operator.policy_pass.context import PolicyPass


def step(p: PolicyPass) -> None:
    run = p.run
    if p.spec.suspend or run is None or p.is_rollback_run or run.stage is not RunStage.PREPARING:
        return
    try:
        built = dataset.assemble_run_dataset(
            p.session,
            p.spec,
            run.id,
            clock=p.clock.wall,
            access=p.ledger_access,
            held_out_before=p.status.held_out.images if p.status.held_out else 0,
        )
    except dataset.WaitingForValidationData as error:
        # The run does not start: its samples stay pending until more arrive (start
        # compares the pending count with this record before trying again).
        p.status.current_run = None
        p.status.validation_wait = ValidationWait(
            pending_samples=p.status.ingest.pending_samples,
            holdout_images=error.holdout_images,
            min_samples=error.min_samples,
        )
        p.event("Warning", "WaitingForValidationData", f"run {run.id} not started: {error}")
        return
    except dataset.NothingToTrain as error:
        p.status.current_run = None
        p.event("Normal", "RunSkipped", f"run {run.id}: {error}")
        return
    p.status.validation_wait = None
    _count_claimed(p, built)
    if built.validation_source is dataset.ValidationSource.TRAIN:
        p.event(
            "Warning",
            "TrainAsValidation",
            f"run {run.id}: the validation holdout has fewer than "
            f"{p.spec.dataset.validation.min_samples} images, so the gate scores the model on "
            "its own train manifest (allowTrainAsValidation: true); the gate measures fit, "
            "not generalisation",
        )
    if built.samples.superseded or built.samples.overlap_dropped:
        p.event(
            "Normal",
            "DatasetDeduplicated",
            f"run {run.id}: {built.samples.superseded} older review(s) superseded by a newer "
            f"review of the same image; {built.samples.overlap_dropped} train line(s) dropped "
            "because their image is in the validation set",
        )
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


def _count_claimed(p: PolicyPass, built: dataset.AssembledDataset) -> None:
    """The run holds what was pending: the status says so now, not at the next poll (which
    may be a whole pollInterval or backstop away)."""
    if built.pending_after is None:
        return
    samples, oldest, revision = built.pending_after
    # Remembered too: what the poll and events stages remember must not bring the old count back.
    p.remember_ingest(
        p.status.ingest.model_copy(
            update={
                "pending_samples": samples,
                "oldest_pending_time": oldest,
                "ledger_revision": revision,
            }
        )
    )
