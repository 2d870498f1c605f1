"""Tenant quotas, the pure decision (reconcile/quota.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from retraining_operator.api import CurrentRun, HistoryEntry, Outcome, RetrainingPolicyStatus
from retraining_operator.reconcile.quota import RunUsage, judge, usage_of
from retraining_operator.tenancy_api import TenantQuota

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
QUOTA = TenantQuota(concurrent_jobs=2, instance_hours=50, window="24h")


def run(uid: str, hours: float, *, ago: float = 1.0, in_flight: bool = False) -> RunUsage:
    return RunUsage(uid, f"r-{uid}", NOW - timedelta(hours=ago), hours, in_flight)


def test_concurrent_jobs_count_only_runs_in_flight() -> None:
    assert judge(QUOTA, "t", [run("a", 1, in_flight=True)], 1, NOW).allowed
    full = [run("a", 1, in_flight=True), run("b", 1, in_flight=True), run("c", 1)]
    verdict = judge(QUOTA, "t", full, 1, NOW)
    assert not verdict.allowed
    assert "concurrentJobs is 2" in verdict.message
    assert verdict.due_in is None  # waits for a job to end, not for the clock


def test_instance_hours_count_the_window_and_say_when_it_frees() -> None:
    others = [run("old", 30, ago=30), run("a", 20, ago=20), run("b", 25, ago=2)]
    verdict = judge(QUOTA, "t", others, 10, NOW)  # 45 in the window (+10 > 50)
    assert not verdict.allowed
    assert verdict.due_in == timedelta(hours=4)  # when a's 20 leave the window
    assert judge(QUOTA, "t", others, 5, NOW).allowed  # 45 + 5 fits exactly


def test_a_run_larger_than_the_quota_never_fits_and_says_so() -> None:
    verdict = judge(QUOTA, "t", [], 60, NOW)
    assert not verdict.allowed
    assert "never fit" in verdict.message


def test_usage_comes_from_the_current_run_and_history() -> None:
    status = RetrainingPolicyStatus(
        current_run=CurrentRun(id="r2", stage="Training", started_at=NOW, instance_hours=24),
        history=[
            HistoryEntry(run_id="r1", outcome=Outcome.TRAINED, started_at=NOW, instance_hours=0.2),
            HistoryEntry(run_id="r0", outcome=Outcome.DEPLOYED),  # before quotas: not counted
        ],
    )
    usages = usage_of("uid", status)
    assert [(u.run_id, u.instance_hours, u.in_flight) for u in usages] == [
        ("r2", 24, True),
        ("r1", 0.2, False),
    ]
