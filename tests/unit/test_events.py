"""Event-driven ingest, the pure parts and the consumer's routing (issue 19).

Message parsing and the queue rules are pure (`reconcile/events.py`); the hub's routing,
bounded in-flight set and delete-after-settle are exercised with a recording SQS client.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.aws.sqs import Message
from retraining_operator.reconcile.events import (
    MAX_MESSAGE_BYTES,
    LoopEvent,
    Rejected,
    parse_message,
    queue_problem,
)
from retraining_operator.reconcile.schedule import listing_interval
from retraining_operator.runtime.event_hub import EventHub, Subscription
from unit.ingest_policies import ACCOUNT, flow_arn, ingest_spec

pytestmark = pytest.mark.events

FLOW = flow_arn("fd-test")
QUEUE = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/a2i-events"


def envelope(name: str = "loop-1", **detail: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "creationTime": "2026-11-29T20:44:41.123Z",
        "humanLoopName": name,
        "humanLoopArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:human-loop/{name}",
        "flowDefinitionArn": FLOW,
        "humanLoopStatus": "Completed",
        "humanLoopOutput": {
            "outputS3Uri": f"s3://b/a2i/fd-test/2026/11/29/20/44/41/{name}/output.json"
        },
    }
    body.update(detail)
    return {
        "version": "0",
        "id": "e1",
        "detail-type": "SageMaker A2I HumanLoop Status Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": "2026-11-29T20:45:00Z",
        "region": "us-east-1",
        "resources": [body["humanLoopArn"]],
        "detail": body,
    }


# -- parsing ----------------------------------------------------------------------------


def test_a_completed_event_names_the_loop_its_creation_time_and_output() -> None:
    event = parse_message(json.dumps(envelope()))
    assert isinstance(event, LoopEvent)
    assert event.name == "loop-1"
    assert event.completed
    assert event.created == datetime(2026, 11, 29, 20, 44, 41, 123000, tzinfo=UTC)
    assert event.output_s3_uri is not None
    assert event.output_s3_uri.endswith("loop-1/output.json")
    assert event.flow_definition_arn == FLOW


@pytest.mark.parametrize("status", ["Failed", "Stopped", "Expired"])
def test_loops_that_end_without_output_are_events_too(status: str) -> None:
    event = parse_message(
        json.dumps(envelope(humanLoopStatus=status, humanLoopOutput=None, failureReason="x"))
    )
    assert isinstance(event, LoopEvent)
    assert not event.completed
    assert event.failure_reason == "x"


def _reason(body: str | bytes) -> str:
    parsed = parse_message(body)
    assert isinstance(parsed, Rejected), parsed
    return parsed.reason


def test_garbage_and_foreign_messages_are_rejected_with_a_reason_never_raised() -> None:
    assert _reason("not json at all") == "NotJson"
    assert _reason(b"\xff\xfe\x00garbage") == "NotJson"
    assert _reason("[1, 2, 3]") == "NotJson"
    assert _reason("[" * 100_000 + "]" * 100_000) in ("NotJson", "Oversized")
    assert _reason(json.dumps({"source": "aws.s3", "detail-type": "Object Created"})) == "NotA2I"
    assert _reason(json.dumps({**envelope(), "detail": "x"})) == "Malformed"
    assert _reason(json.dumps(envelope(name="../../etc/passwd"))) == "Malformed"
    assert _reason(json.dumps(envelope(humanLoopStatus="InProgress"))) == "Malformed"
    assert _reason(json.dumps(envelope(creationTime="yesterday"))) == "Malformed"
    assert _reason(json.dumps(envelope(humanLoopOutput={"outputS3Uri": "http://evil"}))) == (
        "Malformed"
    )
    assert _reason(json.dumps(envelope(flowDefinitionArn="arn:aws:s3:::bucket"))) == "Malformed"


def test_an_event_whose_envelope_names_another_account_is_foreign() -> None:
    other = envelope()
    other["account"] = "999999999999"
    assert _reason(json.dumps(other)) == "Foreign"
    # The flow definition of another account, in an envelope that says so, parses; routing
    # by flowDefinitionArn then finds no policy for it.
    theirs = envelope(flowDefinitionArn=flow_arn("fd-test", account="999999999999"))
    theirs["account"] = "999999999999"
    assert isinstance(parse_message(json.dumps(theirs)), LoopEvent)


def test_huge_messages_are_rejected_by_size_before_parsing() -> None:
    huge = json.dumps(envelope(failureReason="x" * (MAX_MESSAGE_BYTES + 1)))
    assert _reason(huge) == "Oversized"


# -- the queue a policy may name ---------------------------------------------------------


def test_a_queue_in_the_flow_definitions_account_and_region_is_accepted() -> None:
    assert queue_problem(QUEUE, FLOW, "us-east-1") is None
    # An endpoint override (the stand-ins, a proxy) does not say its region.
    assert queue_problem(f"http://127.0.0.1:4566/{ACCOUNT}/q", FLOW, "us-east-1") is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://sqs.us-east-1.amazonaws.com/999999999999/theirs", "account 999999999999"),
        (f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/q", "region eu-west-1"),
        (f"https://eu-west-1.queue.amazonaws.com/{ACCOUNT}/q", "region eu-west-1"),
        (f"http://sqs.us-east-1.amazonaws.com/{ACCOUNT}/q", "https"),
        ("https://example.com/not-a-queue", "not an SQS queue URL"),
    ],
)
def test_a_queue_of_another_account_or_region_is_refused(url: str, words: str) -> None:
    problem = queue_problem(url, FLOW, "us-east-1")
    assert problem is not None
    assert words in problem


def test_the_listing_slows_to_the_backstop_only_while_events_flow() -> None:
    plain = ingest_spec()
    assert listing_interval(plain, True) == timedelta(minutes=5)
    data = plain.model_dump(by_alias=True)
    data["humanLoops"]["events"] = {"sqsQueueUrl": QUEUE, "backstopInterval": "2h"}
    with_events = RetrainingPolicySpec.model_validate(data)
    assert listing_interval(with_events, True) == timedelta(hours=2)
    assert listing_interval(with_events, False) == timedelta(minutes=5)


# -- routing, bounded in-flight, delete after settle ---------------------------------------


class RecordingSqs:
    def __init__(self) -> None:
        self.deleted: list[str] = []
        self.released: list[str] = []

    def change_message_visibility(
        self,
        QueueUrl: str,
        ReceiptHandle: str,
        VisibilityTimeout: int,
    ) -> Any:
        assert VisibilityTimeout == 0
        self.released.append(ReceiptHandle)

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> Any:
        self.deleted.extend(entry["ReceiptHandle"] for entry in Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


class QueueSqs(RecordingSqs):
    """A queue in memory for a real consumer thread: receive hands out what was sent, once
    (a message that is not deleted does not come back: no visibility timeout here)."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Message] = []
        self.sent = 0
        self.lock = threading.Lock()

    def send(self, *bodies: str) -> None:
        with self.lock:
            for body in bodies:
                self.sent += 1
                self.pending.append(Message(f"m{self.sent}", f"h{self.sent}", body, 1))

    def receive_message(self, MaxNumberOfMessages: int, **_: Any) -> Any:
        with self.lock:
            batch = self.pending[:MaxNumberOfMessages]
            del self.pending[:MaxNumberOfMessages]
        if not batch:
            time.sleep(0.01)  # the long poll, shortened
        return {
            "Messages": [
                {"MessageId": m.message_id, "ReceiptHandle": m.receipt_handle, "Body": m.body}
                for m in batch
            ]
        }

    def get_queue_attributes(self, **_: Any) -> Any:
        return {"Attributes": {"VisibilityTimeout": "30", "RedrivePolicy": "{}"}}


