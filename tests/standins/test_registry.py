"""The Model Registry over the wire: groups, versioned packages, approval, idempotency."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from retraining_standins.stack import AwsStandins

from .builders import IMAGE

GROUP = "pascal-detectors"


@pytest.fixture
def sm(aws: AwsStandins) -> Any:
    return boto3.client("sagemaker")


def inference() -> dict[str, Any]:
    return {
        "Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://b/out/model.tar.gz"}],
        "SupportedContentTypes": ["image/jpeg"],
        "SupportedResponseMIMETypes": ["application/json"],
    }


def register(sm: Any, **extra: Any) -> str:
    arn: str = sm.create_model_package(
        ModelPackageGroupName=GROUP, InferenceSpecification=inference(), **extra
    )["ModelPackageArn"]
    return arn


def test_group_then_versions_with_status_transitions(aws: AwsStandins, sm: Any) -> None:
    arn = sm.create_model_package_group(ModelPackageGroupName=GROUP)["ModelPackageGroupArn"]
    assert arn.endswith(f":model-package-group/{GROUP}")
    group = sm.describe_model_package_group(ModelPackageGroupName=GROUP)
    assert group["ModelPackageGroupStatus"] == "Pending"
    aws.clock.advance(aws.sagemaker.durations.registry_group)
    group = sm.describe_model_package_group(ModelPackageGroupName=GROUP)
    assert group["ModelPackageGroupStatus"] == "Completed"
    with pytest.raises(ClientError, match="already exists"):
        sm.create_model_package_group(ModelPackageGroupName=GROUP)

    first = register(sm)
    second = register(sm, ModelApprovalStatus="Approved")
    assert first.endswith(f"/{GROUP}/1")
    assert second.endswith(f"/{GROUP}/2")
    described = sm.describe_model_package(ModelPackageName=first)
    assert described["ModelPackageStatus"] == "Pending"
    assert described["ModelApprovalStatus"] == "PendingManualApproval"  # AWS's default
    assert described["ModelPackageVersion"] == 1
    aws.clock.advance(aws.sagemaker.durations.registry_package * 0.6)
    assert sm.describe_model_package(ModelPackageName=first)["ModelPackageStatus"] == "InProgress"
    aws.clock.advance(aws.sagemaker.durations.registry_package)
    assert sm.describe_model_package(ModelPackageName=first)["ModelPackageStatus"] == "Completed"

    sm.update_model_package(
        ModelPackageArn=first, ModelApprovalStatus="Rejected", ApprovalDescription="no"
    )
    described = sm.describe_model_package(ModelPackageName=first)
    assert (described["ModelApprovalStatus"], described["ApprovalDescription"]) == (
        "Rejected",
        "no",
    )
    listed = sm.list_model_packages(
        ModelPackageGroupName=GROUP, SortBy="CreationTime", SortOrder="Descending"
    )["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in listed] == [second, first]
    approved = sm.list_model_packages(ModelPackageGroupName=GROUP, ModelApprovalStatus="Approved")
    assert [p["ModelPackageArn"] for p in approved["ModelPackageSummaryList"]] == [second]


def test_a_repeated_client_token_answers_the_same_package(sm: Any) -> None:
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    first = register(sm, ClientToken="run-1")
    assert register(sm, ClientToken="run-1") == first
    assert register(sm, ClientToken="run-2") != first


def test_missing_things_and_bad_requests_are_refused(sm: Any) -> None:
    with pytest.raises(ClientError, match="does not exist"):
        sm.describe_model_package_group(ModelPackageGroupName="nope")
    with pytest.raises(ClientError, match="does not exist"):
        register(sm)  # no group yet
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/nope/1"
    with pytest.raises(ClientError, match="does not exist"):
        sm.describe_model_package(ModelPackageName=arn)
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    with pytest.raises(ClientError, match="ValidationException"):
        register(sm, CustomerMetadataProperties={"k": "bad;value%"})  # AWS's pattern
    with pytest.raises(ClientError, match="ValidationException"):
        register(sm, ModelApprovalStatus="Maybe")


def test_tags_of_groups_and_packages(sm: Any) -> None:
    tags = [{"Key": "team", "Value": "vision"}]
    group = sm.create_model_package_group(ModelPackageGroupName=GROUP, Tags=tags)
    package = register(sm, Tags=tags)
    for arn in (group["ModelPackageGroupArn"], package):
        assert sm.list_tags(ResourceArn=arn)["Tags"] == tags


def test_the_approval_control_acts_as_a_person_in_studio(aws: AwsStandins, sm: Any) -> None:
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    arn = register(sm)
    aws.sagemaker.set_approval(arn, "Approved", "looks good")
    assert sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Approved"
    with pytest.raises(ValueError, match="approval status must be one of"):
        aws.sagemaker.set_approval(arn, "Maybe")
    assert [p.arn for p in aws.sagemaker.model_packages(GROUP)] == [arn]


def test_the_http_control_sets_approval_for_other_processes(aws: AwsStandins, sm: Any) -> None:
    from urllib.error import HTTPError

    from retraining_standins.control import Control

    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    arn = register(sm)
    control = Control(aws.endpoints.control)
    control.set_approval(arn, "Rejected", "not this one")
    described = sm.describe_model_package(ModelPackageName=arn)
    assert (described["ModelApprovalStatus"], described["ApprovalDescription"]) == (
        "Rejected",
        "not this one",
    )
    with pytest.raises(HTTPError) as refused:
        control.set_approval(arn, "Maybe")
    assert refused.value.code == 400
    with pytest.raises(HTTPError) as missing:
        control.set_approval(arn.replace("/1", "/9"), "Approved")
    assert missing.value.code == 404
