"""Inference experiments (SageMaker shadow tests, issue 31) in the SageMaker stand-in: the
lifecycle on the emulated clock, the endpoint while the shadow runs and after Promote or
Remove, the per-minute CloudWatch metrics of both variants, data capture and the control
route."""

from __future__ import annotations

import base64
import json
import urllib.error
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from retraining_standins.control import Control
from retraining_standins.detector import ModelQuality, quality_table
from retraining_standins.images import image_bytes
from retraining_standins.serving import ModelServing, serving_table
from retraining_standins.stack import AwsStandins

from .builders import IMAGE, ROLE

ENDPOINT = "vision-prod"
SOURCE, SHADOW = "AllTraffic", "candidate-shadow"
CREATING, UPDATING = 60, 300  # Durations.experiment_creating, endpoint_updating defaults
ARN = "arn:aws:sagemaker:us-east-1:123456789012:inference-experiment/"


@pytest.fixture
def sm(aws: AwsStandins) -> Any:
    return boto3.client("sagemaker")


@pytest.fixture
def endpoint(aws: AwsStandins, aws_bucket: str, sm: Any) -> str:
    """An InService endpoint whose one variant serves `production`; `candidate` exists."""
    for model in ("production", "candidate"):
        data = f"s3://{aws_bucket}/models/{model}/model.tar.gz"
        aws.put_object(data, b"model")
        sm.create_model(
            ModelName=model,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": data},
            ExecutionRoleArn=ROLE,
        )
    sm.create_endpoint_config(
        EndpointConfigName="config-production",
        ProductionVariants=[
            {
                "VariantName": SOURCE,
                "ModelName": "production",
                "InitialInstanceCount": 2,
                "InstanceType": "ml.m5.xlarge",
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="config-production")
    aws.clock.advance(aws.sagemaker.durations.endpoint_creating)
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "InService"
    return ENDPOINT


def variant(name: str, model: str, count: int = 1) -> dict[str, Any]:
    return {
        "ModelName": model,
        "VariantName": name,
        "InfrastructureConfig": {
            "InfrastructureType": "RealTimeInference",
            "RealTimeInferenceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": count},
        },
    }


def shadow_test(name: str = "shadow-1", *, sampling: int = 50, **overrides: Any) -> dict[str, Any]:
    """The CreateInferenceExperiment request the operator will send."""
    request: dict[str, Any] = {
        "Name": name,
        "Type": "ShadowMode",
        "RoleArn": ROLE,
        "EndpointName": ENDPOINT,
        "ModelVariants": [variant(SOURCE, "production", 2), variant(SHADOW, "candidate")],
        "ShadowModeConfig": {
            "SourceModelVariantName": SOURCE,
            "ShadowModelVariants": [
                {"ShadowModelVariantName": SHADOW, "SamplingPercentage": sampling}
            ],
        },
    }
    request.update(overrides)
    return request


def error_of(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


def status(sm: Any, name: str = "shadow-1") -> str:
    return str(sm.describe_inference_experiment(Name=name)["Status"])


def run(aws: AwsStandins, sm: Any, **overrides: Any) -> dict[str, Any]:
    """Create an experiment and bring it to Running; its description."""
    sm.create_inference_experiment(**shadow_test(**overrides))
    aws.clock.advance(CREATING + UPDATING)
    described: dict[str, Any] = sm.describe_inference_experiment(
        Name=overrides.get("name", "shadow-1")
    )
    assert described["Status"] == "Running"
    return described


def test_the_lifecycle_follows_the_clock_and_the_schedule(aws, endpoint, sm) -> None:
    created = aws.clock.now()
    end = created + timedelta(hours=2)
    request = shadow_test(Schedule={"EndTime": end}, Description="candidate vs production")
    request["Tags"] = [{"Key": "policy", "Value": "pascal"}]
    arn = sm.create_inference_experiment(**request)["InferenceExperimentArn"]
    assert arn == ARN + "shadow-1"
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "policy", "Value": "pascal"}]

    described = sm.describe_inference_experiment(Name="shadow-1")
    assert described["Status"] == "Creating"
    assert described["Schedule"] == {"StartTime": created, "EndTime": end}
    assert described["ShadowModeConfig"] == request["ShadowModeConfig"]
    assert [v["Status"] for v in described["ModelVariants"]] == ["Creating", "Creating"]
    assert described["EndpointMetadata"] == {
        "EndpointName": ENDPOINT,
        "EndpointConfigName": "config-production",
        "EndpointStatus": "InService",
    }

    aws.clock.advance(CREATING)  # the shadow variant is being deployed: an endpoint update
    assert status(sm) == "Starting"
    live = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert live["EndpointStatus"] == "Updating"
    pending = live["PendingDeploymentSummary"]
    assert [v["VariantName"] for v in pending["ShadowProductionVariants"]] == [SHADOW]
    assert "ShadowProductionVariants" not in live  # not serving yet

    aws.clock.advance(UPDATING)
    described = sm.describe_inference_experiment(Name="shadow-1")
    assert described["Status"] == "Running"
    assert [v["Status"] for v in described["ModelVariants"]] == ["InService", "InService"]
    live = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert live["EndpointStatus"] == "InService"
    assert [v["VariantName"] for v in live["ProductionVariants"]] == [SOURCE]
    [shadow] = live["ShadowProductionVariants"]
    assert (shadow["VariantName"], shadow["CurrentWeight"]) == (SHADOW, 0.5)
    assert shadow["CurrentInstanceCount"] == 1
    # SageMaker's own endpoint config: the production variant as before, the shadow beside it.
    assert live["EndpointConfigName"] == described["EndpointMetadata"]["EndpointConfigName"]
    config = sm.describe_endpoint_config(EndpointConfigName=live["EndpointConfigName"])
    assert [(v["VariantName"], v["ModelName"]) for v in config["ProductionVariants"]] == [
        (SOURCE, "production")
    ]
    assert [(v["VariantName"], v["ModelName"]) for v in config["ShadowProductionVariants"]] == [
        (SHADOW, "candidate")
    ]

    aws.clock.set(end)  # the schedule is over: the endpoint reverts
    assert status(sm) == "Stopping"
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "Updating"
    aws.clock.advance(UPDATING)
    described = sm.describe_inference_experiment(Name="shadow-1")
    assert described["Status"] == "Completed"
    assert described["CompletionTime"] == end + timedelta(seconds=UPDATING)
    assert [v["Status"] for v in described["ModelVariants"]] == ["InService", "Deleted"]
    live = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert live["EndpointConfigName"] == "config-production"
    assert "ShadowProductionVariants" not in live
    [summary] = sm.list_inference_experiments(StatusEquals="Completed")["InferenceExperiments"]
    assert (summary["Name"], summary["Description"]) == ("shadow-1", "candidate vs production")
    assert sm.list_inference_experiments(StatusEquals="Running")["InferenceExperiments"] == []


