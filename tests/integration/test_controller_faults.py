"""Controller passes when AWS or the API server push back (found by the reliability suite).

- Throttling that botocore's retries absorb is still news: one Warning Event, then at most
  one per THROTTLE_REPORT_SECONDS, with the count in between.
- A pass whose status write failed (API server down) or that saw a stale status (the watch
  lagging) must not poll A2I again before pollInterval: the last poll is remembered.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from retraining_operator.aws.session import AwsSession
from retraining_operator.config import OperatorConfig
from retraining_operator.policy_pass import context
from retraining_operator.policy_pass.controller import Controller, PassResult, PolicyView
from retraining_operator.reconcile.naming import PolicyRef
from retraining_standins.demo import seed_demo
from retraining_standins.demo_run import demo_policy
from retraining_standins.stack import AwsStandins

REF = PolicyRef(namespace="vision", name="detector", uid="9e0b6c1a-5f1e-4a43-8a51-2d4c6b8e0f17")


class Passes:
    """A controller with one cached session per policy, as the operator has."""

    def __init__(self, aws: AwsStandins, spec: dict[str, Any]) -> None:
        self.aws = aws
        self.spec = spec
        self.session = AwsSession("us-east-1")
        self.controller = Controller(
            OperatorConfig(tick_seconds=10, observe_seconds=0, aws_calls_per_second=0),
            lambda ref, spec: self.session,
            clock=aws.clock.now,
            started_at=aws.clock.now() - timedelta(hours=1),
        )
        self.status: dict[str, Any] = {}

    def run(self, *, advance: float = 1.0, write: bool = True) -> PassResult:
        self.aws.clock.advance(advance)
        view = PolicyView(REF, 1, {}, copy.deepcopy(self.spec), copy.deepcopy(self.status))

        def checkpoint(new: Any) -> None:
            if not write:
                raise RuntimeError("API server unreachable")
            self.status = new.to_wire()

        return self.controller.reconcile(view, checkpoint)


@pytest.fixture
def passes(aws: AwsStandins) -> Passes:
    world = seed_demo(aws, 3)
    return Passes(aws, demo_policy(world, min_new_samples=100)["spec"])


def _throttled(result: PassResult) -> list[str]:
    return [e.message for e in result.events if e.reason == "AwsThrottled"]


def test_absorbed_throttling_is_reported_once_then_aggregated(
    passes: Passes, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws = passes.aws
    aws.faults.throttle("sagemaker-a2i-runtime", "ListHumanLoops", rate=1.0, times=2)
    first = passes.run(advance=60)
    assert passes.status["ingest"]["ingestedLoops"] == 3  # the retries got through
    (message,) = _throttled(first)
    assert message.startswith("AWS throttled 2 request(s) of this policy; retrying")

    aws.faults.throttle("sagemaker-a2i-runtime", "ListHumanLoops", rate=1.0, times=1)
    assert _throttled(passes.run(advance=60)) == []  # within a minute: counted, not posted
    monkeypatch.setattr(context, "THROTTLE_REPORT_SECONDS", 0.0)
    (message,) = _throttled(passes.run(advance=60))
    assert message.startswith("AWS throttled 1 request(s) of this policy since the last report")
    assert _throttled(passes.run(advance=60)) == []  # nothing new


def test_a_status_that_could_not_be_written_does_not_poll_again_before_the_interval(
    passes: Passes,
) -> None:
    aws = passes.aws
    with pytest.raises(RuntimeError, match="unreachable"):
        passes.run(write=False)
    assert len(aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops")) == 1
    assert passes.status == {}  # nothing recorded that poll
    for _ in range(5):  # the next ticks see the same (stale) status
        with pytest.raises(RuntimeError):
            passes.run(advance=1, write=False)
    assert len(aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops")) == 1
    passes.run(advance=10)  # pollInterval 10s (+ up to 10 % jitter) later
    assert len(aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops")) == 2
    assert passes.status["ingest"]["ingestedLoops"] == 3
