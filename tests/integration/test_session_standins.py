"""AWS sessions against the stand-ins: assumed roles, throttle accounting, shared models.

Found by the reliability suite (docs/reliability.md): a policy with `spec.aws.roleArn` could
not even build its session, a role that cannot be assumed failed outside the typed errors,
throttling that botocore's retries absorbed was invisible, and every policy parsed the AWS
service models again (150 ms of CPU each: minutes for 500 policies).
"""

from __future__ import annotations

import gc

import pytest

from retraining_operator.aws.errors import AccessDenied
from retraining_operator.aws.s3 import S3, S3Location
from retraining_operator.aws.session import (
    AssumedRole,
    AwsSession,
    CallBudget,
    ClientPool,
    ClientSettings,
    botocore_session,
)
from retraining_standins.stack import AwsStandins

ROLE = "arn:aws:iam::210987654321:role/rtp-tenant-vision"


def test_a_role_session_is_built_without_calls_and_assumes_the_role_on_first_use(
    aws: AwsStandins, aws_bucket: str
) -> None:
    session = AwsSession("us-east-1", assumed=AssumedRole.of(ROLE, "rtp-vision.detector"))
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
    session = AwsSession("us-east-1", assumed=AssumedRole.of(ROLE))  # no call yet: nothing to fail
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
    sessions = [AwsSession("us-east-1"), AwsSession("eu-west-1", assumed=AssumedRole.of(ROLE))]
    for session in sessions:
        session.s3()
    assert botocore_session().get_component("data_loader") is loader
    assert loader.search_paths == paths  # boto3's per-session append does not accumulate


# ----------------------------------------------------- one set of clients per identity


def test_sessions_of_one_identity_share_clients_and_one_assume_role(
    aws: AwsStandins, aws_bucket: str
) -> None:
    pool = ClientPool()
    team = [AwsSession("us-east-1", assumed=AssumedRole.of(ROLE, "rtp-vision"), clients=pool)
            for _ in range(50)]  # fmt: skip
    other = AwsSession("us-east-1", assumed=AssumedRole.of(ROLE, "rtp-audio"), clients=pool)
    for session in [*team, other]:
        session.s3().list_objects_v2(Bucket=aws_bucket)
    assert len({id(session.s3()) for session in team}) == 1
    assert other.s3() is not team[0].s3()
    assert (pool.identities(), pool.users()) == (2, 51)
    # One credential provider per identity: one AssumeRole each, not one per policy.
    sessions = sorted(c.params["RoleSessionName"] for c in aws.log.calls("sts", "AssumeRole"))
    assert sessions == ["rtp-audio", "rtp-vision"]


def test_the_last_handle_of_an_identity_frees_its_clients() -> None:
    pool = ClientPool()
    a = AwsSession("us-east-1", clients=pool)
    b = AwsSession("us-east-1", clients=pool)
    a.close()
    a.close()  # idempotent: releases once
    assert (pool.identities(), pool.users()) == (1, 1)
    del b
    gc.collect()  # a handle nobody closed (a memo kopf forgot) is released when collected
    assert (pool.identities(), pool.users()) == (0, 0)
    c = AwsSession("us-east-1", clients=pool)
    c.s3()
    assert pool.identities() == 1


def test_each_handle_counts_the_throttling_of_its_identity_since_it_last_asked(
    aws: AwsStandins, aws_bucket: str
) -> None:
    pool = ClientPool()
    aws.put_object(f"s3://{aws_bucket}/k", b"v")
    first = AwsSession("us-east-1", clients=pool)
    second = AwsSession("us-east-1", clients=pool)
    aws.faults.throttle("s3", "GetObject", rate=1.0, times=2)
    assert first.s3().get_object(Bucket=aws_bucket, Key="k")["Body"].read() == b"v"
    assert (first.take_throttled(), second.take_throttled()) == (2, 2)
    assert (first.take_throttled(), second.take_throttled()) == (0, 0)
    late = AwsSession("us-east-1", clients=pool)
    assert late.take_throttled() == 0  # what happened before it existed is not its news


def test_a_different_budget_or_bucket_owner_is_a_different_identity() -> None:
    pool = ClientPool()
    budget = CallBudget(10)
    plain = AwsSession("us-east-1", clients=pool)
    budgeted = AwsSession("us-east-1", clients=pool, settings=ClientSettings(budget=budget))
    owned = AwsSession("us-east-1", expected_bucket_owner="111122223333", clients=pool)
    again = AwsSession("us-east-1", clients=pool, settings=ClientSettings(budget=budget))
    assert len({id(s.s3()) for s in (plain, budgeted, owned)}) == 3
    assert again.s3() is budgeted.s3()
    assert pool.identities() == 3
