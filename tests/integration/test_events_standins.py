"""Event-driven ingest against the stand-ins: A2I events through SQS on moto (issue 19).

The operator's own consumer (`workflow.events.EventHub`, a real thread long-polling moto's
SQS) and reconcile passes (`Controller`) run in process; the A2I emulator publishes one
EventBridge-envelope event per loop that ends, with the drop/duplicate/reorder controls of
`retraining_standins.events.EventRelay`. The emulated clock is manual, so the listing poll
runs only when a test moves it; events arrive in real time.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from retraining_operator.api import ConditionType, RetrainingPolicyStatus
from retraining_operator.aws.session import AwsSession, ClientSettings
from retraining_operator.config import OperatorConfig
from retraining_operator.policy_pass.context import PolicyMemo
from retraining_operator.policy_pass.controller import Controller, PolicyView
from retraining_operator.reconcile.ledger import Ledger
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.runtime.event_hub import EventHub
from retraining_standins.a2i import FlowDefinition
from retraining_standins.stack import AwsStandins
from unit.ingest_policies import ACCOUNT, ingest_spec

pytestmark = pytest.mark.events

BUCKET = "rtp-test-bucket"
OUT = f"s3://{BUCKET}/out"
REF = PolicyRef(namespace="vision", name="events", uid="6f1c3a52-0000-4000-8000-000000000019")


def events_spec(flow: FlowDefinition, queue_url: str, **events: str) -> dict[str, Any]:
    spec = ingest_spec(
        output=OUT, flow=flow.arn, dataset={"minNewSamples": 100000, "maxWait": "8760h"}
    ).to_wire()
    spec["humanLoops"]["events"] = {"sqsQueueUrl": queue_url, **events}
    return spec


def make_queue(aws: AwsStandins, name: str, *, visibility: int = 30, receives: int = 5) -> str:
    """A queue with a DLQ (`<name>-dlq`) after `receives` receives."""
    aws.create_queue(f"{name}-dlq")
    redrive = {
        "deadLetterTargetArn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}-dlq",
        "maxReceiveCount": str(receives),
    }
    return aws.create_queue(
        name, VisibilityTimeout=str(visibility), RedrivePolicy=json.dumps(redrive)
    )


def queue_depth(aws: AwsStandins, name: str) -> int:
    sqs = aws.admin_client("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Operator:
    """One policy's passes with the operator's event consumer, as the kopf daemon runs them."""

    def __init__(self, aws: AwsStandins, spec: dict[str, Any], hub: EventHub) -> None:
        self.aws = aws
        self.spec = spec
        self.hub = hub
        self.status: dict[str, Any] = {}
        self.events: list[tuple[str, str, str]] = []
        self.woken = threading.Event()
        self.memo = PolicyMemo(event_hub=hub, wake=self.woken.set)
        self.controller = Controller(
            OperatorConfig(tick_seconds=10, observe_seconds=0, aws_calls_per_second=0),
            lambda ref, spec: AwsSession(spec.aws.region, settings=ClientSettings(max_attempts=2)),
            clock=aws.clock.now,
            started_at=aws.clock.now() - timedelta(hours=1),
        )

    def reconcile(self) -> RetrainingPolicyStatus:
        view = PolicyView(REF, 1, {}, copy.deepcopy(self.spec), copy.deepcopy(self.status))
        result = self.controller.reconcile(view, self._checkpoint, self.memo)
        self.events += [(e.type, e.reason, e.message) for e in result.events]
        return RetrainingPolicyStatus.model_validate(self.status)

    def _checkpoint(self, status: RetrainingPolicyStatus) -> None:
        self.status = status.to_wire()

    def settle_until_quiet(self, quiet: float = 2.5, limit: float = 60.0) -> None:
        """A pass whenever the consumer wakes the policy, until nothing arrives for `quiet`."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.woken.wait(quiet):
                self.woken.clear()
                self.reconcile()
            elif not self.hub.take(REF.uid):
                return
            else:
                self.reconcile()
        raise AssertionError("events kept arriving")

    def condition(self) -> tuple[str, str]:
        status = RetrainingPolicyStatus.model_validate(self.status)
        found = next(c for c in status.conditions if c.type is ConditionType.EVENTS_FLOWING)
        return found.status, found.reason


