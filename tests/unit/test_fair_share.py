"""Fair share of the operator's AWS call budget (a bucket per namespace under the shared one),
and the tenant session's ExpectedBucketOwner on S3 calls."""

from __future__ import annotations

from retraining_operator.aws.session import CallBudget
from retraining_operator.config import OperatorConfig, namespace_call_rate
from retraining_operator.tenancy_api import TenancyMode


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_one_namespace_cannot_take_the_whole_budget() -> None:
    time = FakeTime()
    shared = CallBudget(20, clock=time.clock, sleep=time.sleep)
    big = shared.share("team-big", 10)
    small = shared.share("team-small", 10)
    assert shared.share("team-big", 10) is big  # one bucket per namespace
    for _ in range(200):  # the big namespace's backlog: 10/s at most
        big.acquire()
    assert 18.0 <= time.now <= 20.0
    # Its calls left half the shared tokens unused: the small namespace's ten calls go
    # through within half a second, not behind the big one's queue.
    start = time.now
    for _ in range(10):
        small.acquire()
    assert time.now - start <= 0.5


def test_the_shared_budget_still_bounds_the_sum() -> None:
    time = FakeTime()
    shared = CallBudget(20, clock=time.clock, sleep=time.sleep)
    shares = [shared.share(f"ns-{i}", 10) for i in range(4)]
    for _ in range(100):
        for share in shares:
            share.acquire()
    assert time.now >= 400 / 20 - 1.5  # never above 20/s together


def test_automatic_rate_is_half_in_scoped_mode_and_none_in_single() -> None:
    assert namespace_call_rate(OperatorConfig()) == 0.0
    scoped = OperatorConfig(tenancy_mode=TenancyMode.SCOPED, aws_calls_per_second=20)
    assert namespace_call_rate(scoped) == 10.0
    assert namespace_call_rate(OperatorConfig(namespace_calls_per_second=3)) == 3.0
    assert CallBudget(20).share("x", 0).rate == 20


def test_expected_bucket_owner_goes_on_every_s3_call_that_takes_it() -> None:
    from botocore.stub import Stubber

    from retraining_operator.aws.session import AwsSession

    session = AwsSession("us-east-1", expected_bucket_owner="111111111111")
    s3 = session.s3()
    with Stubber(s3) as stub:
        stub.add_response(
            "get_object_tagging",
            {"TagSet": []},
            {"Bucket": "b", "Key": "k", "ExpectedBucketOwner": "111111111111"},
        )
        s3.get_object_tagging(Bucket="b", Key="k")
        stub.assert_no_pending_responses()
    plain = AwsSession("us-east-1").s3()
    with Stubber(plain) as stub:
        stub.add_response("get_object_tagging", {"TagSet": []}, {"Bucket": "b", "Key": "k"})
        plain.get_object_tagging(Bucket="b", Key="k")
