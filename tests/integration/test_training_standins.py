"""Training and gate against the AWS stand-ins (SageMaker emulator over HTTP, S3 on moto).

Each test drives the training stage the way the controller does: `ensure_training`,
`observe_training` while the emulated clock moves, then the gate, and records the
outcome with the helpers the controller uses. Nothing here deploys: the request log
proves no Model/EndpointConfig/Endpoint call follows a rejected model.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
import pytest

from retraining_operator.api import (
    CurrentRun,
    HistoryEntry,
    Outcome,
    RetrainingPolicySpec,
    RetrainingPolicyStatus,
    RunStage,
    ServingStatus,
)
from retraining_operator.aws.session import AwsSession
from retraining_operator.flows.training import (
    BaseModelUnavailable,
    ensure_training,
    observe_training,
    stop_training,
    training_image_uri,
)
from retraining_operator.reconcile.gate import (
    GateDecision,
    evaluate_gate,
    rejection_history_entry,
    serving_metric_value,
)
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.training_request import TrainingData
from retraining_operator.reconcile.training_status import (
    JobKind,
    JobRef,
    JobState,
    TrainingObservation,
    failure_history_entry,
)
from retraining_standins.stack import AwsStandins
from unit.training_policies import TUNING, document

BUCKET = "rtp-test-bucket"
RUN_ID = "r20261124-220500"
POLICY = PolicyRef(
    namespace="vision", name="pascal-detector", uid="0d1e2f3a-0000-4000-8000-000000000001"
)
BASE_MODEL = f"s3://{BUCKET}/model/model.tar.gz"
TRAIN = f"s3://{BUCKET}/a2i-results/runs/{RUN_ID}/train.manifest"
VALIDATION = f"s3://{BUCKET}/voc/validation.manifest"
DATA = TrainingData(TRAIN, VALIDATION, 3, BASE_MODEL)
DEPLOY_OPERATIONS = {"CreateModel", "CreateEndpointConfig", "CreateEndpoint", "UpdateEndpoint"}
_CORE = botocore.session.get_session()  # one loaded service model for every test


def policy_spec(path: Any = None, **changes: Any) -> RetrainingPolicySpec:
    """An example policy moved into the stand-ins' bucket and region."""
    raw = copy.deepcopy(document(path) if path else document())["spec"]
    raw["aws"] = {"region": "us-east-1"}
    raw["humanLoops"]["flowDefinitionArn"] = (
        "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/fd-test"
    )
    raw["dataset"]["outputS3Uri"] = f"s3://{BUCKET}/a2i-results"
    raw["dataset"].pop("replay", None)
    raw["dataset"]["validation"] = {"manifestS3Uri": VALIDATION}
    raw["training"]["outputS3Uri"] = f"s3://{BUCKET}/a2i-results/incremental-training"
    raw["training"]["baseModel"] = {"s3Uri": BASE_MODEL}
    raw["training"].pop("spot", None)
    for key, value in changes.items():
        raw["training"][key] = value
    return RetrainingPolicySpec.model_validate(raw)


@pytest.fixture
def session(aws: AwsStandins, aws_bucket: str) -> AwsSession:
    line = '{"source-ref": "s3://%s/img/%d.jpg", "a2i-retraining": {"annotations": []}}\n'
    aws.put_object(TRAIN, "".join(line % (BUCKET, i) for i in range(3)))
    aws.put_object(VALIDATION, line % (BUCKET, 9))
    aws.put_object(BASE_MODEL, b"base model bytes")
    return AwsSession("us-east-1", base=boto3.Session(botocore_session=_CORE))


def run_record(job: JobRef | None = None) -> CurrentRun:
    run = CurrentRun(
        id=RUN_ID,
        stage=RunStage.TRAINING,
        started_at=datetime(2026, 11, 24, 22, 5, tzinfo=UTC),
        manifest_s3_uri=TRAIN,
        validation_manifest_s3_uri=VALIDATION,
    )
    if job is None:
        return run
    field = "tuning_job_name" if job.kind is JobKind.TUNING else "training_job_name"
    return run.model_copy(update={field: job.name})


