"""The operator's Grafana dashboard, built with grafana-foundation-sdk.

The chart ships the JSON this module writes (charts/a2i-retraining-operator/dashboards/);
`make dashboard` regenerates it and tests/packaging/test_dashboard.py checks that the committed
file is exactly what this module builds, so the JSON is never edited by hand.

Panels are per policy: the `namespace` and `policy` variables come from the operator's own
`rtp_*` series, so the dashboard works with any Prometheus datasource that scrapes it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_FILE = (
    REPO_ROOT / "charts" / "a2i-retraining-operator" / "dashboards" / "a2i-retraining-operator.json"
)
UID = "a2i-retraining-operator"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every per-policy series selects the two variables.
POLICY = 'namespace="$namespace", policy="$policy"'


def _query(expr: str, legend: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).range()


def _series(title: str, description: str, unit: str, *queries: prometheus.Dataquery) -> Any:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(8)
        .span(12)
    )
    for ref, query in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(query.ref_id(ref))
    return panel


def _variable(name: str, query: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(name)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .current(VariableOption(text="", value=""))
    )


def build() -> dict[str, Any]:
    """The dashboard as the JSON object Grafana imports."""
    board = (
        dashboard.Dashboard("A2I retraining operator")
        .uid(UID)
        .tags(["a2i-retraining-operator", "sagemaker"])
        .description(
            "Per RetrainingPolicy: reviews waiting, runs and their gate metric, training and "
            "rollout durations, the phase, and the AWS calls the operator makes."
        )
        .time("now-7d", "now")
        .refresh("1m")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
        )
        .with_variable(_variable("namespace", "label_values(rtp_pending_samples, namespace)"))
        .with_variable(
            _variable("policy", 'label_values(rtp_pending_samples{namespace="$namespace"}, policy)')
        )
        .with_row(dashboard.Row("Reviews"))
        .with_panel(
            _series(
                "Pending samples",
                "Reviewed samples waiting for the next training run (dataset.minNewSamples "
                "starts one).",
                "short",
                _query(f"rtp_pending_samples{{{POLICY}}}", "pending"),
            )
        )
        .with_panel(
            _series(
                "Loops ingested / quarantined",
                "Completed human loops converted into samples, and outputs quarantined, by "
                "reason, per hour.",
                "short",
                _query(f"sum(increase(rtp_loops_ingested_total{{{POLICY}}}[1h]))", "ingested"),
                _query(
                    f"sum by (reason) (increase(rtp_loops_quarantined_total{{{POLICY}}}[1h]))",
                    "quarantined: {{reason}}",
                ),
            )
        )
        .with_row(dashboard.Row("Runs and the gate"))
        .with_panel(
            _series(
                "Runs by outcome",
                "Finished runs per day: Deployed, GateRejected, TrainingFailed, RolledBack, ...",
                "short",
                _query(
                    f"sum by (outcome) (increase(rtp_runs_total{{{POLICY}}}[1d]))",
                    "{{outcome}}",
                ),
            )
        )
        .with_panel(
            _series(
                "Gate metric: trained vs serving",
                "spec.gate.metric of each newly trained model (candidate) and of the model it "
                "was compared with (serving) at its evaluation.",
                "short",
                _query(
                    f'max by (metric) (rtp_gate_metric{{{POLICY}, model="candidate"}})',
                    "candidate {{metric}}",
                ),
                _query(
                    f'max by (metric) (rtp_gate_metric{{{POLICY}, model="serving"}})',
                    "serving {{metric}}",
                ),
            )
        )
        .with_panel(
            _series(
                "Training and rollout duration (p50 / p95)",
                "Wall time from job submission to its end, and from the first rollout call to "
                "Serving or rollback.",
                "s",
                *(
                    _query(
                        f"histogram_quantile({q}, sum by (le) "
                        f"(rate(rtp_{kind}_duration_seconds_bucket{{{POLICY}}}[$__range])))",
                        f"{kind} p{int(q * 100)}",
                    )
                    for kind in ("training", "rollout")
                    for q in (0.5, 0.95)
                ),
            )
        )
        .with_panel(
            statetimeline.Panel()
            .title("Phase (rollout state)")
            .description("Collecting, Training, Evaluating, Deploying, Serving, Suspended, Failed.")
            .datasource(DATASOURCE)
            .height(8)
            .span(12)
            .with_target(
                _query(f"max by (phase) (rtp_phase{{{POLICY}}}) == 1", "{{phase}}").ref_id("A")
            )
        )
        .with_panel(
            stat.Panel()
            .title("Since the last successful run")
            .description("Time since the last run that ended Deployed or Trained.")
            .datasource(DATASOURCE)
            .unit("s")
            .height(8)
            .span(12)
            .with_target(
                _query(
                    f"time() - rtp_last_successful_run_timestamp_seconds{{{POLICY}}}", "age"
                ).ref_id("A")
            )
        )
        .with_row(dashboard.Row("AWS"))
        .with_panel(
            _series(
                "AWS calls by operation",
                "Calls per second for all policies of the operator (the AWS session is shared "
                "by the process; calls are not labelled by policy).",
                "reqps",
                _query(
                    "sum by (service, operation) (rate(rtp_aws_calls_total[$__rate_interval]))",
                    "{{service}} {{operation}}",
                ),
            )
        )
        .with_panel(
            _series(
                "AWS errors and throttles by operation",
                "Failed calls by error code, and throttled responses (botocore retries those).",
                "reqps",
                _query(
                    "sum by (operation, code) (rate(rtp_aws_errors_total[$__rate_interval]))",
                    "{{operation}} {{code}}",
                ),
                _query(
                    "sum by (operation) (rate(rtp_aws_throttled_total[$__rate_interval]))",
                    "{{operation}} throttled",
                ),
            )
        )
    )
    encoded: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return encoded


# What Grafana substitutes before a query reaches Prometheus (the parser sees real PromQL).
GRAFANA_INTERPOLATION = {
    "$__rate_interval": "2m",
    "$__range": "7d",
    "$__interval": "1m",
    "$datasource": "prometheus",
}


def queries(board: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and query variables
    (`label_values(<selector>, <label>)` contributes its selector), Grafana's variables
    interpolated as Grafana does."""
    found: list[str] = []
    for panel in board.get("panels", []):
        for target in panel.get("targets") or []:
            found.append(target["expr"])
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        if variable.get("type") == "query" and isinstance(query, str):
            inner = query.removeprefix("label_values(").removesuffix(")")
            selector, _, _label = inner.rpartition(",")
            found.append(selector)
    interpolated = []
    for expr in found:
        for variable, value in GRAFANA_INTERPOLATION.items():
            expr = expr.replace(variable, value)
        interpolated.append(expr)
    return interpolated


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects, read from its syntax tree (promql-parser)."""
    import promql_parser

    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    names.add(matcher.value)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def exposed_metric_names(scrape: str) -> set[str]:
    """Sample names a /metrics scrape exposes, read with prometheus-client's text parser
    (a family declared with no sample yet, e.g. an error counter before the first error,
    counts: Prometheus knows the name from its TYPE line)."""
    from prometheus_client.parser import text_string_to_metric_families

    names: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for family in text_string_to_metric_families(scrape):
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def names_missing_from(scrape: str, board: dict[str, Any]) -> set[str]:
    """Metric names the dashboard's queries use that the scrape does not expose."""
    used = set().union(*(metric_names(expr) for expr in queries(board)))
    return used - exposed_metric_names(scrape)


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    DASHBOARD_FILE.parent.mkdir(parents=True, exist_ok=True)
    DASHBOARD_FILE.write_text(render(), encoding="utf-8")
    print(DASHBOARD_FILE.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
