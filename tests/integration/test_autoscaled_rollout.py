"""Rollouts of an autoscaled, hardened endpoint on the stand-ins (issue 16).

`od-endpoint` is registered with Application Auto Scaling (min 2, max 10, one
target-tracking policy) and the autoscaler has grown its variant from the config's 2
instances to 6. Each strategy rolls the new model out; the endpoint must serve with 6
instances throughout and after, and end with exactly one scalable target, the serving
variant's, with the same bounds and policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from integration.test_rollout import (
    BASE_DATA,
    ENDPOINT,
    ROLE,
    SHIFT,
    Scene,
    feed_metrics,
    scene,
)
from retraining_operator.errors import NeedsAttention
from retraining_operator.flows.rollout import RolloutRun, advance_rollout
from retraining_operator.reconcile.rollout.autoscaled import REASON as TYPE_CHANGE_REASON
from retraining_operator.reconcile.rollout.decision import RolloutResult
from retraining_operator.reconcile.rollout.requests import RolloutNames
from retraining_standins.stack import AwsStandins
from unit.rollout_policies import IMAGE, POLICY, spec

pytestmark = pytest.mark.timeout(60)
__all__ = ["scene"]  # the fixture, re-used

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
POLICY_NAME = "od-invocations-per-instance"
TARGET_TRACKING = {
    "TargetValue": 70.0,
    "PredefinedMetricSpecification": {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    },
    "ScaleInCooldown": 300,
    "ScaleOutCooldown": 60,
}
GROWN = 6


def rid(variant: str) -> str:
    return f"endpoint/{ENDPOINT}/variant/{variant}"


def autoscale(aws: AwsStandins, variant: str = "AllTraffic", *, grow_to: int = GROWN) -> None:
    """Register the variant (min 2, max 10, target tracking) and let the autoscaler grow it."""
    client = aws.client("application-autoscaling")
    client.register_scalable_target(
        ServiceNamespace=NAMESPACE,
        ResourceId=rid(variant),
        ScalableDimension=DIMENSION,
        MinCapacity=2,
        MaxCapacity=10,
    )
    client.put_scaling_policy(
        PolicyName=POLICY_NAME,
        ServiceNamespace=NAMESPACE,
        ResourceId=rid(variant),
        ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration=TARGET_TRACKING,
    )
    assert aws.sagemaker.autoscale(ENDPOINT, variant, grow_to) == grow_to


@pytest.fixture
def autoscaled(scene: Scene) -> Scene:
    """The scene's endpoint on a 2-instance config, hardened model, grown to 6."""
    sm = scene.aws.sagemaker
    sm.call(
        "CreateModel",
        ModelName="od-model-hardened",
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": BASE_DATA,
            "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
        },
        ExecutionRoleArn=ROLE,
        VpcConfig={"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0a1b2c3d"]},
        EnableNetworkIsolation=True,
    )
    sm.call(
        "CreateEndpointConfig",
        EndpointConfigName="od-config-2",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "od-model-hardened",
                "InitialInstanceCount": 2,
                "InstanceType": "ml.m5.xlarge",
            }
        ],
    )
    sm.call("UpdateEndpoint", EndpointName=ENDPOINT, EndpointConfigName="od-config-2")
    scene.aws.clock.advance(sm.durations.endpoint_updating + 1)
    assert scene.endpoint()["EndpointStatus"] == "InService"
    autoscale(scene.aws)
    scene.aws.log.clear()
    return scene


def live_counts(scene: Scene) -> dict[str, int]:
    """{variant: current instance count} of the variants taking traffic."""
    return {
        v["VariantName"]: v["CurrentInstanceCount"]
        for v in scene.endpoint().get("ProductionVariants", [])
        if v["CurrentWeight"] > 0
    }


def watch_capacity(scene: Scene, seen: list[int]) -> Callable[[], None]:
    def check() -> None:
        seen.append(sum(live_counts(scene).values()))

    return check


def targets(scene: Scene) -> list[dict[str, Any]]:
    client = scene.aws.client("application-autoscaling")
    found: list[dict[str, Any]] = client.describe_scalable_targets(ServiceNamespace=NAMESPACE)[
        "ScalableTargets"
    ]
    return found


def policies(scene: Scene, variant: str) -> list[tuple[str, str, dict[str, Any]]]:
    client = scene.aws.client("application-autoscaling")
    answer = client.describe_scaling_policies(ServiceNamespace=NAMESPACE, ResourceId=rid(variant))
    return [
        (p["PolicyName"], p["PolicyType"], p["TargetTrackingScalingPolicyConfiguration"])
        for p in answer["ScalingPolicies"]
    ]


def assert_still_autoscaled(scene: Scene, seen: list[int]) -> None:
    (serving,) = scene.serving_models()
    assert live_counts(scene) == {serving: GROWN}
    assert seen
    assert min(seen) >= GROWN, f"capacity dipped during the rollout: {seen}"
    (target,) = targets(scene)
    assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == (
        rid(serving),
        2,
        10,
    )
    assert policies(scene, serving) == [(POLICY_NAME, "TargetTrackingScaling", TARGET_TRACKING)]


