"""The rollout workflow against the AWS stand-ins (SageMaker emulator + CloudWatch on moto).

Every test drives `advance_rollout` (or `rollback_to`) pass by pass the way the controller
does — call, then move the emulator's clock by the `retry_after` it answered — and checks
the outcome and the request log. The endpoint `od-endpoint` starts InService on a config
and model a user made (`od-config-1` / `od-model-1`), as in the seed notebook.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

import pytest

from retraining_operator.api import CurrentRun, HistoryEntry, RetrainingPolicySpec, RunStage
from retraining_operator.aws.session import AwsSession
from retraining_operator.flows.rollout import (
    RolloutProgress,
    RolloutRun,
    advance_rollout,
    cleanup,
    start_rollback,
)
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.rollout.blue_green import endpoint_config_request
from retraining_operator.reconcile.rollout.decision import RolloutResult
from retraining_operator.reconcile.rollout.errors import UnknownRollbackTarget
from retraining_operator.reconcile.rollout.requests import (
    ConfigTarget,
    LiveConfig,
    ModelSource,
    RolloutNames,
    model_request,
)
from retraining_standins.stack import AwsStandins
from unit.rollout_policies import IMAGE, POLICY, spec

pytestmark = pytest.mark.timeout(60)


def rollback_to(
    session: Any,
    policy: Any,
    policy_spec: Any,
    *,
    target: str,
    history: Any,
    run: CurrentRun | None,
    now: Any,
    image: str | None = None,
    poll: Any = None,
) -> RolloutProgress:
    """What the rollback and deploy stages do in one pass: start the run (first call), then
    advance it like any rollout."""
    if run is None:
        started = start_rollback(session, policy_spec, target=target, history=history, now=now)
        if started.done:
            return started
        run = started.run
    extra = {"poll": poll} if poll is not None else {}
    return advance_rollout(
        session, RolloutRun(policy, policy_spec, run, history=history, image=image), now, **extra
    )


ENDPOINT = "od-endpoint"
ALARM = "od-endpoint-5xx"
BUCKET = "rtp-test-bucket"
BASE_DATA = f"s3://{BUCKET}/models/base/model.tar.gz"
ROLE = "arn:aws:iam::111122223333:role/SageMakerExecution"
POLL = timedelta(seconds=60)
FAST_BLUE_GREEN = {"trafficRouting": "AllAtOnce", "waitInterval": "0s", "terminationWait": "0s"}


@dataclass
class Scene:
    aws: AwsStandins
    session: AwsSession
    trace: list[RolloutProgress] = field(default_factory=list)

    @cached_property
    def sm(self) -> Any:
        return self.aws.client("sagemaker")

    def now(self) -> Any:
        return self.aws.clock.now()

    def endpoint(self) -> dict[str, Any]:
        return self.aws.sagemaker.describe_endpoint(ENDPOINT)

    def serving_models(self) -> dict[str, str]:
        """{variant: model} of the endpoint's current config."""
        config = self.aws.sagemaker.call(
            "DescribeEndpointConfig", EndpointConfigName=self.endpoint()["EndpointConfigName"]
        )
        return {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}

    def changes_all_accepted(self) -> bool:
        """No Create/Update/Delete call was refused (describe-first misses are expected)."""
        changes = [
            c
            for c in self.aws.log.calls("sagemaker")
            if c.operation.startswith(("Create", "Update", "Delete"))
        ]
        return bool(changes) and all(c.ok for c in changes)

    def updates(self, operation: str = "UpdateEndpoint") -> list[Any]:
        return self.aws.log.calls("sagemaker", operation)

    def run(self, run_id: str, *, metric: float = 0.7) -> CurrentRun:
        data = f"s3://{BUCKET}/runs/{run_id}/output/model.tar.gz"
        self.aws.put_object(data, b"model")
        return CurrentRun(
            id=run_id,
            stage=RunStage.DEPLOYING,
            started_at=self.now(),
            training_job_name=f"tj-{run_id}",
            model_data_url=data,
            metric_value=metric,
        )

    def drive(
        self,
        step: Callable[[CurrentRun], RolloutProgress],
        run: CurrentRun,
        *,
        before: Callable[[], None] | None = None,
        max_passes: int = 120,
    ) -> RolloutProgress:
        """Call `step` until it is done, advancing the clock by each `retry_after`."""
        for _ in range(max_passes):
            if before is not None:
                before()
            progress = step(run)
            self.trace.append(progress)
            if progress.done:
                return progress
            assert progress.retry_after is not None
            run = progress.run
            self.aws.clock.advance(progress.retry_after.total_seconds())
        raise AssertionError(f"not done after {max_passes} passes: {self.trace[-1].message}")

    def rollout(
        self,
        policy_spec: RetrainingPolicySpec,
        run: CurrentRun,
        *,
        history: Sequence[HistoryEntry] = (),
        before: Callable[[], None] | None = None,
    ) -> RolloutProgress:
        def step(current: CurrentRun) -> RolloutProgress:
            return advance_rollout(
                self.session,
                RolloutRun(POLICY, policy_spec, current, history=history, image=IMAGE),
                self.now(),
                poll=POLL,
            )

        return self.drive(step, run, before=before)


