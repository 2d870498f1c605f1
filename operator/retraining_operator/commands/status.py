"""`retraining-operator status NAME [-n NS]`: the story of one policy, read like kubectl does.

Reads the RetrainingPolicy and its Events through the Kubernetes API (the kubeconfig, or
in-cluster credentials) and prints the phase, the conditions, the current run's stage, the
history as a table with the gate metric per run and a text sparkline of it, and the last
Events. `render` is pure (the object and Events in, text out) so it is tested on its own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from retraining_operator.commands import Subparsers

if TYPE_CHECKING:
    from retraining_operator.api import RetrainingPolicyStatus

SPARK = "▁▂▃▄▅▆▇█"
NO_VALUE = "·"
MAX_CELL = 60


def register(sub: Subparsers) -> None:
    status = sub.add_parser(
        "status",
        help="show a policy's phase, conditions, current run, run history and Events",
        description="Show a RetrainingPolicy as a person reads it: phase, conditions, the "
        "current run's stage, the run history with the gate metric per run and its trend, "
        "and the last Events. Reads the Kubernetes API like kubectl (KUBECONFIG or "
        "in-cluster credentials).",
    )
    status.add_argument("name", metavar="NAME", help="the RetrainingPolicy's name")
    status.add_argument(
        "-n",
        "--namespace",
        default=None,
        help="namespace (default: the kubeconfig's, else default)",
    )
    status.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: KUBECONFIG)")
    status.add_argument("--context", default=None, help="kubeconfig context")
    status.add_argument(
        "--events", type=int, default=10, metavar="N", help="Events to show (default 10)"
    )
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    from retraining_operator.api import API_GROUP, API_VERSION, KIND, PLURAL

    namespace = args.namespace
    try:
        if args.kubeconfig is None and args.context is None:
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config()  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config(config_file=args.kubeconfig, context=args.context)  # type: ignore[no-untyped-call]
        if namespace is None:
            namespace = _kubeconfig_namespace(args.kubeconfig, args.context)
    except (config.ConfigException, OSError) as error:
        print(f"error: no Kubernetes credentials: {error}", file=sys.stderr)
        return 2
    try:
        obj = cast(
            "dict[str, Any]",
            client.CustomObjectsApi().get_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, PLURAL, args.name
            ),
        )
        events = (
            client.CoreV1Api()
            .list_namespaced_event(
                namespace,
                field_selector=f"involvedObject.kind={KIND},involvedObject.name={args.name}",
            )
            .to_dict()["items"]
        )
    except ApiException as error:
        if error.status == 404:
            print(f"error: RetrainingPolicy {namespace}/{args.name} not found", file=sys.stderr)
        else:
            print(f"error: the API server answered {error.status} {error.reason}", file=sys.stderr)
        return 1
    sys.stdout.write(render(obj, events, now=datetime.now(UTC), max_events=max(0, args.events)))
    return 0


def _kubeconfig_namespace(kubeconfig: str | None, context: str | None) -> str:
    from kubernetes import config

    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        if context is not None:
            contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
            active = next((c for c in contexts if c["name"] == context), active)
        return str((active or {}).get("context", {}).get("namespace") or "default")
    except (config.ConfigException, OSError):
        return "default"  # in-cluster: no kubeconfig to name one


# ---------------------------------------------------------------------------------------
# Rendering (pure)


def render(
    obj: dict[str, Any], events: Sequence[dict[str, Any]], *, now: datetime, max_events: int = 10
) -> str:
    """The text `status` prints for one policy object and its Events."""
    from pydantic import ValidationError

    from retraining_operator.api import RetrainingPolicyStatus

    meta = obj.get("metadata") or {}
    spec = obj.get("spec")
    gate_spec = spec.get("gate") if isinstance(spec, dict) else None
    gate = str((gate_spec if isinstance(gate_spec, dict) else {}).get("metric", "validation:mAP"))
    lines = [
        f"RetrainingPolicy {meta.get('namespace', '?')}/{meta.get('name', '?')}  "
        f"(generation {meta.get('generation', '?')})"
    ]
    try:
        status = RetrainingPolicyStatus.model_validate(obj.get("status") or {})
    except ValidationError as error:
        lines.append(f"Status unreadable ({error.error_count()} problem(s)); raw status follows:")
        lines.append(_cell(repr(obj.get("status")), 2000))
        lines += _events(events, now, max_events)
        return "\n".join(lines) + "\n"
    observed = status.observed_generation
    lines.append(
        f"Phase:       {status.phase.value if status.phase else 'Unknown'}"
        f"  (observed generation {observed if observed is not None else '-'})"
    )
    lines += _serving_and_ingest(status, gate)
    lines += _conditions(status, now)
    lines += _current_run(status, now)
    lines += _history(status, gate)
    lines += _events(events, now, max_events)
    return "\n".join(lines) + "\n"


def _serving_and_ingest(status: RetrainingPolicyStatus, gate: str) -> list[str]:
    lines = []
    serving = status.serving
    if serving is not None and serving.model_name:
        lines.append(
            f"Serving:     {serving.model_name} (run {serving.run_id or '-'}, "
            f"{gate} {_num(serving.metric_value)}, config {serving.endpoint_config_name or '-'})"
        )
    else:
        lines.append("Serving:     nothing deployed by the operator yet")
    ingest = status.ingest
    lines.append(
        f"Reviews:     {ingest.pending_samples} pending, {ingest.ingested_loops} loops ingested, "
        f"{ingest.quarantined_samples} quarantined, {ingest.in_progress_loops} in progress"
    )
    return lines


def _conditions(status: RetrainingPolicyStatus, now: datetime) -> list[str]:
    rows = [
        [c.type.value, c.status, c.reason, _age(c.last_transition_time, now), c.message]
        for c in status.conditions
    ]
    return ["", "Conditions:", *_table(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], rows)]


def _current_run(status: RetrainingPolicyStatus, now: datetime) -> list[str]:
    run = status.current_run
    if run is None:
        return ["", "Current run: none"]
    lines = [
        "",
        f"Current run: {run.id}  stage {run.stage.value}"
        f"{f' (step {run.deploy_step})' if run.deploy_step is not None else ''}"
        f"  started {_age(run.started_at, now)} ago  trigger {run.trigger or '-'}",
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
        lines.append(f"  message:   {_cell(run.message, 200)}")
    return lines


def _history(status: RetrainingPolicyStatus, gate: str) -> list[str]:
    entries = status.history  # newest first
    if not entries:
        return ["", "History: no finished runs"]
    rows = [
        [
            e.run_id,
            e.outcome.value,
            _num(e.metric_value),
            e.training_job_name or "-",
            e.finished_at.strftime("%Y-%m-%d %H:%M") if e.finished_at else "-",
            e.reason or "",
        ]
        for e in entries
    ]
    trend = sparkline([e.metric_value for e in reversed(entries)])
    values = [e.metric_value for e in reversed(entries) if e.metric_value is not None]
    span = f"  {_num(values[0])} -> {_num(values[-1])}" if values else ""
    return [
        "",
        f"History (newest first; {gate} per run):",
        *_table(["RUN", "OUTCOME", gate.upper(), "JOB", "FINISHED", "REASON"], rows),
        f"Trend (oldest -> newest): {trend}{span}",
    ]


def _events(events: Sequence[dict[str, Any]], now: datetime, limit: int) -> list[str]:
    def when(event: dict[str, Any]) -> datetime:
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

    recent = sorted(events, key=when)[-limit:] if limit else []
    rows = [
        [_age(when(e), now), str(e.get("type") or ""), str(e.get("reason") or ""), e.get("message")]
        for e in recent
    ]
    return ["", f"Events (last {len(rows)}):", *_table(["AGE", "TYPE", "REASON", "MESSAGE"], rows)]


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


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["  (none)"]
    cells = [header, *[[_cell(str(c if c is not None else ""), MAX_CELL) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    ]


def _cell(text: str, limit: int) -> str:
    """One line, bounded: messages come from AWS and users and may be long or multi-line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _age(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
