"""The Model Registry in the loop: Controller passes against the AWS stand-ins.

Every candidate is registered with its evidence; a Manual policy waits in AwaitingApproval
until the package is approved (by the annotation or in SageMaker), a rejected package is
never deployed, and the rollout's Model serves the package's own container.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from test_controller import REF, Harness, policy_spec

from retraining_operator.api import APPROVE_ANNOTATION, RetrainingPolicyStatus, RunStage
from retraining_standins.demo import DemoWorld, seed_demo
from retraining_standins.stack import AwsStandins

GROUP = "pascal-detectors"


@pytest.fixture
def world(aws: AwsStandins) -> DemoWorld:
    return seed_demo(aws, 12)


def registry_spec(world: DemoWorld, **registry: Any) -> dict[str, Any]:
    spec = policy_spec(world)
    spec["registry"] = {"modelPackageGroupName": GROUP, "approval": "Manual", **registry}
    return spec


def awaiting(status: RetrainingPolicyStatus) -> bool:
    return status.current_run is not None and status.current_run.stage is RunStage.AWAITING_APPROVAL


def package(aws: AwsStandins, arn: str) -> dict[str, Any]:
    return aws.sagemaker.call("DescribeModelPackage", ModelPackageName=arn)


def s3_json(uri: str) -> Any:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    body = boto3.client("s3", region_name="us-east-1").get_object(Bucket=bucket, Key=key)["Body"]
    return json.loads(body.read())


def test_manual_approval_by_annotation_then_a_rejection_in_sagemaker(
    aws: AwsStandins, world: DemoWorld
) -> None:
    h = Harness(aws, registry_spec(world))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})

    status = h.until(awaiting, seconds=120)
    run = status.current_run
    assert run is not None
    assert run.model_package_arn is not None
    arn = run.model_package_arn
    assert status.phase is not None
    assert status.phase.value == "Evaluating"
    assert "AwaitingApproval" in h.reasons()
    assert "ModelRegistered" in h.reasons()
    found = package(aws, arn)
    assert found["ModelApprovalStatus"] == "PendingManualApproval"
    assert found["ModelPackageGroupName"] == GROUP
    # The package names the exact manifests the job trained on, and the job itself.
    (create,) = aws.log.calls("sagemaker", "CreateTrainingJob")
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in create.params["InputDataConfig"]
    }
    metadata = found["CustomerMetadataProperties"]
    assert metadata["retraining.hitl.dev/train-manifest"] == channels["train"]
    assert metadata["retraining.hitl.dev/validation-manifest"] == channels["validation"]
    assert metadata["retraining.hitl.dev/base-model"] == channels["model"]
    assert metadata["retraining.hitl.dev/training-job"] == create.params["TrainingJobName"]
    assert metadata["retraining.hitl.dev/run-id"] == run.id
    assert run.samples is not None
    assert metadata["retraining.hitl.dev/train-lines"] == str(run.samples.train)
    container = found["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == run.model_data_url
    metrics = s3_json(found["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"])
    assert metrics["candidate"]["value"] == pytest.approx(0.72)
    assert metrics["gate"]["passed"] is True
    assert metrics["lineage"]["retraining.hitl.dev/train-manifest"] == channels["train"]

    # Waiting: nothing deployed, however long it takes.
    for _ in range(3):
        status = h.tick(600)
    assert awaiting(status)
    assert aws.log.calls("sagemaker", "CreateModel") == []

    # An approval naming another run is refused and cleared; the run keeps waiting.
    h.annotations[APPROVE_ANNOTATION] = "r20200101-000000"
    status = h.tick()
    assert APPROVE_ANNOTATION not in h.annotations
    assert "ApprovalIgnored" in h.reasons()
    assert awaiting(status)
    assert aws.log.calls("sagemaker", "UpdateModelPackage") == []

    # Hostile: an oversized value names no run either; cleared, shown cut, nothing approved.
    h.annotations[APPROVE_ANNOTATION] = "r" * 100_000
    status = h.tick()
    assert APPROVE_ANNOTATION not in h.annotations
    assert awaiting(status)
    ignored = [m for _, reason, m in h.events if reason == "ApprovalIgnored"]
    assert len(ignored) == 2
    assert len(ignored[-1]) < 300
    assert aws.log.calls("sagemaker", "UpdateModelPackage") == []

    h.annotations[APPROVE_ANNOTATION] = run.id
    status = h.until(lambda s: s.phase is not None and s.phase.value == "Serving", seconds=120)
    assert APPROVE_ANNOTATION not in h.annotations
    (update,) = aws.log.calls("sagemaker", "UpdateModelPackage")
    assert update.params["ModelApprovalStatus"] == "Approved"
    assert package(aws, arn)["ModelApprovalStatus"] == "Approved"
    assert status.history[0].outcome.value == "Deployed"
    assert status.history[0].model_package_arn == arn
    assert status.serving is not None
    assert status.serving.model_package_arn == arn
    (model,) = aws.log.calls("sagemaker", "CreateModel")
    assert model.params["PrimaryContainer"]["Image"] == container["Image"]
    assert model.params["PrimaryContainer"]["ModelDataUrl"] == container["ModelDataUrl"]
    serving = status.serving

    # Second run: a person rejects it in SageMaker; nothing deployed, the first model stays.
    aws.a2i.add_loops("fd-demo", 10, interval=5.0)
    status = h.until(awaiting, seconds=120)
    assert status.current_run is not None
    second = status.current_run.model_package_arn
    assert second is not None
    assert second != arn
    aws.sagemaker.set_approval(second, "Rejected", "boxes drift on bicycles")
    status = h.until(lambda s: s.current_run is None, seconds=60)
    assert status.history[0].outcome.value == "Rejected"
    assert "boxes drift on bicycles" in (status.history[0].reason or "")
    assert status.serving == serving
    assert len(aws.log.calls("sagemaker", "CreateModel")) == 1
    assert len(aws.log.calls("sagemaker", "UpdateEndpoint")) == 1
    assert "Rejected" in h.reasons()


def test_a_failed_gate_is_registered_rejected_with_its_reason(
    aws: AwsStandins, world: DemoWorld
) -> None:
    h = Harness(aws, registry_spec(world))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.31})
    status = h.until(lambda s: bool(s.history), seconds=120)
    entry = status.history[0]
    assert entry.outcome.value == "GateRejected"
    assert entry.model_package_arn is not None
    found = package(aws, entry.model_package_arn)
    assert found["ModelApprovalStatus"] == "Rejected"
    assert "gate failed" in found["ApprovalDescription"]
    assert "0.31" in found["ApprovalDescription"]
    assert aws.log.calls("sagemaker", "CreateModel") == []


def test_automatic_approval_registers_approved_and_deploys(
    aws: AwsStandins, world: DemoWorld
) -> None:
    h = Harness(aws, registry_spec(world, approval="Automatic", createGroup=True))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})
    status = h.until(lambda s: s.phase is not None and s.phase.value == "Serving", seconds=120)
    arn = status.history[0].model_package_arn
    assert arn is not None
    assert package(aws, arn)["ModelApprovalStatus"] == "Approved"
    assert "AwaitingApproval" not in h.reasons()
    assert len(aws.sagemaker.model_packages(GROUP)) == 1


def test_approval_timeout_ends_the_run_and_rejects_the_package(
    aws: AwsStandins, world: DemoWorld
) -> None:
    h = Harness(aws, registry_spec(world, approvalTimeout="30m"))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})
    status = h.until(awaiting, seconds=120)
    assert status.current_run is not None
    arn = status.current_run.model_package_arn
    assert arn is not None
    status = h.until(lambda s: s.current_run is None, seconds=300)
    assert status.history[0].outcome.value == "ApprovalTimedOut"
    assert package(aws, arn)["ModelApprovalStatus"] == "Rejected"
    assert "approvalTimeout" in package(aws, arn)["ApprovalDescription"]
    assert aws.log.calls("sagemaker", "CreateModel") == []


def test_another_policys_group_is_refused(aws: AwsStandins, world: DemoWorld) -> None:
    aws.sagemaker.call(
        "CreateModelPackageGroup",
        ModelPackageGroupName=GROUP,
        Tags=[
            {"Key": "retraining.hitl.dev/managed-by", "Value": "a2i-retraining-operator"},
            {"Key": "retraining.hitl.dev/policy-uid", "Value": "someone-elses-uid"},
        ],
    )
    h = Harness(aws, registry_spec(world))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})
    status = h.until(
        lambda s: any(c.reason == "RegistryProblem" and c.status == "True" for c in s.conditions),
        seconds=120,
    )
    assert status.current_run is not None
    assert status.current_run.model_package_arn is None
    assert aws.sagemaker.model_packages(GROUP) == []
    assert REF.uid != "someone-elses-uid"


def test_a_missing_group_without_create_group_is_degraded(
    aws: AwsStandins, world: DemoWorld
) -> None:
    h = Harness(aws, registry_spec(world, createGroup=False))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})
    status = h.until(
        lambda s: any(c.reason == "RegistryProblem" and c.status == "True" for c in s.conditions),
        seconds=120,
    )
    degraded = next(c for c in status.conditions if c.type.value == "Degraded")
    assert "createGroup" in degraded.message
    assert aws.log.calls("sagemaker", "CreateModelPackageGroup") == []


def test_a_crash_after_registering_does_not_register_twice(
    aws: AwsStandins, world: DemoWorld
) -> None:
    """The status write that records the package ARN fails (the API server is down): the
    next pass registers again with the same ClientToken and gets the same package."""

    class Crashing(Harness):
        crashed = False

        def checkpoint(self, status: RetrainingPolicyStatus) -> None:
            run = status.current_run
            if run is not None and run.model_package_arn and not self.crashed:
                self.crashed = True
                raise RuntimeError("the API server went away")
            super().checkpoint(status)

    h = Crashing(aws, registry_spec(world))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})
    with pytest.raises(RuntimeError, match="went away"):
        h.until(awaiting, seconds=120)
    assert h.crashed
    assert h.status["currentRun"].get("modelPackageArn") is None
    status = h.until(awaiting, seconds=30)
    assert len(aws.log.calls("sagemaker", "CreateModelPackage")) == 2
    (registered,) = aws.sagemaker.model_packages(GROUP)
    assert status.current_run is not None
    assert status.current_run.model_package_arn == registered.arn


def test_approval_in_sagemaker_rolls_out_without_the_annotation(
    aws: AwsStandins, world: DemoWorld
) -> None:
    h = Harness(aws, registry_spec(world))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})
    status = h.until(awaiting, seconds=120)
    assert status.current_run is not None
    arn = status.current_run.model_package_arn
    assert arn is not None
    aws.sagemaker.set_approval(arn, "Approved", "signed off in Studio")
    status = h.until(lambda s: s.phase is not None and s.phase.value == "Serving", seconds=120)
    assert status.history[0].outcome.value == "Deployed"
    assert status.serving is not None
    assert status.serving.model_package_arn == arn
    assert aws.log.calls("sagemaker", "UpdateModelPackage") == []  # the person did it
    assert any("signed off in Studio" in m for _, r, m in h.events if r == "Approved")