class FakeSession:
    def __init__(self, client: RecordingSqs | None = None) -> None:
        self.client = client if client is not None else RecordingSqs()

    def sqs(self) -> RecordingSqs:
        return self.client


def _message(index: int, body: str) -> Message:
    return Message(f"m{index}", f"h{index}", body, 1)


def _hub_with(
    *subs: tuple[str, str], **limits: int
) -> tuple[EventHub, FakeSession, dict[str, int]]:
    """A hub whose consumers never start (routing is driven by the test)."""
    hub = EventHub()
    for name, value in limits.items():  # max_in_flight, max_in_flight_per_policy
        setattr(hub, name, value)
    session = FakeSession()
    woken: dict[str, int] = {}
    for uid, flow in subs:
        woken[uid] = 0

        def wake(uid: str = uid) -> None:
            woken[uid] += 1

        sub = Subscription(uid, QUEUE, flow, session, wake)  # type: ignore[arg-type]
        hub._subs[uid] = sub  # no consumer thread: the test routes by hand
        hub._in_flight.setdefault(QUEUE, {})
    return hub, session, woken


def test_messages_are_routed_by_flow_and_deleted_only_when_every_policy_settled() -> None:
    hub, session, woken = _hub_with(("a", FLOW), ("b", FLOW), ("c", flow_arn("other")))
    hub.route(QUEUE, [_message(1, json.dumps(envelope("loop-1")))])
    assert woken == {"a": 1, "b": 1, "c": 0}
    assert [e.name for e in hub.take("a")] == ["loop-1"]
    assert hub.take("c") == []
    assert hub.done("a", {"loop-1"}) == 0  # b has not settled it yet
    assert session.client.deleted == []
    assert hub.done("b", {"loop-1"}) == 1
    assert session.client.deleted == ["h1"]
    assert hub.take("a") == []
    assert hub.take("b") == []


