"""Poll A2I when the policy's pollInterval has passed (samples keep arriving during a run)."""

from __future__ import annotations

from datetime import timedelta

from retraining_operator import metrics
from retraining_operator.errors import RetryLater
from retraining_operator.reconcile import schedule
from retraining_operator.reconcile.status import quiet_ingest_status
from retraining_operator.reconcile.tenancy import s3_readable
from retraining_operator.workflow import events, ingest, poll_timing
from retraining_operator.workflow.context import PolicyPass

BACKLOG_REPOLL_SECONDS = 1.0


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
    if p.now < next_poll and not p.memo.ingest_backlog:
        p.due_in((next_poll - p.now).total_seconds())
        _restore_unwritten_poll(p)
        return
    p.due_in(interval.total_seconds())
    previous_poll = p.memo.last_polled
    try:
        polled = ingest.poll(
            p.session,
            p.spec,
            clock=p.clock.wall,
            concurrency=p.config.fetch_concurrency,
            owner=p.ledger_owner,
            may_read=None if p.tenant is None else lambda uri: s3_readable(p.tenant, uri),
            max_fetches=p.config.max_fetches_per_poll or None,
        )
    except RetryLater as error:
        # The rest of the pass (a run under way) does not depend on this poll.
        p.event("Warning", "PollFailed", f"{error} (retrying)")
        p.due_in(p.config.tick_seconds)
        return
    # An idle poll leaves the status as it was (no API write); the memo keeps the real time.
    status.ingest = quiet_ingest_status(status.ingest, polled.status)
    # A backlog is read in slices of max_fetches_per_poll, one per pass, each pass giving
    # the worker thread (and the AWS budget) back to other policies in between.
    p.memo.ingest_backlog = polled.deferred > 0
    if polled.deferred:
        p.due_in(BACKLOG_REPOLL_SECONDS)
    if polled.status.last_poll_time is not None:
        p.memo.last_polled = polled.status.last_poll_time
    p.memo.last_ingest = status.ingest
    poll_timing.observe(p, previous_poll, interval)
    metrics.LOOPS_INGESTED.labels(*p.labels).inc(polled.new_samples)
    metrics.PENDING_SAMPLES.labels(*p.labels).set(polled.status.pending_samples)
    for reason, count in polled.quarantined_by_reason.items():
        metrics.LOOPS_QUARANTINED.labels(*p.labels, reason).inc(count)
    for worker, (images, agreement) in polled.reviewers.items():
        metrics.REVIEWER_AGREEMENT.labels(*p.labels, worker).set(agreement)
        metrics.REVIEWER_IMAGES.labels(*p.labels, worker).set(images)
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


def _restore_unwritten_poll(p: PolicyPass) -> None:
    """The last poll's result, when the status this pass started from predates it."""
    remembered = p.memo.last_ingest
    if remembered is None or remembered.last_poll_time is None:
        return
    stored = p.status.ingest.last_poll_time
    if stored is None or stored < remembered.last_poll_time:
        p.status.ingest = remembered
