"""Poll A2I when the policy's pollInterval has passed (samples keep arriving during a run)."""

from __future__ import annotations

from datetime import timedelta

from retraining_operator.errors import RetryLater
from retraining_operator.flows import ingest
from retraining_operator.policy_pass import poll_timing
from retraining_operator.policy_pass.context import PolicyPass
from retraining_operator.policy_pass.ingest_report import report_ingest
from retraining_operator.reconcile import schedule
from retraining_operator.reconcile.status import quiet_ingest_status

BACKLOG_REPOLL_SECONDS = 1.0


def step(p: PolicyPass) -> None:
    if p.spec.suspend:
        return
    status = p.status
    last_poll = max(
        (t for t in (status.ingest.last_poll_time, p.memo.last_polled) if t), default=None
    )
    interval = schedule.listing_interval(p.spec, p.memo.events_flowing)
    next_poll = schedule.next_poll_at(
        last_poll=last_poll,
        interval=interval,
        uid=p.ref.uid,
        operator_started=p.started_at,
        spread=timedelta(seconds=p.config.poll_spread_seconds),
    )
    if p.now < next_poll and not p.memo.ingest_backlog:
        p.due_in((next_poll - p.now).total_seconds())
        return
    p.due_in(interval.total_seconds())
    demand = p.demand.record(p.ref.uid, interval.total_seconds()) if p.demand else 0.0
    previous_poll = p.memo.last_polled
    try:
        polled = ingest.poll(p.ingest_context(), max_fetches=p.config.max_fetches_per_poll or None)
    except RetryLater as error:
        # The rest of the pass (a run under way) does not depend on this poll.
        p.event("Warning", "PollFailed", f"{error} (retrying)")
        p.due_in(p.config.tick_seconds)
        return
    # An idle poll leaves the status as it was (no API write); the memo keeps the real time.
    p.remember_ingest(quiet_ingest_status(status.ingest, polled.status))
    # A backlog is read in slices of max_fetches_per_poll, one per pass, each pass giving
    # the worker thread (and the AWS budget) back to other policies in between.
    p.memo.ingest_backlog = polled.deferred > 0
    if polled.deferred:
        p.due_in(BACKLOG_REPOLL_SECONDS)
    if polled.status.last_poll_time is not None:
        p.memo.last_polled = polled.status.last_poll_time
    poll_timing.observe(p, previous_poll, interval, demand=demand)
    report_ingest(p, polled, "A2I")
    unreadable = polled.fetch_error_message()
    if unreadable:
        p.event("Warning", "OutputsUnreadable", unreadable)
