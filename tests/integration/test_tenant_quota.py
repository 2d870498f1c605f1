"""Tenant quotas (issue 28) against the AWS stand-ins: four policies of one tenant, all with
enough samples to train at once. Before quotas each started its own job (four concurrent jobs,
96 reserved instance-hours under a per-run cap of 24); now the tenant's quota holds, the runs
over it wait with `QuotaExceeded` (not failed), and start when quota frees."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from integration.test_controller import policy_spec
from integration.test_tenancy_controller import tenant
from retraining_operator.api import RetrainingPolicyStatus, RunStage
from retraining_operator.aws.session import AwsSession, ClientSettings
from retraining_operator.config import OperatorConfig
from retraining_operator.policy_pass.controller import Controller, PolicyView, Tenancy
from retraining_operator.policy_pass.tenancy import StaticTenants
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.tenancy_api import TenancyMode, Tenant
from retraining_standins.demo import DemoWorld, seed_demo
from retraining_standins.stack import AwsStandins

IN_FLIGHT = {RunStage.PREPARING.value, RunStage.TRAINING.value}


@pytest.fixture
def world(aws: AwsStandins) -> DemoWorld:
    return seed_demo(aws, 12)


def _tenant(world: DemoWorld, quota: dict[str, Any]) -> Tenant:
    body = tenant("team-a", world, owns_world=True).model_dump(by_alias=True, mode="json")
    body["metadata"] = {"name": "team-a", "uid": "tenant-team-a"}
    body["spec"]["quota"] = quota
    return Tenant.from_body(body)


class Team:
    """Four policies of one tenant, ticked together on the stand-ins' clock."""

    def __init__(self, aws: AwsStandins, world: DemoWorld, quota: dict[str, Any]) -> None:
        self.aws = aws
        self.c = Controller(
            OperatorConfig(tick_seconds=10, observe_seconds=0, aws_calls_per_second=0,
                           tenancy_mode=TenancyMode.SCOPED),
            lambda ref, spec: AwsSession(spec.aws.region, settings=ClientSettings(max_attempts=2)),
            clock=aws.clock.now, started_at=aws.clock.now() - timedelta(hours=1),
            tenancy=Tenancy(StaticTenants([_tenant(world, quota)])),
        )  # fmt: skip
        self.refs = [PolicyRef("team-a", f"detector-{i}", f"uid-{i}") for i in range(4)]
        self.specs = []
        for i in range(4):
            spec = policy_spec(world, strategy="None", blueGreen=None)
            spec["dataset"]["outputS3Uri"] = f"s3://{world.bucket}/policy-{i}"
            self.specs.append(spec)
        self.status: list[dict[str, Any]] = [{} for _ in self.refs]
        self.events: list[list[str]] = [[] for _ in self.refs]
        self.most_in_flight = 0

    def tick(self) -> None:
        for i, ref in enumerate(self.refs):

            def checkpoint(new: RetrainingPolicyStatus, i: int = i) -> None:
                self.status[i] = new.to_wire()

            view = PolicyView(ref, 1, {}, copy.deepcopy(self.specs[i]),
                              copy.deepcopy(self.status[i]))  # fmt: skip
            result = self.c.reconcile(view, checkpoint)
            self.events[i] += [e.reason for e in result.events]
        self.most_in_flight = max(self.most_in_flight, self.in_flight())

    def in_flight(self) -> int:
        return sum(1 for s in self.status if (s.get("currentRun") or {}).get("stage") in IN_FLIGHT)

    def waiting(self) -> list[dict[str, Any]]:
        found = []
        for s in self.status:
            conditions = {c["type"]: c for c in s.get("conditions", [])}
            quota = conditions.get("QuotaExceeded")
            if quota is not None and quota["status"] == "True":
                found.append(quota)
        return found

    def trained(self) -> int:
        return sum(1 for s in self.status if s.get("history"))

    def until(self, predicate: Any, limit: int = 200) -> None:
        for _ in range(limit):
            self.aws.clock.advance(30)
            self.tick()
            if predicate():
                return
        raise AssertionError([(s.get("currentRun"), s.get("conditions")) for s in self.status])


def test_concurrent_jobs_of_a_tenant_are_capped_and_the_rest_wait_then_start(
    aws: AwsStandins, world: DemoWorld
) -> None:
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})
    team = Team(aws, world, {"concurrentJobs": 2, "instanceHours": 100000, "window": "24h"})
    team.until(lambda: team.in_flight() == 2 and len(team.waiting()) == 2)
    waiting = team.waiting()
    assert "concurrentJobs is 2" in waiting[0]["message"]
    assert sum(events.count("QuotaExceeded") for events in team.events) == 2  # once each
    assert not any(s.get("phase") == "Failed" for s in team.status)
    team.until(lambda: team.trained() == 4)
    assert team.most_in_flight == 2
    assert len({s["history"][0]["trainingJobName"] for s in team.status}) == 4
    assert not team.waiting()
    assert sum(events.count("QuotaAvailable") for events in team.events) == 2


def test_instance_hours_per_window_count_reserved_then_billed(
    aws: AwsStandins, world: DemoWorld
) -> None:
    """Each run reserves 24 instance-hours (1 instance x maxRuntime 24h); the quota is 25 per
    24h: one run at a time may hold it, and once a run's job ended only its billed hours (a
    few minutes in the stand-ins) count, so the next one fits."""
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})
    team = Team(aws, world, {"concurrentJobs": 4, "instanceHours": 25, "window": "24h"})
    team.until(lambda: team.in_flight() == 1 and len(team.waiting()) == 3)
    assert "instanceHours 25" in team.waiting()[0]["message"]
    team.until(lambda: team.trained() == 4)
    assert team.most_in_flight == 1
    hours = [s["history"][0]["instanceHours"] for s in team.status]
    assert all(0 < h < 1 for h in hours), hours  # billed, not the 24 reserved
