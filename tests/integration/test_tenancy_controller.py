"""Tenancy in the pass (Scoped mode) against the AWS stand-ins: a policy outside its
tenant is refused before any AWS call; one inside acts only as its tenant's role, with
session tags, ExternalId and the expected bucket owner."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from integration.test_controller import policy_spec
from retraining_operator.api import RetrainingPolicyStatus
from retraining_operator.aws.session import AwsSession, ClientSettings
from retraining_operator.config import OperatorConfig
from retraining_operator.policy_pass.controller import Controller, PolicyView, Tenancy
from retraining_operator.policy_pass.tenancy import StaticTenants
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.tenancy_api import TenancyMode, Tenant
from retraining_standins.demo import DemoWorld, seed_demo
from retraining_standins.stack import AwsStandins

ACCOUNT = "123456789012"
TEAM_A = PolicyRef(namespace="team-a", name="detector", uid="uid-a")
TEAM_B = PolicyRef(namespace="team-b", name="detector", uid="uid-b")


@pytest.fixture
def world(aws: AwsStandins) -> DemoWorld:
    return seed_demo(aws, 12)


def tenant(team: str, world: DemoWorld, *, owns_world: bool) -> Tenant:
    """Team A owns the demo world's flow, bucket and endpoint; team B owns look-alikes."""
    bucket = world.bucket if owns_world else f"{team}-bucket"
    return Tenant.from_body({
        "metadata": {"name": team, "uid": f"tenant-{team}"},
        "spec": {
            "namespaces": [team],
            "aws": {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/{team}-operator",
                    "externalId": f"{team}-external"},
            "allow": {
                "trainingRoleArns": [world.role_arn if owns_world else f"*:role/{team}-*"],
                "flowDefinitionArns": [world.flow_definition_arn if owns_world else f"*/{team}-*"],
                "endpointNames": [world.endpoint_name if owns_world else f"{team}-*"],
                "instanceTypes": ["ml.*"],
                "s3": {"read": [f"s3://{bucket}/"], "write": [f"s3://{bucket}/"]},
            },
            "expectedBucketOwner": ACCOUNT,
        },
    })  # fmt: skip


def controller(aws: AwsStandins, world: DemoWorld) -> Controller:
    return Controller(
        OperatorConfig(tick_seconds=10, observe_seconds=0, aws_calls_per_second=0,
                       tenancy_mode=TenancyMode.SCOPED),
        lambda ref, spec: AwsSession(spec.aws.region, settings=ClientSettings(max_attempts=2)),
        clock=aws.clock.now,
        started_at=aws.clock.now() - timedelta(hours=1),
        tenancy=Tenancy(StaticTenants([tenant("team-a", world, owns_world=True),
                               tenant("team-b", world, owns_world=False)])),
    )  # fmt: skip


def tick(c: Controller, ref: PolicyRef, spec: dict[str, Any], status: dict[str, Any]) -> Any:
    def checkpoint(new: RetrainingPolicyStatus) -> None:
        status.clear()
        status.update(new.to_wire())

    return c.reconcile(PolicyView(ref, 1, {}, copy.deepcopy(spec), copy.deepcopy(status)),
                       checkpoint)  # fmt: skip


def degraded(status: dict[str, Any]) -> dict[str, Any]:
    return {c["type"]: c for c in status["conditions"]}["Degraded"]


def test_the_hostile_team_b_policy_makes_no_aws_call(aws: AwsStandins, world: DemoWorld) -> None:
    """Team B names team A's flow, buckets and endpoint: refused before any call."""
    c = controller(aws, world)
    aws.log.clear()
    status: dict[str, Any] = {}
    result = tick(c, TEAM_B, policy_spec(world), status)
    condition = degraded(status)
    assert condition["status"] == "True"
    assert condition["reason"] == "OutOfScope"
    assert "spec.humanLoops.flowDefinitionArn" in condition["message"]
    assert "spec.deployment.endpointName" in condition["message"]
    assert [e.reason for e in result.events] == ["OutOfScope"]
    assert len(aws.log) == 0, aws.log.operations()


def test_a_namespace_without_tenant_is_refused(aws: AwsStandins, world: DemoWorld) -> None:
    c = controller(aws, world)
    aws.log.clear()
    status: dict[str, Any] = {}
    tick(c, PolicyRef("team-c", "detector", "uid-c"), policy_spec(world), status)
    assert degraded(status)["reason"] == "TenantMissing"
    assert len(aws.log) == 0


