"""Hyperparameter tuning: children honour MaxParallelTrainingJobs, the best job wins."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from retraining_standins.stack import AwsStandins
from retraining_standins.training import TrainingPlan

from .builders import training_job, upload_training_inputs

JOB_SECONDS = 480


def tuning_request(bucket: str, *, max_jobs: int = 4, parallel: int = 2) -> dict[str, Any]:
    base = training_job(bucket)
    return {
        "HyperParameterTuningJobName": "tune-1",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {
                "Type": "Maximize",
                "MetricName": "validation:mAP",
            },
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": max_jobs,
                "MaxParallelTrainingJobs": parallel,
            },
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {
                        "Name": "learning_rate",
                        "MinValue": "0.00001",
                        "MaxValue": "0.001",
                        "ScalingType": "Logarithmic",
                    }
                ],
                "CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["sgd", "adam"]}],
            },
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {"num_classes": "20", "epochs": "1"},
            "AlgorithmSpecification": {
                "TrainingImage": base["AlgorithmSpecification"]["TrainingImage"],
                "TrainingInputMode": "Pipe",
            },
            "RoleArn": base["RoleArn"],
            "InputDataConfig": base["InputDataConfig"],
            "OutputDataConfig": base["OutputDataConfig"],
            "ResourceConfig": base["ResourceConfig"],
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
    }


@pytest.fixture
def sm(aws: AwsStandins, aws_bucket: str) -> Any:
    upload_training_inputs(aws, aws_bucket)
    return boto3.client("sagemaker")


def children(sm: Any) -> list[dict[str, Any]]:
    pages = sm.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
        HyperParameterTuningJobName="tune-1", SortBy="CreationTime", SortOrder="Ascending"
    )
    return [s for page in pages for s in page["TrainingJobSummaries"]]


def test_children_respect_parallelism_and_best_is_max(aws, aws_bucket, sm) -> None:
    # Objective = 1000 * learning_rate: the best child is the one with the largest rate.
    aws.sagemaker.set_metrics_provider(
        lambda name, hp: {"validation:mAP": float(hp["learning_rate"]) * 1000}
    )
    sm.create_hyper_parameter_tuning_job(**tuning_request(aws_bucket, max_jobs=5, parallel=2))

    first = children(sm)
    assert len(first) == 2
    assert all(c["TrainingJobStatus"] == "InProgress" for c in first)
    assert all(c["TrainingJobName"].startswith("tune-1-00") for c in first)

    aws.clock.advance(JOB_SECONDS)  # the first wave ends, the second starts
    wave = children(sm)
    assert len(wave) == 4
    assert sum(c["TrainingJobStatus"] == "InProgress" for c in wave) == 2
    described = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-1")
    assert described["HyperParameterTuningJobStatus"] == "InProgress"
    assert described["TrainingJobStatusCounters"]["Completed"] == 2
    assert described["TrainingJobStatusCounters"]["InProgress"] == 2

    aws.clock.advance(3 * JOB_SECONDS)
    done = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-1")
    assert done["HyperParameterTuningJobStatus"] == "Completed"
    assert done["TrainingJobStatusCounters"]["Completed"] == 5
    assert done["ObjectiveStatusCounters"] == {"Succeeded": 5, "Pending": 0, "Failed": 0}
    final = children(sm)
    assert len(final) == 5
    best_rate = max(float(c["TunedHyperParameters"]["learning_rate"]) for c in final)
    best = done["BestTrainingJob"]
    assert float(best["TunedHyperParameters"]["learning_rate"]) == best_rate
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pytest.approx(
        best_rate * 1000
    )
    for child in final:
        rate = float(child["TunedHyperParameters"]["learning_rate"])
        assert 0.00001 <= rate <= 0.001
        assert child["TunedHyperParameters"]["optimizer"] in ("sgd", "adam")

    # Children are real training jobs, tied to the tuning job, with merged hyperparameters.
    job = sm.describe_training_job(TrainingJobName=best["TrainingJobName"])
    assert job["TuningJobArn"] == done["HyperParameterTuningJobArn"]
    assert job["HyperParameters"]["num_classes"] == "20"
    assert job["HyperParameters"]["_tuning_objective_metric"] == "validation:mAP"
    assert job["ModelArtifacts"]["S3ModelArtifacts"].endswith(
        f"/{best['TrainingJobName']}/output/model.tar.gz"
    )


def test_minimize_picks_the_smallest(aws, aws_bucket, sm) -> None:
    request = tuning_request(aws_bucket, max_jobs=3, parallel=3)
    request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"] = {
        "Type": "Minimize",
        "MetricName": "validation:loss",
    }
    aws.sagemaker.set_metrics_provider(
        lambda name, hp: {"validation:loss": float(hp["learning_rate"])}
    )
    sm.create_hyper_parameter_tuning_job(**request)
    aws.clock.advance(JOB_SECONDS)
    done = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-1")
    smallest = min(float(c["TunedHyperParameters"]["learning_rate"]) for c in children(sm))
    assert done["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == (
        pytest.approx(smallest)
    )


def test_stop_tuning_job_stops_children(aws, aws_bucket, sm) -> None:
    sm.create_hyper_parameter_tuning_job(**tuning_request(aws_bucket, max_jobs=6, parallel=2))
    aws.clock.advance(100)
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-1")
    stopping = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-1")
    assert stopping["HyperParameterTuningJobStatus"] == "Stopping"
    aws.clock.advance(60)
    stopped = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-1")
    assert stopped["HyperParameterTuningJobStatus"] == "Stopped"
    assert stopped["TrainingJobStatusCounters"]["Stopped"] == 2
    assert len(children(sm)) == 2  # no new children after the stop


def test_failed_children_are_counted(aws, aws_bucket, sm) -> None:
    aws.sagemaker.set_training_planner(
        lambda name, request: None if "-001-" in name else TrainingPlan(outcome="Failed")
    )
    sm.create_hyper_parameter_tuning_job(**tuning_request(aws_bucket, max_jobs=2, parallel=2))
    aws.clock.advance(JOB_SECONDS)
    done = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-1")
    assert done["HyperParameterTuningJobStatus"] == "Completed"
    assert done["TrainingJobStatusCounters"]["Completed"] == 1
    assert done["TrainingJobStatusCounters"]["NonRetryableError"] == 1
    assert done["ObjectiveStatusCounters"]["Failed"] == 1
    assert "-001-" in done["BestTrainingJob"]["TrainingJobName"]


def test_unknown_tuning_job_is_resource_not_found(aws, sm) -> None:
    with pytest.raises(ClientError) as err:
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="nope")
    assert err.value.response["Error"]["Code"] == "ResourceNotFound"


def test_tuning_name_longer_than_32_is_refused(aws, aws_bucket, sm) -> None:
    request = tuning_request(aws_bucket)
    request["HyperParameterTuningJobName"] = "t" * 33
    with pytest.raises(ClientError) as err:
        sm.create_hyper_parameter_tuning_job(**request)
    assert "less than or equal to 32" in err.value.response["Error"]["Message"]
