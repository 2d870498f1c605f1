"""rtp_condition: one series per condition a policy has now (issue 32: every example policy
was Degraded and /metrics did not say so). A condition whose status or reason changes moves
to a new series and leaves none behind; a deleted policy leaves none at all."""

from __future__ import annotations

from datetime import UTC, datetime

from retraining_operator import metrics
from retraining_operator.api import (
    Condition,
    ConditionType,
    Phase,
    RetrainingPolicyStatus,
)

NOW = datetime(2026, 12, 8, tzinfo=UTC)


def _status(phase: Phase, *conditions: tuple[ConditionType, str, str]) -> RetrainingPolicyStatus:
    return RetrainingPolicyStatus(
        phase=phase,
        conditions=[
            Condition(type=type, status=status, reason=reason, last_transition_time=NOW)
            for type, status, reason in conditions
        ],
    )


def _series(namespace: str, policy: str) -> set[tuple[str, str, str, float]]:
    return {
        (s.labels["type"], s.labels["status"], s.labels["reason"], s.value)
        for family in metrics.REGISTRY.collect()
        if family.name == "rtp_condition"
        for s in family.samples
        if s.labels["namespace"] == namespace and s.labels["policy"] == policy
    }


def test_each_current_condition_has_one_series_at_1() -> None:
    status = _status(
        Phase.COLLECTING,
        (ConditionType.READY, "False", "IngestFailed"),
        (ConditionType.DEGRADED, "True", "IngestFailed"),
        (ConditionType.PROGRESSING, "False", "Idle"),
    )
    reported = metrics.report_status("ns-cond", "degraded", status, metrics.StatusSeries())
    assert _series("ns-cond", "degraded") == {
        ("Ready", "False", "IngestFailed", 1),
        ("Degraded", "True", "IngestFailed", 1),
        ("Progressing", "False", "Idle", 1),
    }
    assert reported.phase == "Collecting"
    assert len(reported.conditions) == 3


def test_a_changed_status_or_reason_leaves_no_stale_series() -> None:
    reported = metrics.StatusSeries()
    for reason in ("IngestFailed", "TrainingFailed"):  # the reason changes
        reported = metrics.report_status(
            "ns-cond",
            "moving",
            _status(Phase.COLLECTING, (ConditionType.DEGRADED, "True", reason)),
            reported,
        )
    assert _series("ns-cond", "moving") == {("Degraded", "True", "TrainingFailed", 1)}
    reported = metrics.report_status(  # then the status: fixed
        "ns-cond",
        "moving",
        _status(Phase.SERVING, (ConditionType.DEGRADED, "False", "AsExpected")),
        reported,
    )
    assert _series("ns-cond", "moving") == {("Degraded", "False", "AsExpected", 1)}


def test_a_condition_removed_from_status_loses_its_series() -> None:
    starved = (ConditionType.POLLS_STARVED, "True", "PollsLate")
    flowing = (ConditionType.EVENTS_FLOWING, "True", "Consuming")
    reported = metrics.report_status(
        "ns-cond", "dropped", _status(Phase.COLLECTING, starved, flowing), metrics.StatusSeries()
    )
    metrics.report_status("ns-cond", "dropped", _status(Phase.COLLECTING, starved), reported)
    assert _series("ns-cond", "dropped") == {("PollsStarved", "True", "PollsLate", 1)}


def test_a_pass_that_changes_nothing_keeps_the_same_series() -> None:
    status = _status(Phase.SERVING, (ConditionType.DRIFTED, "True", "EndpointChanged"))
    first = metrics.report_status("ns-cond", "steady", status, metrics.StatusSeries())
    second = metrics.report_status("ns-cond", "steady", status, first)
    assert first == second
    assert _series("ns-cond", "steady") == {("Drifted", "True", "EndpointChanged", 1)}


def test_a_deleted_policy_leaves_no_condition_series() -> None:
    status = _status(Phase.FAILED, (ConditionType.DEGRADED, "True", "InvalidSpec"))
    metrics.report_status("ns-cond", "deleted", status, metrics.StatusSeries())
    metrics.report_status("ns-cond", "kept", status, metrics.StatusSeries())
    metrics.forget_policy("ns-cond", "deleted")
    assert _series("ns-cond", "deleted") == set()
    assert _series("ns-cond", "kept") == {("Degraded", "True", "InvalidSpec", 1)}


def test_memory_stays_one_series_per_condition_type_however_many_reasons() -> None:
    """A policy that cycles through many reasons still holds only its current ones."""
    reported = metrics.StatusSeries()
    for n in range(50):
        reported = metrics.report_status(
            "ns-cond",
            "churn",
            _status(
                Phase.COLLECTING,
                (ConditionType.DEGRADED, "True", f"Reason{n}"),
                (ConditionType.READY, "False", f"Reason{n}"),
            ),
            reported,
        )
    assert len(_series("ns-cond", "churn")) == 2
    children = [
        labels for labels in metrics.CONDITION._metrics if labels[:2] == ("ns-cond", "churn")
    ]
    assert len(children) == 2