def test_unsettled_loops_are_forgotten_so_sqs_redelivers_them() -> None:
    hub, session, _ = _hub_with(("a", FLOW))
    hub.route(QUEUE, [_message(1, json.dumps(envelope("loop-1")))])
    hub.done("a", set(), {"loop-1"})
    assert session.client.deleted == []
    assert hub.take("a") == []
    hub.route(QUEUE, [_message(1, json.dumps(envelope("loop-1")))])  # redelivered
    assert [e.name for e in hub.take("a")] == ["loop-1"]


def test_a_redelivered_message_keeps_one_entry_with_the_newest_receipt_handle() -> None:
    hub, session, _ = _hub_with(("a", FLOW))
    body = json.dumps(envelope("loop-1"))
    hub.route(QUEUE, [Message("m1", "old", body, 1)])
    hub.route(QUEUE, [Message("m1", "new", body, 2)])
    assert len(hub.take("a")) == 1
    hub.done("a", {"loop-1"})
    assert session.client.deleted == ["new"]


def test_garbage_and_unrouted_messages_are_counted_logged_once_and_never_deleted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub, session, woken = _hub_with(("a", FLOW))
    consumer = _consumer_health(hub)
    for _ in range(3):  # the same poison, received again and again until the DLQ
        hub.route(
            QUEUE,
            [
                _message(1, "garbage"),
                _message(2, json.dumps(envelope("x", flowDefinitionArn=flow_arn("nobody")))),
            ],
        )
    assert consumer.health.rejected["NotJson"] == 3
    assert consumer.health.unrouted == 3
    assert hub.take("a") == []
    assert woken["a"] == 0
    assert session.client.deleted == []
    texts = [r.getMessage() for r in caplog.records if "queue" in r.getMessage()]
    assert sum("NotJson" in t for t in texts) == 1
    assert sum("no policy" in t for t in texts) == 1


def _consumer_health(hub: EventHub) -> Any:
    from retraining_operator.runtime.event_hub import _Consumer

    consumer = _Consumer(hub, QUEUE)
    hub._consumers[QUEUE] = consumer
    return consumer