def test_a_scheduled_experiment_waits_as_created(aws, endpoint, sm) -> None:
    start = aws.clock.now() + timedelta(hours=1)
    sm.create_inference_experiment(**shadow_test(Schedule={"StartTime": start}))
    aws.clock.advance(CREATING)
    described = sm.describe_inference_experiment(Name="shadow-1")
    assert described["Status"] == "Created"
    assert described["Schedule"]["EndTime"] == start + timedelta(days=7)  # AWS's default
    assert "ShadowProductionVariants" not in sm.describe_endpoint(EndpointName=ENDPOINT)
    aws.clock.set(start)
    assert status(sm) == "Starting"
    aws.clock.advance(UPDATING)
    assert status(sm) == "Running"


def test_stop_with_promote_serves_the_candidate_as_the_production_variant(
    aws, endpoint, sm
) -> None:
    run(aws, sm)
    aws.clock.advance(600)
    arn = sm.stop_inference_experiment(
        Name="shadow-1",
        ModelVariantActions={SHADOW: "Promote", SOURCE: "Remove"},
        DesiredModelVariants=[variant(SHADOW, "candidate", 3)],
        DesiredState="Completed",
    )["InferenceExperimentArn"]
    assert arn == ARN + "shadow-1"
    assert status(sm) == "Stopping"
    aws.clock.advance(UPDATING)
    described = sm.describe_inference_experiment(Name="shadow-1")
    assert described["Status"] == "Completed"
    live = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert "ShadowProductionVariants" not in live
    [production] = live["ProductionVariants"]
    assert (production["VariantName"], production["CurrentInstanceCount"]) == (SOURCE, 3)
    config = sm.describe_endpoint_config(EndpointConfigName=live["EndpointConfigName"])
    assert [(v["VariantName"], v["ModelName"]) for v in config["ProductionVariants"]] == [
        (SOURCE, "candidate")
    ]
    assert described["EndpointMetadata"]["EndpointConfigName"] == live["EndpointConfigName"]


