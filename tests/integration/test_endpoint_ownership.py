"""Endpoint ownership against the stand-ins: the first policy to roll an endpoint tags it
as its own; a second policy on the same endpoint is refused (EndpointOwnedElsewhere) and
never changes it unless it adopts; an out-of-band UpdateEndpoint shows as `Drifted` within
one observe interval."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import boto3
import pytest

from integration.test_controller import policy_spec
from retraining_operator.api import RetrainingPolicyStatus
from retraining_operator.aws.session import AwsSession, ClientSettings
from retraining_operator.config import OperatorConfig
from retraining_operator.policy_pass.context import Clock
from retraining_operator.policy_pass.controller import Controller, PolicyView
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.tenancy import TAG_ENDPOINT_OWNER
from retraining_operator.tenancy_api import ADOPT_ENDPOINT_ANNOTATION
from retraining_standins.demo import DemoWorld, seed_demo
from retraining_standins.stack import AwsStandins

OBSERVE = 60.0


class Policy:
    def __init__(self, aws: AwsStandins, c: Controller, ref: PolicyRef, spec: dict[str, Any]):
        self.aws, self.c, self.ref, self.spec = aws, c, ref, spec
        self.status: dict[str, Any] = {}
        self.annotations: dict[str, str] = {}
        self.events: list[str] = []

    def tick(self) -> RetrainingPolicyStatus:
        def checkpoint(new: RetrainingPolicyStatus) -> None:
            self.status = new.to_wire()

        view = PolicyView(self.ref, 1, dict(self.annotations), copy.deepcopy(self.spec),
                          copy.deepcopy(self.status))  # fmt: skip
        result = self.c.reconcile(view, checkpoint)
        self.events += [e.reason for e in result.events]
        return RetrainingPolicyStatus.model_validate(self.status)

    def condition(self, kind: str) -> dict[str, Any]:
        return {c["type"]: c for c in self.status.get("conditions", [])}.get(kind, {})


@pytest.fixture
def world(aws: AwsStandins) -> DemoWorld:
    return seed_demo(aws, 12)


def owned_elsewhere(policy: Policy) -> bool:
    return bool(policy.condition("Degraded").get("reason") == "EndpointOwnedElsewhere")


def until(aws: AwsStandins, policies: list[Policy], predicate: Any, limit: int = 80) -> None:
    for _ in range(limit):
        aws.clock.advance(60)
        for policy in policies:
            policy.tick()
        if predicate():
            return
    raise AssertionError([(p.ref.name, p.status.get("conditions"), p.events) for p in policies])


def test_second_policy_on_one_endpoint_is_refused_and_drift_is_seen(
    aws: AwsStandins, world: DemoWorld
) -> None:
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})
    c = Controller(
        OperatorConfig(tick_seconds=10, observe_seconds=OBSERVE, aws_calls_per_second=0),
        lambda ref, spec: AwsSession(spec.aws.region, settings=ClientSettings(max_attempts=2)),
        clock=Clock(aws.clock.now, lambda: aws.clock.now().timestamp()),
        started_at=aws.clock.now() - timedelta(hours=1),
    )  # fmt: skip
    first = Policy(aws, c, PolicyRef("team-a", "detector", "uid-first"), policy_spec(world))
    until(aws, [first], lambda: (first.status.get("serving") or {}).get("runId") is not None)
    sm = boto3.client("sagemaker", region_name="us-east-1")
    arn = sm.describe_endpoint(EndpointName=world.endpoint_name)["EndpointArn"]
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
    assert tags[TAG_ENDPOINT_OWNER] == "uid-first"
    assert first.condition("Drifted").get("status") == "False"

    # Its own ledger (the same reviews, ingested again), the same endpoint.
    spec = policy_spec(world)
    spec["dataset"]["outputS3Uri"] = f"s3://{world.bucket}/second"
    second = Policy(aws, c, PolicyRef("team-b", "detector", "uid-second"), spec)
    served = sm.describe_endpoint(EndpointName=world.endpoint_name)["EndpointConfigName"]
    until(aws, [second], lambda: owned_elsewhere(second))
    assert "uid-first" in second.condition("Degraded")["message"]
    assert sm.describe_endpoint(EndpointName=world.endpoint_name)["EndpointConfigName"] == served
    updates = aws.log.calls("sagemaker", "UpdateEndpoint")
    assert len(updates) == 1  # the first policy's roll only

    # Someone changes the endpoint out of band: the owner sees Drifted within one interval.
    sm.update_endpoint(
        EndpointName=world.endpoint_name, EndpointConfigName=world.endpoint_config_name
    )
    before = aws.clock.now()
    until(aws, [first], lambda: first.condition("Drifted").get("status") == "True")
    assert (aws.clock.now() - before).total_seconds() <= OBSERVE + 60
    assert "Drifted" in first.events
    assert world.endpoint_config_name in first.condition("Drifted")["message"]


@pytest.mark.parametrize("admin_allows", [False, True])
def test_adopting_needs_the_annotation_and_the_admin(
    aws: AwsStandins, world: DemoWorld, admin_allows: bool
) -> None:
    """An endpoint tagged as another policy's is taken over only with the adopt annotation,
    and only where an admin allowed adoption (issue 28: here Single mode's
    --allow-endpoint-adoption; the annotation alone took it over before)."""
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})
    sm = boto3.client("sagemaker", region_name="us-east-1")
    arn = sm.describe_endpoint(EndpointName=world.endpoint_name)["EndpointArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": TAG_ENDPOINT_OWNER, "Value": "uid-gone"}])
    c = Controller(
        OperatorConfig(tick_seconds=10, observe_seconds=0, aws_calls_per_second=0,
                       allow_endpoint_adoption=admin_allows),
        lambda ref, spec: AwsSession(spec.aws.region, settings=ClientSettings(max_attempts=2)),
        clock=aws.clock.now, started_at=aws.clock.now() - timedelta(hours=1),
    )  # fmt: skip
    policy = Policy(aws, c, PolicyRef("team-a", "detector", "uid-new"), policy_spec(world))
    until(aws, [policy], lambda: owned_elsewhere(policy))
    policy.annotations[ADOPT_ENDPOINT_ANNOTATION] = "true"
    if not admin_allows:
        for _ in range(20):
            aws.clock.advance(60)
            policy.tick()
        assert owned_elsewhere(policy)
        assert "--allow-endpoint-adoption" in policy.condition("Degraded")["message"]
        tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
        assert tags[TAG_ENDPOINT_OWNER] == "uid-gone"
        assert not aws.log.calls("sagemaker", "UpdateEndpoint")
        return
    until(aws, [policy], lambda: (policy.status.get("serving") or {}).get("runId") is not None)
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
    assert tags[TAG_ENDPOINT_OWNER] == "uid-new"
