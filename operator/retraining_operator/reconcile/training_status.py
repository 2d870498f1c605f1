"""What a submitted training (or tuning) job's Describe* answer means for the run (pure).

`observe_training_job` / `observe_tuning_job` turn SageMaker's Describe* responses into
one typed `TrainingObservation`: a coarse state, the raw statuses to show in status,
the failure reason a person can act on, spot interruptions, and - once finished - the
job whose model would ship (for a tuning job: its best training job), its artifacts
and final metrics. `failure_history_entry` records a run that ended without a model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from retraining_operator.api import CurrentRun, HistoryEntry, Outcome


class JobKind(StrEnum):
    TRAINING = "TrainingJob"
    TUNING = "HyperParameterTuningJob"


@dataclass(frozen=True)
class JobRef:
    """The SageMaker job a run submitted: one training job, or one tuning job."""

    kind: JobKind
    name: str

    @classmethod
    def from_run(cls, run: CurrentRun) -> JobRef | None:
        """The job recorded in the run's status (a tuning job wins over its best job)."""
        if run.tuning_job_name:
            return cls(JobKind.TUNING, run.tuning_job_name)
        if run.training_job_name:
            return cls(JobKind.TRAINING, run.training_job_name)
        return None


class JobState(StrEnum):
    IN_PROGRESS = "InProgress"
    STOPPING = "Stopping"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"


_STATES = {
    "InProgress": JobState.IN_PROGRESS,
    "Stopping": JobState.STOPPING,
    "Completed": JobState.COMPLETED,
    "Failed": JobState.FAILED,
    "Stopped": JobState.STOPPED,
    "Deleting": JobState.STOPPED,
    "DeleteFailed": JobState.FAILED,
}

# Secondary statuses that end a job without the operator asking for it.
MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"
MAX_WAIT_EXCEEDED = "MaxWaitTimeExceeded"
INTERRUPTED = "Interrupted"


@dataclass(frozen=True)
class TrainingObservation:
    job: JobRef
    state: JobState
    status: str  # TrainingJobStatus / HyperParameterTuningJobStatus as AWS says it
    secondary_status: str | None = None  # training: SecondaryStatus; tuning: job counters
    failure_reason: str | None = None  # why it failed or was cut short, in words
    spot_interruption: str | None = None  # spot capacity was reclaimed or never came
    # The job whose model would ship (the training job itself, or the tuning job's best).
    training_job_name: str | None = None
    model_data_url: str | None = None
    final_metrics: dict[str, float] = field(default_factory=dict)
    base_model_s3_uri: str | None = None  # the `model` channel the job was created with
    # Instance-hours billed (a training job's BillableTimeInSeconds x InstanceCount; None for
    # a tuning job or before AWS says).
    billed_instance_hours: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in (JobState.COMPLETED, JobState.FAILED, JobState.STOPPED)

    @property
    def succeeded(self) -> bool:
        """Completed with a model to judge (a tuning job: its best job has artifacts)."""
        return self.state is JobState.COMPLETED and self.model_data_url is not None

    @property
    def failure_outcome(self) -> Outcome | None:
        """How a finished run without a model goes into history (None: not a failure)."""
        if not self.finished or self.succeeded:
            return None
        if self.state is JobState.STOPPED and self.secondary_status not in (
            MAX_RUNTIME_EXCEEDED,
            MAX_WAIT_EXCEEDED,
        ):
            return Outcome.STOPPED
        return Outcome.TRAINING_FAILED

    @property
    def message(self) -> str:
        """One line for status/Events: `TrainingJob x: InProgress (Training)`."""
        text = f"{self.job.kind} {self.job.name}: {self.status}"
        if self.secondary_status:
            text += f" ({self.secondary_status})"
        if self.spot_interruption:
            text += f"; {self.spot_interruption}"
        if self.failure_reason:
            text += f"; {self.failure_reason}"
        return text


def final_metrics(data_list: Iterable[Mapping[str, Any]] | None) -> dict[str, float]:
    """`FinalMetricDataList` as {name: value}; the newest value wins, NaN is dropped."""
    rows = sorted(
        (row for row in data_list or () if "MetricName" in row and "Value" in row),
        key=lambda row: _timestamp_key(row.get("Timestamp")),
    )
    metrics: dict[str, float] = {}
    for row in rows:
        value = float(row["Value"])
        if math.isfinite(value):
            metrics[str(row["MetricName"])] = value
    return metrics


def _timestamp_key(value: object) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return 0.0


def _model_channel_uri(channels: Iterable[Mapping[str, Any]] | None) -> str | None:
    for channel in channels or ():
        if channel.get("ChannelName") == "model":
            uri = channel.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri")
            return str(uri) if uri else None
    return None


def _spot_text(secondary: str | None, status: str) -> str | None:
    if secondary == INTERRUPTED:
        return "spot capacity was reclaimed; SageMaker resumes from the last checkpoint"
    if secondary == MAX_WAIT_EXCEEDED:
        return (
            "spot capacity did not become available within training.spot.maxWait"
            if status != "InProgress"
            else None
        )
    return None


def _failure_text(status: str, secondary: str | None, reason: str | None) -> str | None:
    if status == "Failed":
        return reason or "the job failed without a reason (see its CloudWatch logs)"
    if status == "Stopped" and secondary == MAX_RUNTIME_EXCEEDED:
        return "the job hit training.maxRuntime before finishing; raise maxRuntime or epochs down"
    if status == "Stopped" and secondary == MAX_WAIT_EXCEEDED:
        return "the job waited longer than training.spot.maxWait for spot capacity"
    return reason