def test_stop_with_remove_leaves_production_untouched_and_is_cancelled(aws, endpoint, sm) -> None:
    before = sm.describe_endpoint(EndpointName=ENDPOINT)["ProductionVariants"]
    run(aws, sm)
    sm.stop_inference_experiment(
        Name="shadow-1", ModelVariantActions={SHADOW: "Remove"}, Reason="p99 latency 3x production"
    )
    aws.clock.advance(UPDATING)
    described = sm.describe_inference_experiment(Name="shadow-1")
    assert (described["Status"], described["StatusReason"]) == (
        "Cancelled",
        "p99 latency 3x production",
    )
    live = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert live["EndpointConfigName"] == "config-production"
    assert "ShadowProductionVariants" not in live
    assert [(v["VariantName"], v["CurrentInstanceCount"]) for v in live["ProductionVariants"]] == [
        (v["VariantName"], v["CurrentInstanceCount"]) for v in before
    ]
    with pytest.raises(ClientError) as again:
        sm.stop_inference_experiment(Name="shadow-1", ModelVariantActions={SHADOW: "Remove"})
    assert error_of(again)[0] == "ConflictException"


def test_user_traffic_is_answered_by_the_production_variant_only(aws, endpoint, sm) -> None:
    run(aws, sm)
    live = sm.describe_endpoint(EndpointName=ENDPOINT)
    config = sm.describe_endpoint_config(EndpointConfigName=live["EndpointConfigName"])
    assert [v["VariantName"] for v in live["ProductionVariants"]] == [SOURCE]
    assert [v["ModelName"] for v in config["ProductionVariants"]] == ["production"]


def test_one_experiment_at_a_time_per_endpoint(aws, endpoint, sm) -> None:
    run(aws, sm)
    with pytest.raises(ClientError) as busy:
        sm.create_inference_experiment(**shadow_test("shadow-2"))
    code, message = error_of(busy)
    assert code == "ResourceInUse"
    assert "shadow-1" in message
    sm.stop_inference_experiment(Name="shadow-1", ModelVariantActions={SHADOW: "Remove"})
    aws.clock.advance(UPDATING)
    with pytest.raises(ClientError) as taken:
        sm.create_inference_experiment(**shadow_test("shadow-1"))
    assert error_of(taken)[0] == "ResourceInUse"
    sm.create_inference_experiment(**shadow_test("shadow-2"))
    assert status(sm, "shadow-2") == "Creating"


def test_what_a_shadow_test_needs(aws, endpoint, sm) -> None:
    def refused(**overrides: Any) -> tuple[str, str]:
        with pytest.raises(ClientError) as raised:
            sm.create_inference_experiment(**shadow_test(**overrides))
        return error_of(raised)

    code, message = refused(EndpointName="nowhere")
    assert (code, message.startswith("Could not find endpoint")) == ("ValidationException", True)
    wrong_source = {
        "SourceModelVariantName": "Other",
        "ShadowModelVariants": [{"ShadowModelVariantName": SHADOW, "SamplingPercentage": 10}],
    }
    assert "not a production variant" in refused(ShadowModeConfig=wrong_source)[1]
    missing = [variant(SOURCE, "production"), variant(SHADOW, "never-created")]
    assert refused(ModelVariants=missing)[1].startswith("Could not find model")
    assert (
        "ModelVariants must describe" in refused(ModelVariants=[variant(SOURCE, "production")])[1]
    )
    now = aws.clock.now()
    too_long = {"StartTime": now, "EndTime": now + timedelta(days=30, seconds=1)}
    assert "30 days" in refused(Schedule=too_long)[1]
    assert "SamplingPercentage" in refused(sampling=0)[1]
    assert sm.list_inference_experiments()["InferenceExperiments"] == []

    sm.update_endpoint(EndpointName=ENDPOINT, EndpointConfigName="config-production")
    code, message = refused()
    assert (code, "must be InService" in message) == ("ValidationException", True)

    with pytest.raises(ClientError) as unknown:
        sm.describe_inference_experiment(Name="never-created")
    assert error_of(unknown)[0] == "ResourceNotFound"


