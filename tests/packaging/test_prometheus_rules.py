"""What the chart gives prometheus-operator: the ServiceMonitor (honorLabels, relabelings) and
the PrometheusRule (issue 32: every example policy was Degraded and nothing alerted).

The rule's expressions select only metrics the operator exports (read from a /metrics
rendering of its registry), `promtool check rules` accepts the rendered rule, and `promtool
test rules` fires and does not fire each alert on input series (tests/packaging/promtool/).
promtool is built from the Go module proxy by tests/promtool/build.sh (cached; `make test`
builds it first): if it cannot be built these tests fail, they never skip.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helmkit import REPO_ROOT, by_kind, one, render, template_text
from prometheus_client import generate_latest

from retraining_operator import metrics
from support.grafana_dashboard import exposed_metric_names, metric_names

BUILD_SCRIPT = REPO_ROOT / "tests" / "promtool" / "build.sh"
UNIT_TESTS = sorted((Path(__file__).parent / "promtool").glob("*.yaml"))
RUNBOOK = REPO_ROOT / "docs" / "alerts.md"
ENABLED = {"metrics": {"prometheusRule": {"enabled": True}}}
# What issue 32 asks to be alerted on, by the alert that does it.
ALERTS = {
    "RetrainingPolicyDegraded",
    "RetrainingPolicyDrifted",
    "RetrainingPolicyPollsStarved",
    "RetrainingPolicyEventsNotFlowing",
    "RetrainingPolicyTrainingFailed",
    "RetrainingPolicyRolledBack",
}


@pytest.fixture(scope="module")
def promtool() -> Path:
    """The promtool binary: $PROMTOOL, the cached build, or a build now (minutes, cold)."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=3600, check=False
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        message = (
            f"promtool could not be built (bash tests/promtool/build.sh exited "
            f"{result.returncode}):\n{result.stderr[-3000:]}"
        )
        pytest.fail(message, pytrace=False)
    return Path(lines[-1])


def rule_spec(values: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = one(render(values or ENABLED), "PrometheusRule")["spec"]
    return spec


def rules(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in spec["groups"] for rule in group["rules"]]


def scraped_names() -> set[str]:
    """Every sample name the operator's /metrics serves (a family with no sample yet counts:
    Prometheus learns the name from its TYPE line)."""
    return exposed_metric_names(generate_latest(metrics.REGISTRY).decode())


def expand(template: str, labels: dict[str, str]) -> str:
    """The rule's annotation as Prometheus renders it for an alert with these labels (the
    rule templates use `{{ $labels.NAME }}` only)."""
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)


def runbook_anchors() -> set[str]:
    """GitHub's anchors of the runbook's headings (lower case, spaces to dashes)."""
    headings = re.findall(r"^#+ (.+)$", RUNBOOK.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}


def test_rule_selects_only_metrics_the_operator_exports() -> None:
    exposed = scraped_names()
    used: set[str] = set()
    for rule in rules(rule_spec()):
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric in {rule['expr']!r}"
        assert names <= exposed, f"{rule['alert']} selects {names - exposed}, not exported"
        used |= names
    assert used == {"rtp_condition"}


def test_every_alert_issue_32_asks_for_has_its_runbook_section() -> None:
    found = rules(rule_spec())
    assert {rule["alert"] for rule in found} == ALERTS
    anchors = runbook_anchors()
    for rule in found:
        annotations = rule["annotations"]
        assert annotations["runbook_url"] == f"docs/alerts.md#{rule['alert'].lower()}"
        assert rule["alert"].lower() in anchors, f"docs/alerts.md has no ## {rule['alert']}"
        assert annotations["summary"]
        assert annotations["description"]
        assert rule["labels"]["severity"] == "warning"
    degraded = next(rule for rule in found if rule["alert"] == "RetrainingPolicyDegraded")
    assert degraded["for"] == "15m"


