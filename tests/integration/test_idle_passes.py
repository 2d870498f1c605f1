"""A pass that changes nothing writes nothing and logs nothing at INFO (issue 18).

Idle passes over the stand-ins with the handler's own status writer (`_status_writer`, which
patches only a changed status): over two hours of 5-minute polls the status subresource is
written about once an hour (lastPollTime refresh, the watermark step), and no INFO line is
logged for an idle poll.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from datetime import timedelta
from typing import Any

import pytest

from retraining_operator import handlers, kube
from retraining_operator.api import RetrainingPolicyStatus
from retraining_operator.aws.session import AwsSession, ClientSettings
from retraining_operator.config import OperatorConfig
from retraining_operator.policy_pass.context import PassResult
from retraining_operator.policy_pass.controller import Controller, PolicyView
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.schedule import ON_TIME_TO_CLEAR
from retraining_operator.reconcile.status import LAST_POLL_TIME_REFRESH, quiet_ingest_status
from retraining_standins.demo import seed_demo
from retraining_standins.demo_run import demo_policy
from retraining_standins.stack import AwsStandins

REF = PolicyRef(namespace="vision", name="idle", uid="0f1e2d3c-4b5a-4697-8877-665544332211")
POLL = timedelta(minutes=5)


class IdlePolicy:
    """One policy reconciled pass after pass; its status patches go to a fake API server."""

    def __init__(self, aws: AwsStandins, monkeypatch: pytest.MonkeyPatch) -> None:
        self.aws = aws
        world = seed_demo(aws, 0)
        self.spec = demo_policy(world, min_new_samples=10)["spec"]
        self.spec["humanLoops"]["pollInterval"] = "5m"
        self.status: dict[str, Any] = {}
        self.patches: list[dict[str, Any]] = []
        self.refuse_next = False
        session = AwsSession("us-east-1", settings=ClientSettings(max_attempts=2))
        self.controller = Controller(
            OperatorConfig(tick_seconds=30, observe_seconds=30, aws_calls_per_second=0),
            lambda ref, spec: session,
            clock=aws.clock.now,
            started_at=aws.clock.now() - timedelta(hours=1),
        )

        def patch_status(
            ns: str, name: str, body: dict[str, Any], *, seen: kube.Seen | None = None
        ) -> kube.Seen:
            if self.refuse_next:
                self.refuse_next = False
                raise kube.StatusWriteFailed("changed meanwhile", conflict=True)
            self.patches.append(body)
            self.status = body
            return kube.Seen(str(len(self.patches) + 1), 1, body)

        monkeypatch.setattr(kube, "patch_status", patch_status)

    def run(self, advance: timedelta) -> PassResult | None:
        self.aws.clock.advance(advance.total_seconds())
        seen = kube.Seen(str(len(self.patches) + 1), 1, copy.deepcopy(self.status))
        view = PolicyView(REF, 1, {}, copy.deepcopy(self.spec), copy.deepcopy(self.status))
        writer = handlers._status_writer(REF.namespace, REF.name, seen)
        with contextlib.suppress(kube.StatusWriteFailed):
            return self.controller.reconcile(view, writer)
        return None


def test_idle_polls_write_the_status_about_hourly_and_log_no_info_line(
    aws: AwsStandins, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    policy = IdlePolicy(aws, monkeypatch)
    policy.run(timedelta(0))  # the first pass: conditions, ledger, first lastPollTime
    policy.run(POLL * 1.2)  # settle: the watermark's first persisted step
    settled = len(policy.patches)
    listed = aws.log.count("sagemaker-a2i-runtime", "ListHumanLoops")
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="retraining_operator")

    passes = 24  # two hours of 5-minute polls
    for _ in range(passes):
        policy.run(POLL * 1.1)

    polls = aws.log.count("sagemaker-a2i-runtime", "ListHumanLoops") - listed
    writes = len(policy.patches) - settled
    info = [r for r in caplog.records if r.levelno >= logging.INFO]
    debug_polls = [r for r in caplog.records if "ingest poll of" in r.getMessage()]
    assert polls == passes  # every pass polled A2I
    assert writes <= 4, [p["ingest"] for p in policy.patches[settled:]]  # ~hourly, not 24
    assert info == [], [r.getMessage() for r in info]
    assert len(debug_polls) == passes  # the line is still there for --verbose
    # What was written moved lastPollTime by at least the refresh (or moved something else).
    stored = RetrainingPolicyStatus.model_validate(policy.status).ingest
    assert stored.last_poll_time is not None
    assert aws.clock.now() - stored.last_poll_time < LAST_POLL_TIME_REFRESH + POLL * 1.1


def test_an_idle_policy_sleeps_until_its_next_poll_not_one_tick(
    aws: AwsStandins, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = IdlePolicy(aws, monkeypatch)
    policy.run(timedelta(0))
    policy.run(POLL * 1.2)  # a poll
    result = policy.run(timedelta(minutes=1))  # nothing due: the next poll is ~4 minutes away
    assert result is not None
    assert result.requeue_after is not None
    tick = policy.controller.config.tick_seconds
    # Not the 30 s tick: the due time of the next poll (pollInterval, stretched by up to 10 %).
    assert tick < result.requeue_after <= (POLL * 1.1 - timedelta(minutes=1)).total_seconds()


def test_quiet_ingest_status_keeps_last_poll_time_only_while_nothing_else_moved() -> None:
    from datetime import UTC, datetime

    from retraining_operator.api import IngestStatus

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    stored = IngestStatus(last_poll_time=t0, watermark=t0, pending_samples=3)
    idle = stored.model_copy(update={"last_poll_time": t0 + timedelta(minutes=5)})
    assert quiet_ingest_status(stored, idle) is stored
    late = stored.model_copy(update={"last_poll_time": t0 + LAST_POLL_TIME_REFRESH})
    assert quiet_ingest_status(stored, late) is late
    moved = idle.model_copy(update={"pending_samples": 4})
    assert quiet_ingest_status(stored, moved) is moved
    watermark = idle.model_copy(update={"watermark": t0 + timedelta(minutes=5)})
    assert quiet_ingest_status(stored, watermark) is watermark
    # The ledger's watermark has microseconds, the stored status (RFC 3339, seconds) not: the
    # same second is no change (the operator wrote every idle poll before this was compared so).
    precise = idle.model_copy(update={"watermark": t0 + timedelta(microseconds=250_000)})
    assert quiet_ingest_status(stored, precise) is stored
    assert quiet_ingest_status(IngestStatus(), idle) is idle  # never polled before: write it


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


def test_late_polls_set_polls_starved_and_on_time_polls_clear_it(
    aws: AwsStandins, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retraining_operator import metrics

    policy = IdlePolicy(aws, monkeypatch)
    policy.run(timedelta(0))
    policy.run(POLL * 1.1)
    assert _condition(policy.status, "PollsStarved") is None  # on time: no condition at all

    # The pass that polls comes 40 s after pollInterval x 1.1 (as when the AWS budget or the
    # workers cannot keep up): the policy says so, once.
    policy.run(POLL * 1.1 + timedelta(seconds=40))
    starved = _condition(policy.status, "PollsStarved")
    assert starved is not None
    assert (starved["status"], starved["reason"]) == ("True", "AwsBudget")
    assert "budget" in starved["message"]
    gauge = metrics.POLICY_STARVED.labels(REF.namespace, REF.name)._value.get()
    assert gauge == 1
    writes = len(policy.patches)
    policy.run(POLL * 1.1 + timedelta(seconds=50))  # still late: nothing new to write
    assert len(policy.patches) == writes

    # On time again (the latest a poll is due): one on-time poll does not clear it, or
    # polls alternating late and on time would write the condition on every poll (issue 33).
    policy.run(POLL * 1.1)
    assert _condition(policy.status, "PollsStarved")["status"] == "True"  # type: ignore[index]
    assert len(policy.patches) == writes
    policy.run(POLL * 1.1 + timedelta(seconds=40))  # late again: still the same condition
    assert len(policy.patches) == writes
    for _ in range(ON_TIME_TO_CLEAR - 1):
        policy.run(POLL * 1.1)
        assert _condition(policy.status, "PollsStarved")["status"] == "True"  # type: ignore[index]
    policy.run(POLL * 1.1)  # the third on-time poll in a row
    cleared = _condition(policy.status, "PollsStarved")
    assert cleared is not None
    assert (cleared["status"], cleared["reason"]) == ("False", "OnSchedule")
    assert metrics.POLICY_STARVED.labels(REF.namespace, REF.name)._value.get() == 0


def test_a_poll_whose_status_write_was_refused_is_written_by_the_next_pass(
    aws: AwsStandins, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first poll's status write conflicts (kopf patched the object meanwhile); the retry
    pass a few seconds later must write that poll's result, not wait a whole pollInterval for
    the next poll (bench: 5 of 200 policies at pollInterval 5m showed no lastPollTime)."""
    policy = IdlePolicy(aws, monkeypatch)
    policy.refuse_next = True
    policy.run(timedelta(0))
    assert policy.patches == []
    assert aws.log.count("sagemaker-a2i-runtime", "ListHumanLoops") == 1
    policy.run(timedelta(seconds=3))  # the retry: the poll is not due again
    assert aws.log.count("sagemaker-a2i-runtime", "ListHumanLoops") == 1
    stored = RetrainingPolicyStatus.model_validate(policy.status).ingest
    assert stored.last_poll_time is not None
    assert stored.ledger_s3_uri