def test_requests_are_validated_against_the_service_model(aws, endpoint) -> None:
    sm = aws.client("sagemaker", parameter_validation=False)  # what botocore would refuse
    bad_type = shadow_test(Type="CanaryMode")
    with pytest.raises(ClientError) as raised:
        sm.create_inference_experiment(**bad_type)
    code, message = error_of(raised)
    assert code == "ValidationException"
    assert "Member must satisfy enum value set" in message
    no_role = shadow_test()
    del no_role["RoleArn"]
    with pytest.raises(ClientError) as raised:
        sm.create_inference_experiment(**no_role)
    assert error_of(raised)[0] == "ValidationException"
    with pytest.raises(ClientError) as raised:
        sm.create_inference_experiment(**shadow_test(sampling=101))
    assert "samplingPercentage" in error_of(raised)[1]
    with pytest.raises(ClientError) as raised:
        sm.stop_inference_experiment(Name="shadow-1", ModelVariantActions={SHADOW: "Discard"})
    assert error_of(raised)[0] == "ValidationException"


def test_a_failed_shadow_deployment_cancels_the_experiment(aws, endpoint, sm) -> None:
    aws.sagemaker.fail_next_update(ENDPOINT, "CapacityError: no ml.m5.xlarge capacity.")
    sm.create_inference_experiment(**shadow_test())
    aws.clock.advance(CREATING + UPDATING)
    described = sm.describe_inference_experiment(Name="shadow-1")
    assert described["Status"] == "Cancelled"
    assert described["StatusReason"] == "CapacityError: no ml.m5.xlarge capacity."
    live = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert (live["EndpointStatus"], live["EndpointConfigName"]) == (
        "InService",
        "config-production",
    )


def test_list_and_delete(aws, endpoint, sm) -> None:
    run(aws, sm)
    with pytest.raises(ClientError) as running:
        sm.delete_inference_experiment(Name="shadow-1")
    assert error_of(running)[0] == "ConflictException"
    listed = sm.list_inference_experiments(Type="ShadowMode", NameContains="shadow")
    assert [e["Status"] for e in listed["InferenceExperiments"]] == ["Running"]
    sm.stop_inference_experiment(Name="shadow-1", ModelVariantActions={SHADOW: "Remove"})
    aws.clock.advance(UPDATING)
    assert sm.delete_inference_experiment(Name="shadow-1")["InferenceExperimentArn"] == (
        ARN + "shadow-1"
    )
    assert sm.list_inference_experiments()["InferenceExperiments"] == []


# -- CloudWatch --------------------------------------------------------------------------------
def metric(
    aws: AwsStandins, name: str, variant: str, stat: str, start: datetime, minutes: int
) -> list[float]:
    """One value a minute, oldest first, as the operator would read them."""
    response = boto3.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SageMaker",
                        "MetricName": name,
                        "Dimensions": [
                            {"Name": "EndpointName", "Value": ENDPOINT},
                            {"Name": "VariantName", "Value": variant},
                        ],
                    },
                    "Period": 60,
                    "Stat": stat,
                },
            }
        ],
        StartTime=start,
        EndTime=start + timedelta(minutes=minutes),
        ScanBy="TimestampAscending",
    )
    [result] = response["MetricDataResults"]
    return [float(v) for v in result["Values"]]