@pytest.fixture
def hub() -> Iterator[EventHub]:
    consumer = EventHub(wait_seconds=1, retry_scale=0.05)
    try:
        yield consumer
    finally:
        consumer.stop(timeout=5)


def ledger(aws: AwsStandins) -> Ledger:
    body = aws.get_object(f"{OUT}/ledger/head.json")
    assert body is not None
    return Ledger.from_json(body)


def pending_loops(aws: AwsStandins) -> Counter[str]:
    """How many times each loop appears in the pending segments (the next dataset)."""
    seen: Counter[str] = Counter()
    for segment in ledger(aws).pending:
        body = aws.get_object(f"{OUT}/pending/{segment.sha256}.jsonl")
        assert body is not None
        for line in body.decode().splitlines():
            job = json.loads(line)["a2i-retraining-metadata"]["job-name"]
            seen[job.removeprefix("a2i/")] += 1
    return seen


def past(seconds: float) -> float:
    """Past an interval of `seconds` (a poll is due up to 10 % later, by the policy's UID)."""
    return seconds * 1.1 + 1


def listings(aws: AwsStandins) -> int:
    """Listing polls: ListHumanLoops since the watermark (an events settle's confirmation
    lists a bounded window, with CreationTimeBefore)."""
    calls = aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops")
    return sum(1 for call in calls if "CreationTimeBefore" not in call.params)


def confirmations(aws: AwsStandins) -> int:
    calls = aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops")
    listed = sum(1 for call in calls if "CreationTimeBefore" in call.params)
    return listed + len(aws.log.calls("sagemaker-a2i-runtime", "DescribeHumanLoop"))


def test_two_hundred_loops_with_duplicated_reordered_and_dropped_events(
    aws: AwsStandins, a2i_flow: FlowDefinition, hub: EventHub
) -> None:
    url = make_queue(aws, "a2i-events")
    assert aws.events is not None
    aws.events.route(a2i_flow.arn, url)
    aws.events.set_delivery(drop=0.05, duplicate=0.10, reorder=0.10)
    op = Operator(aws, events_spec(a2i_flow, url, backstopInterval="1h"), hub)
    now = aws.clock.now()
    names = [f"loop-{i:03d}" for i in range(200)]
    for i, name in enumerate(names):
        aws.a2i.add_loop(
            a2i_flow, name, status="InProgress", created=now - timedelta(seconds=600 - i)
        )

    op.reconcile()  # subscribes, and the first listing sees 200 loops in progress
    wait_for(lambda: hub.health(url).reachable is True, 10, "the consumer to reach the queue")
    op.reconcile()
    assert op.condition() == ("True", "Consuming")
    listed = listings(aws)

    for start in range(0, 200, 20):  # loops complete over time, in waves
        for name in names[start : start + 20]:
            aws.a2i.complete_loop(name)
        aws.clock.advance(5)
        op.settle_until_quiet(quiet=1.5)
    aws.events.flush()
    op.settle_until_quiet()

    dropped = set(aws.events.dropped_loops)
    assert aws.events.duplicated > 5
    assert aws.events.reordered > 5
    assert dropped
    ingested = pending_loops(aws)
    assert set(ingested) == set(names) - dropped
    assert max(ingested.values()) == 1
    assert listings(aws) == listed  # no listing while events flow
    assert queue_depth(aws, "a2i-events") == 0  # every delivered message deleted
    assert queue_depth(aws, "a2i-events-dlq") == 0

    aws.clock.advance(past(3600))  # the backstop listing catches what the events missed
    status = op.reconcile()
    assert listings(aws) == listed + 2  # one listing (two pages of 100)
    ingested = pending_loops(aws)
    assert set(ingested) == set(names)
    assert max(ingested.values()) == 1
    assert status.ingest.pending_samples == 200
    assert status.ingest.ingested_loops == 200


