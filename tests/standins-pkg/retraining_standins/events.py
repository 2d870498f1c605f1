"""A2I status-change events, delivered to SQS the way an EventBridge rule delivers them.

When a human loop ends (Completed, Failed, Stopped) A2I publishes an EventBridge event,
`source: aws.sagemaker`, `detail-type: SageMaker A2I HumanLoop Status Change`; a rule whose
target is an SQS queue puts the whole event envelope, as JSON, in the message body. This
module builds exactly that envelope and sends it to a queue on moto's SQS.

Why not moto's EventBridge: `aws.*` sources are AWS's own (PutEvents cannot publish them on
AWS), and the controls that matter for testing — drop, duplicate, delay, reorder — sit on the
delivery between the rule and the queue, which moto's synchronous rule evaluation has no
place for. So the relay plays the rule: it matches the flow definition ARN (what the rule
pattern in docs/events.md matches) and delivers with at-least-once, unordered semantics
chosen by the test.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from retraining_standins.seed import a2i_timestamp

if TYPE_CHECKING:
    from retraining_standins.a2i import HumanLoop
    from retraining_standins.clock import Clock

SOURCE = "aws.sagemaker"
DETAIL_TYPE = "SageMaker A2I HumanLoop Status Change"


def status_change_event(
    loop: HumanLoop, *, account: str, region: str, at: datetime
) -> dict[str, Any]:
    """The EventBridge envelope A2I publishes for a loop that ended."""
    detail: dict[str, Any] = {
        "creationTime": a2i_timestamp(loop.created),
        "humanLoopName": loop.name,
        "humanLoopArn": loop.arn,
        "flowDefinitionArn": loop.flow.arn,
        "humanLoopStatus": loop.status,
    }
    if loop.failure_code:
        detail["failureCode"] = loop.failure_code
    if loop.failure_reason:
        detail["failureReason"] = loop.failure_reason
    if loop.status == "Completed" and loop.output_uri:
        detail["humanLoopOutput"] = {"outputS3Uri": loop.output_uri}
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": account,
        "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [loop.arn],
        "detail": detail,
    }


@dataclass
class Delivery:
    """How events are delivered (rates are probabilities per event, drawn from `seed`)."""

    drop: float = 0.0  # the event never arrives
    duplicate: float = 0.0  # it arrives twice
    reorder: float = 0.0  # it is held back and sent after the next event
    delay: float = 0.0  # seconds (real time) before every delivery


class EventRelay:
    """EventBridge rules `flow definition ARN -> SQS queue URL`, with delivery faults.

    Thread-safe; `sent`, `dropped`, `duplicated`, `reordered` count what happened, and
    `dropped_loops` names the loops whose only event was dropped.
    """

    def __init__(self, sqs: Any, clock: Clock, *, account: str, region: str, seed: int = 0) -> None:
        self.sqs = sqs
        self.clock = clock
        self.account = account
        self.region = region
        self.delivery = Delivery()
        self._rng = random.Random(seed)
        self._rules: dict[str, str] = {}
        self._held: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self.sent = 0
        self.dropped = 0
        self.duplicated = 0
        self.reordered = 0
        self.dropped_loops: list[str] = []
        self.failed_sends = 0  # SendMessageBatch entries SQS refused

    def route(self, flow_definition_arn: str, queue_url: str) -> None:
        """Like `PutRule` (pattern on detail.flowDefinitionArn) + `PutTargets` (the queue)."""
        with self._lock:
            self._rules[flow_definition_arn] = queue_url

    def set_delivery(self, **rates: float) -> Delivery:
        with self._lock:
            self.delivery = Delivery(**rates)
            return self.delivery

    def reset(self, seed: int = 0) -> None:
        with self._lock:
            self._rules.clear()
            self._held.clear()
            self.delivery = Delivery()
            self._rng = random.Random(seed)
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self.sent = self.dropped = self.duplicated = self.reordered = 0
            self.dropped_loops.clear()

    def loop_ended(self, loop: HumanLoop) -> None:
        """A2I publishes the event; the rule (if any) delivers it to its queue."""
        with self._lock:
            queue_url = self._rules.get(loop.flow.arn)
            if queue_url is None:
                return
            body = json.dumps(
                status_change_event(
                    loop, account=self.account, region=self.region, at=self.clock.now()
                )
            )
            rates = self.delivery
            if self._rng.random() < rates.drop:
                self.dropped += 1
                self.dropped_loops.append(loop.name)
                return
            bodies = [body]
            if self._rng.random() < rates.duplicate:
                self.duplicated += 1
                bodies.append(body)
            if self._rng.random() < rates.reorder:
                self.reordered += 1
                self._held.extend((queue_url, b) for b in bodies)
                return
            held, self._held = self._held, []
            batch = [(queue_url, b) for b in bodies] + held
        self._deliver(batch, rates.delay)

    def flush(self) -> None:
        """Deliver events held back for reordering (the stream's last events)."""
        with self._lock:
            held, self._held = self._held, []
            delay = self.delivery.delay
        self._deliver(held, delay)

    def publish_again(self, loops: list[HumanLoop]) -> int:
        """Publish the events of loops that already ended, 10 per SendMessageBatch (a storm:
        EventBridge delivering a backlog at once). Delivery faults do not apply. Returns how
        many were sent."""
        with self._lock:
            routed = [
                (self._rules[loop.flow.arn], loop) for loop in loops if loop.flow.arn in self._rules
            ]
        by_queue: dict[str, list[str]] = {}
        for queue_url, loop in routed:
            body = status_change_event(
                loop, account=self.account, region=self.region, at=self.clock.now()
            )
            by_queue.setdefault(queue_url, []).append(json.dumps(body))
        for queue_url, bodies in by_queue.items():
            for start in range(0, len(bodies), 10):
                entries = [
                    {"Id": str(i), "MessageBody": body}
                    for i, body in enumerate(bodies[start : start + 10])
                ]
                response = self.sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
                failed = len(response.get("Failed") or [])
                with self._lock:
                    self.sent += len(entries) - failed
                    self.failed_sends += failed
        return len(routed)

    def send_raw(self, queue_url: str, body: str) -> None:
        """Any body at all (poison messages, foreign events)."""
        self.sqs.send_message(QueueUrl=queue_url, MessageBody=body)

    def _deliver(self, batch: list[tuple[str, str]], delay: float) -> None:
        if not batch:
            return
        if delay > 0:
            timer = threading.Timer(delay, self._send, args=(batch,))
            timer.daemon = True
            with self._lock:
                self._timers.append(timer)
            timer.start()
        else:
            self._send(batch)

    def _send(self, batch: list[tuple[str, str]]) -> None:
        for queue_url, body in batch:
            self.sqs.send_message(QueueUrl=queue_url, MessageBody=body)
            with self._lock:
                self.sent += 1