def test_both_variants_publish_metrics_from_the_serving_knobs(aws, endpoint, sm) -> None:
    aws.sagemaker.set_model_serving(
        serving_table(
            {"candidate": ModelServing(p50_ms=60, p99_ms=180, error_5xx_rate=0.25)},
            ModelServing(p50_ms=20, p99_ms=60, error_4xx_rate=0.01),
        )
    )
    aws.sagemaker.set_traffic(ENDPOINT, 120)
    running = run(aws, sm, sampling=50)
    start = running["LastModifiedTime"].replace(second=0, microsecond=0)
    aws.clock.advance(10 * 60)
    sm.describe_inference_experiment(Name="shadow-1")  # observed: the minutes are published

    assert metric(aws, "Invocations", SOURCE, "Sum", start, 10) == [120.0] * 10
    assert metric(aws, "Invocations", SHADOW, "Sum", start, 10) == [60.0] * 10
    p99_production = metric(aws, "ModelLatency", SOURCE, "Maximum", start, 10)
    p99_shadow = metric(aws, "ModelLatency", SHADOW, "Maximum", start, 10)
    assert p99_production == [60_000.0] * 10  # microseconds, as AWS publishes ModelLatency
    assert p99_shadow == [180_000.0] * 10
    assert metric(aws, "ModelLatency", SHADOW, "p99", start, 10) == p99_shadow
    average = metric(aws, "ModelLatency", SHADOW, "Average", start, 10)[0]
    assert 60_000 < average < 180_000
    assert metric(aws, "Invocation5XXErrors", SHADOW, "Sum", start, 10) == [15.0] * 10
    assert metric(aws, "Invocation5XXErrors", SHADOW, "Average", start, 1) == [0.25]
    assert metric(aws, "Invocation5XXErrors", SOURCE, "Sum", start, 10) == [0.0] * 10
    # 1 % of 120 a minute: the errors come exactly, spread over the minutes.
    assert sum(metric(aws, "Invocation4XXErrors", SOURCE, "Sum", start, 10)) == 12.0

    aws.clock.advance(60)
    sm.describe_endpoint(EndpointName=ENDPOINT)  # observing the endpoint publishes too
    assert len(metric(aws, "Invocations", SHADOW, "Sum", start, 11)) == 11
    sm.stop_inference_experiment(Name="shadow-1", ModelVariantActions={SHADOW: "Remove"})
    aws.clock.advance(3600)
    sm.describe_inference_experiment(Name="shadow-1")
    assert len(metric(aws, "Invocations", SHADOW, "Sum", start, 80)) == 11  # no shadow any more


def test_the_control_route_sets_serving_and_traffic(aws, endpoint, sm) -> None:
    control = Control(aws.endpoints.control)
    control.set_model_serving({"candidate": {"p50Ms": 30, "p99Ms": 90, "error5xxRate": 0.5}})
    control.set_traffic(ENDPOINT, 10)
    running = run(aws, sm, sampling=100)
    start = running["LastModifiedTime"].replace(second=0, microsecond=0)
    aws.clock.advance(3 * 60)
    sm.describe_inference_experiment(Name="shadow-1")
    assert metric(aws, "Invocations", SOURCE, "Sum", start, 3) == [10.0] * 3
    assert metric(aws, "ModelLatency", SHADOW, "Maximum", start, 3) == [90_000.0] * 3
    assert metric(aws, "ModelLatency", SOURCE, "Maximum", start, 3) == [60_000.0] * 3  # default
    assert metric(aws, "Invocation5XXErrors", SHADOW, "Sum", start, 3) == [5.0] * 3
    with pytest.raises(urllib.error.HTTPError, match="400"):
        control.set_model_serving(default={"p50Ms": 90, "p99Ms": 30})
    control.set_model_serving()  # back to the default
    aws.clock.advance(60)
    sm.describe_inference_experiment(Name="shadow-1")
    assert metric(aws, "ModelLatency", SHADOW, "Maximum", start, 4)[-1] == 60_000.0