def test_failed_and_stopped_loops_are_settled_and_counted_from_their_events(
    aws: AwsStandins, a2i_flow: FlowDefinition, hub: EventHub
) -> None:
    url = make_queue(aws, "a2i-events")
    assert aws.events is not None
    aws.events.route(a2i_flow.arn, url)
    op = Operator(aws, events_spec(a2i_flow, url), hub)
    for name in ("ok-1", "bad-1", "bad-2"):
        aws.a2i.add_loop(a2i_flow, name, status="InProgress")
    op.reconcile()
    aws.a2i.complete_loop("ok-1")
    aws.a2i.fail_loop("bad-1")
    aws.a2i.fail_loop("bad-2", reason="expired")
    op.settle_until_quiet()
    status = RetrainingPolicyStatus.model_validate(op.status)
    assert status.ingest.failed_loops == 2
    assert status.ingest.pending_samples == 1
    assert queue_depth(aws, "a2i-events") == 0
    # A2I's word on each loop (issue 27): one or two events at a time are confirmed by
    # DescribeHumanLoop (a listing page for more), never more than one call per event.
    assert len(aws.log.calls("sagemaker-a2i-runtime", "DescribeHumanLoop")) <= 3


def test_poison_and_foreign_messages_end_in_the_dlq_after_max_receive_count(
    aws: AwsStandins, a2i_flow: FlowDefinition, hub: EventHub
) -> None:
    url = make_queue(aws, "a2i-events", visibility=1, receives=2)
    assert aws.events is not None
    op = Operator(aws, events_spec(a2i_flow, url), hub)
    op.reconcile()
    foreign = {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker A2I HumanLoop Status Change",
        "account": "999999999999",
        "region": "us-east-1",
        "detail": {
            "humanLoopName": "theirs",
            "flowDefinitionArn": a2i_flow.arn,
            "humanLoopStatus": "Completed",
        },
    }
    other_flow = {**foreign, "account": ACCOUNT}
    other_flow["detail"] = {
        "humanLoopName": "elsewhere",
        "flowDefinitionArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:flow-definition/nobody",
        "humanLoopStatus": "Failed",
        "creationTime": "2026-01-01T00:00:00Z",
    }
    for body in ("garbage", "{}", "x" * 200_000, json.dumps(foreign), json.dumps(other_flow)):
        aws.events.send_raw(url, body)

    wait_for(lambda: queue_depth(aws, "a2i-events-dlq") == 5, 40, "5 messages in the DLQ")
    assert queue_depth(aws, "a2i-events") == 0
    health = hub.health(url)
    assert health.rejected["NotJson"] >= 2
    assert health.rejected["Oversized"] >= 2
    assert health.rejected["NotA2I"] >= 2
    assert health.rejected["Foreign"] >= 2
    assert health.unrouted >= 2
    assert health.deleted == 0
    status = op.reconcile()
    assert op.condition() == ("True", "Consuming")
    assert status.ingest.ingested_loops == 0
    degraded = next(c for c in status.conditions if c.type is ConditionType.DEGRADED)
    assert degraded.status == "False"


