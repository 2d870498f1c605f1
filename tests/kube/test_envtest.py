"""The envtest control plane itself: versions, RBAC, and the restricted-identity helpers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from support.envtest import ENVTEST_DIR, pinned_k8s_version
from support.kube import KubeCluster

pytestmark = pytest.mark.kube


def test_api_server_runs_the_pinned_release(kube_api: Any) -> None:
    from kubernetes import client

    pinned = pinned_k8s_version()  # e.g. 1.34.4
    info = client.VersionApi(kube_api).get_code()
    assert info.git_version == f"v{pinned}"
    assert info.minor.rstrip("+") == pinned.split(".")[1]
    # Every staging module is pinned to the matching v0.Y.Z (1.34.4 -> v0.34.4).
    gomod = (ENVTEST_DIR / "apiserver" / "go.mod").read_text()
    staging = re.findall(r"^\s+(k8s\.io/\S+) => k8s\.io/\S+ (v\S+)$", gomod, re.MULTILINE)
    assert len(staging) > 20
    assert {version for _, version in staging} == {"v0." + pinned.split(".", 1)[1]}


def _grant_rtp_read(kube: KubeCluster, namespace: str, sa: str) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "rtp-reader", "namespace": namespace},
        "rules": [
            {
                "apiGroups": ["retraining.hitl.dev"],
                "resources": ["retrainingpolicies"],
                "verbs": ["get", "list", "watch"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "rtp-reader", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "rtp-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
    }
    for obj in (role, binding):
        result = kube.apply(obj)
        assert result.returncode == 0, result.stderr


def test_rbac_restricts_an_impersonated_service_account(
    kube: KubeCluster, rtp_crd: dict[str, Any], kube_namespace: str
) -> None:
    user = f"system:serviceaccount:{kube_namespace}:reader"
    assert not kube.can_i("list", "retrainingpolicies", as_user=user, namespace=kube_namespace)
    denied = kube.kubectl("get", "rtp", as_user=user, namespace=kube_namespace)
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr

    _grant_rtp_read(kube, kube_namespace, "reader")
    assert kube.can_i("list", "retrainingpolicies", as_user=user, namespace=kube_namespace)
    assert not kube.can_i("delete", "retrainingpolicies", as_user=user, namespace=kube_namespace)
    assert not kube.can_i("list", "retrainingpolicies", as_user=user, namespace="default")
    allowed = kube.kubectl("get", "rtp", as_user=user, namespace=kube_namespace)
    assert allowed.returncode == 0, allowed.stderr


def test_service_account_token_kubeconfig(
    kube: KubeCluster, rtp_crd: dict[str, Any], kube_namespace: str
) -> None:
    config = kube.service_account_kubeconfig(kube_namespace, "operator")
    assert isinstance(config, Path)
    whoami = kube.kubectl("auth", "whoami", "-o", "json", kubeconfig=config, check=True)
    status = json.loads(whoami.stdout)["status"]["userInfo"]
    assert status["username"] == f"system:serviceaccount:{kube_namespace}:operator"
    assert f"system:serviceaccounts:{kube_namespace}" in status["groups"]

    before = kube.kubectl("get", "rtp", kubeconfig=config)
    assert before.returncode != 0
    assert "Forbidden" in before.stderr
    _grant_rtp_read(kube, kube_namespace, "operator")
    after = kube.kubectl("get", "rtp", kubeconfig=config)
    assert after.returncode == 0, after.stderr

    # The Python client works with the same token kubeconfig.
    from kubernetes import client

    api = kube.api_client(config)
    try:
        listed = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "retraining.hitl.dev", "v1alpha1", kube_namespace, "retrainingpolicies"
        )
    finally:
        api.close()
    assert listed["items"] == []