def wait_until_finished(
    aws: AwsStandins, session: AwsSession, job: JobRef, *, step: float = 120, limit: int = 60
) -> tuple[TrainingObservation, list[TrainingObservation]]:
    """Poll as the controller's timer does, moving the emulated clock between polls."""
    seen: list[TrainingObservation] = []
    for _ in range(limit):
        observation = observe_training(session, job)
        seen.append(observation)
        if observation.finished:
            return observation, seen
        aws.clock.advance(step)
    raise AssertionError(f"{job} did not finish: {seen[-1].message}")


def judge(
    spec: RetrainingPolicySpec,
    status: RetrainingPolicyStatus,
    run: CurrentRun,
    observation: TrainingObservation,
) -> tuple[GateDecision | None, HistoryEntry | None]:
    """The controller's Evaluating step: a failure or a rejection becomes history."""
    finished = datetime(2026, 11, 25, tzinfo=UTC)
    if not observation.succeeded:
        return None, failure_history_entry(run, observation, finished_at=finished)
    decision = evaluate_gate(
        spec.gate,
        observation.final_metrics,
        serving_value=serving_metric_value(status),
        job_name=observation.training_job_name,
    )
    if decision.passed:
        return decision, None
    entry = rejection_history_entry(
        run,
        decision,
        training_job_name=observation.training_job_name,
        model_data_url=observation.model_data_url,
        finished_at=finished,
    )
    return decision, entry


def sagemaker_ops(aws: AwsStandins) -> list[str]:
    return aws.log.operations("sagemaker")


def test_submit_complete_gate_pass(aws: AwsStandins, session: AwsSession) -> None:
    spec = policy_spec()
    job_name = POLICY.training_job_name(RUN_ID)
    aws.sagemaker.set_metrics(job_name, {"validation:mAP": 0.71})

    submitted = ensure_training(session, POLICY, spec, RUN_ID, DATA)
    assert submitted.created
    assert submitted.job == JobRef(JobKind.TRAINING, job_name)

    final, seen = wait_until_finished(aws, session, submitted.job)
    secondaries = [o.secondary_status for o in seen]
    assert secondaries[0] == "Starting"
    assert "Training" in secondaries
    assert final.state is JobState.COMPLETED
    assert final.model_data_url == (
        f"s3://{BUCKET}/a2i-results/incremental-training/{job_name}/output/model.tar.gz"
    )
    assert aws.get_object(final.model_data_url) is not None  # the artifact really exists

    status = RetrainingPolicyStatus(serving=ServingStatus(model_name="m0", metric_value=0.70))
    decision, entry = judge(spec, status, run_record(submitted.job), final)
    assert decision is not None
    assert decision.passed
    assert decision.value == pytest.approx(0.71)
    assert entry is None
    # What SageMaker received is exactly the operator's request (one create, seed shape).
    (create,) = aws.log.calls("sagemaker", "CreateTrainingJob")
    assert create.ok
    assert create.params["HyperParameters"]["use_pretrained_model"] == "0"
    assert create.params["HyperParameters"]["num_training_samples"] == "3"
    assert create.params["AlgorithmSpecification"]["TrainingImage"] == training_image_uri(spec)


def test_gate_rejects_below_floor_and_records_it(aws: AwsStandins, session: AwsSession) -> None:
    spec = policy_spec()
    aws.sagemaker.set_metrics(POLICY.training_job_name(RUN_ID), {"validation:mAP": 0.42})
    submitted = ensure_training(session, POLICY, spec, RUN_ID, DATA)
    final, _ = wait_until_finished(aws, session, submitted.job)

    decision, entry = judge(spec, RetrainingPolicyStatus(), run_record(submitted.job), final)

    assert decision is not None
    assert not decision.passed
    assert entry is not None
    assert entry.outcome is Outcome.GATE_REJECTED
    assert entry.metric_value == pytest.approx(0.42)
    assert entry.model_data_url == final.model_data_url
    assert entry.reason is not None
    assert "gate.minimum 0.5" in entry.reason
    assert DEPLOY_OPERATIONS.isdisjoint(sagemaker_ops(aws))