@pytest.fixture
def scene(aws: AwsStandins, aws_bucket: str) -> Scene:
    aws.put_object(BASE_DATA, b"base model")
    sm = aws.sagemaker
    sm.call(
        "CreateModel",
        ModelName="od-model-1",
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": BASE_DATA},
        ExecutionRoleArn=ROLE,
    )
    sm.call(
        "CreateEndpointConfig",
        EndpointConfigName="od-config-1",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "od-model-1",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.xlarge",
            }
        ],
    )
    sm.call("CreateEndpoint", EndpointName=ENDPOINT, EndpointConfigName="od-config-1")
    aws.clock.advance(sm.durations.endpoint_creating)
    assert sm.describe_endpoint(ENDPOINT)["EndpointStatus"] == "InService"
    aws.admin_client("cloudwatch").put_metric_alarm(
        AlarmName=ALARM,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": ENDPOINT}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=10,
        ComparisonOperator="GreaterThanThreshold",
    )
    aws.log.clear()
    return Scene(aws, AwsSession("us-east-1"))


def set_alarm(aws: AwsStandins, state: str) -> None:
    aws.admin_client("cloudwatch").set_alarm_state(
        AlarmName=ALARM, StateValue=state, StateReason="test"
    )


# ---------------------------------------------------------------------------------------
# Blue/green


def test_canary_success_serves_the_new_model(scene: Scene) -> None:
    run = scene.run("r20261124-220500")
    names = RolloutNames.for_run(POLICY, run.id)
    done = scene.rollout(spec(), run)

    assert done.result is RolloutResult.SERVING
    assert scene.endpoint()["EndpointConfigName"] == names.config
    assert scene.serving_models() == {"AllTraffic": names.model}
    assert done.serving is not None
    assert done.serving.model_name == names.model
    assert done.history_entry is not None
    assert done.history_entry.outcome.value == "Deployed"
    assert (done.history_entry.endpoint_config_name, done.history_entry.metric_value) == (
        names.config,
        0.7,
    )
    (update,) = scene.updates()
    routing = update.params["DeploymentConfig"]["BlueGreenUpdatePolicy"][
        "TrafficRoutingConfiguration"
    ]
    assert routing["Type"] == "CANARY"
    assert routing["CanarySize"]["Value"] == 10
    assert update.params["DeploymentConfig"]["AutoRollbackConfiguration"] == {
        "Alarms": [{"AlarmName": ALARM}]
    }
    assert scene.aws.log.count("sagemaker", "CreateModel") == 1
    assert scene.aws.log.count("sagemaker", "CreateEndpointConfig") == 1
    assert scene.changes_all_accepted()
    # The controller calling once more after the end changes nothing.
    again = advance_rollout(
        scene.session, RolloutRun(POLICY, spec(), done.run, image=IMAGE), scene.now()
    )
    assert again.result is RolloutResult.SERVING
    assert len(scene.updates()) == 1