# -- data capture ------------------------------------------------------------------------------
def test_data_capture_pairs_both_variants_answers(aws, aws_bucket, endpoint, sm) -> None:
    images = []
    for index in range(3):
        uri = f"s3://{aws_bucket}/traffic/{index}.jpg"
        aws.put_object(uri, image_bytes(640, 480, [(index, 10, 20, 100, 80)]))
        images.append(uri)
    aws.sagemaker.set_traffic(ENDPOINT, 10, images=images)
    aws.sagemaker.set_model_quality(
        quality_table({"production": ModelQuality(1.0), "candidate": ModelQuality(0.0)})
    )
    storage = {
        "Destination": f"s3://{aws_bucket}/capture",
        "ContentType": {"JsonContentTypes": ["application/json"]},
    }
    running = run(aws, sm, DataStorageConfig=storage)
    assert running["DataStorageConfig"] == storage
    aws.clock.advance(3 * 60)
    sm.describe_inference_experiment(Name="shadow-1")

    s3 = aws.admin_client("s3")
    records: dict[str, list[dict[str, Any]]] = {}
    for name in (SOURCE, SHADOW):
        prefix = f"capture/{ENDPOINT}/{name}/"
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=aws_bucket, Prefix=prefix)["Contents"]]
        assert all(k.endswith(".jsonl") for k in keys)
        lines = b"".join(aws.get_object(f"s3://{aws_bucket}/{k}") or b"" for k in keys)
        records[name] = [json.loads(line) for line in lines.splitlines()]
    assert len(records[SOURCE]) == len(records[SHADOW]) == 6  # 2 captured a minute
    for production, shadow in zip(records[SOURCE], records[SHADOW], strict=True):
        assert production["eventMetadata"]["eventId"] == shadow["eventMetadata"]["eventId"]
        sent = production["captureData"]["endpointInput"]
        assert (sent["observedContentType"], sent["encoding"]) == ("image/jpeg", "BASE64")
        assert base64.b64decode(sent["data"]).startswith(b"\xff\xd8")
        answers = [r["captureData"]["endpointOutput"] for r in (production, shadow)]
        assert [a["encoding"] for a in answers] == ["JSON", "JSON"]
        found = [len(json.loads(a["data"])["prediction"]) for a in answers]
        assert found[0] >= 1  # production finds every object
        assert production["eventVersion"] == "0"


def test_the_endpoint_is_not_updated_under_a_running_experiment(aws, endpoint, sm) -> None:
    run(aws, sm)
    with pytest.raises(ClientError) as busy:
        sm.update_endpoint(EndpointName=ENDPOINT, EndpointConfigName="config-production")
    code, message = error_of(busy)
    assert (code, "inference experiment shadow-1" in message) == ("ValidationException", True)
    with pytest.raises(ClientError):
        sm.update_endpoint_weights_and_capacities(
            EndpointName=ENDPOINT,
            DesiredWeightsAndCapacities=[{"VariantName": SOURCE, "DesiredInstanceCount": 3}],
        )
    sm.stop_inference_experiment(Name="shadow-1", ModelVariantActions={SHADOW: "Remove"})
    aws.clock.advance(UPDATING)
    sm.update_endpoint(EndpointName=ENDPOINT, EndpointConfigName="config-production")
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "Updating"


def test_the_endpoint_reverts_to_what_it_served_when_the_experiment_started(
    aws, endpoint, sm
) -> None:
    start = aws.clock.now() + timedelta(hours=1)
    sm.create_inference_experiment(**shadow_test(Schedule={"StartTime": start}))
    aws.clock.advance(CREATING)
    assert status(sm) == "Created"
    sm.delete_endpoint_config(EndpointConfigName="config-production")  # SageMaker keeps serving
    aws.clock.set(start + timedelta(seconds=UPDATING))
    assert status(sm) == "Running"
    sm.stop_inference_experiment(Name="shadow-1", ModelVariantActions={SHADOW: "Remove"})
    aws.clock.advance(UPDATING)
    live = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert "ShadowProductionVariants" not in live
    config = sm.describe_endpoint_config(EndpointConfigName=live["EndpointConfigName"])
    assert [(v["ModelName"], v["InitialInstanceCount"]) for v in config["ProductionVariants"]] == [
        ("production", 2)
    ]