def test_gate_rejects_regression_against_serving_model(
    aws: AwsStandins, session: AwsSession
) -> None:
    spec = policy_spec()
    aws.sagemaker.set_metrics(POLICY.training_job_name(RUN_ID), {"validation:mAP": 0.66})
    status = RetrainingPolicyStatus(
        serving=ServingStatus(model_name="pascal-m-1", run_id="r1"),
        history=[
            HistoryEntry(
                run_id="r1", outcome=Outcome.DEPLOYED, model_name="pascal-m-1", metric_value=0.70
            )
        ],
    )
    submitted = ensure_training(session, POLICY, spec, RUN_ID, DATA)
    final, _ = wait_until_finished(aws, session, submitted.job)

    decision, entry = judge(spec, status, run_record(submitted.job), final)

    assert decision is not None
    assert not decision.passed  # 0.66 clears the 0.5 floor but not 0.70 - 0.01
    assert decision.serving_value == pytest.approx(0.70)
    assert entry is not None
    assert entry.outcome is Outcome.GATE_REJECTED
    assert entry.reason is not None
    assert "gate.maxRegression" in entry.reason
    assert DEPLOY_OPERATIONS.isdisjoint(sagemaker_ops(aws))


def test_failed_job_surfaces_its_reason(aws: AwsStandins, session: AwsSession) -> None:
    reason = "AlgorithmError: num_classes (20) does not match the base model (21)"
    aws.sagemaker.plan_training(
        POLICY.training_job_name(RUN_ID), outcome="Failed", failure_reason=reason
    )
    submitted = ensure_training(session, POLICY, policy_spec(), RUN_ID, DATA)
    final, _ = wait_until_finished(aws, session, submitted.job)

    assert final.state is JobState.FAILED
    assert final.failure_reason == reason
    decision, entry = judge(policy_spec(), RetrainingPolicyStatus(), run_record(), final)
    assert decision is None
    assert entry is not None
    assert entry.outcome is Outcome.TRAINING_FAILED
    assert entry.reason is not None
    assert reason in entry.reason


def test_missing_training_data_fails_with_the_channel_named(
    aws: AwsStandins, session: AwsSession
) -> None:
    data = TrainingData(f"s3://{BUCKET}/nowhere/train.manifest", VALIDATION, 3, BASE_MODEL)
    submitted = ensure_training(session, POLICY, policy_spec(), RUN_ID, data)
    final, _ = wait_until_finished(aws, session, submitted.job)
    assert final.failure_reason is not None
    assert "channel 'train'" in final.failure_reason


def test_crash_after_create_before_status_adopts_the_job(
    aws: AwsStandins, session: AwsSession
) -> None:
    spec = policy_spec()

    class Killed(BaseException):
        """The operator process dying right after SageMaker accepted the job."""

    def kill(**_: Any) -> None:
        raise Killed

    client = session.sagemaker()
    client.meta.events.register("after-call.sagemaker.CreateTrainingJob", kill)
    with pytest.raises(Killed):
        ensure_training(session, POLICY, spec, RUN_ID, DATA)
    client.meta.events.unregister("after-call.sagemaker.CreateTrainingJob", kill)

    # The run's status never recorded the job; a restarted operator runs ensure again,
    # and again (at-least-once handlers), and with a fresh process-wide session.
    restarted = AwsSession("us-east-1", base=boto3.Session(botocore_session=_CORE))
    first = ensure_training(restarted, POLICY, spec, RUN_ID, DATA)
    second = ensure_training(restarted, POLICY, spec, RUN_ID, DATA)

    assert not first.created
    assert not second.created
    assert first.job.name == POLICY.training_job_name(RUN_ID)
    assert aws.sagemaker.training_job_names() == [first.job.name]
    creates = aws.log.calls("sagemaker", "CreateTrainingJob")
    assert len(creates) == 1
    assert creates[0].ok
    # Recovery was describe-first: no second CreateTrainingJob reached the emulator.
    assert sagemaker_ops(aws)[-2:] == ["DescribeTrainingJob", "DescribeTrainingJob"]


