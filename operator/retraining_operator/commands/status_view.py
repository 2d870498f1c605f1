"""What `status` prints, pure: objects and Events in, text out (tested on its own).

Two views. `render` is the story of one policy: phase, conditions, the current run, the
history with the gate metric per run and its sparkline, the last Events. `table_header` and
`table_row` are one line per policy, as `kubectl get` prints them.

A condition's message is never cut: it says why the policy is not Ready, and the cause is
often at its end ("cannot read the ingest ledger s3://…: AccessDenied"). The default view
wraps it on its own lines under its condition; `wide` puts it in the table in full, and
shows every other message (history reasons, Events) in full too, where the default view
keeps one bounded line per entry.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retraining_operator.api import Condition, RetrainingPolicyStatus

SPARK = "▁▂▃▄▅▆▇█"
NO_VALUE = "·"
MAX_CELL = 60
MESSAGE_WIDTH = 100
MESSAGE_INDENT = " " * 6
NOT_SET = "-"


def render(
    obj: dict[str, Any],
    events: Sequence[dict[str, Any]],
    *,
    now: datetime,
    max_events: int = 10,
    wide: bool = False,
) -> str:
    """The text `status NAME` prints for one policy object and its Events."""
    from pydantic import ValidationError

    from retraining_operator.api import RetrainingPolicyStatus

    meta = obj.get("metadata") or {}
    limit = None if wide else MAX_CELL
    lines = [
        f"RetrainingPolicy {meta.get('namespace', '?')}/{meta.get('name', '?')}  "
        f"(generation {meta.get('generation', '?')})"
    ]
    try:
        status = RetrainingPolicyStatus.model_validate(obj.get("status") or {})
    except ValidationError as error:
        lines.append(f"Status unreadable ({error.error_count()} problem(s)); raw status follows:")
        lines.append(_cell(repr(obj.get("status")), None if wide else 2000))
        lines += _events(events, now, max_events, limit)
        return "\n".join(lines) + "\n"
    observed = status.observed_generation
    suspended = " (suspended: spec.suspend is true)" if _suspended(obj) else ""
    lines.append(
        f"Phase:       {status.phase.value if status.phase else 'Unknown'}"
        f"  (observed generation {observed if observed is not None else NOT_SET}){suspended}"
    )
    gate = gate_metric(obj)
    lines += _serving_and_ingest(status, gate)
    lines += _conditions(status, now, wide)
    lines += _current_run(status, now, wide)
    lines += history_lines(status, gate, wide)
    lines += _events(events, now, max_events, limit)
    return "\n".join(lines) + "\n"


def gate_metric(obj: dict[str, Any]) -> str:
    spec = obj.get("spec")
    gate = spec.get("gate") if isinstance(spec, dict) else None
    return str((gate if isinstance(gate, dict) else {}).get("metric", "validation:mAP"))


def _suspended(obj: dict[str, Any]) -> bool:
    spec = obj.get("spec")
    return isinstance(spec, dict) and spec.get("suspend") is True


def _serving_and_ingest(status: RetrainingPolicyStatus, gate: str) -> list[str]:
    lines = []
    serving = status.serving
    if serving is not None and serving.model_name:
        lines.append(
            f"Serving:     {serving.model_name} (run {serving.run_id or NOT_SET}, "
            f"{gate} {_num(serving.metric_value)}, config "
            f"{serving.endpoint_config_name or NOT_SET})"
        )
    else:
        lines.append("Serving:     nothing deployed by the operator yet")
    ingest = status.ingest
    lines.append(
        f"Reviews:     {ingest.pending_samples} pending, {ingest.ingested_loops} loops ingested, "
        f"{ingest.quarantined_samples} quarantined, {ingest.in_progress_loops} in progress"
    )
    return lines


def _conditions(status: RetrainingPolicyStatus, now: datetime, wide: bool) -> list[str]:
    header = ["TYPE", "STATUS", "REASON", "AGE"]
    rows = [
        [c.type.value, c.status, c.reason, _age(c.last_transition_time, now)]
        for c in status.conditions
    ]
    if wide:
        rows = [[*row, c.message] for row, c in zip(rows, status.conditions, strict=True)]
        return ["", "Conditions:", *_table([*header, "MESSAGE"], rows, None)]
    table = _table(header, rows, MAX_CELL)
    if not rows:
        return ["", "Conditions:", *table]
    lines = ["", "Conditions:", table[0]]
    for line, condition in zip(table[1:], status.conditions, strict=True):
        lines += [line, *wrapped(condition.message)]
    return lines


def wrapped(message: str | None) -> list[str]:
    """A message in full on its own lines, indented under the row it belongs to."""
    if not message or not message.strip():
        return []
    return textwrap.wrap(
        " ".join(message.split()),
        width=MESSAGE_WIDTH,
        initial_indent=MESSAGE_INDENT,
        subsequent_indent=MESSAGE_INDENT,
        break_long_words=False,  # an S3 URI or an ARN stays whole, whatever its length
        break_on_hyphens=False,
    )


def _current_run(status: RetrainingPolicyStatus, now: datetime, wide: bool) -> list[str]:
    run = status.current_run
    if run is None:
        return ["", "Current run: none"]
    lines = [
        "",
        f"Current run: {run.id}  stage {run.stage.value}"
        f"{f' (step {run.deploy_step})' if run.deploy_step is not None else ''}"
        f"  started {_age(run.started_at, now)} ago  trigger {run.trigger or NOT_SET}",
    ]
    if run.samples is not None:
        s = run.samples
        lines.append(
            f"  samples:   {s.new} new, {s.replay} replay, {s.train} train, "
            f"{s.validation} validation"
        )
    job = run.training_job_name or run.tuning_job_name
    if job:
        state = f"{run.training_job_status or ''} {run.secondary_status or ''}".strip()
        lines.append(f"  job:       {job} {state}".rstrip())
    if run.metric_value is not None:
        lines.append(f"  metric:    {_num(run.metric_value)}")
    if run.message:
        lines.append(f"  message:   {_cell(run.message, None if wide else 200)}")
    return lines


def history_lines(status: RetrainingPolicyStatus, gate: str, wide: bool) -> list[str]:
    """The run history, newest first, and the trend of the gate metric."""
    entries = status.history  # newest first
    if not entries:
        return ["", "History: no finished runs"]
    header = ["RUN", "OUTCOME", gate.upper(), "JOB", "FINISHED", "REASON"]
    rows = [
        [
            e.run_id,
            e.outcome.value,
            _num(e.metric_value),
            e.training_job_name or NOT_SET,
            e.finished_at.strftime("%Y-%m-%d %H:%M") if e.finished_at else NOT_SET,
            e.reason or "",
        ]
        for e in entries
    ]
    if wide:
        header.insert(4, "MODEL")
        for row, entry in zip(rows, entries, strict=True):
            row.insert(4, entry.model_name or NOT_SET)
    trend = sparkline([e.metric_value for e in reversed(entries)])
    values = [e.metric_value for e in reversed(entries) if e.metric_value is not None]
    span = f"  {_num(values[0])} -> {_num(values[-1])}" if values else ""
    return [
        "",
        f"History (newest first; {gate} per run):",
        *_table(header, rows, None if wide else MAX_CELL),
        f"Trend (oldest -> newest): {trend}{span}",
    ]


def _events(
    events: Sequence[dict[str, Any]], now: datetime, limit: int, cell: int | None
) -> list[str]:
    recent = sorted(events, key=_event_time)[-limit:] if limit else []
    rows = [
        [
            _age(_event_time(e), now),
            str(e.get("type") or ""),
            str(e.get("reason") or ""),
            e.get("message"),
        ]
        for e in recent
    ]
    return [
        "",
        f"Events (last {len(rows)}):",
        *_table(["AGE", "TYPE", "REASON", "MESSAGE"], rows, cell),
    ]


def _event_time(event: dict[str, Any]) -> datetime:
    for key in ("last_timestamp", "event_time", "first_timestamp", "lastTimestamp"):
        value = event.get(key)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
    meta = event.get("metadata") or {}
    created = meta.get("creation_timestamp")
    return created if isinstance(created, datetime) else datetime.min.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------
# One line per policy


def table_header(*, wide: bool, all_namespaces: bool) -> list[str]:
    header = ["NAME", "PHASE", "STAGE", "PENDING", "READY", "PROBLEM", "AGE"]
    if wide:
        header += ["READY-REASON", "SERVING", "LAST-RUN", "OUTCOME", "MESSAGE"]
    return ["NAMESPACE", *header] if all_namespaces else header


def table_row(obj: dict[str, Any], *, now: datetime, wide: bool, all_namespaces: bool) -> list[str]:
    """One policy as a row under `table_header`. PROBLEM is the Degraded reason, if any;
    MESSAGE (wide) is that condition's message in full, else the Ready one's."""
    from pydantic import ValidationError

    from retraining_operator.api import ConditionType, RetrainingPolicyStatus

    meta = obj.get("metadata") or {}
    created = _timestamp(meta.get("creationTimestamp"))
    row = [str(meta.get("name") or "?")]
    if all_namespaces:
        row.insert(0, str(meta.get("namespace") or "?"))
    if obj.get("_deleted"):
        return [*row, "Deleted"]
    try:
        status = RetrainingPolicyStatus.model_validate(obj.get("status") or {})
    except ValidationError:
        return [*row, "Unreadable"]
    ready = _condition(status.conditions, ConditionType.READY)
    degraded = _condition(status.conditions, ConditionType.DEGRADED)
    problem = degraded if degraded is not None and degraded.status == "True" else None
    run = status.current_run
    row += [
        status.phase.value if status.phase else "Unknown",
        run.stage.value if run is not None else NOT_SET,
        str(status.ingest.pending_samples),
        ready.status if ready is not None else NOT_SET,
        problem.reason if problem is not None else NOT_SET,
        _age(created, now),
    ]
    if not wide:
        return row
    last = status.history[0] if status.history else None
    shown = problem or ready
    return [
        *row,
        ready.reason if ready is not None else NOT_SET,
        (status.serving.model_name if status.serving else None) or NOT_SET,
        last.run_id if last is not None else NOT_SET,
        last.outcome.value if last is not None else NOT_SET,
        " ".join(shown.message.split()) if shown is not None and shown.message else "",
    ]


def _condition(conditions: Sequence[Condition], kind: object) -> Condition | None:
    return next((c for c in conditions if c.type == kind), None)


def _timestamp(value: object) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return value if isinstance(value, datetime) else None


def align(rows: Sequence[Sequence[str]], widths: list[int] | None = None) -> list[str]:
    """Rows in columns; `widths` (updated in place) keeps later rows under earlier ones."""
    columns = max((len(r) for r in rows), default=0)
    known = list(widths or [])
    known += [0] * (columns - len(known))
    for row in rows:
        for i, cell in enumerate(row):
            known[i] = max(known[i], len(cell))
    if widths is not None:
        widths[:] = known
    return ["  ".join(c.ljust(w) for c, w in zip(r, known, strict=False)).rstrip() for r in rows]


# ---------------------------------------------------------------------------------------
# Cells


def sparkline(values: Sequence[float | None]) -> str:
    """One character per value, scaled between the smallest and largest; `·` for none."""
    known = [v for v in values if v is not None]
    if not known:
        return NO_VALUE * len(values)
    low, high = min(known), max(known)
    spread = high - low
    chars = []
    for value in values:
        if value is None:
            chars.append(NO_VALUE)
        elif spread == 0:
            chars.append(SPARK[len(SPARK) // 2])
        else:
            chars.append(SPARK[round((value - low) / spread * (len(SPARK) - 1))])
    return "".join(chars)


def _table(header: list[str], rows: list[list[Any]], limit: int | None) -> list[str]:
    if not rows:
        return ["  (none)"]
    cells = [header, *[[_cell(str(c if c is not None else ""), limit) for c in r] for r in rows]]
    return ["  " + line for line in align(cells)]


def _cell(text: str, limit: int | None) -> str:
    """One line; bounded to `limit` characters (messages come from AWS and users and may be
    long or multi-line), or whole when `limit` is None."""
    flat = " ".join(text.split())
    return flat if limit is None or len(flat) <= limit else flat[: limit - 1] + "…"


def _num(value: float | None) -> str:
    return NOT_SET if value is None else f"{value:.4g}"


def _age(then: datetime | None, now: datetime) -> str:
    if then is None:
        return NOT_SET
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
