"""The IAM audit's own machinery: recorded calls -> IAM requests -> verdicts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from retraining_operator.api import RetrainingPolicySpec
from retraining_standins.requestlog import Call
from support.iam_audit import denied_requests
from support.iamcheck import Request, needs

REPO = Path(__file__).resolve().parents[2]
REGION, ACCOUNT = "us-east-1", "111122223333"
SM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"


def call(service: str, operation: str, **params: Any) -> Call:
    return Call(0, service, operation, params, datetime.now(UTC), 0.0, 200)


@pytest.fixture
def pascal() -> list[tuple[str, RetrainingPolicySpec]]:
    doc = yaml.safe_load((REPO / "examples" / "pascal-voc-detector.yaml").read_text())
    return [(doc["metadata"]["name"], RetrainingPolicySpec.model_validate(doc["spec"]))]


def test_a_tagged_create_with_a_role_needs_three_permissions() -> None:
    got = needs(
        call(
            "sagemaker",
            "CreateTrainingJob",
            TrainingJobName="Pascal-Detector-r1-tj-ab",
            RoleArn="arn:aws:iam::111122223333:role/Exec",
            Tags=[{"Key": "k", "Value": "v"}],
        ),
        region=REGION,
        account=ACCOUNT,
    )
    job = f"{SM}:training-job/pascal-detector-r1-tj-ab"  # SageMaker ARNs are lower case
    assert got == [
        Request("sagemaker:CreateTrainingJob", job),
        Request("sagemaker:AddTags", job, {"sagemaker:TaggingAction": "CreateTrainingJob"}),
        Request(
            "iam:PassRole",
            "arn:aws:iam::111122223333:role/Exec",
            {"iam:PassedToService": "sagemaker.amazonaws.com"},
        ),
    ]


def test_s3_operations_map_to_their_iam_actions() -> None:
    def one(operation: str) -> Request:
        (request,) = needs(
            call("s3", operation, Bucket="b", Key="k/x"), region=REGION, account=ACCOUNT
        )
        return request

    assert one("HeadObject") == Request("s3:GetObject", "arn:aws:s3:::b/k/x")
    assert one("UploadPart") == Request("s3:PutObject", "arn:aws:s3:::b/k/x")
    assert one("AbortMultipartUpload").action == "s3:AbortMultipartUpload"
    with pytest.raises(AssertionError, match="no IAM declaration for s3 PutBucketPolicy"):
        one("PutBucketPolicy")


def test_the_loop_of_a_policy_is_allowed_and_a_stray_call_is_not(
    pascal: list[tuple[str, RetrainingPolicySpec]],
) -> None:
    own = [
        call(
            "sagemaker-a2i-runtime", "ListHumanLoops", FlowDefinitionArn=f"{SM}:flow-definition/x"
        ),
        call("sagemaker-a2i-runtime", "DescribeHumanLoop", HumanLoopName="loop-1"),
        call(
            "s3",
            "GetObject",
            Bucket="reviews",
            Key="a/fd-sagemaker-object-detection-demo/2026/l/output.json",
        ),
        call("s3", "PutObject", Bucket="my-bucket", Key="a2i-results/ledger/head.json"),
        call("sagemaker", "DescribeEndpoint", EndpointName="od-endpoint"),
        call(
            "sagemaker",
            "UpdateEndpoint",
            EndpointName="od-endpoint",
            EndpointConfigName="pascal-detector-r1-ec-ab",
        ),
        call("cloudwatch", "DescribeAlarms", **{"AlarmNames.member.1": "od-endpoint-5xx"}),
    ]
    denied, checked = denied_requests(own, pascal)
    assert denied == []
    assert len(checked) == len(own) + 1  # UpdateEndpoint: the endpoint and the config
    stray = call("sagemaker", "DeleteEndpoint", EndpointName="od-endpoint")
    denied, _ = denied_requests([*own, stray], pascal)
    assert [c.operation for c, _ in denied] == ["DeleteEndpoint"]


def test_scoped_mode_lets_the_operator_assume_only_the_tenants_roles() -> None:
    from retraining_operator.reconcile import iam
    from support.iamcheck import allows

    roles = ["arn:aws:iam::123456789012:role/team-a-operator"]
    document = iam.for_scoped_operator(roles)
    assert allows([document], Request("sts:AssumeRole", roles[0]))
    assert allows([document], Request("sts:TagSession", roles[0]))
    other = "arn:aws:iam::123456789012:role/team-b-operator"
    assert not allows([document], Request("sts:AssumeRole", other))