def test_lost_create_response_is_adopted_not_duplicated(
    aws: AwsStandins, session: AwsSession
) -> None:
    """Describe said not-found, a second replica created the job first: ResourceInUse."""
    spec = policy_spec()
    other_replica = AwsSession("us-east-1", base=boto3.Session(botocore_session=_CORE))
    raced = {"done": False}

    def create_in_between(**_: Any) -> None:
        if not raced["done"]:
            raced["done"] = True
            ensure_training(other_replica, POLICY, spec, RUN_ID, DATA)

    client = session.sagemaker()
    client.meta.events.register("before-call.sagemaker.CreateTrainingJob", create_in_between)
    try:
        submitted = ensure_training(session, POLICY, spec, RUN_ID, DATA)
    finally:
        client.meta.events.unregister("before-call.sagemaker.CreateTrainingJob", create_in_between)

    assert not submitted.created
    outcomes = [c.outcome for c in aws.log.calls("sagemaker", "CreateTrainingJob")]
    assert outcomes == ["ok", "ResourceInUse"]
    assert len(aws.sagemaker.training_job_names()) == 1


def test_suspend_stops_the_job_idempotently(aws: AwsStandins, session: AwsSession) -> None:
    submitted = ensure_training(session, POLICY, policy_spec(), RUN_ID, DATA)
    aws.clock.advance(130)
    assert observe_training(session, submitted.job).state is JobState.IN_PROGRESS

    assert stop_training(session, submitted.job) is True
    assert stop_training(session, submitted.job) is False  # already stopping
    final, _ = wait_until_finished(aws, session, submitted.job, step=30)

    assert final.state is JobState.STOPPED
    assert final.failure_outcome is Outcome.STOPPED
    assert stop_training(session, submitted.job) is False  # already stopped
    assert aws.log.count("sagemaker", "StopTrainingJob") == 1
    missing = JobRef(JobKind.TRAINING, "never-created")
    assert stop_training(session, missing) is False


def test_spot_job_is_accepted_and_billed_as_spot(aws: AwsStandins, session: AwsSession) -> None:
    spec = policy_spec(maxRuntime="1h", spot={"enabled": True, "maxWait": "2h"})
    submitted = ensure_training(session, POLICY, spec, RUN_ID, DATA)
    final, _ = wait_until_finished(aws, session, submitted.job)

    assert final.succeeded
    described = aws.sagemaker.describe_training_job(submitted.job.name)
    assert described["EnableManagedSpotTraining"] is True
    assert described["BillableTimeInSeconds"] < described["TrainingTimeInSeconds"]
    (create,) = aws.log.calls("sagemaker", "CreateTrainingJob")
    assert create.params["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 3600,
        "MaxWaitTimeInSeconds": 7200,
    }
    assert create.params["CheckpointConfig"]["S3Uri"].endswith(f"/checkpoints/{submitted.job.name}")


def test_first_run_on_brand_new_endpoint_is_a_clear_error(
    aws: AwsStandins, session: AwsSession
) -> None:
    spec = policy_spec(baseModel={"fromEndpoint": True})
    data = TrainingData(TRAIN, VALIDATION, 3)
    with pytest.raises(BaseModelUnavailable) as caught:
        ensure_training(session, POLICY, spec, RUN_ID, data)
    assert caught.value.reason == "EndpointNotFound"
    assert "od-endpoint" in caught.value.message
    assert aws.log.count("sagemaker", "CreateTrainingJob") == 0


