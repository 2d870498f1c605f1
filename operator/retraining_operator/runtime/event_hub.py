"""The operator's event consumer: one per distinct SQS queue, routing A2I events to policies.

    policy pass (events stage)            EventHub                       SQS queue
      subscribe(uid, queue, flow) ----->  one consumer thread per queue:
                                            ReceiveMessage (long polling 20 s, batches of 10)
                                            parse (reconcile/events.py) and route by
                                            flowDefinitionArn to the subscribed policies'
      <------------------------- wake()     inboxes
      take(uid) -> events
      settle them (flows/ingest/settle.py: confirmed by A2I, the ledger, exactly once)
      done(uid, settled names) ---------> DeleteMessageBatch once every policy the message
                                          was routed to has settled its loop

A message is deleted only after its loop is durably in the ledger of every policy it was
routed to. An unparseable message, or one no policy here subscribes to, is counted, logged
once per kind, and left alone: the queue's redrive policy moves it to the DLQ after
maxReceiveCount receives. A loop a policy could not settle leaves its inbox and its message
is not deleted (other policies keep theirs), so it comes back after the visibility timeout
(and the backstop poll lists the loop anyway).

Policies are isolated from each other (issue 27). A policy's inbox holds at most
`max_in_flight_per_policy` events. `max_in_flight` bounds the inboxes together, but only for
what a policy holds beyond its guaranteed share (`max_in_flight` / subscribed policies, at
most `max_in_flight_per_policy`): a policy under its share always has room, so however many
policies are stuck (refused, or their settle keeps failing), the others' events still get
through, and memory stays under about twice `max_in_flight` entries. A queue's consumer asks
SQS only for as many messages as the policies on that queue have room for, and waits only
while none of them has room; it never looks at other queues. A message for policies whose
inboxes are all full is not tracked (counted as `overflowed`, logged once per policy): SQS
gives it back after the visibility timeout, the redrive policy moves it to the DLQ after
maxReceiveCount, and the policy, `backlogged`, lists its loops at pollInterval meanwhile. An
inbox keeps the parsed event and the receipt handle, never the body.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from retraining_operator.aws import sqs
from retraining_operator.aws.session import AwsSession
from retraining_operator.errors import NeedsAttention, RetryLater
from retraining_operator.reconcile.events import LoopEvent, Rejected, parse_message

log = logging.getLogger(__name__)

DEFAULT_MAX_IN_FLIGHT = 2000
DEFAULT_MAX_IN_FLIGHT_PER_POLICY = 500
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
    overflowed: int = 0  # for policies whose inboxes were all full: not tracked, comes back


@dataclass
class _InFlight:
    message: sqs.Message  # without its body
    event: LoopEvent
    waiting: set[str]  # policy uids that have not settled it yet
    # Policies that could not settle it: it must come back to them, so it is never deleted.
    retry: set[str] = field(default_factory=set)


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
            room = self.hub.wait_for_room(self.queue_url, self.stopping)
            if not room:
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
                    max_messages=room,
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
        max_in_flight_per_policy: int = DEFAULT_MAX_IN_FLIGHT_PER_POLICY,
        wait_seconds: int = sqs.LONG_POLL_SECONDS,
        visibility_timeout: int | None = None,
        retry_scale: float = 1.0,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.max_in_flight_per_policy = max_in_flight_per_policy
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout
        self.retry_scale = retry_scale
        self._lock = threading.Condition()
        self._subs: dict[str, Subscription] = {}
        self._consumers: dict[str, _Consumer] = {}
        # queue URL -> message id -> what waits for it
        self._in_flight: dict[str, dict[str, _InFlight]] = {}
        # policy uid -> how many messages wait for it (its inbox), and their sum
        self._held: Counter[str] = Counter()
        self._held_total = 0
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
            self._lock.notify_all()  # a consumer whose policies were all full has room now

    def unsubscribe(self, uid: str) -> None:
        """Idempotent and cheap when not subscribed (a refused or suspended policy calls it
        on every pass). Messages nobody else waits for are made visible at once (at most
        MAX_RELEASE; the rest after their visibility timeout); a message another policy
        waits for stays for it, and is deleted when that policy settles it."""
        with self._lock:
            old = self._subs.pop(uid, None)
            if old is None:
                return
            released = self._forget(uid, old.queue_url)
            self._held_total -= self._held.pop(uid, 0)  # 0: _forget dropped them all
            self._logged.discard((old.queue_url, _full_kind(uid)))
            self._stop_if_unused(old.queue_url)
        self._release(old.session, old.queue_url, released)

    def subscribed(self, uid: str) -> bool:
        with self._lock:
            return uid in self._subs

    def backlogged(self, uid: str) -> bool:
        """The policy's inbox is full: events for it are not all getting through (they wait
        in the queue, or are missed), so it should list its loops at pollInterval."""
        with self._lock:
            return uid in self._subs and self._free(uid) == 0

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
        other policy waits for. Messages of `unsettled` loops leave this policy's inbox and
        are never deleted: SQS redelivers them after the visibility timeout, while other
        policies keep them. Returns how many messages were deleted."""
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
                    item.retry.add(uid)
                elif item.event.name not in settled:
                    continue
                if self._unwait(table, message_id, item, uid) and not item.retry:
                    ready.append(item.message)
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

    def wait_for_room(self, queue_url: str, stopping: threading.Event) -> int:
        """Block while no policy on this queue has room in its inbox (other queues' policies
        do not matter); then how many messages to receive (1..10). 0 when stopping."""
        with self._lock:
            while not stopping.is_set():
                room = self._room_on(queue_url)
                if room > 0:
                    return min(room, sqs.MAX_BATCH)
                self._lock.wait(timeout=1.0)
            return 0

    def route(self, queue_url: str, messages: Iterable[sqs.Message]) -> None:
        woken: list[Callable[[], object]] = []
        with self._lock:
            consumer = self._consumers.get(queue_url)
            health = consumer.health if consumer is not None else QueueHealth()
            table = self._in_flight.setdefault(queue_url, {})
            for message in messages:
                health.received += 1
                woken.extend(self._route_one(queue_url, health, table, message))
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
            for consumer in consumers:
                consumer.stopping.set()
            self._lock.notify_all()
        deadline = time.monotonic() + timeout
        for consumer in consumers:
            consumer.thread.join(max(0.0, deadline - time.monotonic()))

    # -- internals (under the lock) ----------------------------------------------------

    def _route_one(
        self,
        queue_url: str,
        health: QueueHealth,
        table: dict[str, _InFlight],
        message: sqs.Message,
    ) -> list[Callable[[], object]]:
        """Track one received message for the policies that have room; returns their wakes."""
        parsed = parse_message(message.body)
        if isinstance(parsed, Rejected):
            self._reject(queue_url, health, message, parsed)
            return []
        targets = [
            sub.uid
            for sub in self._subs.values()
            if sub.queue_url == queue_url and sub.flow_definition_arn == parsed.flow_definition_arn
        ]
        if not targets:
            health.unrouted += 1
            self._log_once(
                queue_url,
                "Unrouted",
                f"an A2I event for {parsed.flow_definition_arn}, which no policy of "
                "this operator consumes from this queue, is left for the redrive policy",
            )
            return []
        slim = replace(message, body="")  # an inbox never keeps the body
        item = table.get(message.message_id)
        if item is not None:
            # Received again (the visibility timeout passed): only the newest receipt handle
            # deletes it, and the policies that could not settle it get it again.
            item.message = slim
            targets = [uid for uid in targets if uid in item.retry]
        else:
            item = _InFlight(slim, parsed, waiting=set())
        roomy = [uid for uid in targets if self._free(uid) > 0]
        for uid in targets:
            if uid not in roomy:
                self._log_full(queue_url, uid)
        if not roomy and message.message_id not in table:
            health.overflowed += 1  # nobody holds it: SQS gives it back
            return []
        table[message.message_id] = item
        for uid in roomy:
            item.retry.discard(uid)
            item.waiting.add(uid)
            self._held[uid] += 1
            self._held_total += 1
        return [self._subs[uid].wake for uid in roomy]

    def _share(self) -> int:
        """The inbox every subscribed policy may fill whatever the others hold."""
        share = self.max_in_flight // max(1, len(self._subs))
        return max(1, min(self.max_in_flight_per_policy, share))

    def _free(self, uid: str) -> int:
        """How many more messages the policy's inbox takes now: up to its share always, up
        to max_in_flight_per_policy while the inboxes together hold under max_in_flight."""
        held = self._held[uid]
        free = self._share() - held
        pool = self.max_in_flight - self._held_total
        if pool > 0:
            free = max(free, min(self.max_in_flight_per_policy - held, pool))
        return max(0, free)

    def _room_on(self, queue_url: str) -> int:
        subs = [sub.uid for sub in self._subs.values() if sub.queue_url == queue_url]
        if not subs:
            return 1  # about to stop: the consumer finds no session and ends
        return sum(self._free(uid) for uid in subs)

    def _unwait(
        self, table: dict[str, _InFlight], message_id: str, item: _InFlight, uid: str
    ) -> bool:
        """The policy no longer waits for the message; True when nobody does (it is gone
        from the table: the caller deletes or releases it)."""
        if uid in item.waiting:
            item.waiting.discard(uid)
            self._held[uid] -= 1
            self._held_total -= 1
            if self._held[uid] <= 0:
                del self._held[uid]
        if item.waiting:
            return False
        table.pop(message_id, None)
        return True

    def _count_in_flight(self) -> int:
        return sum(len(table) for table in self._in_flight.values())

    def _forget(self, uid: str, queue_url: str) -> list[sqs.Message]:
        """Drop the policy from what waits; returns the messages nobody waits for now."""
        table = self._in_flight.get(queue_url, {})
        released = []
        for message_id, item in list(table.items()):
            item.retry.discard(uid)
            if uid in item.waiting and self._unwait(table, message_id, item, uid):
                released.append(item.message)  # not settled by anyone: SQS redelivers it
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
        table = self._in_flight.pop(queue_url, {})
        for message_id, item in list(table.items()):
            for uid in list(item.waiting):
                self._unwait(table, message_id, item, uid)
        self._lock.notify_all()

    def _reject(
        self,
        queue_url: str,
        health: QueueHealth,
        message: sqs.Message,
        rejected: Rejected,
    ) -> None:
        health.rejected[rejected.reason] += 1
        self._log_once(
            queue_url,
            rejected.reason,
            f"message {message.message_id[:80]} is not an A2I status change this operator can "
            f"use ({rejected.reason}: {rejected.detail}); left for the redrive policy (DLQ)",
        )

    def _log_full(self, queue_url: str, uid: str) -> None:
        self._log_once(
            queue_url,
            _full_kind(uid),
            f"the inbox of policy {uid} is full ({self._held[uid]} events it has not settled): "
            "its further events are not tracked (they come back after the visibility timeout, "
            "and go to the DLQ after maxReceiveCount); its listing at pollInterval finds them",
        )

    def _log_once(self, queue_url: str, kind: str, text: str) -> None:
        if (queue_url, kind) in self._logged:
            return
        self._logged.add((queue_url, kind))
        log.warning("queue %s: %s", queue_url, text)


def _full_kind(uid: str) -> str:
    return f"InboxFull/{uid}"


def _wake_all(wakes: Iterable[Callable[[], object]]) -> None:
    """Wake policies; a policy whose event loop is gone (shutdown) must not stop the consumer."""
    for wake in wakes:
        try:
            wake()
        except Exception:  # e.g. RuntimeError: the event loop is closed
            log.debug("waking a policy failed", exc_info=True)