def test_alarm_during_bake_rolls_back_and_the_config_is_never_retried(scene: Scene) -> None:
    run = scene.run("r20261124-220500")
    names = RolloutNames.for_run(POLICY, run.id)
    updating_seen: list[str] = []

    def fire_alarm_when_baking() -> None:
        described = scene.endpoint()
        updating_seen.append(described["EndpointStatus"])
        pending = described.get("PendingDeploymentSummary", {})
        if any(v["VariantStatus"][0]["Status"] == "Baking" for v in pending.get(
            "ProductionVariants", [])):  # fmt: skip
            set_alarm(scene.aws, "ALARM")

    done = scene.rollout(spec(), run, before=fire_alarm_when_baking)

    assert "RollingBack" in updating_seen
    assert any("RollingBack" in p.message for p in scene.trace)
    assert done.result is RolloutResult.DEGRADED
    assert done.reason is not None
    assert ALARM in done.reason
    assert done.serving is None  # status.serving keeps the old model
    assert scene.endpoint()["EndpointConfigName"] == "od-config-1"
    assert scene.serving_models() == {"AllTraffic": "od-model-1"}
    assert done.history_entry is not None
    assert done.history_entry.outcome.value == "RolledBack"
    assert done.history_entry.endpoint_config_name == names.config
    assert [c.params["EndpointConfigName"] for c in scene.updates()] == [names.config]

    # Re-running the finished run, or a later pass with the history: still no second update.
    set_alarm(scene.aws, "OK")
    again = advance_rollout(
        scene.session, RolloutRun(POLICY, spec(), done.run, image=IMAGE), scene.now()
    )
    assert again.result is RolloutResult.DEGRADED
    fresh = run.model_copy(update={"deploy_step_started_at": None, "endpoint_config_name": None})
    guarded = advance_rollout(
        scene.session,
        RolloutRun(POLICY, spec(), fresh, history=[done.history_entry], image=IMAGE),
        scene.now(),
    )
    assert guarded.result is RolloutResult.DEGRADED
    assert [c.params["EndpointConfigName"] for c in scene.updates()] == [names.config]


def test_no_update_is_sent_while_the_endpoint_is_updating(scene: Scene) -> None:
    # Someone else starts an update just before the rollout (a scaling change, say).
    scene.aws.sagemaker.call(
        "CreateEndpointConfig",
        EndpointConfigName="od-config-2",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "od-model-1",
                "InitialInstanceCount": 2,
                "InstanceType": "ml.m5.xlarge",
            }
        ],
    )
    user_update_at = scene.now()
    scene.sm.update_endpoint(EndpointName=ENDPOINT, EndpointConfigName="od-config-2")
    assert scene.endpoint()["EndpointStatus"] == "Updating"

    run = scene.run("r20261124-220500")
    names = RolloutNames.for_run(POLICY, run.id)
    done = scene.rollout(spec(blueGreen=FAST_BLUE_GREEN), run)

    assert done.result is RolloutResult.SERVING
    user, ours = scene.updates()
    assert user.params["EndpointConfigName"] == "od-config-2"
    assert ours.params["EndpointConfigName"] == names.config
    provisioned = user_update_at + timedelta(
        seconds=scene.aws.sagemaker.durations.endpoint_updating
    )
    assert ours.time >= provisioned
    assert scene.changes_all_accepted()  # never refused as in-progress
    waits = [p for p in scene.trace if "is Updating" in p.message and not p.actions]
    assert len(waits) >= 4
    # Our config copied the config current when we acted (2 instances), not the stale one.
    (created,) = scene.aws.log.calls("sagemaker", "CreateEndpointConfig")
    assert created.params["ProductionVariants"][0]["InitialInstanceCount"] == 2


