"""The Grafana dashboard: generated reproducibly, loadable by grafana-foundation-sdk, valid
PromQL over the operator's own metrics, and shipped by the chart only when asked.

That every metric the queries use is served by a running operator is proved on a real
scrape in tests/e2e/test_observability.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from helmkit import by_kind, render, template_text

from retraining_operator import metrics
from support import grafana_dashboard
from support.grafana_dashboard import DASHBOARD_FILE, metric_names, queries


def committed() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return loaded


def exposed_names() -> set[str]:
    """Sample names the operator's registry can expose (histograms: _bucket/_sum/_count)."""
    names: set[str] = set()
    for collector in metrics.REGISTRY._collector_to_names:
        names.update(metrics.REGISTRY._collector_to_names[collector])
    return names


def test_committed_json_is_exactly_what_the_generator_builds() -> None:
    assert DASHBOARD_FILE.read_text(encoding="utf-8") == grafana_dashboard.render(), (
        "regenerate with `make dashboard`"
    )


def test_dashboard_loads_in_the_foundation_sdk_and_round_trips() -> None:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    data = committed()
    model = Dashboard.from_json(data)
    assert json.loads(json.dumps(model, cls=JSONEncoder)) == data
    assert model.uid == "a2i-retraining-operator"
    variables = [v.name for v in model.templating.list_val or []]
    assert variables == ["datasource", "namespace", "policy"]


def test_every_query_parses_and_selects_only_operator_metrics() -> None:
    exprs = queries(committed())
    assert len(exprs) >= 15
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        used |= names
    assert used <= exposed_names(), used - exposed_names()
    # What the issue asks to see: reviews, runs, the gate, durations, phase, AWS.
    for name in (
        "rtp_pending_samples",
        "rtp_loops_ingested_total",
        "rtp_loops_quarantined_total",
        "rtp_runs_total",
        "rtp_gate_metric",
        "rtp_training_duration_seconds_bucket",
        "rtp_rollout_duration_seconds_bucket",
        "rtp_phase",
        "rtp_aws_calls_total",
        "rtp_aws_errors_total",
        "rtp_aws_throttled_total",
    ):
        assert name in used, name


def test_per_policy_panels_select_the_dashboard_variables() -> None:
    for panel in committed()["panels"]:
        for target in panel.get("targets") or []:
            expr = target["expr"]
            if "rtp_aws_" in expr:
                continue  # the AWS session is per process: calls carry no policy label
            assert 'namespace="$namespace"' in expr, expr
            assert 'policy="$policy"' in expr, expr


def test_a_broken_query_is_refused_by_the_parser() -> None:
    with pytest.raises(ValueError, match=r".+"):
        metric_names("sum by (reason (rtp_runs_total")


def test_chart_ships_the_dashboard_configmap_only_when_enabled() -> None:
    assert by_kind(render(), "ConfigMap") == []
    docs = render(
        {
            "metrics": {
                "grafanaDashboard": {
                    "enabled": True,
                    "namespace": "monitoring",
                    "labels": {"team": "ml"},
                    "annotations": {"grafana_folder": "Operators"},
                }
            }
        }
    )
    (configmap,) = by_kind(docs, "ConfigMap")
    meta = configmap["metadata"]
    assert meta["labels"]["grafana_dashboard"] == "1"
    assert meta["labels"]["team"] == "ml"
    assert meta["annotations"] == {"grafana_folder": "Operators"}
    assert meta["namespace"] == "monitoring"
    assert json.loads(configmap["data"]["a2i-retraining-operator.json"]) == committed()
    default_ns = by_kind(render({"metrics": {"grafanaDashboard": {"enabled": True}}}), "ConfigMap")
    assert default_ns[0]["metadata"]["namespace"] == "retraining-system"


@pytest.mark.parametrize(
    "values",
    [
        {"metrics": {"grafanaDashboard": {"enabeld": True}}},
        {"metrics": {"grafanaDashboard": {"enabled": "yes"}}},
        {"metrics": {"grafanaDashboard": {"namespace": "Not_A_Namespace"}}},
    ],
)
def test_schema_refuses_bad_dashboard_values(values: dict[str, Any]) -> None:
    assert template_text(values, check=False).returncode != 0
