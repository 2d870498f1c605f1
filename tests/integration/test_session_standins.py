"""AWS sessions against the stand-ins: assumed roles, throttle accounting, shared models.

Found by the reliability suite (docs/reliability.md): a policy with `spec.aws.roleArn` could
not even build its session, a role that cannot be assumed failed outside the typed errors,
throttling that botocore's retries absorbed was invisible, and every policy parsed the AWS
service models again (150 ms of CPU each: minutes for 500 policies).
"""

from __future__ import annotations

import pytest

from retraining_operator.aws.errors import AccessDenied
from retraining_operator.aws.s3 import S3, S3Location
from retraining_operator.aws.session import AwsSession, botocore_session
from retraining_standins.stack import AwsStandins

ROLE = "arn:aws:iam::210987654321:role/rtp-tenant-vision"


def test_a_role_session_is_built_without_calls_and_assumes_the_role_on_first_use(
    aws: AwsStandins, aws_bucket: str
) -> None:
    session = AwsSession("us-east-1", role_arn=ROLE, session_name="rtp-vision.detector")
    assert aws.log.calls("sts") == []
    session.s3().list_objects_v2(Bucket=aws_bucket)
    session.s3().list_objects_v2(Bucket=aws_bucket)
    (assume,) = aws.log.calls("sts", "AssumeRole")
    assert assume.params["RoleArn"] == ROLE
    assert assume.params["RoleSessionName"] == "rtp-vision.detector"
    assert [c.ok for c in aws.log.calls("s3")] == [True, True]


def test_a_role_that_cannot_be_assumed_fails_the_call_with_a_typed_error(
    aws: AwsStandins, aws_bucket: str
) -> None:
    aws.faults.fail("sts", "AssumeRole", status=403, code="AccessDenied",
                    message="not authorized to perform sts:AssumeRole")  # fmt: skip
    session = AwsSession("us-east-1", role_arn=ROLE)  # no call yet: nothing to fail
    with pytest.raises(AccessDenied, match=r": AccessDenied$") as caught:
        S3(session.s3()).get(S3Location(aws_bucket, "ledger/head.json"))
    assert "sts:AssumeRole" in caught.value.message  # AWS's words, for the operator's log
    assert aws.log.calls("s3") == []


def test_throttled_attempts_are_counted_also_when_retries_succeed(
    aws: AwsStandins, aws_bucket: str
) -> None:
    aws.put_object(f"s3://{aws_bucket}/k", b"v")
    aws.faults.throttle("s3", "GetObject", rate=1.0, times=2)
    session = AwsSession("us-east-1")
    assert session.s3().get_object(Bucket=aws_bucket, Key="k")["Body"].read() == b"v"
    assert [c.error for c in aws.log.calls("s3", "GetObject")] == ["SlowDown", "SlowDown", None]
    assert session.take_throttled() == 2
    assert session.take_throttled() == 0


def test_every_session_shares_one_parsed_model_cache(aws: AwsStandins) -> None:
    loader = botocore_session().get_component("data_loader")
    paths = list(loader.search_paths)
    sessions = [AwsSession("us-east-1"), AwsSession("eu-west-1", role_arn=ROLE)]
    for session in sessions:
        session.s3()
    assert botocore_session().get_component("data_loader") is loader
    assert loader.search_paths == paths  # boto3's per-session append does not accumulate
