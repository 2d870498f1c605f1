"""`retraining-operator status` rendering: the sparkline, and hostile status content."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from retraining_operator.commands.status_view import (
    align,
    render,
    sparkline,
    table_header,
    table_row,
)

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


def degraded(message: str) -> dict[str, object]:
    condition = {
        "type": "Degraded",
        "status": "True",
        "reason": "IngestFailed",
        "message": message,
        "lastTransitionTime": "2026-11-29T11:00:00Z",
    }
    return policy({"phase": "Collecting", "conditions": [condition]})


def test_a_condition_message_is_never_cut_in_the_default_view() -> None:
    uri = "s3://my-bucket/" + "a" * 120 + "/ledger.json"
    message = f"cannot read the ingest ledger {uri}: " + "word " * 400 + "AccessDenied"
    out = render(degraded(message), [], now=NOW)
    lines = out.splitlines()
    row = next(i for i, line in enumerate(lines) if line.strip().startswith("Degraded"))
    assert lines[row].split() == ["Degraded", "True", "IngestFailed", "1h"]
    below = [line for line in lines[row + 1 :] if line.startswith("      ")]
    assert " ".join(line.strip() for line in below) == " ".join(message.split())
    assert any(line.strip().endswith(uri + ":") for line in below)  # a long URI stays whole
    assert "…" not in out


def test_wide_shows_every_message_in_full_on_one_line() -> None:
    message = "line one\nline two " + "x" * 500
    history = [{"runId": "r1", "outcome": "Failed", "modelName": "m-1", "reason": message}]
    obj = degraded(message)
    obj["status"] = {**obj["status"], "history": history}
    event = {"type": "Warning", "reason": "Oops", "message": message, "lastTimestamp": NOW}
    out = render(obj, [event], now=NOW, wide=True)
    flat = " ".join(message.split())
    assert [line.endswith(flat) for line in out.splitlines()].count(True) == 3
    assert "m-1" in out  # the history's MODEL column


def test_a_row_per_policy_with_and_without_wide() -> None:
    obj = degraded("cannot read the ledger: AccessDenied")
    obj["metadata"] = {"namespace": "ns", "name": "p", "creationTimestamp": "2026-11-27T12:00:00Z"}
    row = table_row(obj, now=NOW, wide=False, all_namespaces=True)
    assert row == ["ns", "p", "Collecting", "-", "0", "-", "IngestFailed", "2d"]
    assert len(table_header(wide=False, all_namespaces=True)) == len(row)
    wide = table_row(obj, now=NOW, wide=True, all_namespaces=False)
    assert wide[-5:] == ["-", "-", "-", "-", "cannot read the ledger: AccessDenied"]
    assert len(table_header(wide=True, all_namespaces=False)) == len(wide)
    assert table_row({**obj, "_deleted": True}, now=NOW, wide=False, all_namespaces=False) == [
        "p",
        "Deleted",
    ]
    broken = {**obj, "status": {"phase": 7}}
    assert table_row(broken, now=NOW, wide=True, all_namespaces=False) == ["p", "Unreadable"]


def test_rows_printed_later_stay_under_the_columns_printed_first() -> None:
    widths: list[int] = []
    first = align([["NAME", "PHASE"], ["a", "Serving"]], widths)
    later = align([["a-longer-name", "Training"]], widths)
    assert first == ["NAME  PHASE", "a     Serving"]
    assert later == ["a-longer-name  Training"]
    assert align([["b", "Serving"]], widths) == ["b              Serving"]
