"""The chart's NetworkPolicy: in, only the metrics and health ports from the selected peers; out,
only DNS, the API server and HTTPS (narrowable to VPC endpoints). Rendered with helm here; the
real kube-apiserver admits it in test_chart_kube.py."""

from __future__ import annotations

from typing import Any

import pytest
from helmkit import NARROW_NETWORK_POLICY, PROMETHEUS_PEER, VALUE_SETS, one, render, template_text

KUBE_DNS = [
    {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
]
DNS_PORTS = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]


def _policy(values: dict[str, Any]) -> dict[str, Any]:
    return one(render(values), "NetworkPolicy")


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_default_policy_selects_the_operator_pod_and_both_directions() -> None:
    docs = render({})
    policy = one(docs, "NetworkPolicy")
    deployment = one(docs, "Deployment")
    assert policy["spec"]["podSelector"] == deployment["spec"]["selector"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["metadata"]["namespace"] == deployment["metadata"]["namespace"]


def test_ingress_opens_only_the_metrics_and_health_ports() -> None:
    docs = render({})
    metrics, health = one(docs, "NetworkPolicy")["spec"]["ingress"]
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert health["ports"] == [{"port": "health", "protocol": "TCP"}]
    # The named ports are the container's, so the policy follows a port change.
    named = {p["name"]: p["containerPort"] for p in _container(docs)["ports"]}
    assert set(named) == {"metrics", "health"}
    # /metrics names every tenant's policies: only the monitoring namespace by default (issue
    # 28); health: every pod in the cluster (no ipBlock: nothing from outside).
    assert metrics["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert health["from"] == [{"namespaceSelector": {}}]


def test_ingress_follows_what_is_served() -> None:
    (metrics_only,) = _policy({"livenessProbe": {"enabled": False}})["spec"]["ingress"]
    assert metrics_only["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    (health_only,) = _policy({"metrics": {"enabled": False}})["spec"]["ingress"]
    assert health_only["ports"] == [{"port": "health", "protocol": "TCP"}]
    # Nothing served: no ingress rule under policyType Ingress, i.e. every inbound connection
    # is refused.
    spec = one(render(VALUE_SETS["namespaced"]), "NetworkPolicy")["spec"]
    assert "ingress" not in spec
    assert "Ingress" in spec["policyTypes"]


def test_default_egress_is_dns_api_server_and_https_only() -> None:
    egress = _policy({})["spec"]["egress"]
    assert egress == [
        {"ports": DNS_PORTS, "to": KUBE_DNS},
        {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]},
        {"ports": [{"port": 443, "protocol": "TCP"}], "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]},
    ]
    # No rule without ports: no port is open to everything.
    assert all(rule.get("ports") for rule in egress)


def test_narrowed_policy_uses_the_given_peers_and_cidrs() -> None:
    spec = one(render(VALUE_SETS["irsa-monitoring"]), "NetworkPolicy")["spec"]
    for ingress in spec["ingress"]:
        assert ingress["from"] == [PROMETHEUS_PEER]
    dns, api, https, proxy = spec["egress"]
    egress_values = NARROW_NETWORK_POLICY["egress"]
    assert dns == {"ports": DNS_PORTS, "to": egress_values["dns"]["to"]}
    assert api == {
        "ports": [{"port": 443, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}],
    }
    assert https["to"] == [{"ipBlock": {"cidr": c}} for c in egress_values["https"]["cidrs"]]
    assert https["ports"] == [{"port": 443, "protocol": "TCP"}]
    assert proxy == NARROW_NETWORK_POLICY["extraEgress"][0]


def test_policy_is_opt_out() -> None:
    docs = render(VALUE_SETS["ha-peering"])
    assert not [d for d in docs if d["kind"] == "NetworkPolicy"]


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("networkPolicy.ingress.form=x", "additional properties 'form' not allowed"),
        ("networkPolicy.egress.https.cidrs={10.0.0.0}", "/networkPolicy/egress/https/cidrs/0"),
        ("networkPolicy.egress.https.cidrs=null", "/networkPolicy/egress/https"),
        ("networkPolicy.egress.apiServer.ports={0}", "/networkPolicy/egress/apiServer/ports/0"),
        ("networkPolicy.ingress.from[0].ipBlok.cidr=1.2.3.4/32", "'ipBlok' not allowed"),
        ("metrics.bindAddress=localhost", "/metrics/bindAddress"),
        ("health.bindAddress=0.0.0.0:8080", "/health/bindAddress"),
    ],
)
def test_schema_rejects_bad_network_settings(setting: str, complaint: str) -> None:
    result = template_text({}, "--set", setting, check=False)
    assert result.returncode != 0, result.stdout[:500]
    assert complaint in result.stderr, result.stderr


def test_bind_addresses_reach_the_operator() -> None:
    env = {
        e["name"]: e.get("value")
        for e in _container(render({"metrics": {"bindAddress": "127.0.0.1"}}))["env"]
    }
    assert env["RTP_METRICS_BIND_ADDRESS"] == "127.0.0.1"
    assert env["RTP_LIVENESS"] == "http://0.0.0.0:8080/healthz"
    ipv6 = {
        e["name"]: e.get("value")
        for e in _container(render({"health": {"bindAddress": "::"}}))["env"]
    }
    assert ipv6["RTP_LIVENESS"] == "http://[::]:8080/healthz"


def test_loopback_health_bind_is_refused_while_the_kubelet_probes() -> None:
    # The kubelet probes the pod IP: a loopback-only endpoint would restart the pod forever.
    for address in ("127.0.0.1", "::1"):
        result = template_text({"health": {"bindAddress": address}}, check=False)
        assert result.returncode != 0
        assert "health.bindAddress is a loopback address" in result.stderr
    off = {"health": {"bindAddress": "127.0.0.1"}, "livenessProbe": {"enabled": False}}
    assert template_text(off).returncode == 0
