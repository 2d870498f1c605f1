"""Scoped tenancy end to end: the real operator (as the chart's ServiceAccount, Scoped mode)
on the real kube-apiserver, no admission policy installed (bypassed): team B's hostile
policy naming team A's flow, buckets and endpoint is refused by the operator (Degraded, an
Event) with zero AWS calls, while team A's policy, alongside, works as its tenant's role."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from retraining_operator.aws.session import role_session_name
from retraining_standins.demo import DemoWorld, seed_demo
from retraining_standins.demo_run import demo_policy
from retraining_standins.stack import AwsStandins
from support.envtest import REPO_ROOT
from support.kube import KubeCluster
from support.operator import OperatorProcess, chart_rbac, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kube]
ACCOUNT = "123456789012"


@pytest.fixture
def world(aws: AwsStandins) -> DemoWorld:
    return seed_demo(aws, 12)


def tenant(name: str, namespace: str, world: DemoWorld, *, owner: bool) -> dict[str, Any]:
    team = "a" if owner else "b"
    bucket = world.bucket if owner else f"team-{team}-bucket"
    return {
        "apiVersion": "retraining.hitl.dev/v1alpha1",
        "kind": "RetrainingTenant",
        "metadata": {"name": name},
        "spec": {
            "namespaces": [namespace],
            "aws": {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/team-{team}-operator"},
            "allow": {
                "trainingRoleArns": [world.role_arn if owner else "*:role/team-b-*"],
                "flowDefinitionArns": [world.flow_definition_arn if owner else "*/team-b-*"],
                "endpointNames": [world.endpoint_name if owner else "team-b-*"],
                "instanceTypes": ["ml.*"],
                "s3": {"read": [f"s3://{bucket}/"], "write": [f"s3://{bucket}/"]},
            },
            # The demo's run reserves 100 instance-hours (the default limit is 48).
            "limits": {"maxInstanceHours": 200},
            "quota": {"instanceHours": 400},
        },
    }


def test_hostile_policy_refused_by_the_operator_with_zero_aws_calls(
    kube: KubeCluster,
    rtp_crd: Any,
    kube_namespace: str,
    aws: AwsStandins,
    world: DemoWorld,
    operator_factory: Any,
) -> None:
    kube.apply_crd(REPO_ROOT / "crds" / "retrainingtenants.yaml")
    team_a = kube_namespace
    team_b = kube.create_namespace(f"{kube_namespace[:50]}-b")
    suffix = secrets.token_hex(3)
    tenants = [
        tenant(f"a-{suffix}", team_a, world, owner=True),
        tenant(f"b-{suffix}", team_b, world, owner=False),
    ]
    for body in tenants:
        kube.apply(body, check=True)
    sa_namespace, sa = chart_rbac(kube, "tenancy.mode=Scoped")
    kubeconfig = kube.service_account_kubeconfig(sa_namespace, sa, create=False)
    aws.log.clear()
    operator: OperatorProcess = operator_factory(
        kubeconfig, namespaces=(team_a, team_b), extra_args=("--tenancy-mode=Scoped",)
    ).start()
    try:
        for namespace in (team_a, team_b):
            body = demo_policy(world, min_new_samples=10)
            body["metadata"]["namespace"] = namespace
            kube.apply(body, check=True)

        def condition(namespace: str) -> dict[str, Any] | None:
            obj = kube.kubectl_json("get", "rtp", "pascal-detector", namespace=namespace)
            found = {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}
            return found.get("Degraded")

        degraded = wait_for(
            lambda: (c := condition(team_b)) and c["status"] == "True" and c,
            timeout=60, what="team B Degraded", on_timeout=operator.log,
        )  # fmt: skip
        assert degraded["reason"] == "OutOfScope"
        assert "spec.humanLoops.flowDefinitionArn" in degraded["message"]
        events = kube.kubectl_json("get", "events", namespace=team_b)["items"]
        assert "OutOfScope" in [e["reason"] for e in events]
        # Team A works alongside, as its tenant's role.
        wait_for(
            lambda: aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops"),
            timeout=60, what="team A polls", on_timeout=operator.log,
        )  # fmt: skip
        assumed = {c.params["RoleArn"] for c in aws.log.calls("sts", "AssumeRole")}
        assert assumed == {f"arn:aws:iam::{ACCOUNT}:role/team-a-operator"}
        sessions = {c.params["RoleSessionName"] for c in aws.log.calls("sts", "AssumeRole")}
        assert sessions == {role_session_name(team_a)}
        assert (condition(team_a) or {}).get("status") != "True", condition(team_a)
        # No call names team B's policy: every call was made as team A's tenant role (the
        # first AWS call of any session is its AssumeRole, and there is only team A's).
        assert aws.log.calls()[0].operation == "AssumeRole"
    finally:
        operator.stop()
        for body in tenants:
            kube.kubectl("delete", "retrainingtenant", body["metadata"]["name"], "--wait=false")


def test_the_default_install_refuses_a_namespace_without_tenant_and_serves_one_with(
    kube: KubeCluster,
    rtp_crd: Any,
    kube_namespace: str,
    aws: AwsStandins,
    world: DemoWorld,
    operator_factory: Any,
    tmp_path: Any,
) -> None:
    """Issue 28: with the chart's *default* values (Scoped, its admission policy, its RBAC),
    team B's hostile policy (team A's flow, bucket and endpoint, from namespace team-b) gets no
    AWS call and a Degraded condition naming why; team A's policy, whose tenant an admin made
    with one command (`retraining-operator tenant`), trains beside it as its tenant's role.
    Before, the default install was Single mode: team B trained as team A."""
    import subprocess
    import sys

    import yaml

    from support.operator import render_chart

    docs = render_chart()  # the default values
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RTP_TENANCY_MODE"] == "Scoped"
    kube.apply_crd(REPO_ROOT / "crds" / "retrainingtenants.yaml")
    team_a, team_b = kube_namespace, kube.create_namespace(f"{kube_namespace[:50]}-b")
    policy_a = demo_policy(world, min_new_samples=10)
    policy_a["metadata"]["namespace"] = team_a
    policy_file = tmp_path / "team-a.yaml"
    policy_file.write_text(yaml.safe_dump(policy_a))
    role = f"arn:aws:iam::{ACCOUNT}:role/team-a-operator"
    printed = subprocess.run(
        [sys.executable, "-m", "retraining_operator", "tenant", f"a-{secrets.token_hex(3)}",
         "-n", team_a, "--role-arn", role, "--from-policy", str(policy_file),
         "--a2i-output", f"s3://{world.bucket}/a2i-results"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    first_tenant = yaml.safe_load(printed)
    kube.apply(first_tenant, check=True)
    admission = [d for d in docs if d["kind"].startswith("ValidatingAdmissionPolicy")]
    assert len(admission) == 2  # on by default
    for obj in admission:
        kube.apply(obj, check=True)
    sa_namespace, sa = chart_rbac(kube)  # the default values' RBAC
    kubeconfig = kube.service_account_kubeconfig(sa_namespace, sa, create=False)
    aws.log.clear()
    operator: OperatorProcess = operator_factory(
        kubeconfig, namespaces=(team_a, team_b), extra_args=("--tenancy-mode=Scoped",)
    ).start()
    try:
        hostile = demo_policy(world, min_new_samples=10)
        hostile["metadata"]["namespace"] = team_b
        kube.apply(hostile, check=True)  # no tenant covers team-b: admission leaves it to us
        kube.apply(policy_a, check=True)

        def condition(namespace: str, kind: str) -> dict[str, Any]:
            obj = kube.kubectl_json("get", "rtp", "pascal-detector", namespace=namespace)
            found = {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}
            return found.get(kind) or {}

        wait_for(
            lambda: condition(team_b, "Degraded").get("status") == "True",
            timeout=60, what="team B Degraded", on_timeout=operator.log,
        )  # fmt: skip
        degraded = condition(team_b, "Degraded")
        assert degraded["reason"] == "TenantMissing"
        assert team_b in degraded["message"]

        def run_a() -> dict[str, Any]:
            obj = kube.kubectl_json("get", "rtp", "pascal-detector", namespace=team_a)
            return dict((obj.get("status") or {}).get("currentRun") or {})

        wait_for(
            lambda: run_a().get("trainingJobName"),
            timeout=120, what="team A training", on_timeout=operator.log,
        )  # fmt: skip
        assert condition(team_a, "Degraded").get("status") != "True"
        roles = {c.params["RoleArn"] for c in aws.log.calls("sts", "AssumeRole")}
        assert roles == {role}  # every AWS session was team A's tenant's
        assert aws.log.calls()[0].operation == "AssumeRole"
        assert condition(team_b, "Degraded").get("reason") == "TenantMissing"
    finally:
        operator.stop()
        kube.kubectl("delete", "retrainingtenant", first_tenant["metadata"]["name"], "--wait=false")
        for obj in admission:
            kube.kubectl("delete", obj["kind"], obj["metadata"]["name"], "--wait=false")
