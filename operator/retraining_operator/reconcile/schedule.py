"""Every timing rule derived from a policy's `pollInterval`, in one place.

* when the next listing of human loops is due (`listing_interval`, `next_poll_at`): its
  own interval (the events backstop while events flow), spread so many policies never
  poll at once;
* how long a healthy policy sleeps at most between passes (`longest_sleep`);
* how often the serving endpoint is checked for drift (`drift_interval`);
* whether polls keep to their interval (`poll_delay`, `starved`).

A policy's polls are offset by a fraction of a second-to-minutes derived from its UID,
so after an operator restart 500 policies do not all list human loops in the same
tick, and each interval is stretched by up to 10 % (also by UID) so they do not fall
back into step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta

from retraining_operator.api import RetrainingPolicySpec, parse_duration

JITTER_FRACTION = 0.1


def poll_interval(spec: RetrainingPolicySpec) -> timedelta:
    return parse_duration(spec.human_loops.poll_interval)


def listing_interval(spec: RetrainingPolicySpec, events_flowing: bool) -> timedelta:
    """How often to list human loops: backstopInterval while events flow, else pollInterval."""
    events = spec.human_loops.events
    if events is not None and events_flowing:
        return parse_duration(events.backstop_interval)
    return poll_interval(spec)


def longest_sleep(spec: RetrainingPolicySpec, tick_seconds: float) -> float:
    """How long a healthy policy with nothing due sleeps at most: a tick, or its
    pollInterval when longer. An idle policy then passes when its next poll is due, not
    every tick (1,000 idle policies at 5 minutes: 3 passes a second, not 33), and what
    no pass announces (a RetrainingTenant's change) still takes effect within it."""
    return max(tick_seconds, poll_interval(spec).total_seconds())


def drift_interval(spec: RetrainingPolicySpec, observe_seconds: float) -> float:
    """Seconds between two drift checks of the serving endpoint: at most once per
    pollInterval, and never more often than the observe interval."""
    return max(observe_seconds, poll_interval(spec).total_seconds())


def uid_fraction(uid: str) -> float:
    """A stable number in [0, 1) for a UID."""
    digest = hashlib.sha256(uid.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def next_poll_at(
    *,
    last_poll: datetime | None,
    interval: timedelta,
    uid: str,
    operator_started: datetime,
    spread: timedelta,
) -> datetime:
    """When the next poll is due.

    Never polled: `spread * fraction(uid)` after the operator started (at most one
    interval), so a restart of many fresh policies fans out over `spread`.
    Polled before: one interval (stretched by up to 10 % by UID) after the last poll, but
    not before that same fan-out point: polls overdue at a restart (the stored lastPollTime
    may be up to an hour old, reconcile/status.py) fan out too instead of all coming at once.
    """
    fraction = uid_fraction(uid)
    fan_out = operator_started + min(spread, interval) * fraction
    if last_poll is None:
        return fan_out
    return max(fan_out, last_poll + interval * (1 + JITTER_FRACTION * fraction))


# A poll this much past its bound is not starved yet: the pass that polls is scheduled for
# the due time itself, and a busy worker pool or one retried call may add a second or two.
STARVATION_GRACE = timedelta(seconds=2)


def poll_delay(*, previous_poll: datetime, interval: timedelta, polled_at: datetime) -> float:
    """Seconds a poll came later than `interval x (1 + JITTER_FRACTION)` after the previous
    one (0 when on time): every policy should poll within that bound whenever the AWS call
    budget allows it."""
    bound = previous_poll + interval * (1 + JITTER_FRACTION)
    return max(0.0, (polled_at - bound).total_seconds())


def starved(delay_seconds: float) -> bool:
    return delay_seconds > STARVATION_GRACE.total_seconds()


# An idle poll is one ListHumanLoops (flows/ingest/memory.py).
CALLS_PER_IDLE_POLL = 1
# PollsStarved clears after this many on-time polls in a row: near the budget's edge polls
# alternate late and on time, and a condition that followed each one would be written on
# almost every poll (issue 33: starvation reported, not amplified).
ON_TIME_TO_CLEAR = 3


def poll_demand(intervals: Iterable[float]) -> float:
    """AWS calls a second the configured polls need when idle (each interval in seconds)."""
    return sum(CALLS_PER_IDLE_POLL / seconds for seconds in intervals if seconds > 0)


def sustainable_interval(interval: float, demand: float, budget: float) -> float | None:
    """The interval a policy's polls can keep when the polls need `demand` calls/s and the
    budget is `budget` (every interval stretched alike); None when they fit."""
    if budget <= 0 or demand <= budget:
        return None
    return interval * demand / budget