# `variant-1` is what the console names a single variant; the policy's variantName differs.
@pytest.mark.parametrize("variant", ["AllTraffic", "variant-1"])
def test_base_model_comes_from_the_serving_endpoint(
    aws: AwsStandins, session: AwsSession, variant: str
) -> None:
    serving = f"s3://{BUCKET}/models/v1/model.tar.gz"
    aws.put_object(serving, b"serving model")
    sm = aws.client("sagemaker")
    sm.create_model(
        ModelName="od-model-v1",
        PrimaryContainer={"Image": training_image_uri(policy_spec()), "ModelDataUrl": serving},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerExecution",
    )
    sm.create_endpoint_config(
        EndpointConfigName="od-config-v1",
        ProductionVariants=[
            {
                "VariantName": variant,
                "ModelName": "od-model-v1",
                "InstanceType": "ml.m5.xlarge",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName="od-endpoint", EndpointConfigName="od-config-v1")
    aws.clock.advance(400)

    spec = policy_spec(baseModel={"fromEndpoint": True})
    assert spec.deployment.variant_name == "AllTraffic"
    submitted = ensure_training(session, POLICY, spec, RUN_ID, TrainingData(TRAIN, VALIDATION, 3))

    assert submitted.base_model_s3_uri == serving
    (create,) = aws.log.calls("sagemaker", "CreateTrainingJob")
    model_channel = create.params["InputDataConfig"][2]
    assert model_channel["ChannelName"] == "model"
    assert model_channel["DataSource"]["S3DataSource"]["S3Uri"] == serving
    assert aws.log.operations("sagemaker")[-5:] == [
        "DescribeTrainingJob",
        "DescribeEndpoint",
        "DescribeEndpointConfig",
        "DescribeModel",
        "CreateTrainingJob",
    ]


def _metric_by_learning_rate(_job: str, hyper: Mapping[str, str]) -> Mapping[str, float]:
    return {"validation:mAP": 0.5 + 100 * float(hyper["learning_rate"])}


def test_tuning_best_job_is_gated_and_recorded(aws: AwsStandins, session: AwsSession) -> None:
    spec = policy_spec(
        TUNING,
        hyperParameters={"num_classes": "5", "epochs": "1"},
        tuning={
            "maxJobs": 4,
            "maxParallelJobs": 2,
            "ranges": {"learning_rate": {"min": 0.00001, "max": 0.003}},
        },
    )
    aws.sagemaker.set_metrics_provider(_metric_by_learning_rate)

    submitted = ensure_training(session, POLICY, spec, RUN_ID, DATA)
    assert submitted.job == JobRef(JobKind.TUNING, POLICY.tuning_job_name(RUN_ID))
    assert ensure_training(session, POLICY, spec, RUN_ID, DATA).created is False

    final, seen = wait_until_finished(aws, session, submitted.job)
    assert any(o.secondary_status and "in progress" in o.secondary_status for o in seen)
    assert final.succeeded

    children = {
        name: aws.sagemaker.describe_training_job(name)
        for name in aws.sagemaker.training_job_names()
    }
    assert len(children) == 4
    scores = {
        name: {m["MetricName"]: m["Value"] for m in d.get("FinalMetricDataList", [])}.get(
            "validation:mAP", -1.0
        )
        for name, d in children.items()
    }
    best = max(scores, key=lambda name: scores[name])
    assert final.training_job_name == best
    assert final.final_metrics["validation:mAP"] == pytest.approx(scores[best])
    assert final.model_data_url == children[best]["ModelArtifacts"]["S3ModelArtifacts"]

    # The gate judges the best job; a floor above it rejects, and the record names it.
    strict = spec.model_copy(
        update={"gate": spec.gate.model_copy(update={"minimum": scores[best] + 0.01})}
    )
    decision, entry = judge(strict, RetrainingPolicyStatus(), run_record(submitted.job), final)
    assert decision is not None
    assert not decision.passed
    assert entry is not None
    assert entry.training_job_name == best
    assert entry.metric_value == pytest.approx(scores[best])
    passing, _ = judge(spec, RetrainingPolicyStatus(), run_record(submitted.job), final)
    assert passing is not None
    assert passing.passed == (scores[best] >= 0.6)
    # Every child trained with the operator's two hyperparameters and the static ones.
    for described in children.values():
        hyper = described["HyperParameters"]
        assert hyper["use_pretrained_model"] == "0"
        assert hyper["num_training_samples"] == "3"
        assert hyper["epochs"] == "1"


def test_stop_tuning_job(aws: AwsStandins, session: AwsSession) -> None:
    spec = policy_spec(
        TUNING,
        tuning={
            "maxJobs": 2,
            "maxParallelJobs": 2,
            "ranges": {"momentum": {"min": 0.5, "max": 0.99}},
        },
    )
    submitted = ensure_training(session, POLICY, spec, RUN_ID, DATA)
    assert stop_training(session, submitted.job) is True
    final, _ = wait_until_finished(aws, session, submitted.job, step=30)
    assert final.state is JobState.STOPPED
    assert final.failure_outcome is Outcome.STOPPED
    assert stop_training(session, submitted.job) is False
