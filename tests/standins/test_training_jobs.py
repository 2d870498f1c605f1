"""Training jobs through unmodified boto3: validation, lifecycle on the clock, outcomes."""

from __future__ import annotations

import io
import tarfile
from datetime import timedelta

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from retraining_standins.stack import AwsStandins

from .builders import ROLE, training_job, upload_training_inputs

TOTAL = 60 + 60 + 300 + 60  # default Durations of the four phases


@pytest.fixture
def sm(aws: AwsStandins) -> object:
    return boto3.client("sagemaker")


def test_create_describe_round_trip_and_lifecycle(aws, aws_bucket, sm) -> None:
    upload_training_inputs(aws, aws_bucket)
    request = training_job(aws_bucket, Tags=[{"Key": "team", "Value": "vision"}])
    arn = sm.create_training_job(**request)["TrainingJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:training-job/job-1"
    created = aws.clock.now()

    seen = []
    for step in (0, 60, 60, 300, 60):
        aws.clock.advance(step)
        job = sm.describe_training_job(TrainingJobName="job-1")
        seen.append((job["TrainingJobStatus"], job["SecondaryStatus"]))
    assert seen == [
        ("InProgress", "Starting"),
        ("InProgress", "Downloading"),
        ("InProgress", "Training"),
        ("InProgress", "Uploading"),
        ("Completed", "Completed"),
    ]
    assert job["CreationTime"] == created
    assert job["TrainingStartTime"] == created + timedelta(seconds=60)
    assert job["TrainingEndTime"] == created + timedelta(seconds=TOTAL)
    assert job["TrainingTimeInSeconds"] == TOTAL - 60
    assert job["BillableTimeInSeconds"] == TOTAL - 60
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == (
        f"s3://{aws_bucket}/incremental-training/job-1/output/model.tar.gz"
    )
    assert job["HyperParameters"] == request["HyperParameters"]
    assert job["InputDataConfig"] == request["InputDataConfig"]
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    [metric] = job["FinalMetricDataList"]
    assert metric["MetricName"] == "validation:mAP"
    assert 0.6 <= metric["Value"] < 0.8
    # The artifact really is in the S3 stand-in, a readable tarball.
    artifact = aws.get_object(job["ModelArtifacts"]["S3ModelArtifacts"])
    assert artifact is not None
    with tarfile.open(fileobj=io.BytesIO(artifact)) as tar:
        assert tar.getnames() == ["emulated-model.json"]
    tags = sm.list_tags(ResourceArn=arn)["Tags"]
    assert tags == [{"Key": "team", "Value": "vision"}]


def test_metric_value_set_by_the_test(aws, aws_bucket, sm) -> None:
    upload_training_inputs(aws, aws_bucket)
    aws.sagemaker.set_metrics("job-1", {"validation:mAP": 0.42})
    sm.create_training_job(**training_job(aws_bucket))
    aws.clock.advance(TOTAL)
    job = sm.describe_training_job(TrainingJobName="job-1")
    assert [(m["MetricName"], m["Value"]) for m in job["FinalMetricDataList"]] == [
        ("validation:mAP", 0.42)
    ]


def test_metrics_provider_sees_hyperparameters(aws, aws_bucket, sm) -> None:
    upload_training_inputs(aws, aws_bucket)
    aws.sagemaker.set_metrics_provider(
        lambda name, hp: {"validation:mAP": float(hp["learning_rate"]) * 1000}
    )
    sm.create_training_job(**training_job(aws_bucket))
    aws.clock.advance(TOTAL)
    job = sm.describe_training_job(TrainingJobName="job-1")
    assert job["FinalMetricDataList"][0]["Value"] == pytest.approx(0.1)


def test_planned_failure(aws, aws_bucket, sm) -> None:
    upload_training_inputs(aws, aws_bucket)
    aws.sagemaker.plan_training("job-1", outcome="Failed", failure_reason="AlgorithmError: boom")
    sm.create_training_job(**training_job(aws_bucket))
    aws.clock.advance(60 + 60 + 299)
    assert sm.describe_training_job(TrainingJobName="job-1")["TrainingJobStatus"] == "InProgress"
    aws.clock.advance(1)
    job = sm.describe_training_job(TrainingJobName="job-1")
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Failed", "Failed")
    assert job["FailureReason"] == "AlgorithmError: boom"
    assert "ModelArtifacts" not in job
    assert "FinalMetricDataList" not in job


def test_missing_training_data_fails_after_downloading(aws, aws_bucket, sm) -> None:
    sm.create_training_job(**training_job(aws_bucket))  # nothing uploaded
    aws.clock.advance(120)
    job = sm.describe_training_job(TrainingJobName="job-1")
    assert job["TrainingJobStatus"] == "Failed"
    assert "Data download failed" in job["FailureReason"]
    assert f"s3://{aws_bucket}/manifests/train.manifest" in job["FailureReason"]


def test_stop_training_job(aws, aws_bucket, sm) -> None:
    upload_training_inputs(aws, aws_bucket)
    sm.create_training_job(**training_job(aws_bucket))
    aws.clock.advance(200)
    sm.stop_training_job(TrainingJobName="job-1")
    job = sm.describe_training_job(TrainingJobName="job-1")
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopping", "Stopping")
    aws.clock.advance(30)
    job = sm.describe_training_job(TrainingJobName="job-1")
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "Stopped")
    with pytest.raises(ClientError) as err:
        sm.stop_training_job(TrainingJobName="job-1")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "status Stopped" in err.value.response["Error"]["Message"]


