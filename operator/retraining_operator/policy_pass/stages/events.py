"""Settle the loops that A2I status-change events named (spec.humanLoops.events).

The operator's consumer (`runtime/event_hub.py`) receives the policy's events and wakes its
daemon; this stage subscribes the policy, settles what arrived through the ingest kernel
(`ingest.settle_events`: each loop confirmed by A2I before anything is recorded), lets the
consumer delete the messages of settled loops, and says in the `EventsFlowing` condition
whether the listing poll may slow down to backstopInterval.
"""

from __future__ import annotations

from retraining_operator import metrics
from retraining_operator.api import ConditionType
from retraining_operator.errors import RetryLater
from retraining_operator.flows import ingest
from retraining_operator.policy_pass.context import PolicyPass
from retraining_operator.policy_pass.ingest_report import report_ingest
from retraining_operator.reconcile import status as st
from retraining_operator.reconcile.events import queue_problem
from retraining_operator.runtime import event_hub

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
        event_hub.Subscription(
            uid=p.ref.uid,
            queue_url=spec.sqs_queue_url,
            flow_definition_arn=p.spec.human_loops.flow_definition_arn,
            session=p.session,
            wake=p.memo.wake or _nothing,
        )
    )
    _settle(p, hub)
    _report_health(p, hub, spec.sqs_queue_url, spec.backstop_interval)


def _report_health(p: PolicyPass, hub: event_hub.EventHub, url: str, backstop: str) -> None:
    health = hub.health(url)
    backlogged = hub.backlogged(p.ref.uid)
    p.memo.events_flowing = health.reachable is True and not backlogged
    if health.reachable is True and backlogged:
        _condition(
            p,
            False,
            "Backlogged",
            f"more events for this policy wait than it may hold at once; the rest return to "
            f"{url} (and its dead-letter queue after maxReceiveCount); polling every {_poll(p)} "
            "until it catches up",
        )
    elif health.reachable is True:
        _condition(
            p,
            True,
            "Consuming",
            f"A2I events arrive on {url}; human loops are listed every {backstop} to catch "
            "what events miss",
        )
    elif health.reachable is None:
        _condition(p, False, "Connecting", f"connecting to {url}; polling every {_poll(p)}")
    else:
        _condition(
            p,
            False,
            "QueueUnreachable",
            f"{url} cannot be read ({health.error}); polling every {_poll(p)} until it can",
        )


def _settle(p: PolicyPass, hub: event_hub.EventHub) -> None:
    arrived = hub.take(p.ref.uid)
    if not arrived:
        return
    try:
        settled = ingest.settle_events(p.ingest_context(), arrived, previous=p.status.ingest)
    except RetryLater as error:
        hub.done(p.ref.uid, (), {event.name for event in arrived})
        p.event("Warning", "EventsNotSettled", f"{error} (retrying)")
        p.due_in(RETRY_SECONDS)
        return
    except Exception:
        # The messages come back after their visibility timeout; the seam reports the error.
        hub.done(p.ref.uid, (), {event.name for event in arrived})
        raise
    hub.done(p.ref.uid, settled.settled, settled.unsettled)
    p.remember_ingest(settled.result.status)
    for reason, count in settled.dropped.items():
        metrics.EVENTS_DROPPED.labels(*p.labels, reason).inc(count)
    report_ingest(p, settled.result, "A2I events")


def _condition(p: PolicyPass, ok: bool, reason: str, message: str) -> None:
    p.status.conditions = st.set_condition(
        p.status.conditions,
        type=ConditionType.EVENTS_FLOWING,
        status=ok,
        reason=reason,
        message=message,
        observed=st.Observation(p.now, p.view.generation),
    )


def _poll(p: PolicyPass) -> str:
    return p.spec.human_loops.poll_interval


def _nothing() -> None:
    return None
