"""When policies poll: fresh and overdue polls fan out after a start, on-time ones keep time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from retraining_operator.reconcile.schedule import JITTER_FRACTION, next_poll_at, uid_fraction

START = datetime(2026, 1, 1, 12, tzinfo=UTC)
SPREAD = timedelta(seconds=30)
INTERVAL = timedelta(minutes=5)


def _due(uid: str, last_poll: datetime | None) -> datetime:
    return next_poll_at(
        last_poll=last_poll, interval=INTERVAL, uid=uid, operator_started=START, spread=SPREAD
    )


def test_polls_overdue_at_a_restart_fan_out_over_the_spread() -> None:
    """lastPollTime is refreshed hourly, so after a restart most policies look overdue: they
    must not all poll in the first tick."""
    uids = [f"uid-{n}" for n in range(200)]
    an_hour_ago = START - timedelta(hours=1)
    due = [_due(uid, an_hour_ago) for uid in uids]
    assert all(START <= d < START + SPREAD for d in due)
    offsets = sorted((d - START).total_seconds() for d in due)
    assert offsets[-1] - offsets[0] > 25  # spread over (nearly) the whole window
    # The same fan-out as policies never polled.
    assert due == [_due(uid, None) for uid in uids]


def test_a_poll_not_yet_due_keeps_its_interval_and_jitter() -> None:
    last = START + timedelta(minutes=2)
    due = _due("uid-7", last)
    assert due == last + INTERVAL * (1 + JITTER_FRACTION * uid_fraction("uid-7"))
    assert last + INTERVAL <= due <= last + INTERVAL * 1.1


def test_poll_delay_is_measured_from_the_interval_bound() -> None:
    from retraining_operator.reconcile.schedule import poll_delay, starved

    last = START
    on_time = last + INTERVAL * 1.1
    assert poll_delay(previous_poll=last, interval=INTERVAL, polled_at=on_time) == 0
    assert poll_delay(previous_poll=last, interval=INTERVAL, polled_at=last + INTERVAL) == 0
    late = on_time + timedelta(seconds=45)
    assert poll_delay(previous_poll=last, interval=INTERVAL, polled_at=late) == 45
    assert starved(45)
    assert not starved(1.5)
