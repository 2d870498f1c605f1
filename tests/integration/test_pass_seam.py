"""The pass's one error seam: no spec, domain error or bug can wedge a policy.

Each case failed on the old controller: the spec errors raised out of `reconcile` on every
tick (no Degraded, no Event, a traceback per tick), and an unexpected error did the same.
Now: Degraded with an actionable message, one Event however many passes, one logged
traceback, and no pass sooner than a tick after a bug.
"""

from __future__ import annotations

import copy
import logging
from datetime import timedelta
from typing import Any

import pytest

from retraining_operator.api import ConditionType, RetrainingPolicyStatus, RunStage
from retraining_operator.aws.images import ImageLookupError
from retraining_operator.aws.session import AwsSession, ClientSettings
from retraining_operator.config import OperatorConfig
from retraining_operator.flows import training
from retraining_operator.policy_pass.controller import Controller, PassResult, PolicyView
from retraining_operator.policy_pass.stages import start
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.training_request import TrainingSpecError
from retraining_standins.demo import seed_demo
from retraining_standins.demo_run import demo_policy
from retraining_standins.stack import AwsStandins

REF = PolicyRef(namespace="vision", name="detector", uid="5b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8")
TICK = 10.0


class Passes:
    def __init__(self, aws: AwsStandins, spec: dict[str, Any]) -> None:
        self.aws = aws
        self.spec = spec
        self.status: dict[str, Any] = {}
        self.session = AwsSession("us-east-1", settings=ClientSettings(max_attempts=2))
        self.controller = Controller(
            OperatorConfig(tick_seconds=TICK, observe_seconds=0, aws_calls_per_second=0),
            lambda ref, spec: self.session,
            clock=aws.clock.now,
            started_at=aws.clock.now() - timedelta(hours=1),
        )
        self.events: list[tuple[str, str, str]] = []

    def run(self, advance: float = 30.0) -> PassResult:
        self.aws.clock.advance(advance)
        view = PolicyView(REF, 1, {}, copy.deepcopy(self.spec), copy.deepcopy(self.status))

        def checkpoint(new: RetrainingPolicyStatus) -> None:
            self.status = new.to_wire()

        result = self.controller.reconcile(view, checkpoint)
        self.events += [(e.type, e.reason, e.message) for e in result.events]
        return result

    def degraded(self) -> tuple[str, str] | None:
        status = RetrainingPolicyStatus.model_validate(self.status)
        for condition in status.conditions:
            if condition.type is ConditionType.DEGRADED and condition.status == "True":
                return condition.reason, condition.message
        return None

    def count(self, reason: str) -> int:
        return sum(1 for _, r, _ in self.events if r == reason)


@pytest.fixture
def world(aws: AwsStandins) -> Any:
    return seed_demo(aws, 12)


def _spec(world: Any, **training_fields: Any) -> dict[str, Any]:
    spec = demo_policy(world, min_new_samples=10)["spec"]
    spec["training"].update(training_fields)
    return spec


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param(
            {"tuning": {"ranges": {"mini_batch_size": {"type": "Integer", "min": 0.5, "max": 32}}}},
            "whole-number min and max",
            id="integer-range-with-a-fraction",
        ),
        pytest.param(
            {"hyperParameters": {f"hp_{i:02d}": str(i) for i in range(98)}},
            "after the operator adds num_classes, use_pretrained_model, num_training_samples",
            id="98-hyperparameters",
        ),
        pytest.param(
            {"maxRuntime": "999999999999h"}, "out of range", id="duration-overflowing-timedelta"
        ),
    ],
)
def test_a_spec_the_old_crd_admitted_ends_degraded_once(
    aws: AwsStandins, world: Any, change: dict[str, Any], field: str
) -> None:
    passes = Passes(aws, _spec(world, **change))
    aws.log.clear()
    for _ in range(3):
        result = passes.run()
    degraded = passes.degraded()
    assert degraded is not None
    assert degraded[0] == "InvalidSpec"
    assert field in degraded[1]
    assert passes.count("InvalidSpec") == 1  # announced once, not per pass
    assert result.spec_error is not None
    assert aws.log.count() == 0  # refused before any AWS call


def test_a_huge_lookback_is_refused_not_overflowed(aws: AwsStandins, world: Any) -> None:
    spec = _spec(world)
    spec["humanLoops"]["lookback"] = "9000h"
    passes = Passes(aws, spec)
    passes.run()
    degraded = passes.degraded()
    assert degraded is not None
    assert "must be at most 8760h" in degraded[1]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (TrainingSpecError("training.hyperParameters.epochs: not a number"), "InvalidTrainingSpec"),
        (ImageLookupError("object-detection has no version '9'"), "ImageNotFound"),
    ],
)
def test_a_domain_error_at_submission_is_degraded_once_and_the_run_waits(
    aws: AwsStandins,
    world: Any,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    reason: str,
) -> None:
    passes = Passes(aws, _spec(world))
    real = training.ensure_training

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(training, "ensure_training", refuse)
    for _ in range(4):
        passes.run()
    degraded = passes.degraded()
    assert degraded == (reason, str(error))
    assert passes.count(reason) == 1
    run = RetrainingPolicyStatus.model_validate(passes.status).current_run
    assert run is not None
    assert run.stage is RunStage.TRAINING
    assert aws.log.count("sagemaker", "CreateTrainingJob") == 0

    monkeypatch.setattr(training, "ensure_training", real)  # the spec was fixed
    passes.run()
    assert passes.degraded() is None
    assert aws.log.count("sagemaker", "CreateTrainingJob") == 1


def test_an_unexpected_error_is_degraded_logged_once_and_backs_off(
    aws: AwsStandins,
    world: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    passes = Passes(aws, _spec(world))

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    real = start.should_train
    monkeypatch.setattr(start, "should_train", bug)
    with caplog.at_level(logging.ERROR, logger="retraining_operator"):
        results = [passes.run() for _ in range(3)]
    degraded = passes.degraded()
    assert degraded is not None
    assert degraded[0] == "InternalError"
    assert "RecursionError: maximum recursion depth exceeded" in degraded[1]
    assert passes.count("InternalError") == 1
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1  # the traceback once, not per pass
    assert all(r.requeue_after is not None and r.requeue_after >= TICK for r in results)
    # The poll before the failing stage still happened: a bug in one stage wedges nothing else.
    assert RetrainingPolicyStatus.model_validate(passes.status).ingest.ingested_loops == 12

    monkeypatch.setattr(start, "should_train", real)
    passes.run()
    assert passes.degraded() is None


def test_a_run_that_claims_the_pending_samples_shows_it_at_once(
    aws: AwsStandins, world: Any
) -> None:
    # The next poll may be a whole pollInterval (or an events backstop) away: the status
    # must not report the claimed samples as pending until then.
    spec = _spec(world)
    spec["humanLoops"]["pollInterval"] = "1h"
    passes = Passes(aws, spec)
    passes.run()
    status = RetrainingPolicyStatus.model_validate(passes.status)
    assert status.current_run is not None
    assert status.current_run.samples is not None
    assert status.current_run.samples.new == 12
    assert status.ingest.pending_samples == 0
    assert status.ingest.oldest_pending_time is None
    assert aws.log.count("sagemaker-a2i-runtime", "ListHumanLoops") == 1  # one poll only
