"""Rollouts under pressure: an alarm fires during the canary, and someone else updates the
endpoint just before the operator wants to. The endpoint must keep serving a good model and
the operator must never stack or repeat an update."""

from __future__ import annotations

import time

import pytest

from reliability.conftest import CaseReport
from reliability.scene import Scene

pytestmark = [pytest.mark.reliability, pytest.mark.kube, pytest.mark.e2e]

ALARM = "demo-endpoint-5xx"


def test_alarm_during_canary_rolls_back_degrades_and_never_retries_the_config(
    scene: Scene, report: CaseReport
) -> None:
    report.case(8, "alarm during canary")
    report.inject(
        f"CloudWatch alarm {ALARM} set to ALARM as soon as the canary UpdateEndpoint is "
        "sent; then the operator is SIGKILLed and restarted"
    )
    aws = scene.aws
    world = scene.seed(12)
    cloudwatch = aws.admin_client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=ALARM,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": world.endpoint_name}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=10,
        ComparisonOperator="GreaterThanThreshold",
    )
    update_sent = scene.tripwire("sagemaker", "UpdateEndpoint")
    op = scene.operator().start()
    scene.apply(scene.policy(deployment={"autoRollbackAlarms": [ALARM]}))

    assert update_sent.wait(90), f"no UpdateEndpoint\n{op.log()}"
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="5xx burst")
    status = scene.wait(
        lambda: (s := scene.status()).get("history") and s, timeout=60, what="the run to end"
    )
    entry = status["history"][0]
    degraded = scene.condition("Degraded")

    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="OK", StateReason="recovered")
    op.kill()
    op.start()
    time.sleep(6)  # several passes of the restarted operator (tick 1 s)

    updates = aws.log.calls("sagemaker", "UpdateEndpoint")
    endpoint = aws.sagemaker.describe_endpoint(world.endpoint_name)
    config = aws.sagemaker.call(
        "DescribeEndpointConfig", EndpointConfigName=endpoint["EndpointConfigName"]
    )
    serving_models = [v["ModelName"] for v in config["ProductionVariants"]]
    report.observe(
        outcome=entry["outcome"],
        degraded=f"{degraded.get('status')}/{degraded.get('reason')}",
        update_endpoint_calls=len(updates),
        serving_model=",".join(serving_models),
        endpoint_status=endpoint["EndpointStatus"],
        rolled_back_events=scene.reasons().count("RolledBack"),
    )
    report.summary()
    assert entry["outcome"] == "RolledBack"
    assert ALARM in entry["reason"]
    assert degraded["status"] == "True"
    assert degraded["reason"] == "RolledBack"
    assert ALARM in degraded["message"]
    assert scene.condition("Degraded")["reason"] == "RolledBack"  # still, after the restart
    assert endpoint["EndpointConfigName"] == world.endpoint_config_name
    assert endpoint["EndpointStatus"] == "InService"
    assert serving_models == [world.model_name]
    assert len(updates) == 1
    assert updates[0].params["EndpointConfigName"] == entry["endpointConfigName"]
    assert scene.status().get("serving") in (None, {})
    assert "RolledBack" in scene.reasons()


def test_update_endpoint_while_the_endpoint_is_updating_is_never_stacked(
    scene: Scene, report: CaseReport
) -> None:
    report.case(9, "UpdateEndpoint while the endpoint is Updating")
    report.inject(
        "a foreign UpdateEndpoint (scale to 2 instances, 12 s to provision) sent while the "
        "operator trains; the gate passes while the endpoint is still Updating"
    )
    aws = scene.aws
    world = scene.seed(12)
    aws.sagemaker.durations.endpoint_updating = 12.0
    scene.operator().start()
    scene.apply(scene.policy())
    scene.wait(lambda: scene.run().get("trainingJobName"), timeout=60, what="training")

    aws.sagemaker.call(
        "CreateEndpointConfig",
        EndpointConfigName="scaled-by-someone-else",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": world.model_name,
                "InitialInstanceCount": 2,
                "InstanceType": "ml.m5.xlarge",
            }
        ],
    )
    aws.client("sagemaker").update_endpoint(
        EndpointName=world.endpoint_name, EndpointConfigName="scaled-by-someone-else"
    )
    foreign_sent = time.time()
    ours_sent = scene.tripwire("sagemaker", "UpdateEndpoint")
    deploying = scene.wait(
        lambda: scene.run().get("stage") == "Deploying", timeout=60, what="the gate to pass"
    )
    assert deploying
    assert aws.sagemaker.describe_endpoint(world.endpoint_name)["EndpointStatus"] == "Updating"
    assert ours_sent.wait(60), "the operator never updated the endpoint"
    aws.sagemaker.durations.endpoint_updating = 3.0  # the operator's own update: quick

    status = scene.wait(
        lambda: (s := scene.status()).get("history") and s, timeout=120, what="the rollout"
    )
    updates = aws.log.calls("sagemaker", "UpdateEndpoint")
    ours = [u for u in updates if u.params["EndpointConfigName"] != "scaled-by-someone-else"]
    refused = [u for u in updates if not u.ok]
    (created,) = [c for c in aws.log.calls("sagemaker", "CreateEndpointConfig") if c.ok]
    waited = ours[0].wall_time - foreign_sent if ours else -1.0
    report.observe(
        update_endpoint_calls=len(updates),
        refused_as_in_progress=len(refused),
        operator_waited_s=round(waited, 1),
        instances_in_new_config=created.params["ProductionVariants"][0]["InitialInstanceCount"],
        outcome=status["history"][0]["outcome"],
    )
    report.summary()
    assert refused == []
    assert len(ours) == 1
    assert waited >= 12.0  # not before the foreign update finished provisioning
    # The new config was built from the config current when the operator acted (2 instances).
    assert created.params["ProductionVariants"][0]["InitialInstanceCount"] == 2
    assert status["history"][0]["outcome"] == "Deployed"
    endpoint = aws.sagemaker.describe_endpoint(world.endpoint_name)
    assert endpoint["EndpointConfigName"] == ours[0].params["EndpointConfigName"]