def test_a_rolling_update_is_sent_with_its_policy(scene: Scene) -> None:
    policy_spec = spec(strategy="Rolling", rolling={"maximumBatchSize": "1", "waitInterval": "1m"})
    done = scene.rollout(policy_spec, scene.run("r20261124-220500"))
    assert done.result is RolloutResult.SERVING
    (update,) = scene.updates()
    assert update.params["DeploymentConfig"]["RollingUpdatePolicy"]["MaximumBatchSize"] == {
        "Type": "INSTANCE_COUNT",
        "Value": 1,
    }


def test_first_deployment_creates_the_endpoint(scene: Scene) -> None:
    policy_spec = spec(endpointName="od-endpoint-new", instanceType="ml.c5.large")
    run = scene.run("r20261124-220500")
    names = RolloutNames.for_run(POLICY, run.id)
    done = scene.rollout(policy_spec, run)
    assert done.result is RolloutResult.SERVING
    (create,) = scene.aws.log.calls("sagemaker", "CreateEndpoint")
    assert create.params["EndpointConfigName"] == names.config
    (config,) = scene.aws.log.calls("sagemaker", "CreateEndpointConfig")
    assert config.params["ProductionVariants"][0]["InstanceType"] == "ml.c5.large"
    assert scene.updates() == []


def test_a_crash_after_update_endpoint_adopts_instead_of_repeating(scene: Scene) -> None:
    run = scene.run("r20261124-220500")
    first = advance_rollout(
        scene.session, RolloutRun(POLICY, spec(), run, image=IMAGE), scene.now(), poll=POLL
    )
    assert first.actions[-1].startswith("UpdateEndpoint")
    # The status patch was lost: the next pass sees the original run again.
    scene.aws.clock.advance(60)
    done = scene.rollout(spec(), run)
    assert done.result is RolloutResult.SERVING
    assert len(scene.updates()) == 1
    assert scene.aws.log.count("sagemaker", "CreateModel") == 1
    assert scene.aws.log.count("sagemaker", "CreateEndpointConfig") == 1


# ---------------------------------------------------------------------------------------
# Manual rollback


def test_manual_rollback_serves_a_model_from_history_again(scene: Scene) -> None:
    policy_spec = spec(blueGreen=FAST_BLUE_GREEN)
    first = scene.rollout(policy_spec, scene.run("r20261124-220500", metric=0.70))
    scene.aws.clock.advance(3600)
    second = scene.rollout(policy_spec, scene.run("r20261125-220500", metric=0.72))
    assert first.history_entry is not None
    assert second.history_entry is not None
    history = [second.history_entry, first.history_entry]
    first_model = first.history_entry.model_name
    assert scene.serving_models() == {"AllTraffic": second.history_entry.model_name}

    with pytest.raises(UnknownRollbackTarget, match="r20261124-220500"):
        rollback_to(
            scene.session, POLICY, policy_spec, target="r-nope", history=history, run=None,
            now=scene.now(),
        )  # fmt: skip

    scene.aws.log.clear()
    scene.aws.clock.advance(600)
    started: list[CurrentRun | None] = [None]

    def step(current: CurrentRun) -> RolloutProgress:
        progress = rollback_to(
            scene.session, POLICY, policy_spec, target="r20261124-220500", history=history,
            run=started[0], now=scene.now(), image=IMAGE, poll=POLL,
        )  # fmt: skip
        started[0] = progress.run
        return progress

    done = scene.drive(step, CurrentRun(id="x", stage=RunStage.DEPLOYING, started_at=scene.now()))
    assert done.result is RolloutResult.SERVING
    assert scene.serving_models() == {"AllTraffic": first_model}
    assert done.run.id.startswith("rb")
    assert done.serving is not None
    assert done.serving.model_name == first_model
    assert done.serving.metric_value == 0.70
    assert scene.aws.log.count("sagemaker", "CreateModel") == 0  # the history's Model is reused
    (update,) = scene.updates()
    assert update.params["EndpointConfigName"] not in {
        first.history_entry.endpoint_config_name,
        second.history_entry.endpoint_config_name,
    }

    # Asking again for what already serves finishes at once, without touching the endpoint.
    assert done.history_entry is not None
    again = rollback_to(
        scene.session, POLICY, policy_spec, target=first_model or "", history=[
            done.history_entry, *history], run=None, now=scene.now(),
    )  # fmt: skip
    assert again.result is RolloutResult.SERVING
    assert again.actions == ()
    assert len(scene.updates()) == 1


