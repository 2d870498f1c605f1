"""The operator's Grafana dashboard, built with grafana-foundation-sdk.

The chart ships the JSON this module writes (charts/a2i-retraining-operator/dashboards/);
`make dashboard` regenerates it and tests/packaging/test_dashboard.py checks that the committed
file is exactly what this module builds, so the JSON is never edited by hand.

Panels are per policy: the `namespace` and `policy` variables (multi-select, All) come from
`rtp_phase`, which every policy has from its first pass whatever its state, so a Degraded or
Failed policy is in the picker too; the dashboard works with any Prometheus datasource that
scrapes the operator. Process-wide series (leadership, poll delay, AWS calls) carry no policy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import (
    dashboard,
    prometheus,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_FILE = (
    REPO_ROOT / "charts" / "a2i-retraining-operator" / "dashboards" / "a2i-retraining-operator.json"
)
UID = "a2i-retraining-operator"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every per-policy series selects the two variables (multi-select, All: regex matchers).
POLICY = 'namespace=~"$namespace", policy=~"$policy"'
# Per-policy panels show one series per selected policy.
BY_POLICY = "namespace, policy"
WHO = "{{namespace}}/{{policy}}"
# Conditions that mean a person should look (the PrometheusRule alerts on the same ones):
# (panel title, condition type).
PROBLEMS = (("Degraded", "Degraded"), ("Drifted", "Drifted"), ("Polls starved", "PollsStarved"))


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
    """Multi-select with All (`.*`: one short regex however many policies there are)."""
    return (
        dashboard.QueryVariable(name)
        .label(name)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(text="All", value="$__all"))
    )


def _problem_count(title: str, condition: str) -> Any:
    """How many of the selected policies have this condition True now (red from 1)."""
    selector = f'type="{condition}", status="True", {POLICY}'
    expr = f"count(max by ({BY_POLICY}) (rtp_condition{{{selector}}}) == 1) or vector(0)"
    return (
        stat.Panel()
        .title(f"{title} policies")
        .description(
            f"Selected policies whose condition {condition} is True now (rtp_condition; "
            "the alerts and their runbook: docs/alerts.md)."
        )
        .datasource(DATASOURCE)
        .height(4)
        .span(8)
        .thresholds(
            dashboard.ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(value=None, color="green"), Threshold(value=1, color="red")])
        )
        .with_target(_query(expr, "policies").instant().ref_id("A"))
    )


def _problems_table() -> Any:
    """Which policies, which condition, which reason: what `kubectl get rtp` says."""
    selectors = [f'type="{condition}", status="True"' for _, condition in PROBLEMS]
    selectors.append('type="EventsFlowing", status="False", reason!="Suspended"')
    expr = " or ".join(
        f"max by ({BY_POLICY}, type, status, reason) (rtp_condition{{{selector}, {POLICY}}})"
        for selector in selectors
    )
    return (
        table.Panel()
        .title("Policies with a problem")
        .description(
            "Degraded, Drifted, PollsStarved True and EventsFlowing False now, with the "
            "condition's reason. `retraining-operator status NAME -n NAMESPACE` has the message."
        )
        .datasource(DATASOURCE)
        .height(8)
        .span(12)
        .with_target(_query(expr, "").instant().format(PromQueryFormat.TABLE).ref_id("A"))
        .with_transformation(
            DataTransformerConfig(
                id_val="organize", options={"excludeByName": {"Time": True, "Value": True}}
            )
        )
    )


def _numbered(encoded: dict[str, Any]) -> dict[str, Any]:
    """Panel ids 1..n in layout order: Grafana links, repeats and `viewPanel=` URLs need them
    unique, and the SDK leaves them unset (rows at 0)."""
    for number, panel in enumerate(encoded.get("panels", []), start=1):
        panel["id"] = number
    return encoded


def build() -> dict[str, Any]:
    """The dashboard as the JSON object Grafana imports."""
    board = (
        dashboard.Dashboard("A2I retraining operator")
        .uid(UID)
        .tags(["a2i-retraining-operator", "sagemaker"])
        .description(
            "Per RetrainingPolicy: which policies are Degraded, Drifted or starved, reviews "
            "waiting and reviewer agreement, runs and their gate metric, training and rollout "
            "durations, the phase; per operator: leadership and the AWS calls it makes."
        )
        .time("now-7d", "now")
        .refresh("1m")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
        )
        # Every policy has an rtp_phase series from its first pass, whatever its state (a
        # policy that never polled has no rtp_pending_samples).
        .with_variable(_variable("namespace", "label_values(rtp_phase, namespace)"))
        .with_variable(
            _variable("policy", 'label_values(rtp_phase{namespace=~"$namespace"}, policy)')
        )
        .with_row(dashboard.Row("Health"))
        .with_panel(_problem_count(*PROBLEMS[0]))
        .with_panel(_problem_count(*PROBLEMS[1]))
        .with_panel(_problem_count(*PROBLEMS[2]))
        .with_panel(_problems_table())
        .with_panel(
            statetimeline.Panel()
            .title("Conditions over time")
            .description("When each selected policy was Degraded, Drifted or PollsStarved.")
            .datasource(DATASOURCE)
            .height(8)
            .span(12)
            .with_target(
                _query(
                    f'max by ({BY_POLICY}, type) (rtp_condition{{status="True", '
                    f'type=~"Degraded|Drifted|PollsStarved", {POLICY}}}) == 1',
                    f"{WHO} {{{{type}}}}",
                ).ref_id("A")
            )
        )
        .with_row(dashboard.Row("Reviews"))
        .with_panel(
            _series(
                "Pending samples",
                "Reviewed samples waiting for the next training run (dataset.minNewSamples "
                "starts one).",
                "short",
                _query(f"max by ({BY_POLICY}) (rtp_pending_samples{{{POLICY}}})", WHO),
            )
        )
        .with_panel(
            _series(
                "Loops ingested / quarantined",
                "Completed human loops converted into samples, and outputs quarantined, by "
                "reason, per hour.",
                "short",
                _query(
                    f"sum by ({BY_POLICY}) (increase(rtp_loops_ingested_total{{{POLICY}}}[1h]))",
                    f"{WHO} ingested",
                ),
                _query(
                    f"sum by ({BY_POLICY}, reason) "
                    f"(increase(rtp_loops_quarantined_total{{{POLICY}}}[1h]))",
                    f"{WHO} quarantined: {{{{reason}}}}",
                ),
            )
        )
        .with_panel(
            _series(
                "Reviewer agreement",
                "Mean agreement of each reviewer with the consensus of their images (0..1; "
                "labels.consolidation.mode Consensus). `worker` is a stable hash of the "
                "workerId; a policy keeps its most recently active reviewers.",
                "percentunit",
                _query(
                    f"max by ({BY_POLICY}, worker) (rtp_reviewer_agreement{{{POLICY}}})",
                    f"{WHO} {{{{worker}}}}",
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
                    f"sum by ({BY_POLICY}, outcome) (increase(rtp_runs_total{{{POLICY}}}[1d]))",
                    f"{WHO} {{{{outcome}}}}",
                ),
            )
        )
        .with_panel(
            _series(
                "Gate metric: trained vs serving",
                "spec.gate.metric of each newly trained model (candidate) and of the model it "
                "was compared with (serving) at its evaluation.",
                "short",
                *(
                    _query(
                        f"max by ({BY_POLICY}, metric) "
                        f'(rtp_gate_metric{{{POLICY}, model="{model}"}})',
                        f"{WHO} {model} {{{{metric}}}}",
                    )
                    for model in ("candidate", "serving")
                ),
            )
        )
        .with_panel(
            _series(
                "Training and rollout duration (p50 / p95)",
                "Wall time from job submission to its end, and from the first rollout call to "
                "Serving or rollback, over the selected policies.",
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
                _query(
                    f"max by ({BY_POLICY}, phase) (rtp_phase{{{POLICY}}}) == 1",
                    f"{WHO} {{{{phase}}}}",
                ).ref_id("A")
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
                    f"time() - max by ({BY_POLICY}) "
                    f"(rtp_last_successful_run_timestamp_seconds{{{POLICY}}})",
                    WHO,
                ).ref_id("A")
            )
        )
        .with_row(dashboard.Row("Operator and AWS"))
        .with_panel(
            _series(
                "Leader",
                "1 while an operator process holds the leader Lease (or runs without leader "
                "election): exactly one per shard should read 1; none means no policy is "
                "reconciled.",
                "short",
                _query("max by (instance, pod) (rtp_leader)", "{{pod}} {{instance}}"),
            )
        )
        .with_panel(
            _series(
                "Poll delay (p95)",
                "How much later than pollInterval x 1.1 polls come, for all policies of the "
                "operator (above 0: the AWS call budget or the workers are too small; "
                "condition PollsStarved).",
                "s",
                _query(
                    "histogram_quantile(0.95, sum by (le) "
                    "(rate(rtp_poll_delay_seconds_bucket[$__rate_interval])))",
                    "p95",
                ),
            )
        )
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
    return _numbered(encoded)


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