def _aws_calls(aws: AwsStandins) -> dict[str, int]:
    return {
        "ListHumanLoops": aws.log.count("sagemaker-a2i-runtime", "ListHumanLoops"),
        "GetObject": aws.log.count("s3", "GetObject"),
        "PutObject": aws.log.count("s3", "PutObject"),
    }


def test_an_idle_poll_makes_one_aws_call_and_a_new_loop_still_reads_the_ledger(
    aws: AwsStandins, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 33: the ledger is the operator's own; with its watermark remembered from the
    last verified read, an empty listing needs no ledger GET."""
    policy = IdlePolicy(aws, monkeypatch)
    policy.run(timedelta(0))  # the first poll: the ledger is created (and remembered)
    policy.run(POLL * 1.2)  # the watermark's first persisted step (a ledger write)
    before = _aws_calls(aws)
    polls = 6  # thirty minutes: no watermark step falls due (it is hourly)
    for _ in range(polls):
        policy.run(POLL * 1.1)
    after = _aws_calls(aws)
    assert after["ListHumanLoops"] - before["ListHumanLoops"] == polls
    assert after["GetObject"] == before["GetObject"], "an idle poll read the ledger"
    assert after["PutObject"] == before["PutObject"]
    pending = RetrainingPolicyStatus.model_validate(policy.status).ingest.pending_samples

    # A reviewed image arrives: the listing holds a loop, so the ledger is read (seal and
    # owner checked) and the loop is ingested exactly as before.
    flow = policy.spec["humanLoops"]["flowDefinitionArn"].rsplit("/", 1)[-1]
    aws.a2i.add_loops(flow, 1, interval=1.0)
    policy.run(POLL * 1.1)
    assert _aws_calls(aws)["GetObject"] > after["GetObject"]
    ingest = RetrainingPolicyStatus.model_validate(policy.status).ingest
    assert ingest.pending_samples == pending + 1


def test_a_ledger_revision_moved_elsewhere_is_read_again(
    aws: AwsStandins, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The memory is trusted only at the revision status records: when another writer (a
    run's claim, an events settle, another replica) moved it, the next poll reads it."""
    policy = IdlePolicy(aws, monkeypatch)
    policy.run(timedelta(0))
    policy.run(POLL * 1.2)
    policy.status["ingest"]["ledgerRevision"] += 1  # as a claim by a run would record it
    before = _aws_calls(aws)
    policy.run(POLL * 1.1)
    assert _aws_calls(aws)["GetObject"] > before["GetObject"]


def test_the_demand_of_every_policy_names_the_interval_polls_can_keep(
    aws: AwsStandins, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Over budget (here 3,000 other policies at 5 minutes need 10 calls/s against a budget
    of 5/s), the operator warns once and the starved policy says what interval it can keep."""
    policy = IdlePolicy(aws, monkeypatch)
    demand = policy.controller.poll_demand
    demand.budget = 5.0
    caplog.set_level(logging.INFO, logger="retraining_operator")
    for n in range(3000):
        demand.record(f"other-{n}", POLL.total_seconds())
    warnings = [r for r in caplog.records if "calls/s, the budget is 5/s" in r.getMessage()]
    assert len(warnings) == 1  # said once, not per policy or per poll
    assert metrics_value("rtp_poll_demand_calls_per_second") == pytest.approx(10.0)
    policy.run(timedelta(0))
    policy.run(POLL * 1.1 + timedelta(seconds=60))
    starved = _condition(policy.status, "PollsStarved")
    assert starved is not None
    assert "can keep about 600s" in starved["message"]
    for n in range(3000):
        demand.forget(f"other-{n}")
    assert any("fit the AWS call budget again" in r.getMessage() for r in caplog.records)


def metrics_value(name: str) -> float:
    from retraining_operator import metrics

    value = metrics.REGISTRY.get_sample_value(name)
    assert value is not None, name
    return float(value)
