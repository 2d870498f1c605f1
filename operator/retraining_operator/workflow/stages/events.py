"""Settle the loops that A2I status-change events named (spec.humanLoops.events).

The operator's consumer (`workflow/events.py`) receives the policy's events and wakes its
daemon; this stage subscribes the policy, settles what arrived through the ledger
(`ingest.settle_events`), lets the consumer delete the messages of settled loops, and says in
the `EventsFlowing` condition whether the listing poll may slow down to backstopInterval.
"""

from __future__ import annotations

from retraining_operator import metrics
from retraining_operator.api import ConditionType, IngestStatus
from retraining_operator.errors import RetryLater
from retraining_operator.reconcile import status as st
from retraining_operator.reconcile.events import queue_problem
from retraining_operator.workflow import events, ingest
from retraining_operator.workflow.context import PolicyPass

RETRY_SECONDS = 5.0


def step(p: PolicyPass) -> None:
    hub, spec = p.memo.event_hub, p.spec.human_loops.events
    if hub is None:
        return  # not running inside the operator (a CLI, a test without a consumer)
    if spec is None or p.spec.suspend:
        hub.unsubscribe(p.ref.uid)
        p.memo.events_flowing = False
        if spec is None:
            p.status.conditions = [
                c for c in p.status.conditions if c.type is not ConditionType.EVENTS_FLOWING
            ]
        else:
            _condition(p, False, "Suspended", "suspended: events are not consumed")
        return
    problem = queue_problem(
        spec.sqs_queue_url, p.spec.human_loops.flow_definition_arn, p.spec.aws.region
    )
    if problem is not None:
        hub.unsubscribe(p.ref.uid)
        p.memo.events_flowing = False
        _condition(p, False, "QueueRejected", f"{problem}; polling every {_poll(p)}")
        p.degrade("EventsQueueRejected", problem)
        return
    hub.subscribe(
        events.Subscription(
            uid=p.ref.uid,
            queue_url=spec.sqs_queue_url,
            flow_definition_arn=p.spec.human_loops.flow_definition_arn,
            session=p.session,
            wake=p.memo.wake or _nothing,
        )
    )
    _settle(p, hub)
    health = hub.health(spec.sqs_queue_url)
    p.memo.events_flowing = health.reachable is True
    if health.reachable is True:
        _condition(
            p,
            True,
            "Consuming",
            f"A2I events arrive on {spec.sqs_queue_url}; human loops are listed every "
            f"{spec.backstop_interval} to catch what events miss",
        )
    elif health.reachable is None:
        _condition(
            p, False, "Connecting", f"connecting to {spec.sqs_queue_url}; polling every {_poll(p)}"
        )
    else:
        _condition(
            p,
            False,
            "QueueUnreachable",
            f"{spec.sqs_queue_url} cannot be read ({health.error}); polling every {_poll(p)} "
            "until it can",
        )


def _settle(p: PolicyPass, hub: events.EventHub) -> None:
    remembered = p.memo.events_ingest
    if remembered is not None and _settled_total(remembered) > _settled_total(p.status.ingest):
        # The status this pass started from predates our last settle (its write was refused
        # or the watch lags): the ledger's totals only grow, so the larger one is newer.
        p.status.ingest = remembered
    arrived = hub.take(p.ref.uid)
    if not arrived:
        return
    try:
        settled = ingest.settle_events(
            p.session,
            p.spec,
            arrived,
            previous=p.status.ingest,
            clock=p.clock.wall,
            concurrency=p.config.fetch_concurrency,
        )
    except RetryLater as error:
        p.event("Warning", "EventsNotSettled", f"{error} (retrying)")
        p.due_in(RETRY_SECONDS)
        return
    hub.done(p.ref.uid, settled.settled, settled.unsettled)
    polled = settled.result
    p.status.ingest = p.memo.events_ingest = polled.status
    metrics.LOOPS_INGESTED.labels(*p.labels).inc(polled.new_samples)
    metrics.PENDING_SAMPLES.labels(*p.labels).set(polled.status.pending_samples)
    for reason, count in polled.quarantined_by_reason.items():
        metrics.LOOPS_QUARANTINED.labels(*p.labels, reason).inc(count)
    if polled.new_samples:
        p.event(
            "Normal",
            "SamplesIngested",
            f"{polled.new_samples} new samples from A2I events "
            f"({polled.status.pending_samples} pending)",
        )
    message = polled.event_message()
    if message:
        p.event("Warning", "SamplesQuarantined", message)


def _settled_total(ingest: IngestStatus) -> int:
    return ingest.ingested_loops + ingest.failed_loops


def _condition(p: PolicyPass, ok: bool, reason: str, message: str) -> None:
    p.status.conditions = st.set_condition(
        p.status.conditions,
        type=ConditionType.EVENTS_FLOWING,
        status=ok,
        reason=reason,
        message=message,
        now=p.now,
        generation=p.view.generation,
    )


def _poll(p: PolicyPass) -> str:
    return p.spec.human_loops.poll_interval


def _nothing() -> None:
    return None
