"""The whole loop, in process: Controller passes against the AWS stand-ins.

Kubernetes is replaced by a dict that holds the status the controller checkpoints (the
real API server and the real entry point are proven in tests/e2e/); everything AWS is
the wire-level stand-ins, so each pass makes the same calls it makes in production.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from retraining_operator.api import RETRAIN_NOW_ANNOTATION, RetrainingPolicyStatus
from retraining_operator.aws.session import AwsSession, ClientSettings
from retraining_operator.config import OperatorConfig
from retraining_operator.policy_pass.controller import Controller, PolicyView
from retraining_operator.reconcile.naming import PolicyRef
from retraining_standins.demo import DemoWorld, seed_demo
from retraining_standins.seed import VOC_CLASSES
from retraining_standins.stack import AwsStandins

REF = PolicyRef(
    namespace="vision", name="pascal-detector", uid="0f8fad5b-d9cb-469f-a165-70867728950e"
)


def policy_spec(world: DemoWorld, **deployment: Any) -> dict[str, Any]:
    return {
        "aws": {"region": "us-east-1"},
        "humanLoops": {"flowDefinitionArn": world.flow_definition_arn, "pollInterval": "30s"},
        "labels": {"classes": list(VOC_CLASSES)},
        "dataset": {
            "outputS3Uri": f"s3://{world.bucket}/a2i-results",
            "minNewSamples": 10,
            "validation": {"manifestS3Uri": world.validation_manifest},
            "replay": {"manifestS3Uri": world.train_manifest, "samplesPerNewSample": 1},
        },
        "training": {
            "roleArn": world.role_arn,
            "algorithm": "object-detection",
            "outputS3Uri": f"s3://{world.bucket}/a2i-results/incremental-training",
            "hyperParameters": {"num_classes": "20", "learning_rate": "0.0001", "epochs": "1"},
        },
        "gate": {"metric": "validation:mAP", "minimum": 0.5, "maxRegression": 0.01},
        "deployment": {
            "endpointName": world.endpoint_name,
            "strategy": "BlueGreen",
            "blueGreen": {
                "trafficRouting": "Canary",
                "canarySize": "10%",
                "waitInterval": "5m",
                "terminationWait": "0s",
                "maximumExecutionTimeout": "30m",
            },
            **deployment,
        },
    }


class Harness:
    """A policy object, a controller, and a clock shared with the stand-ins."""

    def __init__(self, aws: AwsStandins, spec: dict[str, Any]) -> None:
        self.aws = aws
        self.spec = spec
        self.status: dict[str, Any] = {}
        self.annotations: dict[str, str] = {}
        self.events: list[tuple[str, str, str]] = []
        self.checkpoints = 0
        config = OperatorConfig(tick_seconds=10, observe_seconds=0, aws_calls_per_second=0)
        self.controller = Controller(
            config,
            lambda ref, spec: AwsSession(spec.aws.region, settings=ClientSettings(max_attempts=2)),
            clock=aws.clock.now,
            started_at=aws.clock.now() - timedelta(hours=1),
        )

    def checkpoint(self, status: RetrainingPolicyStatus) -> None:
        self.checkpoints += 1
        self.status = status.to_wire()

    def tick(self, seconds: float = 30) -> RetrainingPolicyStatus:
        self.aws.clock.advance(seconds)
        view = PolicyView(
            REF, 1, dict(self.annotations), copy.deepcopy(self.spec), copy.deepcopy(self.status)
        )
        result = self.controller.reconcile(view, self.checkpoint)
        self.events += [(e.type, e.reason, e.message) for e in result.events]
        for key, value in result.clear_annotations:  # as kube.clear_annotations: if unchanged
            if self.annotations.get(key) == value:
                self.annotations.pop(key)
        return RetrainingPolicyStatus.model_validate(self.status)

    def until(
        self, predicate: Any, *, seconds: float = 60, limit: int = 80
    ) -> RetrainingPolicyStatus:
        for _ in range(limit):
            status = self.tick(seconds)
            if predicate(status):
                return status
        raise AssertionError(
            f"condition not reached; status={self.status}; events={self.events[-8:]}"
        )

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]


@pytest.fixture
def world(aws: AwsStandins) -> DemoWorld:
    return seed_demo(aws, 12)


def test_full_loop_then_a_rejected_second_run(aws: AwsStandins, world: DemoWorld) -> None:
    h = Harness(aws, policy_spec(world))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})

    status = h.until(lambda s: s.current_run is not None and s.current_run.training_job_name)
    assert status.ingest.ingested_loops == 12
    assert status.phase.value == "Training"
    job = status.current_run.training_job_name
    created = aws.log.calls("sagemaker", "CreateTrainingJob")
    assert len(created) == 1
    request = created[0].params
    assert request["TrainingJobName"] == job
    assert request["HyperParameters"]["use_pretrained_model"] == "0"
    assert request["AlgorithmSpecification"]["TrainingInputMode"] == "Pipe"
    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    assert channels["model"]["DataSource"]["S3DataSource"]["S3Uri"] == world.model_data_url

    status = h.until(lambda s: s.phase.value == "Serving" and s.current_run is None, seconds=120)
    assert status.history[0].outcome.value == "Deployed"
    assert status.history[0].metric_value == pytest.approx(0.72)
    serving = status.serving
    assert serving is not None
    assert serving.model_name != world.model_name
    endpoint = aws.sagemaker.describe_endpoint(world.endpoint_name)
    assert endpoint["EndpointConfigName"] == serving.endpoint_config_name
    assert endpoint["EndpointStatus"] == "InService"
    ready = {c.type.value: c for c in status.conditions}
    assert ready["Ready"].status == "True"
    assert ready["Degraded"].status == "False"
    for reason in (
        "SamplesIngested",
        "RunStarted",
        "DatasetWritten",
        "TrainingSubmitted",
        "GatePassed",
        "Serving",
    ):
        assert reason in h.reasons()
    assert status.last_training_job_name == job

    # Second run: the regression bar (0.72 - 0.01) rejects 0.65; the first model keeps serving.
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.65})
    aws.a2i.add_loops("fd-demo", 10, interval=5.0)
    status = h.until(lambda s: len(s.history) == 2, seconds=120)
    assert status.history[0].outcome.value == "GateRejected"
    assert "0.65" in (status.history[0].reason or "")
    assert status.serving == serving
    assert (
        aws.sagemaker.describe_endpoint(world.endpoint_name)["EndpointConfigName"]
        == serving.endpoint_config_name
    )
    assert len(aws.log.calls("sagemaker", "UpdateEndpoint")) == 1
    assert "GateRejected" in h.reasons()


def test_retrain_now_trains_below_threshold(aws: AwsStandins, world: DemoWorld) -> None:
    spec = policy_spec(world)
    spec["dataset"]["minNewSamples"] = 1000
    h = Harness(aws, spec)
    status = h.tick()
    assert status.ingest.pending_samples == 12
    assert status.current_run is None
    h.annotations[RETRAIN_NOW_ANNOTATION] = "true"
    status = h.tick()
    assert status.current_run is not None
    assert status.current_run.trigger == "RetrainNow"
    assert RETRAIN_NOW_ANNOTATION not in h.annotations


def test_suspend_stops_the_training_job_and_polls_no_more(
    aws: AwsStandins, world: DemoWorld
) -> None:
    h = Harness(aws, policy_spec(world))
    aws.sagemaker.durations.training_in_progress = 10_000.0
    status = h.until(lambda s: s.current_run is not None and s.current_run.training_job_name)
    h.spec["suspend"] = True
    h.tick()
    assert len(aws.log.calls("sagemaker", "StopTrainingJob")) == 1
    status = h.until(lambda s: s.current_run is None, seconds=60)
    assert status.history[0].outcome.value == "Stopped"
    assert status.phase.value == "Suspended"
    lists = len(aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops"))
    for _ in range(3):
        h.tick(120)
    assert len(aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops")) == lists


def test_deletion_stops_the_job_exactly_once(aws: AwsStandins, world: DemoWorld) -> None:
    h = Harness(aws, policy_spec(world))
    aws.sagemaker.durations.training_in_progress = 10_000.0
    h.until(lambda s: s.current_run is not None and s.current_run.training_job_name)
    view = PolicyView(REF, 1, {}, h.spec, h.status)
    first = h.controller.finalize(view)
    second = h.controller.finalize(view)  # a retried finalizer after a restart
    assert [e.reason for e in first.events] == ["TrainingStopped"]
    assert first.done
    assert second.done
    assert second.events == []
    assert len(aws.log.calls("sagemaker", "StopTrainingJob")) == 1


def test_refused_role_is_degraded_without_aws_calls(aws: AwsStandins, world: DemoWorld) -> None:
    spec = policy_spec(world)
    spec["aws"]["roleArn"] = "arn:aws:iam::999999999999:role/other-team"
    h = Harness(aws, spec)
    h.controller.config = OperatorConfig(
        allowed_role_patterns=("arn:aws:iam::123456789012:role/*",)
    )
    status = h.tick()
    degraded = {c.type.value: c for c in status.conditions}["Degraded"]
    assert degraded.status == "True"
    assert degraded.reason == "RoleNotAllowed"
    assert "other-team" in degraded.message
    assert status.phase.value == "Failed"
    assert aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops") == []


def test_invalid_spec_is_degraded_with_the_field(aws: AwsStandins, world: DemoWorld) -> None:
    spec = policy_spec(world)
    spec["deployment"]["variantShift"] = {"steps": [50, 10, 100]}
    spec["deployment"]["strategy"] = "VariantShift"
    del spec["deployment"]["blueGreen"]
    h = Harness(aws, spec)
    status = h.tick()
    degraded = {c.type.value: c for c in status.conditions}["Degraded"]
    assert degraded.reason == "InvalidSpec"
    assert "strictly ascending" in degraded.message
    assert aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops") == []


def test_a_single_variant_of_another_name_is_trained_from_and_replaced(
    aws: AwsStandins, world: DemoWorld
) -> None:
    # The demo endpoint's one variant is `AllTraffic`; the policy names another variant
    # (as with a console-made endpoint's `variant-1`): the only variant serves either way.
    h = Harness(aws, policy_spec(world, variantName="variant-1"))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})

    status = h.until(lambda s: s.current_run is not None and s.current_run.training_job_name)
    (create,) = aws.log.calls("sagemaker", "CreateTrainingJob")
    channels = {c["ChannelName"]: c for c in create.params["InputDataConfig"]}
    assert channels["model"]["DataSource"]["S3DataSource"]["S3Uri"] == world.model_data_url
    assert "VariantNotFound" not in h.reasons()

    status = h.until(lambda s: s.phase.value == "Serving" and s.current_run is None, seconds=120)
    assert status.history[0].outcome.value == "Deployed"
    serving = status.serving
    assert serving is not None
    config = aws.sagemaker.call(
        "DescribeEndpointConfig", EndpointConfigName=serving.endpoint_config_name
    )
    assert [(v["VariantName"], v["ModelName"]) for v in config["ProductionVariants"]] == [
        ("AllTraffic", serving.model_name)
    ]
