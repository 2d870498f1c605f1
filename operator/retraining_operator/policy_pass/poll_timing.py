"""Whether a policy's polls keep to their interval: the metric and the PollsStarved condition.

Polls are due at `pollInterval` (stretched by up to 10 % per policy) and wait for a worker
thread and for the operator-wide AWS call budget. When the budget or the workers are too
small for the configured polls, polls come later and later: the policy says so (condition
PollsStarved, reason AwsBudget) and `rtp_poll_delay_seconds` shows by how much. Only the
previous poll of this process counts (kopf's memo): after a restart the stored lastPollTime
may be an hour old, which says nothing about the budget.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from retraining_operator import metrics
from retraining_operator.api import ConditionType
from retraining_operator.policy_pass.context import PolicyPass
from retraining_operator.reconcile import schedule
from retraining_operator.reconcile import status as st


def observe(
    p: PolicyPass, previous_poll: datetime | None, interval: timedelta, *, demand: float = 0.0
) -> None:
    """Record the timing of a poll made now, `previous_poll` being this process's last one;
    `demand` is what every policy's polls ask of the AWS call budget (calls/s)."""
    if previous_poll is None:
        return
    delay = schedule.poll_delay(previous_poll=previous_poll, interval=interval, polled_at=p.now)
    metrics.POLL_DELAY.observe(delay)
    starved = schedule.starved(delay)
    status = p.status
    known = st.get_condition(status.conditions, ConditionType.POLLS_STARVED)
    if starved:
        p.memo.on_time_polls = 0
    else:
        p.memo.on_time_polls += 1
        still = known is not None and known.status == "True"
        if still and p.memo.on_time_polls < schedule.ON_TIME_TO_CLEAR:
            return  # still starved until a few polls in a row keep to the interval
    metrics.POLICY_STARVED.labels(*p.labels).set(1 if starved else 0)
    if not starved and known is None:
        return  # never starved: no condition at all (no status write for it)
    budget = p.demand.budget if p.demand is not None else p.config.aws_calls_per_second
    if starved:
        reason = "AwsBudget"
        message = (
            f"polled {delay:.0f}s later than pollInterval x 1.1 after the previous poll: the "
            f"operator's AWS call budget ({budget:g}/s) or its workers "
            f"({p.config.max_workers}) are too small for the configured polls; raise "
            "--aws-calls-per-second, lengthen pollInterval, or shard"
        )
        keeps = schedule.sustainable_interval(interval.total_seconds(), demand, budget)
        if keeps is not None:
            message += (
                f" (all policies' polls need {demand:.1f} calls/s: this one's can keep about "
                f"{keeps:.0f}s)"
            )
    else:
        reason, message = "OnSchedule", "polls keep to pollInterval x 1.1"
    wanted = "True" if starved else "False"
    if known is not None and (known.status, known.reason) == (wanted, reason):
        return  # unchanged: keep the message (and the status) as it is
    status.conditions = st.set_condition(
        status.conditions,
        type=ConditionType.POLLS_STARVED,
        status=starved,
        reason=reason,
        message=message,
        observed=st.Observation(p.now, p.view.generation),
    )
