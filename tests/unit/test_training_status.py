"""Reading DescribeTrainingJob / DescribeHyperParameterTuningJob answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from retraining_operator.api import CurrentRun, Outcome, RunStage
from retraining_operator.reconcile.training_status import (
    JobKind,
    JobRef,
    JobState,
    failure_history_entry,
    final_metrics,
    observe_training_job,
    observe_tuning_job,
)

T0 = datetime(2026, 11, 24, 22, 5, tzinfo=UTC)
MODEL = "s3://b/out/job/output/model.tar.gz"


def job(status: str, secondary: str | None = None, **extra: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "TrainingJobName": "job",
        "TrainingJobStatus": status,
        "InputDataConfig": [
            {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://b/t"}}},
            {"ChannelName": "model", "DataSource": {"S3DataSource": {"S3Uri": "s3://b/base"}}},
        ],
        **extra,
    }
    if secondary:
        answer["SecondaryStatus"] = secondary
    return answer


def test_in_progress_surfaces_secondary_status() -> None:
    seen = observe_training_job(job("InProgress", "Downloading"))
    assert seen.state is JobState.IN_PROGRESS
    assert not seen.finished
    assert seen.secondary_status == "Downloading"
    assert seen.base_model_s3_uri == "s3://b/base"
    assert seen.message == "TrainingJob job: InProgress (Downloading)"
    assert seen.failure_outcome is None


def test_completed_carries_model_and_metrics() -> None:
    seen = observe_training_job(
        job(
            "Completed",
            "Completed",
            ModelArtifacts={"S3ModelArtifacts": MODEL},
            FinalMetricDataList=[
                {"MetricName": "validation:mAP", "Value": 0.61, "Timestamp": T0},
                {"MetricName": "train:progress", "Value": 100.0, "Timestamp": T0},
            ],
        )
    )
    assert seen.succeeded
    assert seen.model_data_url == MODEL
    assert seen.final_metrics == {"validation:mAP": 0.61, "train:progress": 100.0}
    assert seen.training_job_name == "job"


def test_failed_surfaces_failure_reason() -> None:
    reason = "ClientError: Unable to initialize the algorithm. num_classes mismatch"
    seen = observe_training_job(job("Failed", "Failed", FailureReason=reason))
    assert seen.state is JobState.FAILED
    assert seen.failure_reason == reason
    assert seen.failure_outcome is Outcome.TRAINING_FAILED
    assert reason in seen.message


def test_stopped_by_operator_is_stopped() -> None:
    seen = observe_training_job(job("Stopped", "Stopped"))
    assert seen.failure_outcome is Outcome.STOPPED


def test_max_runtime_exceeded_is_a_training_failure() -> None:
    seen = observe_training_job(job("Stopped", "MaxRuntimeExceeded"))
    assert seen.failure_outcome is Outcome.TRAINING_FAILED
    assert seen.failure_reason is not None
    assert "maxRuntime" in seen.failure_reason


def test_spot_interruption_surfaced_while_running() -> None:
    seen = observe_training_job(job("InProgress", "Interrupted"))
    assert seen.state is JobState.IN_PROGRESS
    assert seen.spot_interruption is not None
    assert "reclaimed" in seen.spot_interruption
    assert "Interrupted" in seen.message


def test_spot_max_wait_exceeded() -> None:
    seen = observe_training_job(job("Stopped", "MaxWaitTimeExceeded"))
    assert seen.finished
    assert seen.failure_outcome is Outcome.TRAINING_FAILED
    assert seen.spot_interruption is not None
    assert "spot.maxWait" in seen.spot_interruption
    assert seen.failure_reason is not None
    assert "spot.maxWait" in seen.failure_reason


def test_final_metrics_newest_value_wins_and_nan_dropped() -> None:
    later = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
    metrics = final_metrics(
        [
            {"MetricName": "validation:mAP", "Value": 0.7, "Timestamp": later},
            {"MetricName": "validation:mAP", "Value": 0.5, "Timestamp": T0},
            {"MetricName": "train:loss", "Value": float("nan"), "Timestamp": T0},
        ]
    )
    assert metrics == {"validation:mAP": 0.7}
    assert final_metrics(None) == {}


def tuning(status: str, best: str | None = None, **extra: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "HyperParameterTuningJobName": "tune",
        "HyperParameterTuningJobStatus": status,
        "TrainingJobStatusCounters": {"Completed": 2, "InProgress": 1, "NonRetryableError": 1},
        "TrainingJobDefinition": {
            "InputDataConfig": [
                {"ChannelName": "model", "DataSource": {"S3DataSource": {"S3Uri": "s3://b/base"}}}
            ]
        },
        **extra,
    }
    if best:
        answer["BestTrainingJob"] = {"TrainingJobName": best}
    return answer


def test_tuning_in_progress_shows_counters() -> None:
    seen = observe_tuning_job(tuning("InProgress", best="tune-001-aa"))
    assert seen.job == JobRef(JobKind.TUNING, "tune")
    assert seen.state is JobState.IN_PROGRESS
    assert seen.secondary_status == "2 completed, 1 in progress, 1 failed"
    assert seen.model_data_url is None
    assert seen.base_model_s3_uri == "s3://b/base"


def test_tuning_completed_uses_best_job() -> None:
    best = job(
        "Completed",
        "Completed",
        ModelArtifacts={"S3ModelArtifacts": MODEL},
        FinalMetricDataList=[{"MetricName": "validation:mAP", "Value": 0.66}],
    )
    best["TrainingJobName"] = "tune-002-bb"
    seen = observe_tuning_job(tuning("Completed", best="tune-002-bb"), best)
    assert seen.succeeded
    assert seen.training_job_name == "tune-002-bb"
    assert seen.model_data_url == MODEL
    assert seen.final_metrics == {"validation:mAP": 0.66}


def test_tuning_completed_needs_the_best_job_described() -> None:
    with pytest.raises(ValueError, match="best training job"):
        observe_tuning_job(tuning("Completed", best="tune-002-bb"))


def test_tuning_without_best_job_failed() -> None:
    seen = observe_tuning_job(tuning("Completed"))
    assert seen.state is JobState.FAILED
    assert seen.failure_outcome is Outcome.TRAINING_FAILED
    assert seen.failure_reason is not None
    assert "objective metric" in seen.failure_reason


def test_tuning_failed_reason() -> None:
    seen = observe_tuning_job(tuning("Failed", FailureReason="No training job succeeded"))
    assert seen.failure_reason == "No training job succeeded"
    assert seen.failure_outcome is Outcome.TRAINING_FAILED


def test_job_ref_from_run() -> None:
    run = CurrentRun(id="r1", stage=RunStage.TRAINING, started_at=T0)
    assert JobRef.from_run(run) is None
    trained = run.model_copy(update={"training_job_name": "tj"})
    assert JobRef.from_run(trained) == JobRef(JobKind.TRAINING, "tj")
    tuned = trained.model_copy(update={"tuning_job_name": "ht"})
    assert JobRef.from_run(tuned) == JobRef(JobKind.TUNING, "ht")


def test_failure_history_entry() -> None:
    run = CurrentRun(id="r1", stage=RunStage.TRAINING, started_at=T0)
    finished = datetime(2026, 11, 25, tzinfo=UTC)
    failed = observe_training_job(job("Failed", "Failed", FailureReason="AlgorithmError: OOM"))
    entry = failure_history_entry(run, failed, finished_at=finished)
    assert entry.outcome is Outcome.TRAINING_FAILED
    assert entry.training_job_name == "job"
    assert entry.reason == "TrainingJob job: AlgorithmError: OOM"
    assert entry.finished_at == finished

    stopped = failure_history_entry(run, observe_training_job(job("Stopped")), finished_at=finished)
    assert stopped.outcome is Outcome.STOPPED
    assert stopped.reason is not None
    assert "stopped before it finished" in stopped.reason
