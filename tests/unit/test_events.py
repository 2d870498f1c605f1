"""Event-driven ingest, the pure parts and the consumer's routing (issue 19).

Message parsing and the queue rules are pure (`reconcile/events.py`); the hub's routing,
bounded in-flight set and delete-after-settle are exercised with a recording SQS client.
"""

from __future__ import annotations

import json
import threading
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
from retraining_operator.workflow.events import EventHub, Subscription, listing_interval
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


class FakeSession:
    def __init__(self) -> None:
        self.client = RecordingSqs()

    def sqs(self) -> RecordingSqs:
        return self.client


def _message(index: int, body: str) -> Message:
    return Message(f"m{index}", f"h{index}", body, 1)


def _hub_with(*subs: tuple[str, str]) -> tuple[EventHub, FakeSession, dict[str, int]]:
    """A hub whose consumers never start (routing is driven by the test)."""
    hub = EventHub()
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
    from retraining_operator.workflow.events import _Consumer

    consumer = _Consumer(hub, QUEUE)
    hub._consumers[QUEUE] = consumer
    return consumer


def test_the_consumer_stops_receiving_while_the_in_flight_set_is_full() -> None:
    hub, _, _ = _hub_with(("a", FLOW))
    hub.max_in_flight = 5
    hub.route(QUEUE, [_message(i, json.dumps(envelope(f"loop-{i}"))) for i in range(5)])
    stopping = threading.Event()
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(hub.wait_for_room(stopping)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # full: no ReceiveMessage until a policy settles something
    hub.done("a", {"loop-0"})
    waiter.join(3)
    assert result == [True]


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
