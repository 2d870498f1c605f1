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
    assert all(v.multi for v in model.templating.list_val or [] if v.name != "datasource")


def test_variables_come_from_rtp_phase_with_all_and_multi_select() -> None:
    """Every policy has rtp_phase from its first pass, Degraded and Failed ones included
    (issue 32: a picker built from rtp_pending_samples never listed a degraded policy)."""
    variables = {v["name"]: v for v in committed()["templating"]["list"]}
    assert variables["namespace"]["query"] == "label_values(rtp_phase, namespace)"
    assert variables["policy"]["query"] == (
        'label_values(rtp_phase{namespace=~"$namespace"}, policy)'
    )
    for name in ("namespace", "policy"):
        assert variables[name]["multi"] is True
        assert variables[name]["includeAll"] is True
        assert variables[name]["current"]["value"] == "$__all"


def test_panel_ids_are_unique() -> None:
    ids = [panel.get("id") for panel in committed()["panels"]]
    assert None not in ids
    assert len(ids) == len(set(ids)), sorted(ids)


def test_every_query_parses_and_selects_only_operator_metrics() -> None:
    exprs = queries(committed())
    assert len(exprs) >= 20
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        used |= names
    assert used <= exposed_names(), used - exposed_names()
    # What the issues ask to see: reviews, runs, the gate, durations, phase, AWS (issue 17);
    # degraded / drifted / starved policies, leadership, reviewer agreement (issue 32).
    for name in (
        "rtp_condition",
        "rtp_leader",
        "rtp_reviewer_agreement",
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


# Series of the operator process, not of a policy: no policy label to select.
PROCESS_WIDE = ("rtp_aws_", "rtp_leader", "rtp_poll_delay_seconds")


def test_per_policy_panels_select_the_dashboard_variables() -> None:
    for panel in committed()["panels"]:
        for target in panel.get("targets") or []:
            expr = target["expr"]
            if any(name in expr for name in PROCESS_WIDE):
                continue
            # Regex matchers: the variables are multi-select with All (`.*`).
            assert 'namespace=~"$namespace"' in expr, expr
            assert 'policy=~"$policy"' in expr, expr


def test_the_health_row_shows_degraded_drifted_and_starved_policies() -> None:
    health = [p for p in committed()["panels"] if p["type"] != "row"][:5]
    exprs = " ".join(t["expr"] for panel in health for t in panel["targets"])
    for condition in ("Degraded", "Drifted", "PollsStarved"):
        assert f'rtp_condition{{type="{condition}", status="True"' in exprs, condition


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
