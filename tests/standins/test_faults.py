"""Faults on demand: rates, determinism, wire shapes per service, the HTTP control endpoint."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from retraining_standins.control import Control
from retraining_standins.faults import FaultRule, Faults

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def client(service: str) -> Any:
    return boto3.client(service, config=NO_RETRIES)


def error_codes(calls: int, fn: Any) -> list[str | None]:
    codes: list[str | None] = []
    for _ in range(calls):
        try:
            fn()
            codes.append(None)
        except ClientError as exc:
            codes.append(exc.response["Error"]["Code"])
    return codes


def test_throttling_rate_within_tolerance(aws) -> None:
    aws.faults.throttle("sagemaker", "ListModels", rate=0.5)
    sm = client("sagemaker")
    codes = error_codes(400, sm.list_models)
    throttled = codes.count("ThrottlingException")
    assert set(codes) == {None, "ThrottlingException"}
    assert 160 <= throttled <= 240  # 200 +- 4 standard deviations
    logged = aws.log.calls("sagemaker", "ListModels")
    assert len(logged) == 400
    assert sum(c.injected for c in logged) == throttled
    assert aws.faults.injected() == throttled


def test_same_seed_same_faults() -> None:
    def sequence(seed: int) -> list[bool]:
        faults = Faults(seed=seed)
        faults.throttle("sagemaker", rate=0.3)
        return [faults.decide("sagemaker", "DescribeEndpoint").fails for _ in range(200)]

    assert sequence(7) == sequence(7)
    assert sequence(7) != sequence(8)


def test_rules_match_service_and_operation_patterns() -> None:
    faults = Faults()
    faults.fail("sagemaker", "Describe*", rate=1.0)
    assert faults.decide("sagemaker", "DescribeTrainingJob").fails
    assert not faults.decide("sagemaker", "CreateTrainingJob").fails
    assert not faults.decide("s3", "DescribeTrainingJob").fails


def test_times_limits_injections(aws) -> None:
    aws.faults.fail("sagemaker", "ListEndpoints", times=2, status=503)
    sm = client("sagemaker")
    codes = error_codes(4, sm.list_endpoints)
    assert codes == ["ServiceUnavailable", "ServiceUnavailable", None, None]


def test_server_errors_are_retried_by_standard_mode(aws) -> None:
    aws.faults.fail("sagemaker", "ListModels", times=2)
    sm = boto3.client("sagemaker", config=Config(retries={"mode": "standard"}))
    assert sm.list_models()["Models"] == []
    outcomes = [c.outcome for c in aws.log.calls("sagemaker", "ListModels")]
    assert outcomes == ["InternalFailure", "InternalFailure", "ok"]


def test_semantic_error_injection(aws, aws_bucket) -> None:
    aws.faults.fail("sagemaker", "CreateTrainingJob", code="ResourceLimitExceeded", status=400)
    sm = client("sagemaker")
    with pytest.raises(ClientError) as err:
        sm.create_training_job(
            TrainingJobName="j",
            RoleArn="arn:aws:iam::123456789012:role/r",
            OutputDataConfig={"S3OutputPath": f"s3://{aws_bucket}/o"},
        )
    assert err.value.response["Error"]["Code"] == "ResourceLimitExceeded"
    assert aws.sagemaker.training_job_names() == []


def test_a2i_errors_use_rest_json_shapes(aws, a2i_flow) -> None:
    a2i = client("sagemaker-a2i-runtime")
    aws.faults.throttle("sagemaker-a2i-runtime", "ListHumanLoops", times=1)
    aws.faults.fail("sagemaker-a2i-runtime", "ListHumanLoops", times=1)
    with pytest.raises(ClientError) as err:
        a2i.list_human_loops(FlowDefinitionArn=a2i_flow.arn)
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    with pytest.raises(ClientError) as err:
        a2i.list_human_loops(FlowDefinitionArn=a2i_flow.arn)
    assert err.value.response["Error"]["Code"] == "InternalServerException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert a2i.list_human_loops(FlowDefinitionArn=a2i_flow.arn)["HumanLoopSummaries"] == []


def test_s3_slowdown(aws, aws_bucket) -> None:
    aws.put_object(f"s3://{aws_bucket}/k.json", b"{}")
    aws.faults.throttle("s3", "GetObject", rate=1.0, times=1)
    s3 = client("s3")
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=aws_bucket, Key="k.json")
    assert err.value.response["Error"]["Code"] == "SlowDown"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert s3.get_object(Bucket=aws_bucket, Key="k.json")["Body"].read() == b"{}"
    assert [c.outcome for c in aws.log.calls("s3", "GetObject")] == ["SlowDown", "ok"]


def test_s3_slowdown_is_retried_by_boto3(aws, aws_bucket) -> None:
    aws.put_object(f"s3://{aws_bucket}/k.json", b"{}")
    aws.faults.throttle("s3", "GetObject", times=1)
    s3 = boto3.client("s3", config=Config(retries={"mode": "standard"}))
    assert s3.get_object(Bucket=aws_bucket, Key="k.json")["Body"].read() == b"{}"


def test_sts_and_cloudwatch_throttling(aws) -> None:
    aws.faults.throttle("sts", "AssumeRole", times=1)
    aws.faults.throttle("cloudwatch", "DescribeAlarms", times=1)
    with pytest.raises(ClientError) as err:
        client("sts").assume_role(RoleArn="arn:aws:iam::111122223333:role/r", RoleSessionName="rtp")
    assert err.value.response["Error"]["Code"] == "Throttling"
    with pytest.raises(ClientError) as err:
        client("cloudwatch").describe_alarms()
    assert err.value.response["Error"]["Code"] == "Throttling"


def test_latency(aws) -> None:
    aws.faults.delay("sagemaker", "ListModels", seconds=0.3)
    sm = client("sagemaker")
    sm.list_models()  # warm the connection
    started = time.monotonic()
    sm.list_models()
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    sm.list_endpoints()
    assert time.monotonic() - started < 0.3


def test_control_endpoint_sets_faults_from_another_process(aws) -> None:
    control = Control(aws.endpoints.control)
    control.set_faults([FaultRule(service="sagemaker", operation="ListModels", error_rate=1.0)], 3)
    assert aws.faults.rules() == [
        FaultRule(service="sagemaker", operation="ListModels", error_rate=1.0)
    ]
    assert aws.faults.seed == 3
    with pytest.raises(ClientError):
        client("sagemaker").list_models()
    control.clear_faults()
    assert client("sagemaker").list_models()["Models"] == []
    control.add_fault(FaultRule(service="s3", throttle_rate=1.0, times=1))
    assert aws.faults.rules()[0].service == "s3"


def test_invalid_rules_are_rejected() -> None:
    with pytest.raises(ValueError, match="throttle_rate"):
        FaultRule(throttle_rate=1.5)
    with pytest.raises(ValueError, match="unknown fault rule fields"):
        FaultRule.from_json({"sevice": "s3"})
