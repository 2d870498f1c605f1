"""Tenant quotas (Scoped mode): what all of a tenant's policies together may run.

Kubernetes' ResourceQuota is the model: the quota belongs to the tenant, not to a run, and a
run that does not fit waits (condition `QuotaExceeded`, an Event) instead of failing, and
starts when quota frees. Two dimensions (`RetrainingTenant.spec.quota`):

- `concurrentJobs`: runs with a training (or evaluation) job in flight at once, i.e. runs in
  stage Preparing, Training or Evaluating (gate.evaluation's transform jobs).
- `instanceHours` per rolling `window`: the instance-hours of the runs started within the
  window, counted as reserved (instanceCount x maxRuntime x tuning jobs) while a run's job is
  in flight, and as billed (BillableTimeInSeconds x instanceCount) once it ended (reserved
  again when AWS did not say).

Pure: the usage comes from the policies' own status (`usage_of`), the decision is `judge`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from retraining_operator.api import RetrainingPolicyStatus, RunStage, parse_duration
from retraining_operator.tenancy_api import TenantQuota

# Evaluating: the held-out evaluation's transform jobs run (gate.evaluation); ShadowTesting:
# the shadow variant's instances serve (deployment.shadow).
IN_FLIGHT_STAGES = frozenset(
    {RunStage.PREPARING, RunStage.TRAINING, RunStage.EVALUATING, RunStage.SHADOW_TESTING}
)


@dataclass(frozen=True)
class RunUsage:
    """One run of one policy, as quota counts it."""

    policy_uid: str
    run_id: str
    started: datetime
    instance_hours: float
    in_flight: bool


def usage_of(uid: str, status: RetrainingPolicyStatus) -> list[RunUsage]:
    """The runs a policy's status shows: its current run and the runs in its history."""
    usages: list[RunUsage] = []
    run = status.current_run
    if run is not None and run.instance_hours is not None:
        usages.append(
            RunUsage(uid, run.id, run.started_at, run.instance_hours, run.stage in IN_FLIGHT_STAGES)
        )
    for entry in status.history:
        if entry.started_at is not None and entry.instance_hours:
            usages.append(
                RunUsage(uid, entry.run_id, entry.started_at, entry.instance_hours, False)
            )
    return usages


@dataclass(frozen=True)
class QuotaVerdict:
    allowed: bool
    message: str
    # When the window frees enough instance-hours (None: allowed, or waiting for a job to end).
    due_in: timedelta | None = None


def judge(
    quota: TenantQuota, tenant: str, others: Sequence[RunUsage], hours: float, now: datetime
) -> QuotaVerdict:
    """May a run reserving `hours` start now, beside the tenant's `others` (this policy's
    own runs included, but not the one starting)?"""
    running = sum(1 for usage in others if usage.in_flight)
    if running >= quota.concurrent_jobs:
        return QuotaVerdict(
            False,
            f"{running} run(s) of RetrainingTenant {tenant} have a job in flight, its quota "
            f"concurrentJobs is {quota.concurrent_jobs}: the run starts when one ends",
        )
    window = parse_duration(quota.window)
    recent = sorted(
        (usage for usage in others if usage.started > now - window), key=lambda u: u.started
    )
    used = sum(usage.instance_hours for usage in recent)
    if used + hours <= quota.instance_hours + 1e-9:
        return QuotaVerdict(True, "within quota")
    message = (
        f"this run reserves {hours:g} instance-hours; RetrainingTenant {tenant}'s runs used "
        f"{used:g} of its quota instanceHours {quota.instance_hours} in the last {quota.window}"
    )
    if hours > quota.instance_hours:
        return QuotaVerdict(False, message + ": it can never fit (lower the run's reservation)")
    freed, due = used, None
    for usage in recent:  # the oldest leave the window first
        freed -= usage.instance_hours
        if freed + hours <= quota.instance_hours + 1e-9:
            due = usage.started + window - now
            break
    return QuotaVerdict(False, message + "; the run starts when the window frees enough", due)