def test_the_consumer_stops_receiving_while_every_inbox_on_its_queue_is_full() -> None:
    hub, _, _ = _hub_with(("a", FLOW), max_in_flight_per_policy=5)
    stopping = threading.Event()
    assert hub.wait_for_room(QUEUE, stopping) == 5  # asks SQS for no more than fits
    hub.route(QUEUE, [_message(i, json.dumps(envelope(f"loop-{i}"))) for i in range(5)])
    result: list[int] = []
    waiter = threading.Thread(target=lambda: result.append(hub.wait_for_room(QUEUE, stopping)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # full: no ReceiveMessage until the policy settles something
    hub.done("a", {"loop-0"})
    waiter.join(3)
    assert result == [1]
    stopping.set()
    assert hub.wait_for_room(QUEUE, stopping) == 0


def test_a_policy_that_unsubscribes_releases_what_only_it_waited_for() -> None:
    hub, session, _ = _hub_with(("a", FLOW), ("b", flow_arn("other")))
    hub.route(
        QUEUE,
        [
            _message(1, json.dumps(envelope("loop-1"))),
            _message(2, json.dumps(envelope("loop-2", flowDefinitionArn=flow_arn("other")))),
        ],
    )
    hub.unsubscribe("a")
    assert session.client.released == ["h1"]  # visible again at once, not after the timeout
    assert session.client.deleted == []
    assert [e.name for e in hub.take("b")] == ["loop-2"]


# -- isolation between policies (issue 27) -----------------------------------------------

QUEUE_2 = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/a2i-events-2"
FLOW_B = flow_arn("fd-other")


def _until(predicate: Callable[[], bool], seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def _bodies(prefix: str, count: int, flow: str = FLOW) -> list[str]:
    return [json.dumps(envelope(f"{prefix}-{i}", flowDefinitionArn=flow)) for i in range(count)]


def _settle_all(hub: EventHub, uid: str) -> Callable[[], int]:
    """A healthy policy's passes: settle whatever arrived; returns how many it settled."""
    settled: set[str] = set()

    def settle() -> int:
        names = {event.name for event in hub.take(uid)}
        hub.done(uid, names)
        settled.update(names)
        return len(settled)

    return settle


def _nothing() -> None:
    return None


def test_a_stuck_policy_does_not_stop_another_queues_consumer() -> None:
    hub = EventHub(wait_seconds=0, retry_scale=0.01)
    hub.max_in_flight, hub.max_in_flight_per_policy = 10, 5
    stuck, healthy = QueueSqs(), QueueSqs()
    stuck.send(*_bodies("a", 20))
    try:
        hub.subscribe(Subscription("a", QUEUE, FLOW, FakeSession(stuck), _nothing))  # type: ignore[arg-type]
        assert _until(lambda: len(hub.take("a")) >= 5)
        time.sleep(0.2)  # a never settles: its consumer receives what fits, then waits
        hub.subscribe(Subscription("b", QUEUE_2, FLOW_B, FakeSession(healthy), _nothing))  # type: ignore[arg-type]
        healthy.send(*_bodies("b", 3, FLOW_B))
        settle = _settle_all(hub, "b")
        assert _until(lambda: settle() == 3), "b's queue stopped because a is stuck"
        assert len(healthy.deleted) == 3
        assert len(hub.take("a")) == 5  # a holds its cap, no more
        assert len(stuck.pending) == 15  # the rest stay in SQS: nothing overflowed
        assert hub.health(QUEUE).overflowed == 0
        assert hub.backlogged("a")
        assert not hub.backlogged("b")
    finally:
        hub.stop(timeout=3)


def test_a_stuck_policy_does_not_starve_a_neighbour_on_the_same_queue() -> None:
    hub = EventHub(wait_seconds=0, retry_scale=0.01)
    hub.max_in_flight, hub.max_in_flight_per_policy = 8, 4
    queue = QueueSqs()
    queue.send(*_bodies("a", 20))  # a's events first: they would fill a shared bound
    queue.send(*_bodies("b", 3, FLOW_B))
    session = FakeSession(queue)
    try:
        hub.subscribe(Subscription("a", QUEUE, FLOW, session, _nothing))  # type: ignore[arg-type]
        hub.subscribe(Subscription("b", QUEUE, FLOW_B, session, _nothing))  # type: ignore[arg-type]
        settle = _settle_all(hub, "b")
        assert _until(lambda: settle() == 3), "b's events were not routed while a is stuck"
        assert len(queue.deleted) == 3
        assert len(hub.take("a")) == 4  # a's cap
        assert hub.health(QUEUE).overflowed == 16  # a's other events: not tracked
        assert hub.backlogged("a")
        assert not hub.backlogged("b")
    finally:
        hub.stop(timeout=3)


def test_messages_for_a_full_inbox_are_not_tracked_and_come_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub, session, woken = _hub_with(("a", FLOW), ("b", FLOW_B), max_in_flight_per_policy=2)
    consumer = _consumer_health(hub)
    hub.route(QUEUE, [_message(i, json.dumps(envelope(f"loop-{i}"))) for i in range(2)])
    assert woken["a"] == 1
    late = _message(9, json.dumps(envelope("loop-9")))
    for _ in range(2):  # received again after its visibility timeout, still no room
        hub.route(QUEUE, [late, _message(5, json.dumps(envelope("b-5", flowDefinitionArn=FLOW_B)))])
    assert sorted(e.name for e in hub.take("a")) == ["loop-0", "loop-1"]  # not loop-9
    assert [e.name for e in hub.take("b")] == ["b-5"]  # b's events still get through
    assert consumer.health.overflowed == 2
    assert woken["a"] == 1
    assert hub.backlogged("a")  # a should list at pollInterval: events are getting lost
    assert not hub.backlogged("b")
    texts = [r.getMessage() for r in caplog.records if "inbox of policy" in r.getMessage()]
    assert len(texts) == 1  # once per policy
    assert "policy a " in texts[0]
    assert session.client.deleted == []

    hub.done("a", {"loop-0"})
    assert not hub.backlogged("a")
    hub.route(QUEUE, [late])  # it came back, and now there is room
    assert sorted(e.name for e in hub.take("a")) == ["loop-1", "loop-9"]
    assert consumer.health.overflowed == 2
    assert woken["a"] == 2


def test_unsubscribe_releases_only_what_nobody_else_waits_for() -> None:
    hub, session, _ = _hub_with(("a", FLOW), ("b", FLOW))
    hub.route(QUEUE, [_message(i, json.dumps(envelope(f"loop-{i}"))) for i in (1, 2)])
    hub.done("b", {"loop-2"})  # only a waits for loop-2 now
    hub.done("a", set(), {"loop-1"})  # a could not settle loop-1: b still waits for it
    assert [e.name for e in hub.take("b")] == ["loop-1"]
    hub.unsubscribe("a")
    assert session.client.released == ["h2"]  # loop-1 stays for b
    hub.unsubscribe("a")  # idempotent: every pass of a refused or suspended policy
    assert session.client.released == ["h2"]
    assert not hub.backlogged("a")
    assert [e.name for e in hub.take("b")] == ["loop-1"]
    assert hub.done("b", {"loop-1"}) == 1  # a gave up on it, but a is gone: deleted
    assert session.client.deleted == ["h1"]
    assert hub.take("b") == []


def test_a_policy_that_cannot_settle_a_shared_message_leaves_it_to_the_others() -> None:
    hub, session, _ = _hub_with(("a", FLOW), ("b", FLOW))
    hub.route(QUEUE, [_message(1, json.dumps(envelope("loop-1")))])
    hub.done("a", set(), {"loop-1"})
    assert hub.take("a") == []
    assert [e.name for e in hub.take("b")] == ["loop-1"]  # b keeps it
    hub.route(QUEUE, [Message("m1", "h1-again", json.dumps(envelope("loop-1")), 2)])
    assert [e.name for e in hub.take("a")] == ["loop-1"]  # redelivered: a tries again
    hub.done("b", {"loop-1"})
    assert session.client.deleted == []  # a has not settled it
    hub.done("a", set(), {"loop-1"})
    assert session.client.deleted == []  # nobody holds it now: SQS gives it back to a
    assert hub.take("a") == hub.take("b") == []
    hub.route(QUEUE, [Message("m1", "h1-third", json.dumps(envelope("loop-1")), 3)])
    hub.done("a", {"loop-1"})
    hub.done("b", {"loop-1"})  # the ledger makes b's second settle change nothing
    assert session.client.deleted == ["h1-third"]


def test_an_inbox_never_keeps_the_message_body() -> None:
    hub, _, _ = _hub_with(("a", FLOW))
    hub.route(QUEUE, [_message(1, json.dumps(envelope("loop-1")))])
    (item,) = hub._in_flight[QUEUE].values()
    assert item.message.body == ""
    assert item.message.receipt_handle == "h1"


def test_a_neighbour_always_has_its_share_however_many_policies_are_stuck() -> None:
    subs = [(f"stuck-{i}", flow_arn(f"fd-{i}")) for i in range(4)] + [("b", FLOW_B)]
    hub, _, _ = _hub_with(*subs, max_in_flight=20, max_in_flight_per_policy=10)
    for i in range(4):  # four stuck policies: two borrow the whole operator-wide bound
        flow = flow_arn(f"fd-{i}")
        hub.route(
            QUEUE,
            [
                Message(
                    f"s{i}-{j}",
                    f"hs{i}-{j}",
                    json.dumps(envelope(f"s-{j}", flowDefinitionArn=flow)),
                    1,
                )
                for j in range(10)
            ],
        )
    held = [len(hub.take(f"stuck-{i}")) for i in range(4)]
    assert held == [10, 10, 4, 4]  # the others still got their share, 20 / 5 policies
    assert not hub.backlogged("b")
    stopping = threading.Event()
    assert hub.wait_for_room(QUEUE, stopping) == 4  # b's share: 20 / 5 policies
    hub.route(
        QUEUE,
        [_message(i, json.dumps(envelope(f"b-{i}", flowDefinitionArn=FLOW_B))) for i in range(6)],
    )
    assert len(hub.take("b")) == 4
    assert hub.backlogged("b")