def test_promtool_checks_the_rendered_rule(promtool: Path, tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule_spec()), encoding="utf-8")
    result = subprocess.run(
        [str(promtool), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout + result.stderr


@pytest.mark.parametrize("unit", UNIT_TESTS, ids=[p.stem for p in UNIT_TESTS])
def test_promtool_unit_tests_fire_and_hold_each_alert(
    promtool: Path, tmp_path: Path, unit: Path
) -> None:
    spec = rule_spec()
    annotations = {rule["alert"]: rule["annotations"] for rule in rules(spec)}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    cases = yaml.safe_load(unit.read_text(encoding="utf-8"))
    for case in cases["tests"]:
        for check in case.get("alert_rule_test", []):
            for alert in check.get("exp_alerts", []):
                if "exp_annotations" not in alert:  # the rule's own, for these labels
                    templates = annotations[check["alertname"]]
                    alert["exp_annotations"] = {
                        key: expand(text, alert["exp_labels"]) for key, text in templates.items()
                    }
    (tmp_path / unit.name).write_text(yaml.safe_dump(cases), encoding="utf-8")
    result = subprocess.run(
        [str(promtool), "test", "rules", unit.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_fires_in_some_unit_test() -> None:
    fired: set[str] = set()
    held: set[str] = set()
    for unit in UNIT_TESTS:
        for case in yaml.safe_load(unit.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else held).add(check["alertname"])
    assert fired == ALERTS
    assert held == ALERTS


def test_chart_ships_the_rule_only_when_asked_with_its_labels() -> None:
    assert by_kind(render(), "PrometheusRule") == []
    docs = render(
        {
            "metrics": {
                "prometheusRule": {
                    "enabled": True,
                    "labels": {"release": "prometheus"},
                    "alertLabels": {"team": "ml-platform", "severity": "critical"},
                    "runbookUrl": "https://docs.example.com/rtp/alerts",
                }
            }
        }
    )
    rule = one(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert rule["metadata"]["namespace"] == "retraining-system"
    for alert in rules(rule["spec"]):
        assert alert["labels"] == {"team": "ml-platform", "severity": "critical"}
        assert alert["annotations"]["runbook_url"] == (
            f"https://docs.example.com/rtp/alerts#{alert['alert'].lower()}"
        )
    failed = template_text(
        {"metrics": {"enabled": False, "prometheusRule": {"enabled": True}}}, check=False
    )
    assert failed.returncode != 0
    assert "metrics.prometheusRule.enabled needs metrics.enabled" in failed.stderr


@pytest.mark.parametrize(
    "values",
    [
        {"metrics": {"prometheusRule": {"enabeld": True}}},
        {"metrics": {"prometheusRule": {"enabled": "yes"}}},
        {"metrics": {"prometheusRule": {"runbookUrl": ""}}},
        {"metrics": {"prometheusRule": {"alertLabels": {"team": 1}}}},
        {"metrics": {"serviceMonitor": {"honorLabels": "yes"}}},
        {"metrics": {"serviceMonitor": {"relabelings": [{"action": "rename"}]}}},
        {"metrics": {"serviceMonitor": {"metricRelabelings": [{"sourceLabel": ["x"]}]}}},
        {"metrics": {"serviceMonitor": {"relabelings": {"action": "drop"}}}},
    ],
)
def test_schema_refuses_bad_monitoring_values(values: dict[str, Any]) -> None:
    assert template_text(values, check=False).returncode != 0


def test_service_monitor_honors_the_series_labels_and_takes_relabelings() -> None:
    """The per-policy series carry the policy's `namespace`; without honorLabels
    prometheus-operator keeps the target's and renames the series' to exported_namespace."""
    (endpoint,) = one(render({"metrics": {"serviceMonitor": {"enabled": True}}}), "ServiceMonitor")[
        "spec"
    ]["endpoints"]
    assert endpoint["honorLabels"] is True
    assert "relabelings" not in endpoint
    assert "metricRelabelings" not in endpoint
    relabelings = [{"targetLabel": "cluster", "replacement": "prod-eu"}]
    metric_relabelings = [
        {"sourceLabels": ["__name__"], "regex": "rtp_aws_.*", "action": "drop"},
    ]
    monitor = one(
        render(
            {
                "metrics": {
                    "serviceMonitor": {
                        "enabled": True,
                        "honorLabels": False,
                        "relabelings": relabelings,
                        "metricRelabelings": metric_relabelings,
                    }
                }
            }
        ),
        "ServiceMonitor",
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert "honorLabels" not in endpoint
    assert endpoint["relabelings"] == relabelings
    assert endpoint["metricRelabelings"] == metric_relabelings


def test_make_test_builds_promtool_before_the_tests() -> None:
    """A fresh machine's `make test` (CI's .ci/run) builds promtool, as it does envtest."""
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    test_target = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert 'PROMTOOL="$$(bash tests/promtool/build.sh | tail -n 1)"' in test_target