def test_team_a_acts_only_as_its_tenant_role(aws: AwsStandins, world: DemoWorld) -> None:
    c = controller(aws, world)
    aws.log.clear()
    status: dict[str, Any] = {}
    tick(c, TEAM_A, policy_spec(world), status)
    assert degraded(status)["status"] == "False", degraded(status)
    (assume, *_) = aws.log.calls("sts", "AssumeRole")
    assert assume.params["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/team-a-operator"
    assert assume.params["ExternalId"] == "team-a-external"
    assert assume.params["RoleSessionName"].startswith("rtp-team-a-")
    assert aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops")
    assert aws.log.calls()[0].service == "sts"  # nothing before the tenant's role


def test_events_carry_the_aws_code_and_the_log_the_message(
    aws: AwsStandins, world: DemoWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """AWS's message names the operator's role and account: tenants read only the code."""
    secret = f"User: arn:aws:sts::{ACCOUNT}:assumed-role/team-a-operator/x is not authorized"
    aws.faults.fail("sagemaker-a2i-runtime", "ListHumanLoops", status=400,
                    code="AccessDeniedException", message=secret)  # fmt: skip
    c = controller(aws, world)
    status: dict[str, Any] = {}
    result = tick(c, TEAM_A, policy_spec(world), status)
    condition = degraded(status)
    assert condition["status"] == "True"
    assert "AccessDeniedException" in condition["message"]
    texts = [condition["message"], *(e.message for e in result.events)]
    # (The flow ARN the policy itself names may appear; AWS's words may not.)
    assert not [text for text in texts if "assumed-role" in text or "authorized" in text], texts
    assert secret in caplog.text


def test_scoped_mode_checks_the_flow_output_before_the_first_read_of_a_new_ledger(
    aws: AwsStandins, world: DemoWorld
) -> None:
    """Issue 28: the flow definition's S3OutputPath was checked against the tenant's readable
    prefixes only once the ledger had recorded it: the first poll of a new ledger read all 12
    of another team's outputs (and changing dataset.outputS3Uri repeated it)."""
    reader = Tenant.from_body({
        "metadata": {"name": "team-a", "uid": "tenant-team-a"},
        "spec": {
            "namespaces": ["team-a"],
            "aws": {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/team-a-operator"},
            "allow": {
                "trainingRoleArns": [world.role_arn],
                "flowDefinitionArns": [world.flow_definition_arn],
                "endpointNames": [world.endpoint_name],
                "instanceTypes": ["ml.*"],
                # its own dataset prefix, the demo's manifests; not the flow's a2i-results/
                "s3": {"read": [f"s3://{world.bucket}/voc/"],
                       "write": [f"s3://{world.bucket}/team-a/"]},
            },
        },
    })  # fmt: skip
    c = Controller(
        OperatorConfig(tick_seconds=10, observe_seconds=0, aws_calls_per_second=0,
                       tenancy_mode=TenancyMode.SCOPED),
        lambda ref, spec: AwsSession(spec.aws.region, settings=ClientSettings(max_attempts=2)),
        clock=aws.clock.now, started_at=aws.clock.now() - timedelta(hours=1),
        tenancy=Tenancy(StaticTenants([reader])),
    )  # fmt: skip
    spec = policy_spec(world)
    spec["dataset"]["outputS3Uri"] = f"s3://{world.bucket}/team-a/dataset"
    spec["dataset"]["validation"] = {
        "manifestS3Uri": f"s3://{world.bucket}/voc/validation.manifest"
    }
    spec["dataset"]["replay"] = {"manifestS3Uri": f"s3://{world.bucket}/voc/train.manifest"}
    spec["training"]["outputS3Uri"] = f"s3://{world.bucket}/team-a/models"
    aws.log.clear()
    status: dict[str, Any] = {}
    tick(c, TEAM_A, spec, status)
    condition = degraded(status)
    assert condition["status"] == "True", condition
    assert condition["reason"] == "OutOfScope"
    assert "S3OutputPath" in condition["message"]
    outputs = [c for c in aws.log.calls("s3", "GetObject") if "output.json" in str(c.params)]
    assert outputs == []  # not one of the 12 reviewed outputs was read
    assert status["ingest"].get("pendingSamples", 0) == 0