def observe_training_job(describe: Mapping[str, Any]) -> TrainingObservation:
    """From a `DescribeTrainingJob` response."""
    name = str(describe["TrainingJobName"])
    status = str(describe.get("TrainingJobStatus", "InProgress"))
    secondary = describe.get("SecondaryStatus")
    secondary = str(secondary) if secondary else None
    state = _STATES.get(status, JobState.IN_PROGRESS)
    artifacts = describe.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    return TrainingObservation(
        job=JobRef(JobKind.TRAINING, name),
        state=state,
        status=status,
        secondary_status=secondary,
        failure_reason=_failure_text(status, secondary, describe.get("FailureReason")),
        spot_interruption=_spot_text(secondary, status),
        training_job_name=name,
        model_data_url=str(artifacts) if artifacts and state is JobState.COMPLETED else None,
        final_metrics=final_metrics(describe.get("FinalMetricDataList")),
        base_model_s3_uri=_model_channel_uri(describe.get("InputDataConfig")),
        billed_instance_hours=_billed_hours(describe),
    )


def _billed_hours(describe: Mapping[str, Any]) -> float | None:
    seconds = describe.get("BillableTimeInSeconds")
    count = (describe.get("ResourceConfig") or {}).get("InstanceCount", 1)
    if not isinstance(seconds, int | float) or not isinstance(count, int):
        return None
    return round(seconds * count / 3600, 4)


def best_training_job_name(describe_tuning: Mapping[str, Any]) -> str | None:
    """The tuning job's best training job so far (by its objective metric), if any."""
    best = describe_tuning.get("BestTrainingJob") or {}
    name = best.get("TrainingJobName")
    return str(name) if name else None


def _counters(describe_tuning: Mapping[str, Any]) -> str | None:
    counters = describe_tuning.get("TrainingJobStatusCounters")
    if not counters:
        return None
    parts = [
        f"{counters.get(key, 0)} {label}"
        for key, label in (
            ("Completed", "completed"),
            ("InProgress", "in progress"),
            ("RetryableError", "retrying"),
            ("NonRetryableError", "failed"),
            ("Stopped", "stopped"),
        )
        if counters.get(key)
    ]
    return ", ".join(parts) or None


def observe_tuning_job(
    describe_tuning: Mapping[str, Any], best: Mapping[str, Any] | None = None
) -> TrainingObservation:
    """From `DescribeHyperParameterTuningJob` and, once it completed, a
    `DescribeTrainingJob` of its best training job (`best_training_job_name`)."""
    name = str(describe_tuning["HyperParameterTuningJobName"])
    status = str(describe_tuning.get("HyperParameterTuningJobStatus", "InProgress"))
    state = _STATES.get(status, JobState.IN_PROGRESS)
    definition = describe_tuning.get("TrainingJobDefinition") or {}
    base = _model_channel_uri(definition.get("InputDataConfig"))
    job = JobRef(JobKind.TUNING, name)
    counters = _counters(describe_tuning)
    reason = describe_tuning.get("FailureReason")
    if state is not JobState.COMPLETED:
        failure = (
            (reason or "the tuning job failed without a reason") if status == "Failed" else None
        )
        return TrainingObservation(
            job=job,
            state=state,
            status=status,
            secondary_status=counters,
            failure_reason=failure,
            training_job_name=best_training_job_name(describe_tuning),
            base_model_s3_uri=base,
        )
    best_name = best_training_job_name(describe_tuning)
    if best_name is None:
        return TrainingObservation(
            job=job,
            state=JobState.FAILED,
            status=status,
            secondary_status=counters,
            failure_reason=(
                "no training job of the tuning job reported the objective metric "
                "(all failed or were stopped early); see the tuning job's training jobs"
            ),
            base_model_s3_uri=base,
        )
    if best is None or best.get("TrainingJobName") != best_name:
        raise ValueError(f"pass DescribeTrainingJob of the best training job {best_name}")
    best_obs = observe_training_job(best)
    return TrainingObservation(
        job=job,
        state=JobState.COMPLETED if best_obs.succeeded else JobState.FAILED,
        status=status,
        secondary_status=counters,
        failure_reason=None
        if best_obs.succeeded
        else f"best training job {best_name} has no model artifacts ({best_obs.status})",
        training_job_name=best_name,
        model_data_url=best_obs.model_data_url,
        final_metrics=best_obs.final_metrics,
        base_model_s3_uri=base,
    )


def failure_history_entry(
    run: CurrentRun, observation: TrainingObservation, *, finished_at: datetime
) -> HistoryEntry:
    """The history entry of a run whose training ended without a model to judge."""
    outcome = observation.failure_outcome or Outcome.TRAINING_FAILED
    reason = observation.failure_reason or observation.spot_interruption
    if outcome is Outcome.STOPPED and not reason:
        reason = "stopped before it finished (policy suspended or deleted, or stopped by hand)"
    return HistoryEntry(
        run_id=run.id,
        outcome=outcome,
        training_job_name=observation.training_job_name or observation.job.name,
        started_at=run.started_at,
        finished_at=finished_at,
        reason=f"{observation.job.kind} {observation.job.name}: {reason or observation.status}",
    )
