"""The operator's event consumer: one per distinct SQS queue, routing A2I events to policies.

    policy pass (events stage)            EventHub                       SQS queue
      subscribe(uid, queue, flow) ----->  one consumer thread per queue:
                                            ReceiveMessage (long polling 20 s, batches of 10)
                                            parse (reconcile/events.py) and route by
                                            flowDefinitionArn to the subscribed policies'
      <------------------------- wake()     inboxes
      take(uid) -> events
      settle them (workflow/ingest.py settle_events: the ledger, exactly once)
      done(uid, settled names) ---------> DeleteMessageBatch once every policy the message
                                          was routed to has settled its loop

A message is deleted only after its loop is durably in the ledger of every policy it was
routed to. An unparseable message, or one no policy here subscribes to, is counted, logged
once per kind, and left alone: the queue's redrive policy moves it to the DLQ after
maxReceiveCount receives. A loop that could not be settled is forgotten, so its message
comes back after the visibility timeout (and the backstop poll lists the loop anyway).

Memory is bounded: the consumer stops receiving while `max_in_flight` messages wait for
their policies (the rest stay in the queue), and an inbox keeps the parsed event and the
receipt handle, never the body.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from retraining_operator.api import RetrainingPolicySpec, parse_duration
from retraining_operator.aws import sqs
from retraining_operator.aws.session import AwsSession
from retraining_operator.errors import NeedsAttention, RetryLater
from retraining_operator.reconcile.events import LoopEvent, Rejected, parse_message

log = logging.getLogger(__name__)

DEFAULT_MAX_IN_FLIGHT = 2000
# After a failed receive the consumer waits this long, doubling up to the cap.
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
# A queue is "unreachable" after this many receives in a row failed.
UNREACHABLE_AFTER = 2
# A policy that unsubscribes releases at most this many messages at once (the rest come
# back after their visibility timeout).
MAX_RELEASE = 100


@dataclass(frozen=True)
class Subscription:
    uid: str
    queue_url: str
    flow_definition_arn: str
    session: AwsSession
    wake: Callable[[], object]


@dataclass
class QueueHealth:
    """What a policy needs to know to choose its poll interval."""

    reachable: bool | None = None  # None: not tried yet
    error: str | None = None
    received: int = 0
    deleted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # by reason
    unrouted: int = 0  # well-formed, but for a flow definition no policy here consumes


@dataclass
class _InFlight:
    message: sqs.Message
    event: LoopEvent
    waiting: set[str]  # policy uids that have not settled it yet


class _Consumer:
    """One queue's receive loop (a daemon thread)."""

    def __init__(self, hub: EventHub, queue_url: str) -> None:
        self.hub = hub
        self.queue_url = queue_url
        self.health = QueueHealth()
        self.failures = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(
            target=self.run, name=f"sqs-{queue_url.rsplit('/', 1)[-1][:40]}", daemon=True
        )

    def run(self) -> None:
        probed = False
        while not self.stopping.is_set():
            if not self.hub.wait_for_room(self.stopping):
                break
            session = self.hub.session_for(self.queue_url)
            if session is None:
                break
            try:
                if not probed:
                    self._probe(session)
                    probed = True
                    self._reachable()
                messages = sqs.receive(
                    session.sqs(),
                    self.queue_url,
                    wait_seconds=self.hub.wait_seconds,
                    visibility_timeout=self.hub.visibility_timeout,
                )
            except (RetryLater, NeedsAttention) as error:
                self._failed(error)
                continue
            except Exception as error:  # a bug or an unexpected client error: never die
                log.warning("receiving from %s failed", self.queue_url, exc_info=True)
                self._failed(error)
                continue
            self._reachable()
            try:
                self.hub.route(self.queue_url, messages)
            except Exception:  # a bug: the messages come back after their visibility timeout
                log.exception("routing messages from %s failed", self.queue_url)

    def _probe(self, session: AwsSession) -> None:
        """GetQueueAttributes: the queue exists and may be read (an answer in milliseconds,
        where an empty long poll takes 20 s); warn once when it has no DLQ."""
        attributes = sqs.queue_attributes(
            session.sqs(), self.queue_url, ["VisibilityTimeout", "RedrivePolicy"]
        )
        if "RedrivePolicy" not in attributes:
            log.warning(
                "SQS queue %s has no redrive policy: messages the operator cannot use are "
                "received again until they expire; give it a DLQ (docs/events.md)",
                self.queue_url,
            )

    def _failed(self, error: Exception) -> None:
        self.failures += 1
        text = f"{type(error).__name__}: {str(error)[:300]}"
        changed = self.failures >= UNREACHABLE_AFTER and self.health.reachable is not False
        if self.failures >= UNREACHABLE_AFTER:
            self.health.reachable, self.health.error = False, text
        if changed:
            log.warning("SQS queue %s is unreachable: %s", self.queue_url, text)
            self.hub.wake_queue(self.queue_url)
        pause = RETRY_SECONDS[min(self.failures, len(RETRY_SECONDS)) - 1]
        self.stopping.wait(pause * self.hub.retry_scale)

    def _reachable(self) -> None:
        self.failures = 0
        if self.health.reachable is not True:
            self.health.reachable, self.health.error = True, None
            log.info("consuming A2I events from %s", self.queue_url)
            self.hub.wake_queue(self.queue_url)