def both(*hooks: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        for hook in hooks:
            hook()

    return run


@pytest.mark.parametrize(
    "deployment",
    [
        pytest.param({}, id="BlueGreen-canary"),
        pytest.param(
            {"strategy": "Rolling", "rolling": {"maximumBatchSize": "1", "waitInterval": "1m"}},
            id="Rolling",
        ),
    ],
)
def test_blue_green_and_rolling_keep_the_autoscaled_fleet(
    autoscaled: Scene, deployment: dict[str, Any]
) -> None:
    scene = autoscaled
    seen: list[int] = []
    done = scene.rollout(
        spec(**deployment), scene.run("r20261124-220500"), before=watch_capacity(scene, seen)
    )

    assert done.result is RolloutResult.SERVING, done.message
    assert_still_autoscaled(scene, seen)
    (update,) = scene.updates()
    assert update.params["RetainAllVariantProperties"] is True
    assert scene.changes_all_accepted()


def test_variant_shift_moves_the_autoscaling_to_the_new_variant(autoscaled: Scene) -> None:
    scene = autoscaled
    seen: list[int] = []
    names = RolloutNames.for_run(POLICY, "r20261124-220500")
    done = scene.rollout(
        spec(**SHIFT),
        scene.run("r20261124-220500"),
        before=both(watch_capacity(scene, seen), feed_metrics(scene, error_rate=lambda v, s: 0.0)),
    )

    assert done.result is RolloutResult.SERVING, done.message
    assert scene.serving_models() == {"AllTraffic-alt": names.model}
    assert_still_autoscaled(scene, seen)
    # The new variant was registered before any weight moved to it.
    calls = scene.aws.log.calls()
    order = [c.operation for c in calls if c.ok]
    assert order.index("RegisterScalableTarget") < order.index("UpdateEndpointWeightsAndCapacities")
    assert order.index("DeregisterScalableTarget") < len(order) - order[::-1].index(
        "UpdateEndpoint"
    )


def test_a_failed_variant_shift_removes_the_new_variants_registration(autoscaled: Scene) -> None:
    scene = autoscaled
    seen: list[int] = []
    done = scene.rollout(
        spec(**SHIFT),
        scene.run("r20261124-220500"),
        before=both(
            watch_capacity(scene, seen),
            feed_metrics(scene, error_rate=lambda v, s: 0.2 if v == "AllTraffic-alt" else 0.0),
        ),
    )

    assert done.result is RolloutResult.DEGRADED, done.message
    assert scene.serving_models() == {"AllTraffic": "od-model-hardened"}
    assert_still_autoscaled(scene, seen)


def test_the_new_model_keeps_the_serving_models_hardening(autoscaled: Scene) -> None:
    scene = autoscaled
    names = RolloutNames.for_run(POLICY, "r20261124-220500")
    done = scene.rollout(spec(), scene.run("r20261124-220500"))
    assert done.result is RolloutResult.SERVING, done.message

    model = scene.aws.sagemaker.call("DescribeModel", ModelName=names.model)
    assert model["VpcConfig"] == {
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "Subnets": ["subnet-0a1b2c3d"],
    }
    assert model["EnableNetworkIsolation"] is True
    assert model["PrimaryContainer"]["Environment"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    assert model["PrimaryContainer"]["ModelDataUrl"].endswith(
        "r20261124-220500/output/model.tar.gz"
    )


def test_an_instance_type_change_on_an_autoscaled_variant_is_refused_up_front(
    autoscaled: Scene,
) -> None:
    """Someone edited the run's config to another instance type: the operator says what to
    do instead of letting AWS refuse the update (or deregistering the fleet itself)."""
    scene = autoscaled
    run = scene.run("r20261124-220500")
    names = RolloutNames.for_run(POLICY, run.id)
    sm = scene.aws.sagemaker
    sm.call("CreateModel", ModelName=names.model,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": run.model_data_url},
            ExecutionRoleArn=ROLE)  # fmt: skip
    sm.call(
        "CreateEndpointConfig",
        EndpointConfigName=names.config,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": names.model,
                "InitialInstanceCount": 2,
                "InstanceType": "ml.c5.2xlarge",
            }
        ],
    )
    with pytest.raises(NeedsAttention, match="registered with Application Auto Scaling") as refused:
        advance_rollout(scene.session, RolloutRun(POLICY, spec(), run, image=IMAGE), scene.now())
    assert refused.value.reason == TYPE_CHANGE_REASON
    assert "Deregister it" in refused.value.message
    assert scene.updates() == []
    # AWS itself refuses the same update (the emulator models it).
    client = scene.aws.client("sagemaker")
    with pytest.raises(client.exceptions.ClientError, match="registered for automatic scaling"):
        client.update_endpoint(EndpointName=ENDPOINT, EndpointConfigName=names.config)


def test_a_rolled_back_final_update_leaves_both_variants_autoscaled(autoscaled: Scene) -> None:
    """Issue 29: removing the old variant deregisters its target first; when SageMaker
    rolls that update back, the old variant serves on, and must be autoscaled again."""
    scene = autoscaled
    names = RolloutNames.for_run(POLICY, "r20261124-220500")
    last_step = len(SHIFT["variantShift"]["steps"]) - 1
    armed: list[bool] = []

    def fail_the_final_update() -> None:
        run = scene.trace[-1].run if scene.trace else None
        if not armed and run is not None and run.deploy_step == last_step:
            scene.aws.sagemaker.fail_next_update(ENDPOINT, "AlarmFired: od-endpoint-5xx")
            armed.append(True)

    done = scene.rollout(
        spec(**SHIFT),
        scene.run("r20261124-220500"),
        before=both(feed_metrics(scene, error_rate=lambda v, s: 0.0), fail_the_final_update),
    )

    assert armed
    assert done.result is RolloutResult.DEGRADED, done.message
    assert "did not remove the old variant" in done.message
    assert scene.endpoint()["EndpointConfigName"] == names.config
    assert set(scene.serving_models()) == {"AllTraffic", "AllTraffic-alt"}
    assert {t["ResourceId"] for t in targets(scene)} == {rid("AllTraffic"), rid("AllTraffic-alt")}
    for variant in ("AllTraffic", "AllTraffic-alt"):
        assert policies(scene, variant) == [(POLICY_NAME, "TargetTrackingScaling", TARGET_TRACKING)]