def test_rollback_recreates_a_model_that_cleanup_deleted(scene: Scene) -> None:
    policy_spec = spec(blueGreen=FAST_BLUE_GREEN)
    first = scene.rollout(policy_spec, scene.run("r20261124-220500"))
    second = scene.rollout(policy_spec, scene.run("r20261125-220500"))
    assert first.history_entry is not None
    assert second.history_entry is not None
    gone = first.history_entry.model_name
    scene.sm.delete_model(ModelName=gone)
    scene.aws.log.clear()

    progress = rollback_to(
        scene.session, POLICY, policy_spec, target="r20261124-220500",
        history=[second.history_entry, first.history_entry], run=None, now=scene.now(),
        image=IMAGE, poll=POLL,
    )  # fmt: skip
    (created,) = scene.aws.log.calls("sagemaker", "CreateModel")
    assert created.params["ModelName"] == gone
    assert created.params["PrimaryContainer"]["ModelDataUrl"] == first.history_entry.model_data_url

    def step(current: CurrentRun) -> RolloutProgress:
        return rollback_to(
            scene.session, POLICY, policy_spec, target="r20261124-220500", history=[], run=current,
            now=scene.now(), image=IMAGE, poll=POLL,
        )  # fmt: skip

    scene.aws.clock.advance(60)
    done = scene.drive(step, progress.run)
    assert done.result is RolloutResult.SERVING
    assert scene.serving_models() == {"AllTraffic": gone}


# ---------------------------------------------------------------------------------------
# Cleanup


def test_cleanup_keeps_exactly_n_and_never_what_serves(scene: Scene) -> None:
    policy_spec = spec(blueGreen=FAST_BLUE_GREEN, retainPreviousModels=2)
    serving = scene.rollout(policy_spec, scene.run("r20261101-000000"))
    serving_names = RolloutNames.for_run(POLICY, "r20261101-000000")
    assert serving.result is RolloutResult.SERVING

    made: list[RolloutNames] = []
    for day in range(2, 6):  # four later runs' Models and configs, not deployed
        scene.aws.clock.advance(86400)
        run_id = f"r202611{day:02d}-000000"
        names = RolloutNames.for_run(POLICY, run_id)
        scene.sm.create_model(
            **model_request(
                POLICY,
                policy_spec,
                run_id=run_id,
                model_name=names.model,
                source=ModelSource(BASE_DATA, IMAGE),
            )
        )
        current = scene.aws.sagemaker.call(
            "DescribeEndpointConfig", EndpointConfigName=serving_names.config
        )
        scene.sm.create_endpoint_config(
            **endpoint_config_request(
                ConfigTarget(POLICY, run_id, names.config, names.model),
                policy_spec,
                LiveConfig(current),
            )
        )
        made.append(names)
    # Same policy name, another UID (a re-created policy): same name prefix, not ours.
    other = PolicyRef(POLICY.namespace, POLICY.name, "another-uid")
    other_names = RolloutNames.for_run(other, "r20261102-000000")
    scene.sm.create_model(
        **model_request(
            other,
            policy_spec,
            run_id="r20261102-000000",
            model_name=other_names.model,
            source=ModelSource(BASE_DATA, IMAGE),
        )
    )

    report = cleanup(scene.session, POLICY, policy_spec)

    older, newer = made[:2], made[2:]
    assert set(report.deleted_models) == {n.model for n in older}
    assert set(report.deleted_configs) == {n.config for n in older}
    remaining_models = {m["ModelName"] for m in scene.sm.list_models(MaxResults=100)["Models"]}
    assert remaining_models == {
        "od-model-1",  # the user's
        other_names.model,  # another policy's
        serving_names.model,  # serving (and the oldest of ours)
        *(n.model for n in newer),  # the N=2 newest
    }
    remaining_configs = {
        c["EndpointConfigName"]
        for c in scene.sm.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]
    }
    assert remaining_configs == {"od-config-1", serving_names.config, *(n.config for n in newer)}
    assert scene.endpoint()["EndpointStatus"] == "InService"
    # Idempotent: a second cleanup deletes nothing more.
    assert cleanup(scene.session, POLICY, policy_spec).deleted_models == ()


