"""Render the Helm chart with the `helm` binary the tests extract (support.tools.helm_path)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from support import tools

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "a2i-retraining-operator"
RELEASE = "rtp"
NAMESPACE = "retraining-system"
FULLNAME = "rtp-a2i-retraining-operator"
IRSA_ROLE = "arn:aws:iam::111122223333:role/a2i-retraining-operator"
DIGEST = "sha256:" + "ab" * 32

# A NetworkPolicy narrowed the way docs/packaging.md shows: Prometheus only, NodeLocal DNS, the
# API server's endpoints, the VPC endpoints' subnets plus an S3 prefix list, and an HTTPS proxy.
PROMETHEUS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}
NARROW_NETWORK_POLICY: dict[str, Any] = {
    "ingress": {"from": [PROMETHEUS_PEER], "metricsFrom": [PROMETHEUS_PEER]},
    "egress": {
        "dns": {
            "to": [
                {"ipBlock": {"cidr": "169.254.20.10/32"}},
                {
                    "namespaceSelector": {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/metadata.name",
                                "operator": "In",
                                "values": ["kube-system"],
                            }
                        ]
                    },
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                },
            ]
        },
        "apiServer": {"cidrs": ["10.0.0.0/16"], "ports": [443]},
        "https": {"cidrs": ["10.0.128.0/20", "10.0.144.0/20", "52.216.0.0/15"]},
    },
    "extraEgress": [
        {"to": [{"ipBlock": {"cidr": "10.0.9.9/32"}}], "ports": [{"port": 3128, "protocol": "TCP"}]}
    ],
}

# Default values (2 replicas, leader election) plus non-default sets that between them touch
# every template branch: peering, namespaced with a named Lease, a single standalone replica
# (Recreate), and shards (a StatefulSet).
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "ha-peering": {
        "peering": {"enabled": True, "name": "rtp-peering"},
        "networkPolicy": {"enabled": False},
        "health": {"bindAddress": "::"},
        "metrics": {"bindAddress": "::"},
        "operator": {"logFormat": "text", "verbose": True},
        "priorityClassName": "system-cluster-critical",
        "image": {
            "repository": "registry.example.com/ml/a2i-retraining-operator",
            "digest": DIGEST,
        },
    },
    "namespaced": {
        # Single mode: the namespaces it trusts are named (issue 28).
        "tenancy": {"mode": "Single"},
        "watchNamespaces": ["vision", "audio"],
        "leaderElection": {"enabled": True, "leaseName": "rtp-leader"},
        "replicaCount": 3,
        "peering": {"enabled": True},
        "metrics": {"enabled": False, "bindAddress": "127.0.0.1"},
        "livenessProbe": {"enabled": False},
        "operator": {
            "tickSeconds": 2.5,
            "observeSeconds": 120,
            "maxWorkers": 4,
            "awsCallsPerSecond": 0,
            "fetchConcurrency": 8,
            "allowedRolePatterns": [
                "arn:aws:iam::111122223333:role/vision-*",
                "arn:aws:iam::111122223333:role/audio-*",
            ],
        },
    },
    "irsa-monitoring": {
        "replicaCount": 1,
        "leaderElection": {"enabled": False},
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": IRSA_ROLE}},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "networkPolicy": NARROW_NETWORK_POLICY,
        "resources": {
            "requests": {"cpu": "250m", "memory": "384Mi"},
            "limits": {"cpu": "2", "memory": "1Gi"},
        },
        "image": {"tag": "0.1.0-rc1", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "registry-credentials"}],
        "podAnnotations": {"example.com/team": "ml-platform"},
        "podLabels": {"example.com/cost-center": "ml"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/arch",
                                    "operator": "In",
                                    "values": ["amd64", "arm64"],
                                }
                            ]
                        }
                    ]
                }
            }
        },
        "extraEnv": [{"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"}],
    },
    "sharded": {
        "shards": 3,
        "podDisruptionBudget": {"enabled": True},
    },
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [tools.helm_path(), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def _values_args(values: Mapping[str, Any], directory: Path) -> list[str]:
    path = directory / "values.yaml"
    path.write_text(json.dumps(values))  # JSON is YAML
    return ["--values", str(path)]


def template_text(
    values: Mapping[str, Any] | None = None,
    *extra: str,
    namespace: str = NAMESPACE,
    release: str = RELEASE,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as tmp:
        args = ["template", release, str(CHART_DIR), "--namespace", namespace]
        args += _values_args(values or {}, Path(tmp))
        return helm(*args, *extra, check=check)


def render(
    values: Mapping[str, Any] | None = None,
    *extra: str,
    namespace: str = NAMESPACE,
    release: str = RELEASE,
) -> list[dict[str, Any]]:
    """`helm template` parsed: every non-empty document."""
    text = template_text(values, *extra, namespace=namespace, release=release).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


def lint(values: Mapping[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as tmp:
        return helm("lint", "--strict", str(CHART_DIR), *_values_args(values or {}, Path(tmp)))


def by_kind(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def workload(docs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The operator's workload: the Deployment, or the StatefulSet when sharded."""
    found = [doc for doc in docs if doc["kind"] in ("Deployment", "StatefulSet")]
    assert len(found) == 1, f"expected one workload, found {[d['kind'] for d in found]}"
    return found[0]


def container_env(deployment: dict[str, Any]) -> dict[str, Any]:
    """name -> value (or the valueFrom mapping) of the operator container (of a Deployment or
    a StatefulSet)."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def as_yaml_stream(docs: Iterable[dict[str, Any]]) -> str:
    """Documents for kubectl: JSON, so that no string is re-typed by a YAML 1.1 reader
    (the API server's YAML decoder reads an unquoted `n` or `y` as a boolean)."""
    return "\n---\n".join(json.dumps(doc) for doc in docs) + "\n"
