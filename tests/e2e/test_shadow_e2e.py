"""The shadow test end to end (issue 31): the real operator process on the real kube-apiserver,
SageMaker's inference experiment on the stand-ins (both variants' CloudWatch metrics from the
models' serving knobs), the candidate judged before any user sees its answers."""

from __future__ import annotations

from typing import Any

import pytest
from test_honest_gate_e2e import history
from test_loop import event_reasons, operator_as_chart, policy, status_of, world

from retraining_standins.demo import DemoWorld
from retraining_standins.serving import ModelServing
from retraining_standins.stack import AwsStandins
from support.kube import KubeCluster
from support.operator import OperatorProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kube]

__all__ = ["operator_as_chart", "world"]  # fixtures, used by name


def shadow_policy(world: DemoWorld, namespace: str, duration: str) -> dict[str, Any]:
    body = policy(world, namespace)
    body["spec"]["deployment"]["shadow"] = {
        "duration": duration,
        "minInvocations": 100,  # the stand-ins' users send 100 requests a minute
        "maxLatencyRatio": 1.5,
    }
    return body


class Serving:
    """The seed model serves as production does; every candidate as the test says."""

    def __init__(self, world: DemoWorld, candidate: ModelServing) -> None:
        self.production = world.model_data_url
        self.candidate = candidate

    def __call__(self, model_name: str, model_data_url: str) -> ModelServing:
        return ModelServing() if model_data_url == self.production else self.candidate


def served_model(aws: AwsStandins, world: DemoWorld) -> str:
    sm = aws.client("sagemaker")
    config = sm.describe_endpoint(EndpointName=world.endpoint_name)["EndpointConfigName"]
    variants = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    return str(variants[0]["ModelName"])


@pytest.fixture
def quick_experiments(aws: AwsStandins, world: DemoWorld) -> None:
    aws.sagemaker.durations.experiment_creating = 2.0
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.8})


def test_a_candidate_three_times_slower_never_reaches_production(
    kube: KubeCluster,
    kube_namespace: str,
    aws: AwsStandins,
    world: DemoWorld,
    quick_experiments: None,
    operator_as_chart: OperatorProcess,
) -> None:
    op = operator_as_chart
    aws.sagemaker.set_model_serving(Serving(world, ModelServing(p50_ms=60, p99_ms=180)))
    kube.apply(shadow_policy(world, kube_namespace, "10m"), check=True)

    st = wait_for(history(kube, kube_namespace, 1), timeout=300, what="the run", on_timeout=op.log)
    entry = st["history"][0]
    assert entry["outcome"] == "ShadowFailed", entry
    assert entry["shadow"]["latencyRatio"] == pytest.approx(3.0)
    assert "p99 latency 3.00x production's" in entry["reason"]
    assert "ShadowFailed" in event_reasons(kube, kube_namespace)
    # Failed early (not after the 10 minutes), and the endpoint still serves the old model:
    # the shadow was removed, no UpdateEndpoint of the operator's ever ran.
    assert served_model(aws, world) == world.model_name
    assert aws.log.calls("sagemaker", "UpdateEndpoint") == []
    assert st.get("serving") is None
    assert st["phase"] == "Collecting"


def test_a_good_candidate_goes_shadow_canary_serving_through_a_killed_operator(
    kube: KubeCluster,
    kube_namespace: str,
    aws: AwsStandins,
    world: DemoWorld,
    quick_experiments: None,
    operator_as_chart: OperatorProcess,
) -> None:
    op = operator_as_chart
    aws.sagemaker.set_model_serving(Serving(world, ModelServing(p50_ms=22, p99_ms=66)))
    kube.apply(shadow_policy(world, kube_namespace, "2m"), check=True)

    def shadowing() -> dict[str, Any] | None:
        run = status_of(kube, kube_namespace).get("currentRun") or {}
        shadow = run.get("shadow") or {}
        return shadow if shadow.get("status") == "Running" else None

    running = wait_for(shadowing, timeout=240, what="a running shadow test", on_timeout=op.log)
    op.kill()  # SIGKILL mid-shadow: the experiment runs on without it
    op.start()
    st = wait_for(history(kube, kube_namespace, 1), timeout=400, what="the run", on_timeout=op.log)
    entry = st["history"][0]
    assert entry["outcome"] == "Deployed", entry
    assert entry["shadow"]["passed"] is True
    assert entry["shadow"]["experimentName"] == running["experimentName"]
    # One experiment, found again by the restarted operator; stopped before the canary.
    created = aws.log.calls("sagemaker", "CreateInferenceExperiment")
    assert [c.params["Name"] for c in created] == [running["experimentName"]]
    stop = aws.log.calls("sagemaker", "StopInferenceExperiment")[0]
    update = aws.log.calls("sagemaker", "UpdateEndpoint")[0]
    assert stop.seq < update.seq
    assert "DeploymentConfig" in update.params  # the blue/green canary that follows
    assert st["phase"] == "Serving"
    assert served_model(aws, world) == st["serving"]["modelName"]
    reasons = event_reasons(kube, kube_namespace)
    assert "ShadowPassed" in reasons
    assert "Serving" in reasons
    assert op.starts == 2
