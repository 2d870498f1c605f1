"""Scoped tenancy at admission, on a real kube-apiserver: the chart's
ValidatingAdmissionPolicy (CEL, the RetrainingTenant as its param) refuses the issue's
hostile team-B policy with a message naming the field, and admits each team's own policy."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helmkit import by_kind, render

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.reconcile import governance, tenancy
from retraining_operator.tenancy_api import Tenant
from support.envtest import REPO_ROOT
from support.kube import KubeCluster, eventually

pytestmark = pytest.mark.kube

TENANT_CRD = REPO_ROOT / "crds" / "retrainingtenants.yaml"
CHART = REPO_ROOT / "charts" / "a2i-retraining-operator"
ACCOUNT_A, ACCOUNT_B = "111111111111", "222222222222"


def tenant(name: str, namespace: str, account: str, team: str) -> dict[str, Any]:
    return {
        "apiVersion": "retraining.hitl.dev/v1alpha1",
        "kind": "RetrainingTenant",
        "metadata": {"name": name},
        "spec": {
            "namespaces": [namespace],
            "aws": {"roleArn": f"arn:aws:iam::{account}:role/{team}-operator"},
            "allow": {
                "trainingRoleArns": [f"arn:aws:iam::{account}:role/{team}-sagemaker-*"],
                "flowDefinitionArns": [f"arn:aws:sagemaker:*:{account}:flow-definition/{team}-*"],
                "endpointNames": [f"{team}-*"],
                "instanceTypes": ["ml.m5.*", "ml.p3.2xlarge"],
                "sqsQueueUrls": [f"https://sqs.us-east-1.amazonaws.com/{account}/{team}-*"],
                "modelPackageGroups": [f"{team}-*"],
                "subnets": [f"subnet-0{team[-1]}*"],
                "securityGroupIds": [f"sg-0{team[-1]}*"],
                "kmsKeys": [f"arn:aws:kms:*:{account}:key/*"],
                "s3": {"read": [f"s3://{team}-data/"], "write": [f"s3://{team}-data/loop/"]},
            },
            "limits": {"maxInstanceHours": 200},
        },
    }


def policy(namespace: str, account: str, team: str) -> dict[str, Any]:
    example = yaml.safe_load((REPO_ROOT / "examples" / "pascal-voc-detector.yaml").read_text())
    spec = example["spec"]
    spec["aws"].pop("roleArn")
    spec["humanLoops"]["flowDefinitionArn"] = (
        f"arn:aws:sagemaker:us-east-1:{account}:flow-definition/{team}-review"
    )
    spec["dataset"]["outputS3Uri"] = f"s3://{team}-data/loop/a2i"
    spec["dataset"]["validation"]["manifestS3Uri"] = f"s3://{team}-data/voc/validation.manifest"
    spec["dataset"]["replay"]["manifestS3Uri"] = f"s3://{team}-data/voc/train.manifest"
    spec["training"]["roleArn"] = f"arn:aws:iam::{account}:role/{team}-sagemaker-train"
    spec["training"]["outputS3Uri"] = f"s3://{team}-data/loop/models"
    spec["deployment"]["endpointName"] = f"{team}-detector"
    spec["deployment"]["autoRollbackAlarms"] = []
    spec["deployment"]["instanceType"] = "ml.m5.xlarge"
    example["metadata"] = {"name": f"{team}-detector", "namespace": namespace}
    return example


@pytest.fixture
def scoped_admission(
    kube: KubeCluster, rtp_crd: dict[str, Any], kube_namespace: str
) -> Iterator[tuple[str, str]]:
    """Two teams' namespaces and tenants, and the chart's admission policy (removed after:
    it is cluster-wide)."""
    kube.apply_crd(TENANT_CRD)
    suffix = secrets.token_hex(3)
    team_a, team_b = kube_namespace, kube.create_namespace(f"{kube_namespace[:50]}-b")
    docs = render({"tenancy": {"mode": "Scoped"}}, namespace=kube_namespace)
    admission = by_kind(docs, "ValidatingAdmissionPolicy") + by_kind(
        docs, "ValidatingAdmissionPolicyBinding"
    )
    assert len(admission) == 2
    tenants = [
        tenant(f"team-a-{suffix}", team_a, ACCOUNT_A, "team-a"),
        tenant(f"team-b-{suffix}", team_b, ACCOUNT_B, "team-b"),
    ]
    for obj in [*tenants, *admission]:
        result = kube.apply(obj)
        assert result.returncode == 0, result.stderr
    try:
        yield team_a, team_b
    finally:
        for obj in admission:
            kube.kubectl("delete", obj["kind"], obj["metadata"]["name"], "--wait=false")
        for obj in tenants:
            kube.kubectl("delete", "retrainingtenant", obj["metadata"]["name"], "--wait=false")
        kube.kubectl("delete", "namespace", team_b, "--wait=false")


def refusal(kube: KubeCluster, body: dict[str, Any]) -> str | None:
    """The API server's refusal of `body`, or None (then the object is deleted again: right
    after the binding is created, the API server may not enforce it for a moment)."""
    result = kube.apply(copy.deepcopy(body))
    if result.returncode == 0:
        meta = body["metadata"]
        kube.kubectl("delete", "rtp", meta["name"], "-n", meta["namespace"], "--wait=false")
        return None
    return result.stderr


def hostile(team_b: str) -> dict[str, Any]:
    """The issue's team B: its own namespace, team A's flow, endpoint and roles."""
    body = policy(team_b, ACCOUNT_B, "team-b")
    body["metadata"]["name"] = "hostile"
    spec = body["spec"]
    spec["humanLoops"]["flowDefinitionArn"] = (
        f"arn:aws:sagemaker:us-east-1:{ACCOUNT_A}:flow-definition/team-a-review"
    )
    spec["deployment"]["endpointName"] = "team-a-detector"
    return body


def test_each_team_may_apply_its_own_policy(
    kube: KubeCluster, scoped_admission: tuple[str, str]
) -> None:
    team_a, team_b = scoped_admission
    for namespace, account, team in ((team_a, ACCOUNT_A, "team-a"), (team_b, ACCOUNT_B, "team-b")):
        body = policy(namespace, account, team)
        # The binding takes a moment to be enforced; retry while it is not yet in effect.
        eventually(lambda body=body: kube.apply(body).returncode == 0, timeout=30, what=team)


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("spec.humanLoops.flowDefinitionArn", None),
        ("spec.deployment.endpointName", "team-a-detector"),
        ("spec.training.roleArn", f"arn:aws:iam::{ACCOUNT_A}:role/team-a-sagemaker-admin"),
        ("spec.aws.roleArn", f"arn:aws:iam::{ACCOUNT_A}:role/team-a-operator"),
        ("spec.dataset.replay.manifestS3Uri", "s3://team-a-data/voc/train.manifest"),
        ("spec.dataset.outputS3Uri", "s3://team-b-data/voc"),  # readable, not writable
        ("spec.training.resources.instanceType", "ml.p4d.24xlarge"),
        ("spec.training", "instances"),
        # spec.gate.minimum -1 is refused by the CRD itself now (gate-minimum-negative.yaml).
        # Issue 27: another team's queue would take its events.
        (
            "spec.humanLoops.events.sqsQueueUrl",
            f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT_A}/team-a-events",
        ),
    ],
)
def test_out_of_scope_fields_are_refused_by_name(
    kube: KubeCluster, scoped_admission: tuple[str, str], field: str, change: Any
) -> None:
    _, team_b = scoped_admission
    body = policy(team_b, ACCOUNT_B, "team-b")
    body["metadata"]["name"] = "out-of-scope"
    spec = body["spec"]
    if field == "spec.humanLoops.flowDefinitionArn":
        body = hostile(team_b)
    elif field == "spec.training":
        spec["training"]["resources"]["instanceCount"] = 100
        spec["training"]["maxRuntime"] = "672h"
    else:
        *parents, leaf = field.split(".")[1:]
        node = spec
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = change

    message = eventually(lambda: refusal(kube, body), timeout=30, what=f"{field} refused")
    assert "ValidatingAdmissionPolicy" in message
    assert field in message, message


def test_hostile_policy_is_refused_with_the_field(
    kube: KubeCluster, scoped_admission: tuple[str, str], tmp_path: Path
) -> None:
    _, team_b = scoped_admission
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(hostile(team_b)))

    def refused() -> str | None:
        result = kube.kubectl("apply", "-f", str(path))
        if result.returncode == 0:  # the binding not enforced yet: undo, try again
            kube.kubectl("delete", "-f", str(path), "--wait=false")
            return None
        return result.stderr

    message = eventually(refused, timeout=30, what="hostile policy refused")
    assert "spec.humanLoops.flowDefinitionArn" in message
    assert kube.kubectl("get", "rtp", "hostile", "-n", team_b).returncode != 0


# One foreign value per row of the governance table: the policy is team B's own but for that.
A_QUEUE = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT_A}/team-a-events"
A_KEY = f"arn:aws:kms:us-east-1:{ACCOUNT_A}:key/0a0a0a0a"
B_VPC = {"subnets": ["subnet-0b1"], "securityGroupIds": ["sg-0b1"]}
FOREIGN: dict[str, Callable[[dict[str, Any]], None]] = {
    "spec.training.roleArn": lambda s: s["training"].update(
        roleArn=f"arn:aws:iam::{ACCOUNT_A}:role/team-a-sagemaker-admin"),
    "spec.humanLoops.flowDefinitionArn": lambda s: s["humanLoops"].update(
        flowDefinitionArn=f"arn:aws:sagemaker:us-east-1:{ACCOUNT_A}:flow-definition/team-a-review"),
    "spec.humanLoops.events.sqsQueueUrl": lambda s: s["humanLoops"].update(
        events={"sqsQueueUrl": A_QUEUE}),
    "spec.deployment.endpointName": lambda s: s["deployment"].update(
        endpointName="team-a-detector"),
    "spec.registry.modelPackageGroupName": lambda s: s.update(
        registry={"modelPackageGroupName": "team-a-models"}),
    "spec.training.image": lambda s: (s["training"].pop("algorithm"), s["training"].update(
        image="999999999999.dkr.ecr.us-east-1.amazonaws.com/evil:latest")),
    "spec.training.resources.instanceType": lambda s: s["training"]["resources"].update(
        instanceType="ml.p4d.24xlarge"),
    "spec.deployment.instanceType": lambda s: s["deployment"].update(
        instanceType="ml.p4d.24xlarge"),
    "spec.deployment.shadow.instanceType": lambda s: s["deployment"].update(
        shadow={"instanceType": "ml.p4d.24xlarge"}),
    "spec.deployment.shadow.roleArn": lambda s: s["deployment"].update(
        shadow={"roleArn": f"arn:aws:iam::{ACCOUNT_A}:role/team-a-sagemaker-admin"}),
    "spec.deployment.shadow.instanceCount": lambda s: s["deployment"].update(
        shadow={"instanceCount": 100}),
    "spec.deployment.shadow.dataCapture.destinationS3Uri": lambda s: s["deployment"].update(
        shadow={"dataCapture": {"destinationS3Uri": "s3://team-a-data/capture"}}),
    "spec.deployment.autoRollbackAlarms[]": lambda s: s["deployment"].update(
        autoRollbackAlarms=["team-a-5xx"]),
    "spec.training.vpcConfig.subnets[]": lambda s: s["training"].update(
        vpcConfig={**B_VPC, "subnets": ["subnet-0a1"]}),
    "spec.training.vpcConfig.securityGroupIds[]": lambda s: s["training"].update(
        vpcConfig={**B_VPC, "securityGroupIds": ["sg-0a1"]}),
    "spec.training.outputKmsKeyId": lambda s: s["training"].update(outputKmsKeyId=A_KEY),
    "spec.training.volumeKmsKeyId": lambda s: s["training"].update(volumeKmsKeyId=A_KEY),
    "spec.training.enableNetworkIsolation": lambda s: s["training"].update(
        enableNetworkIsolation=False),
    "spec.dataset.outputS3Uri": lambda s: s["dataset"].update(outputS3Uri="s3://team-b-data/voc"),
    "spec.training.outputS3Uri": lambda s: s["training"].update(
        outputS3Uri="s3://team-a-data/models"),
    "spec.training.spot.checkpointS3Uri": lambda s: s["training"].update(
        spot={"enabled": True, "maxWait": "120h", "checkpointS3Uri": "s3://team-a-data/ckpt"}),
    "spec.dataset.validation.manifestS3Uri": lambda s: s["dataset"]["validation"].update(
        manifestS3Uri="s3://team-a-data/voc/validation.manifest"),
    "spec.dataset.replay.manifestS3Uri": lambda s: s["dataset"]["replay"].update(
        manifestS3Uri="s3://team-a-data/voc/train.manifest"),
    "spec.training.baseModel.s3Uri": lambda s: s["training"].update(
        baseModel={"s3Uri": "s3://team-a-data/model.tar.gz"}),
    "spec.deployment.initialInstanceCount": lambda s: s["deployment"].update(
        initialInstanceCount=100),
    "spec.training (instance-hours)": lambda s: s["training"]["resources"].update(
        instanceCount=100),
    "spec.training.tuning.maxParallelJobs": lambda s: s["training"].update(
        maxRuntime="10h",
        tuning={"maxJobs": 4, "maxParallelJobs": 3,
                "ranges": {"learning_rate": {"min": 0.00001, "max": 0.001}}}),
}  # fmt: skip


def test_every_governed_field_has_a_foreign_value_here() -> None:
    assert set(FOREIGN) == {row.path for row in governance.TABLE}


def test_the_generated_admission_rules_are_current() -> None:
    generated = governance.render_template()
    assert (CHART / "templates" / "_governance.tpl").read_text() == generated, (
        "run `make admission`: the chart's rules must come from the governance table"
    )


@pytest.mark.parametrize("row", governance.TABLE, ids=lambda row: row.path)
def test_admission_and_the_operator_refuse_the_same_field(
    kube: KubeCluster, scoped_admission: tuple[str, str], row: governance.Row
) -> None:
    """Row by row, on the real kube-apiserver: the ValidatingAdmissionPolicy and the operator's
    own check (`tenancy.scope_problems`) refuse exactly this field, for the same policy."""
    _, team_b = scoped_admission
    tenant_b = Tenant.from_body(tenant("team-b", team_b, ACCOUNT_B, "team-b"))
    body = policy(team_b, ACCOUNT_B, "team-b")
    assert not tenancy.scope_problems(RetrainingPolicySpec.model_validate(body["spec"]), tenant_b)
    body["metadata"]["name"] = "governed"
    FOREIGN[row.path](body["spec"])
    operator_says = tenancy.scope_problems(
        RetrainingPolicySpec.model_validate(body["spec"]), tenant_b
    )
    assert len(operator_says) == 1, operator_says
    assert operator_says[0].startswith(row.path), operator_says
    message = eventually(lambda: refusal(kube, body), timeout=30, what=f"{row.path} refused")
    assert "ValidatingAdmissionPolicy" in message
    assert row.path in message, message


def test_the_tenant_api_is_explained(kube: KubeCluster, rtp_crd: dict[str, Any]) -> None:
    kube.apply_crd(TENANT_CRD)
    out = kube.kubectl("explain", "retrainingtenant.spec.allow.s3", "--recursive=false")
    assert out.returncode == 0, out.stderr
    assert "folder prefixes" in " ".join(out.stdout.split())
    scope = kube.kubectl_json("get", "crd", "retrainingtenants.retraining.hitl.dev")
    assert scope["spec"]["scope"] == "Cluster"
