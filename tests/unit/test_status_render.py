"""`retraining-operator status` rendering: the sparkline, and hostile status content."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from retraining_operator.commands.status import render, sparkline

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def policy(status: object) -> dict[str, object]:
    return {"metadata": {"namespace": "ns", "name": "p", "generation": 2}, "status": status}


@pytest.mark.parametrize(
    ("values", "line"),
    [
        ([0.1, 0.5, 0.9], "▁▅█"),
        ([0.7, 0.7], "▅▅"),
        ([None, 0.2, None, 0.4], "·▁·█"),
        ([None, None], "··"),
        ([], ""),
    ],
)
def test_sparkline_scales_between_the_smallest_and_largest(
    values: list[float | None], line: str
) -> None:
    assert sparkline(values) == line


def test_a_fresh_policy_renders_without_status() -> None:
    out = render(policy(None), [], now=NOW)
    assert "Phase:       Unknown" in out
    assert "History: no finished runs" in out
    assert "Current run: none" in out
    assert "Events (last 0):" in out


@pytest.mark.parametrize(
    "status",
    [
        {"history": "not a list"},
        {"history": [{"runId": "r1", "outcome": "Exploded"}]},
        {"currentRun": {"id": "r1", "stage": "Dancing", "startedAt": "yesterday"}},
        {"phase": 7},
    ],
)
def test_a_malformed_status_is_reported_not_a_traceback(status: object) -> None:
    out = render(policy(status), [], now=NOW)
    assert "Status unreadable" in out


def test_long_and_multiline_messages_stay_on_one_bounded_line() -> None:
    message = "line one\nline two " + "x" * 10_000
    out = render(
        policy(
            {
                "history": [
                    {"runId": "r1", "outcome": "Failed", "metricValue": 0.5, "reason": message}
                ]
            }
        ),
        [{"type": "Warning", "reason": "Oops", "message": message, "lastTimestamp": NOW}],
        now=NOW,
    )
    assert "line one line two" in out
    assert max(len(line) for line in out.splitlines()) < 300