# ---------------------------------------------------------------------------------------
# Variant shift


def feed_metrics(scene: Scene, *, error_rate: Callable[[str, float], float]) -> Callable[[], None]:
    """Before each pass: put one minute of per-variant CloudWatch numbers for the endpoint.

    Each variant serves its share of 1000 invocations at 100 ms; `error_rate(variant, share)`
    decides its 5XX fraction.
    """
    cw = scene.aws.admin_client("cloudwatch")

    def feed() -> None:
        described = scene.endpoint()
        variants = described.get("ProductionVariants", [])
        total = sum(v["CurrentWeight"] for v in variants) or 1.0
        data = []
        for variant in variants:
            share = variant["CurrentWeight"] / total
            if share <= 0:
                continue
            dims = [
                {"Name": "EndpointName", "Value": ENDPOINT},
                {"Name": "VariantName", "Value": variant["VariantName"]},
            ]
            invocations = round(1000 * share)
            errors = round(invocations * error_rate(variant["VariantName"], share))
            when = scene.now()
            data += [
                {"MetricName": "Invocations", "Dimensions": dims, "Timestamp": when,
                 "Value": invocations},
                {"MetricName": "Invocation5XXErrors", "Dimensions": dims, "Timestamp": when,
                 "Value": errors},
                {"MetricName": "ModelLatency", "Dimensions": dims, "Timestamp": when,
                 "Value": 100_000, "Unit": "Microseconds"},
            ]  # fmt: skip
        if data:
            cw.put_metric_data(Namespace="AWS/SageMaker", MetricData=data)

    return feed


SHIFT = {
    "strategy": "VariantShift",
    "variantShift": {"steps": [10, 50, 100], "interval": "10m", "max5xxRate": 0.01,
                     "maxLatencyIncrease": 0.2},
}  # fmt: skip


def weight_calls(scene: Scene) -> list[dict[str, float]]:
    return [
        {d["VariantName"]: d["DesiredWeight"] for d in c.params["DesiredWeightsAndCapacities"]}
        for c in scene.updates("UpdateEndpointWeightsAndCapacities")
    ]


def test_variant_shift_steps_the_weights_and_removes_the_old_variant(scene: Scene) -> None:
    run = scene.run("r20261124-220500")
    names = RolloutNames.for_run(POLICY, run.id)
    done = scene.rollout(
        spec(**SHIFT), run, before=feed_metrics(scene, error_rate=lambda v, s: 0.0)
    )

    assert done.result is RolloutResult.SERVING, done.message
    assert weight_calls(scene) == [
        {"AllTraffic": 0.5, "AllTraffic-alt": 0.5},
        {"AllTraffic": 0.0, "AllTraffic-alt": 1.0},
    ]
    add, remove_old = scene.updates()
    assert add.params == {
        "EndpointName": ENDPOINT,
        "EndpointConfigName": names.config,
        # Live instance counts kept (autoscaling); the shift's weights are the config's.
        "RetainAllVariantProperties": True,
        "ExcludeRetainedVariantProperties": [{"VariantPropertyType": "DesiredWeight"}],
    }
    assert remove_old.params["EndpointConfigName"] == names.final_config
    assert scene.endpoint()["EndpointConfigName"] == names.final_config
    assert scene.serving_models() == {"AllTraffic-alt": names.model}
    assert done.serving is not None
    assert done.serving.endpoint_config_name == names.final_config
    # The analysis read the variants' own metrics, and every step baked its full interval.
    assert scene.aws.log.count("cloudwatch", "GetMetricData") == 3
    assert scene.aws.log.count("cloudwatch", "DescribeAlarms") >= 3
    assert scene.changes_all_accepted()


