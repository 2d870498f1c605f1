"""Fair share of the operator's AWS call budget (issue 28): a quiet namespace gets at least its
fair share, and in practice the next token, however many namespaces are busy; the budget still
bounds the sum; and the tenant session's ExpectedBucketOwner on S3 calls."""

from __future__ import annotations

import threading
import time

import pytest

from retraining_operator.aws.session import CallBudget
from retraining_operator.config import OperatorConfig, namespace_call_rate


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_budget_bounds_the_sum_of_every_namespace() -> None:
    fake = FakeTime()
    shared = CallBudget(20, clock=fake.clock, sleep=fake.sleep)
    shares = [shared.share(f"ns-{i}") for i in range(4)]
    assert shared.share("ns-0") is shares[0]  # one handle per namespace
    for _ in range(100):
        for share in shares:
            share.acquire()
    assert fake.now >= 400 / 20 - 1.5  # never above 20/s together


def test_a_hard_cap_per_namespace_still_applies_when_set() -> None:
    fake = FakeTime()
    shared = CallBudget(20, clock=fake.clock, sleep=fake.sleep)
    capped = shared.share("team-big", 5)
    for _ in range(55):
        capped.acquire()
    assert fake.now >= 9.5  # 5 burst, then 5/s


def _busy(share: CallBudget, stop: threading.Event) -> None:
    while not stop.is_set():
        share.acquire()


@pytest.mark.parametrize("busy", [1, 3, 10])
def test_a_quiet_namespace_is_served_beside_any_number_of_busy_ones(busy: int) -> None:
    """Before issue 28 each namespace could take half the budget: three busy namespaces cut a
    quiet one from 12.8 to 1.3 calls/s. Now its calls go at the next token: the same rate as
    alone, within a factor of two, with 1, 3 or 10 busy namespaces (each 4 threads)."""
    rate = 40.0

    def quiet_rate(budget: CallBudget) -> float:
        quiet = budget.share("quiet")
        start = time.monotonic()
        for _ in range(20):  # a quiet poll: a few calls, one at a time, with a little work
            quiet.acquire()
            time.sleep(0.01)
        return 20 / (time.monotonic() - start)

    solo = quiet_rate(CallBudget(rate))
    budget = CallBudget(rate)
    stop = threading.Event()
    threads = [
        threading.Thread(target=_busy, args=(budget.share(f"busy-{n}"), stop), daemon=True)
        for n in range(busy)
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)  # the busy ones spend the burst and their credit
        loaded = quiet_rate(budget)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
    assert loaded >= solo / 2, (solo, loaded)


def test_busy_namespaces_share_what_is_left_evenly() -> None:
    budget = CallBudget(60.0)
    stop = threading.Event()
    counts = {f"busy-{n}": 0 for n in range(3)}
    lock = threading.Lock()

    def worker(key: str) -> None:
        share = budget.share(key)
        while not stop.is_set():
            share.acquire()
            with lock:
                counts[key] += 1

    threads = [
        threading.Thread(target=worker, args=(k,), daemon=True)
        for k in counts
        for _ in range(2 + 3 * int(k[-1]))
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # past the burst and the credit every namespace starts with
    with lock:
        counts.update(dict.fromkeys(counts, 0))
    time.sleep(3)
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    # Threads per namespace differ (2, 5, 8); calls do not: round robin by namespace.
    assert max(counts.values()) <= 1.3 * min(counts.values()), counts


def test_the_cap_setting_is_off_unless_set() -> None:
    assert namespace_call_rate(OperatorConfig()) == 0.0
    assert namespace_call_rate(OperatorConfig(namespace_calls_per_second=3)) == 3.0


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
