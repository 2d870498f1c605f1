"""Throttle it: AWS says "slow down" to half of everything, or S3 to most reads. The operator
must back off within its call budget (no hot loop), say so in Events, and still close the loop.
"""

from __future__ import annotations

import time

import pytest

from reliability.conftest import CaseReport
from reliability.scene import Scene, manifest_loops, per_second

pytestmark = [pytest.mark.reliability, pytest.mark.kube, pytest.mark.e2e]

# The issue asks for a minute of throttling; 30 s shows the same behaviour (the client's
# retry quota drains within seconds) at half the suite time.
THROTTLE_SECONDS = 30.0
SLOWDOWN_SECONDS = 20.0


BUSY_REASONS = ("AwsThrottled", "AwsBusy", "PollFailed", "DatasetRetry")


def _busy_events(scene: Scene) -> list[str]:
    """Warning Events about AWS pushing back: throttled (retried), busy (gave up this pass)."""
    return [
        f"{e.reason}: {e.message}"
        for e in scene.events()
        if e.type == "Warning" and e.reason in BUSY_REASONS
    ]


@pytest.mark.slow
def test_half_of_every_aws_operation_throttled_backs_off_within_budget_and_completes(
    scene: Scene, report: CaseReport
) -> None:
    report.case(4, "50% ThrottlingException on every AWS operation")
    budget = 5.0
    report.inject(
        f"every call to every AWS service throttled with probability 0.5 for "
        f"{THROTTLE_SECONDS:.0f} s (issue: 60 s); --aws-calls-per-second={budget:.0f}",
        scaling="60 s -> 30 s",
    )
    aws = scene.aws
    scene.seed(60)
    storm = aws.faults.throttle("*", "*", rate=0.5)
    began = time.time()
    op = scene.operator(f"--aws-calls-per-second={budget:g}").start()
    scene.apply(scene.policy(min_new_samples=60))
    while time.time() - began < THROTTLE_SECONDS:
        assert op.alive(), op.log()
        time.sleep(1)
    aws.faults.remove(storm)
    ended = time.time()

    status = scene.wait(
        lambda: (s := scene.status()).get("history") and s.get("phase") == "Serving" and s,
        timeout=150,
        what="the loop to complete",
    )
    storm_calls = [c for c in aws.log.calls() if began <= c.wall_time < ended]
    throttled = [c for c in storm_calls if c.injected]
    most, mean = per_second([c.wall_time for c in storm_calls])
    every = aws.log.calls()
    most_overall, _ = per_second([c.wall_time for c in every])
    busy = _busy_events(scene)
    creates = aws.log.calls("sagemaker", "CreateTrainingJob")
    updates = aws.log.calls("sagemaker", "UpdateEndpoint")
    report.observe(
        calls_during_storm=len(storm_calls),
        throttled=len(throttled),
        max_calls_in_1s=most,
        mean_calls_per_s=round(mean, 1),
        budget_per_s=budget,
        warning_events=len(busy),
        outcome=status["history"][0]["outcome"],
        jobs=len(aws.sagemaker.training_job_names()),
        create_ok=sum(c.ok for c in creates),
        update_endpoint_ok=sum(c.ok for c in updates),
        loops_ingested=status["ingest"]["ingestedLoops"],
        operator_starts=op.starts,
    )
    report.summary()
    assert len(throttled) >= 20, "the storm did not hit the operator"
    # A token bucket of `budget`/s with a burst of `budget` never allows more than this
    # (counted at the stand-ins: one call of slack for network jitter).
    assert most_overall <= 2 * budget + 1
    assert len(storm_calls) <= budget * THROTTLE_SECONDS + budget
    assert busy, "throttling that reached the controller was not reported as an Event"
    assert status["history"][0]["outcome"] == "Deployed"
    assert len(aws.sagemaker.training_job_names()) == 1
    assert sum(c.ok for c in creates) == 1
    assert sum(c.ok for c in updates) == 1
    assert status["ingest"]["ingestedLoops"] == 60
    assert op.starts == 1
    assert op.alive()


def test_s3_slowdown_storm_keeps_concurrency_bounded_and_completes(
    scene: Scene, report: CaseReport
) -> None:
    report.case(5, "S3 503 SlowDown storm")
    concurrency = 4
    report.inject(
        f"70% of S3 calls answered 503 SlowDown for {SLOWDOWN_SECONDS:.0f} s while 100 A2I "
        f"outputs are read (+0.1 s latency per S3 call); --fetch-concurrency={concurrency}"
    )
    aws = scene.aws
    scene.seed(100)
    gauge = scene.in_flight_gauge()
    aws.faults.delay("s3", "*", seconds=0.1)
    storm = aws.faults.throttle("s3", "*", rate=0.7)
    began = time.time()
    op = scene.operator(f"--fetch-concurrency={concurrency}").start()
    scene.apply(
        scene.policy(min_new_samples=100, deployment={"strategy": "None", "blueGreen": None})
    )
    while time.time() - began < SLOWDOWN_SECONDS:
        assert op.alive(), op.log()
        time.sleep(1)
    aws.faults.remove(storm)
    ended = time.time()

    status = scene.wait(
        lambda: (s := scene.status()).get("history") and s,
        timeout=120,
        what="the run to finish",
    )
    s3_calls = aws.log.calls("s3")
    in_storm = [c for c in s3_calls if began <= c.wall_time < ended]
    slowdowns = [c for c in in_storm if c.injected]
    entry = status["history"][0]
    (create,) = [c for c in aws.log.calls("sagemaker", "CreateTrainingJob") if c.ok]
    loops = manifest_loops(aws, create)
    report.observe(
        s3_calls=len(s3_calls),
        s3_calls_during_storm=len(in_storm),
        slowdowns=len(slowdowns),
        max_s3_in_flight=gauge.peak.get("s3", 0),
        fetch_concurrency=concurrency,
        outcome=entry["outcome"],
        loops_ingested=status["ingest"]["ingestedLoops"],
        loops_in_dataset=len(set(loops)),
        loops_doubled=len(loops) - len(set(loops)),
        poll_warnings=len(_busy_events(scene)),
    )
    report.summary()
    assert len(slowdowns) >= 20, "the storm did not hit the operator"
    assert len(slowdowns) >= 0.5 * len(in_storm)
    assert gauge.peak["s3"] <= concurrency
    assert entry["outcome"] == "Trained"
    assert status["ingest"]["ingestedLoops"] == 100
    assert sorted(loops) == sorted(loop.name for loop in aws.a2i.loops("fd-demo"))