def test_variant_shift_fails_at_50_percent_on_5xx_and_removes_the_new_variant(
    scene: Scene,
) -> None:
    run = scene.run("r20261124-220500")
    names = RolloutNames.for_run(POLICY, run.id)

    def errors(variant: str, share: float) -> float:
        return 0.05 if variant == "AllTraffic-alt" and share >= 0.5 else 0.0

    done = scene.rollout(spec(**SHIFT), run, before=feed_metrics(scene, error_rate=errors))

    assert done.result is RolloutResult.DEGRADED
    assert done.reason is not None
    assert "5XX rate 0.0500" in done.reason
    assert "step 2 (50 %)" in done.reason
    assert weight_calls(scene) == [
        {"AllTraffic": 0.5, "AllTraffic-alt": 0.5},
        {"AllTraffic": 1.0, "AllTraffic-alt": 0.0},
    ]
    assert [c.params["EndpointConfigName"] for c in scene.updates()] == [
        names.config,
        names.rollback_config,
    ]
    described = scene.endpoint()
    assert described["EndpointConfigName"] == names.rollback_config
    assert [(v["VariantName"], v["CurrentWeight"]) for v in described["ProductionVariants"]] == [
        ("AllTraffic", 1.0)
    ]
    assert scene.serving_models() == {"AllTraffic": "od-model-1"}
    assert done.serving is None


def test_variant_shift_alarm_during_the_first_step_rolls_back_early(scene: Scene) -> None:
    run = scene.run("r20261124-220500")
    fired: list[bool] = []

    def alarm_once_shifting() -> None:
        variants = scene.endpoint().get("ProductionVariants", [])
        if len(variants) == 2 and not fired:
            set_alarm(scene.aws, "ALARM")
            fired.append(True)

    start = scene.now()
    done = scene.rollout(spec(**SHIFT), run, before=alarm_once_shifting)
    assert done.result is RolloutResult.DEGRADED
    assert done.reason is not None
    assert ALARM in done.reason
    assert weight_calls(scene) == [{"AllTraffic": 1.0, "AllTraffic-alt": 0.0}]
    # Well before the 10 minute interval of the first step would have ended.
    first_zero = scene.updates("UpdateEndpointWeightsAndCapacities")[0].time
    assert first_zero - start < timedelta(minutes=10)


def test_variant_shift_bake_is_judged_when_its_interval_ends(scene: Scene) -> None:
    """`retry_after` during a bake is the earlier of the next alarm check (the poll) and
    the bake's end, so a pass that follows it judges each step on time, never late."""
    interval = timedelta(seconds=150)  # not a multiple of POLL (60 s)
    shift = {**SHIFT, "variantShift": {**SHIFT["variantShift"], "interval": "150s"}}
    run = scene.run("r20261124-220500")
    done = scene.rollout(spec(**shift), run, before=feed_metrics(scene, error_rate=lambda v, s: 0))

    assert done.result is RolloutResult.SERVING, done.message
    baking = [p for p in scene.trace if "baking" in p.message]
    assert [p.retry_after for p in baking] == [POLL, POLL, interval - 2 * POLL] * 3
    waits = [p.retry_after for p in scene.trace if not p.done]
    assert all(w is not None and timedelta(0) < w <= POLL for w in waits)
    # Each step's metrics were read exactly `interval` after its bake started.
    started = [p.run.deploy_step_started_at for p in baking if "s of" not in p.message]
    judged = [c.time for c in scene.aws.log.calls("cloudwatch", "GetMetricData")]
    assert len(started) == len(judged) == 3
    assert [j - s for s, j in zip(started, judged, strict=True)] == [interval] * 3