KILLED_CONSUMER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from retraining_operator.api import IngestStatus, RetrainingPolicySpec
    from retraining_operator.aws.session import AwsSession
    from retraining_operator.runtime.event_hub import EventHub, Subscription
    from support.ingest import settle_events

    spec = RetrainingPolicySpec.model_validate_json(sys.argv[1])
    want = int(sys.argv[2])
    session = AwsSession("us-east-1")
    hub = EventHub(wait_seconds=1)
    events = spec.human_loops.events
    hub.subscribe(Subscription("uid", events.sqs_queue_url,
                               spec.human_loops.flow_definition_arn, session, lambda: None))
    deadline = time.monotonic() + 30
    while len(hub.take("uid")) < want and time.monotonic() < deadline:
        time.sleep(0.05)
    owner = {"policyUid": sys.argv[3], "flowDefinitionArn": spec.human_loops.flow_definition_arn}
    result = settle_events(session, spec, hub.take("uid"), previous=IngestStatus(), owner=owner)
    print(json.dumps(sorted(result.settled)), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # after the ledger commit, before DeleteMessage
    """
)


def test_sigkill_between_ingest_and_delete_then_redelivery_changes_nothing(
    aws: AwsStandins, a2i_flow: FlowDefinition, hub: EventHub
) -> None:
    url = make_queue(aws, "a2i-events", visibility=2)
    assert aws.events is not None
    aws.events.route(a2i_flow.arn, url)
    spec = events_spec(a2i_flow, url)
    names = [f"loop-{i}" for i in range(5)]
    for name in names:
        aws.a2i.add_loop(a2i_flow, name)  # Completed: five events in the queue

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_CONSUMER, json.dumps(spec), "5", REF.uid],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))},
        check=False,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert json.loads(killed.stdout) == names
    before = ledger(aws)
    assert before.totals.ingested_loops == 5
    assert queue_depth(aws, "a2i-events") == 5  # not deleted: the process died first

    op = Operator(aws, spec, hub)  # the restarted operator
    op.reconcile()
    wait_for(lambda: len(hub.take(REF.uid)) == 5, 20, "the redelivered messages")
    op.settle_until_quiet()
    after = ledger(aws)
    assert after.totals == before.totals
    assert after.pending == before.pending
    assert sorted(pending_loops(aws).elements()) == names
    assert queue_depth(aws, "a2i-events") == 0


def test_a_queue_of_another_account_degrades_the_policy_which_keeps_polling(
    aws: AwsStandins, a2i_flow: FlowDefinition, hub: EventHub
) -> None:
    theirs = "https://sqs.us-east-1.amazonaws.com/999999999999/their-events"
    op = Operator(aws, events_spec(a2i_flow, theirs), hub)
    aws.a2i.add_loop(a2i_flow, "loop-1")
    status = op.reconcile()
    assert op.condition() == ("False", "QueueRejected")
    degraded = next(c for c in status.conditions if c.type is ConditionType.DEGRADED)
    assert degraded.status == "True"
    assert degraded.reason == "EventsQueueRejected"
    assert "999999999999" in degraded.message
    assert not aws.log.calls("sqs", "ReceiveMessage")
    assert status.ingest.ingested_loops == 1  # the listing poll still ingests
    lists = listings(aws)
    aws.clock.advance(past(5 * 60))  # pollInterval, not backstopInterval
    op.reconcile()
    assert listings(aws) == lists + 1


def test_an_unreachable_queue_falls_back_to_poll_interval_and_says_so(
    aws: AwsStandins, a2i_flow: FlowDefinition, hub: EventHub
) -> None:
    missing = f"{aws.moto.url}/{ACCOUNT}/no-such-queue"
    op = Operator(aws, events_spec(a2i_flow, missing, backstopInterval="1h"), hub)
    op.reconcile()
    wait_for(lambda: hub.health(missing).reachable is False, 20, "the queue to be unreachable")
    op.reconcile()
    status, reason = op.condition()
    assert (status, reason) == ("False", "QueueUnreachable")
    lists = listings(aws)
    aws.clock.advance(past(5 * 60))
    op.reconcile()
    assert listings(aws) == lists + 1  # pollInterval, not the 1h backstop

    aws.create_queue("no-such-queue")  # the queue appears: events flow, polls slow down
    wait_for(lambda: hub.health(missing).reachable is True, 40, "the queue to be reachable")
    op.reconcile()
    assert op.condition() == ("True", "Consuming")
    lists = listings(aws)
    aws.clock.advance(past(5 * 60))
    op.reconcile()
    assert listings(aws) == lists


def test_a_refused_status_write_does_not_lose_what_events_settled(
    aws: AwsStandins, a2i_flow: FlowDefinition, hub: EventHub
) -> None:
    url = make_queue(aws, "a2i-events")
    assert aws.events is not None
    aws.events.route(a2i_flow.arn, url)
    op = Operator(aws, events_spec(a2i_flow, url), hub)
    for name in ("loop-1", "loop-2"):
        aws.a2i.add_loop(a2i_flow, name, status="InProgress")
    op.reconcile()
    for name in ("loop-1", "loop-2"):
        aws.a2i.complete_loop(name)
    wait_for(lambda: len(hub.take(REF.uid)) == 2, 20, "two events")

    def refused(status: RetrainingPolicyStatus) -> None:
        raise RuntimeError("the object changed since this pass read it")

    view = PolicyView(REF, 1, {}, copy.deepcopy(op.spec), copy.deepcopy(op.status))
    with pytest.raises(RuntimeError):
        op.controller.reconcile(view, refused, op.memo)  # settled, then the write is refused
    assert ledger(aws).totals.ingested_loops == 2
    assert queue_depth(aws, "a2i-events") == 0  # deleted: they are in the ledger
    status = op.reconcile()  # no event left to settle, and no listing for an hour
    assert status.ingest.ingested_loops == 2
    assert status.ingest.pending_samples == 2


def test_a_refused_status_write_never_moves_pending_samples_backwards(
    aws: AwsStandins, a2i_flow: FlowDefinition, hub: EventHub
) -> None:
    """Issue 27: the poll's and the events settle's remembered ingest blocks used to undo each
    other after a refused status write; one block, ordered by the ledger's revision, now."""
    url = make_queue(aws, "a2i-events")
    assert aws.events is not None
    op = Operator(aws, events_spec(a2i_flow, url), hub)
    for name in ("polled-1", "polled-2", "polled-3"):
        aws.a2i.add_loop(a2i_flow, name)  # Completed before the first listing
    for name in ("event-1", "event-2"):
        aws.a2i.add_loop(a2i_flow, name, status="InProgress")

    def refused(status: RetrainingPolicyStatus) -> None:
        raise RuntimeError("the object changed since this pass read it")

    def refused_pass() -> None:
        view = PolicyView(REF, 1, {}, copy.deepcopy(op.spec), copy.deepcopy(op.status))
        with pytest.raises(RuntimeError):
            op.controller.reconcile(view, refused, op.memo)

    refused_pass()  # the listing poll ingests 3; its status write is refused
    aws.events.route(a2i_flow.arn, url)
    for name in ("event-1", "event-2"):
        aws.a2i.complete_loop(name)
    wait_for(lambda: len(hub.take(REF.uid)) == 2, 20, "two events")
    refused_pass()  # the events settle ingests 2 more; refused again
    assert ledger(aws).totals.ingested_loops == 5
    status = op.reconcile()  # no poll due, no event left: only what the memo kept
    assert status.ingest.pending_samples == 5
    assert status.ingest.ingested_loops == 5


def test_a_refused_policy_unsubscribes_at_once(
    aws: AwsStandins, a2i_flow: FlowDefinition, hub: EventHub
) -> None:
    """Issue 27: a policy refused at admission kept its subscription (and its unsettled
    messages) on the operator-wide hub."""
    url = make_queue(aws, "a2i-events")
    op = Operator(aws, events_spec(a2i_flow, url), hub)
    op.reconcile()
    assert hub.subscribed(REF.uid)
    op.spec["gate"] = {**op.spec.get("gate", {}), "minimum": -1}  # refused before any AWS call
    status = op.reconcile()
    degraded = next(c for c in status.conditions if c.type is ConditionType.DEGRADED)
    assert degraded.status == "True"
    assert not hub.subscribed(REF.uid)
