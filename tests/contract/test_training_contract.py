"""AWS contract of training: every request is valid for SageMaker's real service model.

Two checks per request: botocore's own `ParamValidator` (types, required members,
minimums) and the constraints it leaves to the service (maximum lengths, patterns such
as the job-name regex, enums), read from the same service model. Gateway and
workflow calls are then driven through botocore's `Stubber` with `expected_params`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.model import ListShape, MapShape, Shape, StructureShape
from botocore.stub import Stubber
from botocore.validate import ParamValidator

from retraining_operator.aws import training as gateway
from retraining_operator.aws.errors import (
    AlreadyExists,
    InvalidRequest,
    NotFound,
    Throttled,
)
from retraining_operator.aws.session import AwsSession
from retraining_operator.errors import NeedsAttention
from retraining_operator.flows.training import (
    BaseModelUnavailable,
    ensure_training,
    observe_training,
    resolve_base_model,
    stop_training,
    training_image_uri,
)
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.training_request import (
    TrainingData,
    training_job_request,
    tuning_job_request,
)
from retraining_operator.reconcile.training_status import JobKind, JobRef
from unit.training_policies import DATA, IMAGE, POLICY, RUN_ID, TUNING, spec

MODEL = botocore.session.get_session().get_service_model("sagemaker")
_JAVA = {r"\p{L}": "a-zA-Z", r"\p{Z}": " ", r"\p{N}": "0-9", r"\p{Alnum}": "a-zA-Z0-9"}


def _pattern(text: str) -> re.Pattern[str]:
    for java, python in _JAVA.items():  # ASCII stand-ins: stricter than AWS, never looser
        text = text.replace(java, python)
    return re.compile(text, re.DOTALL)


def _service_constraints(value: Any, shape: Shape, path: str) -> Iterator[str]:
    meta = shape.metadata
    if isinstance(shape, StructureShape):
        for key, item in value.items():
            yield from _service_constraints(item, shape.members[key], f"{path}.{key}")
    elif isinstance(shape, ListShape):
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: {len(value)} items > {meta['max']}"
        for index, item in enumerate(value):
            yield from _service_constraints(item, shape.member, f"{path}[{index}]")
    elif isinstance(shape, MapShape):
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: {len(value)} entries > {meta['max']}"
        for key, item in value.items():
            yield from _service_constraints(key, shape.key, f"{path}<key>")
            yield from _service_constraints(item, shape.value, f"{path}.{key}")
    elif shape.type_name == "string":
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: length {len(value)} > {meta['max']}"
        if "pattern" in meta and not _pattern(meta["pattern"]).fullmatch(value):
            yield f"{path}: {value!r} does not match {meta['pattern']}"
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            yield f"{path}: {value!r} not in enum"
    elif shape.type_name in ("integer", "long") and "max" in meta and value > meta["max"]:
        yield f"{path}: {value} > {meta['max']}"


def _input(operation: str) -> StructureShape:
    shape = MODEL.operation_model(operation).input_shape
    assert shape is not None
    return shape


def assert_valid(operation: str, request: Mapping[str, Any]) -> None:
    shape = _input(operation)
    report = ParamValidator().validate(dict(request), shape)
    assert not report.has_errors(), report.generate_report()
    problems = list(_service_constraints(request, shape, operation))
    assert problems == []


def test_strict_checker_catches_what_botocore_skips() -> None:
    """The contract checker itself: it must refuse a bad name and an unknown enum."""
    bad = dict(training_job_request(spec(), POLICY, RUN_ID, DATA, image_uri=IMAGE))
    bad["TrainingJobName"] = "bad_name_" + "x" * 70
    shape = _input("CreateTrainingJob")
    assert not ParamValidator().validate(bad, shape).has_errors()  # botocore alone says fine
    problems = list(_service_constraints(bad, shape, "CreateTrainingJob"))
    assert any("length" in p for p in problems)
    assert any("does not match" in p for p in problems)
    bad["ResourceConfig"] = {"InstanceType": "ml.nope.large", "InstanceCount": 1}
    assert any("enum" in p for p in _service_constraints(bad, shape, "x"))


def test_seed_request_is_valid() -> None:
    assert_valid(
        "CreateTrainingJob", training_job_request(spec(), POLICY, RUN_ID, DATA, image_uri=IMAGE)
    )


def test_spot_request_is_valid() -> None:
    spot = spec(
        maxRuntime="100h",
        spot={"enabled": True, "maxWait": "120h", "checkpointS3Uri": "s3://my-bucket/ckpt"},
    )
    request = training_job_request(spot, POLICY, RUN_ID, DATA, image_uri=IMAGE)
    assert_valid("CreateTrainingJob", request)
    assert request["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 360000,
        "MaxWaitTimeInSeconds": 432000,
    }


def test_explicit_image_request_is_valid() -> None:
    raw = spec().model_dump(by_alias=True, exclude_none=True)
    raw["training"].pop("algorithm")
    raw["training"]["image"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/custom-od:2.1"
    from retraining_operator.api import RetrainingPolicySpec

    explicit = RetrainingPolicySpec.model_validate(raw)
    request = training_job_request(
        explicit, POLICY, RUN_ID, DATA, image_uri=training_image_uri(explicit)
    )
    assert_valid("CreateTrainingJob", request)
    assert request["AlgorithmSpecification"].get("TrainingImage") == raw["training"]["image"]


def test_tuning_request_is_valid() -> None:
    tuned = spec(TUNING)
    request = tuning_job_request(tuned, POLICY, RUN_ID, DATA, image_uri=training_image_uri(tuned))
    assert_valid("CreateHyperParameterTuningJob", request)


@pytest.mark.parametrize(
    "policy",
    [
        PolicyRef(namespace="n" * 63, name="p" * 253, uid="0b7c8a9e-aaaa-4bbb-8ccc-123456789abc"),
        PolicyRef(namespace="a-b", name="x.y.z-" * 40 + "end", uid="u"),
        PolicyRef.without_uid("n" * 63, "q" * 253),
    ],
)
def test_very_long_policy_identity_is_valid(policy: PolicyRef) -> None:
    single = training_job_request(spec(), policy, RUN_ID, DATA, image_uri=IMAGE)
    tuned = tuning_job_request(spec(TUNING), policy, RUN_ID, DATA, image_uri=IMAGE)
    assert_valid("CreateTrainingJob", single)
    assert_valid("CreateHyperParameterTuningJob", tuned)
    other = PolicyRef(policy.namespace, policy.name, policy.uid + "-other")
    assert other.training_job_name(RUN_ID) != single["TrainingJobName"]
    assert other.tuning_job_name(RUN_ID) != tuned["HyperParameterTuningJobName"]


def test_every_example_policy_makes_valid_requests() -> None:
    from unit.training_policies import EXAMPLES

    for path in sorted(EXAMPLES.glob("*.yaml")):
        example = spec(path)
        image = training_image_uri(example)
        assert_valid(
            "CreateTrainingJob",
            training_job_request(example, POLICY, RUN_ID, DATA, image_uri=image),
        )
        if example.training.tuning is not None:
            assert_valid(
                "CreateHyperParameterTuningJob",
                tuning_job_request(example, POLICY, RUN_ID, DATA, image_uri=image),
            )


# ---------------------------------------------------------------------------------------
# Gateway and workflow calls through Stubber


_CORE = botocore.session.get_session()  # shared: the service model is loaded once


@pytest.fixture
def session() -> AwsSession:
    base = boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        botocore_session=_CORE,
    )
    return AwsSession("us-east-1", base=base)


@pytest.fixture
def stub(session: AwsSession) -> Iterator[Stubber]:
    with Stubber(session.sagemaker()) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


NOT_FOUND = ("ValidationException", "Requested resource not found.")
JOB = POLICY.training_job_name(RUN_ID)
TUNING_ARN = "arn:aws:sagemaker:eu-west-1:111122223333:hyper-parameter-tuning-job"


def _described(name: str, status: str = "InProgress", **extra: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:111122223333:training-job/{name}",
        "TrainingJobStatus": status,
        "SecondaryStatus": extra.pop("SecondaryStatus", "Training"),
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "Pipe"},
        "ModelArtifacts": extra.pop("ModelArtifacts", {"S3ModelArtifacts": ""}),
        "ResourceConfig": {
            "InstanceType": "ml.p3.2xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 50,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 360000},
        "CreationTime": "2026-11-24T22:05:00Z",
        **extra,
    }


def test_ensure_creates_after_describe_not_found(session: AwsSession, stub: Stubber) -> None:
    expected = training_job_request(spec(), POLICY, RUN_ID, DATA, image_uri=IMAGE)
    stub.add_client_error(
        "describe_training_job", *NOT_FOUND, expected_params={"TrainingJobName": JOB}
    )
    stub.add_response(
        "create_training_job",
        {"TrainingJobArn": f"arn:aws:sagemaker:us-east-1:111122223333:training-job/{JOB}"},
        expected_params=dict(expected),
    )
    submitted = ensure_training(session, POLICY, spec(), RUN_ID, DATA)
    assert submitted.job == JobRef(JobKind.TRAINING, JOB)
    assert submitted.created
    assert submitted.base_model_s3_uri == DATA.base_model_s3_uri


def test_ensure_adopts_existing_job_without_creating(session: AwsSession, stub: Stubber) -> None:
    stub.add_response(
        "describe_training_job",
        _described(
            JOB,
            InputDataConfig=[
                {
                    "ChannelName": "model",
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/m"}},
                }
            ],
        ),
        expected_params={"TrainingJobName": JOB},
    )
    submitted = ensure_training(session, POLICY, spec(), RUN_ID, DATA)
    assert not submitted.created
    assert submitted.base_model_s3_uri == "s3://b/m"
    # No create was stubbed: a CreateTrainingJob call would have failed the Stubber.


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("ResourceInUse", "Training job names must be unique within an AWS account and region"),
        ("ValidationException", f"Training job {JOB} already exists"),
    ],
)
def test_ensure_adopts_on_create_race(
    session: AwsSession, stub: Stubber, code: str, message: str
) -> None:
    stub.add_client_error(
        "describe_training_job", *NOT_FOUND, expected_params={"TrainingJobName": JOB}
    )
    stub.add_client_error(
        "create_training_job",
        code,
        message,
        expected_params=dict(training_job_request(spec(), POLICY, RUN_ID, DATA, image_uri=IMAGE)),
    )
    submitted = ensure_training(session, POLICY, spec(), RUN_ID, DATA)
    assert not submitted.created
    assert submitted.job.name == JOB


def test_ensure_tuning_creates_tuning_job(session: AwsSession, stub: Stubber) -> None:
    tuned = spec(TUNING)
    name = POLICY.tuning_job_name(RUN_ID)
    expected = tuning_job_request(tuned, POLICY, RUN_ID, DATA, image_uri=training_image_uri(tuned))
    stub.add_client_error(
        "describe_hyper_parameter_tuning_job",
        "ResourceNotFound",
        f"Amazon SageMaker can't find a tuning job with name {name}",
        expected_params={"HyperParameterTuningJobName": name},
    )
    stub.add_response(
        "create_hyper_parameter_tuning_job",
        {"HyperParameterTuningJobArn": f"{TUNING_ARN}/{name}"},
        expected_params=dict(expected),
    )
    submitted = ensure_training(session, POLICY, tuned, RUN_ID, DATA)
    assert submitted.job == JobRef(JobKind.TUNING, name)
    assert submitted.created


def test_observe_completed_tuning_describes_best_job(session: AwsSession, stub: Stubber) -> None:
    name = POLICY.tuning_job_name(RUN_ID)
    best = f"{name}-003-abcdef12"
    stub.add_response(
        "describe_hyper_parameter_tuning_job",
        {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobArn": f"{TUNING_ARN}/{name}",
            "HyperParameterTuningJobConfig": {
                "Strategy": "Bayesian",
                "ResourceLimits": {"MaxParallelTrainingJobs": 2},
            },
            "HyperParameterTuningJobStatus": "Completed",
            "CreationTime": "2026-11-24T22:05:00Z",
            "TrainingJobStatusCounters": {"Completed": 6},
            "ObjectiveStatusCounters": {"Succeeded": 6},
            "BestTrainingJob": {
                "TrainingJobName": best,
                "TrainingJobArn": f"arn:aws:sagemaker:eu-west-1:1:training-job/{best}",
                "CreationTime": "2026-11-24T22:05:00Z",
                "TrainingJobStatus": "Completed",
                "TunedHyperParameters": {"learning_rate": "0.0002"},
            },
        },
        expected_params={"HyperParameterTuningJobName": name},
    )
    stub.add_response(
        "describe_training_job",
        _described(
            best,
            "Completed",
            SecondaryStatus="Completed",
            ModelArtifacts={"S3ModelArtifacts": f"s3://b/out/{best}/output/model.tar.gz"},
            FinalMetricDataList=[{"MetricName": "validation:mAP", "Value": 0.71}],
        ),
        expected_params={"TrainingJobName": best},
    )
    seen = observe_training(session, JobRef(JobKind.TUNING, name))
    assert seen.succeeded
    assert seen.training_job_name == best
    assert seen.final_metrics == {"validation:mAP": 0.71}


def test_stop_in_progress_job(session: AwsSession, stub: Stubber) -> None:
    stub.add_response(
        "describe_training_job", _described(JOB), expected_params={"TrainingJobName": JOB}
    )
    stub.add_response("stop_training_job", {}, expected_params={"TrainingJobName": JOB})
    assert stop_training(session, JobRef(JobKind.TRAINING, JOB)) is True


@pytest.mark.parametrize("status", ["Completed", "Failed", "Stopped", "Stopping"])
def test_stop_is_a_no_op_for_ended_jobs(session: AwsSession, stub: Stubber, status: str) -> None:
    stub.add_response(
        "describe_training_job", _described(JOB, status), expected_params={"TrainingJobName": JOB}
    )
    assert stop_training(session, JobRef(JobKind.TRAINING, JOB)) is False


def test_stop_tolerates_missing_job_and_finishing_race(session: AwsSession, stub: Stubber) -> None:
    stub.add_client_error("describe_training_job", *NOT_FOUND)
    assert stop_training(session, JobRef(JobKind.TRAINING, JOB)) is False
    # In progress when described, finished by the time Stop arrives.
    stub.add_response("describe_training_job", _described(JOB))
    stub.add_client_error(
        "stop_training_job",
        "ValidationException",
        "The request was rejected because the training job is in status Completed.",
    )
    assert stop_training(session, JobRef(JobKind.TRAINING, JOB)) is False


def test_stop_tuning_job(session: AwsSession, stub: Stubber) -> None:
    name = POLICY.tuning_job_name(RUN_ID)
    stub.add_response(
        "describe_hyper_parameter_tuning_job",
        {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobArn": f"{TUNING_ARN}/{name}",
            "HyperParameterTuningJobConfig": {
                "Strategy": "Bayesian",
                "ResourceLimits": {"MaxParallelTrainingJobs": 2},
            },
            "HyperParameterTuningJobStatus": "InProgress",
            "CreationTime": "2026-11-24T22:05:00Z",
            "TrainingJobStatusCounters": {"InProgress": 2},
            "ObjectiveStatusCounters": {"Pending": 2},
        },
    )
    stub.add_response(
        "stop_hyper_parameter_tuning_job", {}, expected_params={"HyperParameterTuningJobName": name}
    )
    assert stop_training(session, JobRef(JobKind.TUNING, name)) is True


def test_gateway_maps_errors(session: AwsSession, stub: Stubber) -> None:
    sm = session.sagemaker()
    stub.add_client_error("describe_training_job", *NOT_FOUND)
    with pytest.raises(NotFound, match="DescribeTrainingJob"):
        gateway.describe_training_job(sm, JOB)
    stub.add_client_error("create_training_job", "ResourceInUse", "in use")
    with pytest.raises(AlreadyExists):
        gateway.create_training_job(
            sm, training_job_request(spec(), POLICY, RUN_ID, DATA, image_uri=IMAGE)
        )
    stub.add_client_error(
        "describe_training_job", "ThrottlingException", "Rate exceeded", http_status_code=400
    )
    with pytest.raises(Throttled):
        gateway.describe_training_job(sm, JOB)
    stub.add_client_error("stop_training_job", "ValidationException", "1 validation error detected")
    with pytest.raises(InvalidRequest):
        gateway.stop_training_job(sm, JOB)


# --- base model from the endpoint -------------------------------------------------------


def _endpoint_calls(
    stub: Stubber,
    *,
    variants: tuple[str, ...] = ("AllTraffic",),
    container: str | None = "PrimaryContainer",
) -> None:
    stub.add_response(
        "describe_endpoint",
        {
            "EndpointName": "od-endpoint",
            "EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/od-endpoint",
            "EndpointConfigName": "od-config-1",
            "EndpointStatus": "InService",
            "CreationTime": "2026-11-24T22:05:00Z",
            "LastModifiedTime": "2026-11-24T22:05:00Z",
        },
        expected_params={"EndpointName": "od-endpoint"},
    )
    stub.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": "od-config-1",
            "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:1:endpoint-config/od-config-1",
            "ProductionVariants": [
                {"VariantName": variant, "ModelName": "od-model-1"} for variant in variants
            ],
            "CreationTime": "2026-11-24T22:05:00Z",
        },
        expected_params={"EndpointConfigName": "od-config-1"},
    )
    if container is None:
        return
    model: dict[str, Any] = {
        "ModelName": "od-model-1",
        "ModelArn": "arn:aws:sagemaker:us-east-1:1:model/od-model-1",
        "CreationTime": "2026-11-24T22:05:00Z",
    }
    serving = {"Image": IMAGE, "ModelDataUrl": "s3://my-bucket/model/serving.tar.gz"}
    model[container] = [serving] if container == "Containers" else serving
    stub.add_response("describe_model", model, expected_params={"ModelName": "od-model-1"})


@pytest.mark.parametrize("container", ["PrimaryContainer", "Containers"])
def test_base_model_from_endpoint(session: AwsSession, stub: Stubber, container: str) -> None:
    _endpoint_calls(stub, container=container)
    assert resolve_base_model(session, spec()) == "s3://my-bucket/model/serving.tar.gz"


def test_base_model_s3_uri_used_as_is(session: AwsSession, stub: Stubber) -> None:
    explicit = spec(baseModel={"s3Uri": "s3://my-bucket/model/v0.tar.gz"})
    assert resolve_base_model(session, explicit) == "s3://my-bucket/model/v0.tar.gz"


def test_first_run_on_new_endpoint_is_actionable(session: AwsSession, stub: Stubber) -> None:
    stub.add_client_error(
        "describe_endpoint", "ValidationException", 'Could not find endpoint "od-endpoint".'
    )
    with pytest.raises(BaseModelUnavailable) as caught:
        resolve_base_model(session, spec())
    assert caught.value.reason == "EndpointNotFound"
    assert "training.baseModel.s3Uri" in caught.value.message


def test_missing_variant_is_actionable(session: AwsSession, stub: Stubber) -> None:
    # Two variants, neither the policy's variantName: which one serves is ambiguous.
    _endpoint_calls(stub, variants=("Blue", "Green"), container=None)
    with pytest.raises(BaseModelUnavailable) as caught:
        resolve_base_model(session, spec())
    assert caught.value.reason == "VariantNotFound"
    assert isinstance(caught.value, NeedsAttention)  # a person must act: Degraded
    assert "AllTraffic" in caught.value.message
    assert "Blue, Green" in caught.value.message
    assert "training.baseModel.s3Uri" in caught.value.message


def test_a_single_variant_serves_whatever_its_name(session: AwsSession, stub: Stubber) -> None:
    _endpoint_calls(stub, variants=("variant-1",))
    assert resolve_base_model(session, spec()) == "s3://my-bucket/model/serving.tar.gz"


def test_missing_model_is_actionable(session: AwsSession, stub: Stubber) -> None:
    stub.add_response(
        "describe_endpoint",
        {
            "EndpointName": "od-endpoint",
            "EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/od-endpoint",
            "EndpointConfigName": "od-config-1",
            "EndpointStatus": "InService",
            "CreationTime": "2026-11-24T22:05:00Z",
            "LastModifiedTime": "2026-11-24T22:05:00Z",
        },
    )
    stub.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": "od-config-1",
            "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:1:endpoint-config/od-config-1",
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "od-model-1"}],
            "CreationTime": "2026-11-24T22:05:00Z",
        },
    )
    stub.add_client_error(
        "describe_model", "ValidationException", 'Could not find model "od-model-1".'
    )
    with pytest.raises(BaseModelUnavailable) as caught:
        resolve_base_model(session, spec())
    assert caught.value.reason == "ModelNotFound"
    assert "od-model-1" in caught.value.message


def test_ensure_resolves_base_model_only_when_creating(session: AwsSession, stub: Stubber) -> None:
    data = TrainingData(DATA.train_manifest_s3_uri, DATA.validation_manifest_s3_uri, 400)
    with_base = data.with_base_model("s3://my-bucket/model/serving.tar.gz")
    stub.add_client_error("describe_training_job", *NOT_FOUND)
    _endpoint_calls(stub)
    stub.add_response(
        "create_training_job",
        {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"},
        expected_params=dict(
            training_job_request(spec(), POLICY, RUN_ID, with_base, image_uri=IMAGE)
        ),
    )
    submitted = ensure_training(session, POLICY, spec(), RUN_ID, data)
    assert submitted.base_model_s3_uri == "s3://my-bucket/model/serving.tar.gz"
    assert submitted.created