def test_max_runtime_exceeded_stops_the_job(aws, aws_bucket, sm) -> None:
    upload_training_inputs(aws, aws_bucket)
    request = training_job(aws_bucket, StoppingCondition={"MaxRuntimeInSeconds": 100})
    sm.create_training_job(**request)
    aws.clock.advance(60 + 100)
    job = sm.describe_training_job(TrainingJobName="job-1")
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")


def test_spot_training_is_billed_less(aws, aws_bucket, sm) -> None:
    upload_training_inputs(aws, aws_bucket)
    request = training_job(
        aws_bucket,
        EnableManagedSpotTraining=True,
        StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
        CheckpointConfig={"S3Uri": f"s3://{aws_bucket}/checkpoints"},
    )
    sm.create_training_job(**request)
    aws.clock.advance(TOTAL)
    job = sm.describe_training_job(TrainingJobName="job-1")
    assert job["EnableManagedSpotTraining"] is True
    assert job["TrainingTimeInSeconds"] == TOTAL - 60
    assert job["BillableTimeInSeconds"] == 126  # 30 % of 420 s
    assert job["CheckpointConfig"] == {"S3Uri": f"s3://{aws_bucket}/checkpoints"}


def test_spot_requires_max_wait_at_least_max_runtime(aws, aws_bucket, sm) -> None:
    request = training_job(
        aws_bucket,
        EnableManagedSpotTraining=True,
        StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 60},
    )
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**request)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "MaxWaitTimeInSeconds" in err.value.response["Error"]["Message"]


def test_duplicate_name_is_resource_in_use(aws, aws_bucket, sm) -> None:
    sm.create_training_job(**training_job(aws_bucket))
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**training_job(aws_bucket, name="JOB-1"))
    assert err.value.response["Error"]["Code"] == "ResourceInUse"


def test_unknown_job_is_validation_exception_like_aws(aws, sm) -> None:
    with pytest.raises(ClientError) as err:
        sm.describe_training_job(TrainingJobName="nope")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["Error"]["Message"].startswith("Requested resource not found")


def test_64_character_name_is_refused_by_the_server(aws, aws_bucket, sm) -> None:
    # botocore does not check maximum lengths client-side: this is the stand-in's validation.
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**training_job(aws_bucket, name="a" * 64))
    error = err.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "at 'trainingJobName' failed to satisfy constraint" in error["Message"]
    assert "Member must have length less than or equal to 63" in error["Message"]
    assert aws.log.calls("sagemaker")[-1].error == "ValidationException"


def test_name_pattern_is_enforced(aws, aws_bucket, sm) -> None:
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**training_job(aws_bucket, name="bad_name"))
    assert "regular expression pattern" in err.value.response["Error"]["Message"]


def test_missing_role_arn_is_refused_by_the_server(aws, aws_bucket) -> None:
    # Client-side validation off: the request reaches the wire without RoleArn.
    sm = boto3.client("sagemaker", config=Config(parameter_validation=False))
    request = training_job(aws_bucket)
    del request["RoleArn"]
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**request)
    error = err.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert 'Missing required parameter in input: "RoleArn"' in error["Message"]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_enum_and_type_errors_are_refused(aws, aws_bucket) -> None:
    sm = boto3.client("sagemaker", config=Config(parameter_validation=False))
    bad_enum = training_job(aws_bucket)
    bad_enum["ResourceConfig"]["InstanceType"] = "ml.huge"
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**bad_enum)
    assert "Member must satisfy enum value set" in err.value.response["Error"]["Message"]
    bad_type = training_job(aws_bucket)
    bad_type["HyperParameters"] = {"epochs": 1}
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**bad_type)
    assert "Invalid type for parameter HyperParameters.epochs" in str(err.value)


def test_list_training_jobs_filters_sorts_and_pages(aws, aws_bucket, sm) -> None:
    upload_training_inputs(aws, aws_bucket)
    for index in range(5):
        sm.create_training_job(**training_job(aws_bucket, name=f"job-{index}"))
        aws.clock.advance(100)
    # job-0 .. job-3 are done by now? job-0 was created 500 s ago: Completed (480 s).
    summaries = sm.list_training_jobs(MaxResults=2)
    assert [s["TrainingJobName"] for s in summaries["TrainingJobSummaries"]] == ["job-0", "job-1"]
    paginator = sm.get_paginator("list_training_jobs")
    names = [
        s["TrainingJobName"]
        for page in paginator.paginate(SortOrder="Descending", PaginationConfig={"PageSize": 2})
        for s in page["TrainingJobSummaries"]
    ]
    assert names == ["job-4", "job-3", "job-2", "job-1", "job-0"]
    completed = sm.list_training_jobs(StatusEquals="Completed")["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in completed] == ["job-0"]
    contains = sm.list_training_jobs(NameContains="JOB-4")["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in contains] == ["job-4"]


def test_role_arn_pattern_is_enforced(aws, aws_bucket, sm) -> None:
    with pytest.raises(ClientError) as err:
        sm.create_training_job(
            **training_job(aws_bucket, RoleArn="arn:aws:iam::12345:role/short-account")
        )
    assert "at 'roleArn'" in err.value.response["Error"]["Message"]
    assert ROLE.startswith("arn:aws:iam::")


def test_missing_output_bucket_fails_the_upload(aws, aws_bucket, sm) -> None:
    upload_training_inputs(aws, aws_bucket)
    request = training_job(aws_bucket, OutputDataConfig={"S3OutputPath": "s3://no-such-bucket/o"})
    sm.create_training_job(**request)
    aws.clock.advance(TOTAL)
    job = sm.describe_training_job(TrainingJobName="job-1")
    assert job["TrainingJobStatus"] == "Failed"
    assert "Failed to upload model artifacts" in job["FailureReason"]
    assert "NoSuchBucket" in job["FailureReason"]
