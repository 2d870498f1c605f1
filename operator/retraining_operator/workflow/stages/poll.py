"""Poll A2I when the policy's pollInterval has passed (samples keep arriving during a run)."""

from __future__ import annotations

from datetime import timedelta

from retraining_operator import metrics
from retraining_operator.errors import RetryLater
from retraining_operator.reconcile import schedule
from retraining_operator.workflow import events, ingest
from retraining_operator.workflow.context import PolicyPass


def step(p: PolicyPass) -> None:
    if p.spec.suspend:
        return
    status = p.status
    last_poll = max(
        (t for t in (status.ingest.last_poll_time, p.memo.last_polled) if t), default=None
    )
    interval = events.listing_interval(p.spec, p.memo.events_flowing)
    next_poll = schedule.next_poll_at(
        last_poll=last_poll,
        interval=interval,
        uid=p.ref.uid,
        operator_started=p.started_at,
        spread=timedelta(seconds=p.config.poll_spread_seconds),
    )
    if p.now < next_poll:
        p.due_in((next_poll - p.now).total_seconds())
        return
    p.due_in(interval.total_seconds())
    try:
        polled = ingest.poll(
            p.session, p.spec, clock=p.clock.wall, concurrency=p.config.fetch_concurrency
        )
    except RetryLater as error:
        # The rest of the pass (a run under way) does not depend on this poll.
        p.event("Warning", "PollFailed", f"{error} (retrying)")
        return
    status.ingest = polled.status
    if polled.status.last_poll_time is not None:
        p.memo.last_polled = polled.status.last_poll_time
    metrics.LOOPS_INGESTED.labels(*p.labels).inc(polled.new_samples)
    metrics.PENDING_SAMPLES.labels(*p.labels).set(polled.status.pending_samples)
    for reason, count in polled.quarantined_by_reason.items():
        metrics.LOOPS_QUARANTINED.labels(*p.labels, reason).inc(count)
    if polled.new_samples:
        p.event(
            "Normal",
            "SamplesIngested",
            f"{polled.new_samples} new samples from A2I ({polled.status.pending_samples} pending)",
        )
    message = polled.event_message()
    if message:
        p.event("Warning", "SamplesQuarantined", message)
    unreadable = polled.fetch_error_message()
    if unreadable:
        p.event("Warning", "OutputsUnreadable", unreadable)