class EventHub:
    """Operator-wide: consumers per queue, subscriptions and inboxes per policy (thread-safe)."""

    def __init__(
        self,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        wait_seconds: int = sqs.LONG_POLL_SECONDS,
        visibility_timeout: int | None = None,
        retry_scale: float = 1.0,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout
        self.retry_scale = retry_scale
        self._lock = threading.Condition()
        self._subs: dict[str, Subscription] = {}
        self._consumers: dict[str, _Consumer] = {}
        # queue URL -> message id -> what waits for it
        self._in_flight: dict[str, dict[str, _InFlight]] = {}
        self._logged: set[tuple[str, str]] = set()
        self.peak_in_flight = 0
        self._stopped = False

    # -- policies ----------------------------------------------------------------------

    def subscribe(self, sub: Subscription) -> None:
        """Idempotent; a changed queue URL moves the policy to the other queue."""
        with self._lock:
            if self._stopped:
                return
            old = self._subs.get(sub.uid)
            self._subs[sub.uid] = sub
            if old is not None and old.queue_url != sub.queue_url:
                # What it waited for on the old queue comes back after the visibility timeout.
                self._forget(sub.uid, old.queue_url)
                self._stop_if_unused(old.queue_url)
            consumer = self._consumers.get(sub.queue_url)
            if consumer is None or not consumer.thread.is_alive():
                consumer = _Consumer(self, sub.queue_url)
                self._consumers[sub.queue_url] = consumer
                self._in_flight.setdefault(sub.queue_url, {})
                consumer.thread.start()

    def unsubscribe(self, uid: str) -> None:
        with self._lock:
            old = self._subs.pop(uid, None)
            if old is None:
                return
            released = self._forget(uid, old.queue_url)
            self._stop_if_unused(old.queue_url)
        self._release(old.session, old.queue_url, released)

    def subscribed(self, uid: str) -> bool:
        with self._lock:
            return uid in self._subs

    def health(self, queue_url: str) -> QueueHealth:
        with self._lock:
            consumer = self._consumers.get(queue_url)
            return consumer.health if consumer is not None else QueueHealth()

    def take(self, uid: str) -> list[LoopEvent]:
        """The events routed to this policy that it has not settled yet (one per message)."""
        with self._lock:
            sub = self._subs.get(uid)
            if sub is None:
                return []
            waiting = self._in_flight.get(sub.queue_url, {}).values()
            return [item.event for item in waiting if uid in item.waiting]

    def done(self, uid: str, settled: Iterable[str], unsettled: Iterable[str] = ()) -> int:
        """The policy settled these loops (durably, in its ledger): delete the messages no
        other policy waits for. Messages of `unsettled` loops are forgotten (SQS redelivers
        them after the visibility timeout). Returns how many messages were deleted."""
        settled, unsettled = set(settled), set(unsettled)
        with self._lock:
            sub = self._subs.get(uid)
            if sub is None:
                return 0
            table = self._in_flight.get(sub.queue_url, {})
            ready: list[sqs.Message] = []
            for message_id, item in list(table.items()):
                if uid not in item.waiting:
                    continue
                if item.event.name in unsettled:
                    del table[message_id]
                elif item.event.name in settled:
                    item.waiting.discard(uid)
                    if not item.waiting:
                        ready.append(item.message)
                        del table[message_id]
            self._lock.notify_all()
            session, url = sub.session, sub.queue_url
        if not ready:
            return 0
        try:
            failed = sqs.delete(session.sqs(), url, ready)
        except (RetryLater, NeedsAttention) as error:
            # Redelivered later: the ledger makes the second delivery change nothing.
            log.warning("deleting %d message(s) from %s failed: %s", len(ready), url, error)
            return 0
        deleted = len(ready) - len(failed)
        with self._lock:
            consumer = self._consumers.get(url)
            if consumer is not None:
                consumer.health.deleted += deleted
        return deleted

    # -- consumers ---------------------------------------------------------------------

    def session_for(self, queue_url: str) -> AwsSession | None:
        """Any subscriber's session (the queue is in their flow definition's account)."""
        with self._lock:
            for sub in self._subs.values():
                if sub.queue_url == queue_url:
                    return sub.session
            return None

    def wait_for_room(self, stopping: threading.Event) -> bool:
        """Block while `max_in_flight` messages wait for policies; False when stopping."""
        with self._lock:
            while not stopping.is_set() and self._count_in_flight() >= self.max_in_flight:
                self._lock.wait(timeout=1.0)
            return not stopping.is_set()

    def route(self, queue_url: str, messages: Iterable[sqs.Message]) -> None:
        woken: list[Callable[[], object]] = []
        with self._lock:
            consumer = self._consumers.get(queue_url)
            table = self._in_flight.setdefault(queue_url, {})
            for message in messages:
                if consumer is not None:
                    consumer.health.received += 1
                parsed = parse_message(message.body)
                if isinstance(parsed, Rejected):
                    self._reject(queue_url, consumer, message, parsed)
                    continue
                targets = [
                    sub
                    for sub in self._subs.values()
                    if sub.queue_url == queue_url
                    and sub.flow_definition_arn == parsed.flow_definition_arn
                ]
                if not targets:
                    if consumer is not None:
                        consumer.health.unrouted += 1
                    self._log_once(
                        queue_url,
                        "Unrouted",
                        f"an A2I event for {parsed.flow_definition_arn}, which no policy of "
                        "this operator consumes from this queue, is left for the redrive policy",
                    )
                    continue
                existing = table.get(message.message_id)
                if existing is not None:
                    # Received again (the visibility timeout passed): only the newest
                    # receipt handle deletes it.
                    existing.message = message
                    continue
                table[message.message_id] = _InFlight(
                    message, parsed, waiting={sub.uid for sub in targets}
                )
                woken.extend(sub.wake for sub in targets)
            self.peak_in_flight = max(self.peak_in_flight, self._count_in_flight())
        _wake_all({id(w): w for w in woken}.values())

    def wake_queue(self, queue_url: str) -> None:
        """Health changed: every policy on the queue re-chooses its poll interval."""
        with self._lock:
            wakes = [sub.wake for sub in self._subs.values() if sub.queue_url == queue_url]
        _wake_all(wakes)

    def stop(self, timeout: float = 0.0) -> None:
        with self._lock:
            self._stopped = True
            consumers = list(self._consumers.values())
            self._consumers.clear()
            self._lock.notify_all()
        for consumer in consumers:
            consumer.stopping.set()
        deadline = time.monotonic() + timeout
        for consumer in consumers:
            consumer.thread.join(max(0.0, deadline - time.monotonic()))

    # -- internals (under the lock) ----------------------------------------------------

    def _count_in_flight(self) -> int:
        return sum(len(table) for table in self._in_flight.values())

    def _forget(self, uid: str, queue_url: str) -> list[sqs.Message]:
        """Drop the policy from what waits; returns the messages nobody waits for now."""
        table = self._in_flight.get(queue_url, {})
        released = []
        for message_id, item in list(table.items()):
            item.waiting.discard(uid)
            if not item.waiting:
                del table[message_id]  # not settled by anyone: SQS redelivers it
                released.append(item.message)
        self._lock.notify_all()
        return released

    @staticmethod
    def _release(session: AwsSession, queue_url: str, messages: list[sqs.Message]) -> None:
        """Make messages visible at once (ChangeMessageVisibility 0), not after the timeout:
        best effort, and harmless when it fails (the timeout does the same, later)."""
        for message in messages[:MAX_RELEASE]:
            try:
                sqs.change_visibility(session.sqs(), queue_url, message, 0)
            except (RetryLater, NeedsAttention) as error:
                log.info("releasing messages on %s: %s", queue_url, error)
                return

    def _stop_if_unused(self, queue_url: str) -> None:
        if any(sub.queue_url == queue_url for sub in self._subs.values()):
            return
        consumer = self._consumers.pop(queue_url, None)
        if consumer is not None:
            consumer.stopping.set()
        self._in_flight.pop(queue_url, None)

    def _reject(
        self,
        queue_url: str,
        consumer: _Consumer | None,
        message: sqs.Message,
        rejected: Rejected,
    ) -> None:
        if consumer is not None:
            consumer.health.rejected[rejected.reason] += 1
        self._log_once(
            queue_url,
            rejected.reason,
            f"message {message.message_id[:80]} is not an A2I status change this operator can "
            f"use ({rejected.reason}: {rejected.detail}); left for the redrive policy (DLQ)",
        )

    def _log_once(self, queue_url: str, kind: str, text: str) -> None:
        if (queue_url, kind) in self._logged:
            return
        self._logged.add((queue_url, kind))
        log.warning("queue %s: %s", queue_url, text)


def _wake_all(wakes: Iterable[Callable[[], object]]) -> None:
    """Wake policies; a policy whose event loop is gone (shutdown) must not stop the consumer."""
    for wake in wakes:
        try:
            wake()
        except Exception:  # e.g. RuntimeError: the event loop is closed
            log.debug("waking a policy failed", exc_info=True)


def listing_interval(spec: RetrainingPolicySpec, events_flowing: bool) -> timedelta:
    """How often to list human loops: backstopInterval while events flow, else pollInterval."""
    events = spec.human_loops.events
    if events is not None and events_flowing:
        return parse_duration(events.backstop_interval)
    return parse_duration(spec.human_loops.poll_interval)
