"""Models, endpoint configs and endpoints: CRUD, deployments, rollback on alarm, weights."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from retraining_standins.stack import AwsStandins

from .builders import IMAGE, ROLE, model_and_config

CREATING = 300
UPDATING = 300
ROLLBACK = 120


@pytest.fixture
def sm(aws: AwsStandins) -> Any:
    return boto3.client("sagemaker")


def in_service_endpoint(aws: AwsStandins, sm: Any, bucket: str, name: str = "od-endpoint") -> str:
    config = model_and_config(sm, bucket, "v1", upload=aws)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
    aws.clock.advance(CREATING)
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    return name


def blue_green(alarms: list[str] | None = None, **routing: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                "WaitIntervalInSeconds": 600,
                **routing,
            },
            "TerminationWaitInSeconds": 600,
            "MaximumExecutionTimeoutInSeconds": 3600,
        }
    }
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    return config


def test_model_round_trip(aws, aws_bucket, sm) -> None:
    arn = sm.create_model(
        ModelName="m1",
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{aws_bucket}/m.tar.gz"},
        ExecutionRoleArn=ROLE,
        Tags=[{"Key": "owner", "Value": "rtp"}],
    )["ModelArn"]
    model = sm.describe_model(ModelName="m1")
    assert model["ModelArn"] == arn == "arn:aws:sagemaker:us-east-1:123456789012:model/m1"
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{aws_bucket}/m.tar.gz"
    assert model["ExecutionRoleArn"] == ROLE
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == ["m1"]
    with pytest.raises(ClientError) as err:
        sm.create_model(ModelName="m1", PrimaryContainer={"Image": IMAGE})
    assert "Cannot create already existing model" in err.value.response["Error"]["Message"]
    sm.delete_model(ModelName="m1")
    with pytest.raises(ClientError) as err:
        sm.describe_model(ModelName="m1")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["Error"]["Message"].startswith("Could not find model")


def test_endpoint_config_round_trip(aws, aws_bucket, sm) -> None:
    config = model_and_config(sm, aws_bucket, "v1", upload=None)
    described = sm.describe_endpoint_config(EndpointConfigName=config)
    assert described["ProductionVariants"][0]["VariantName"] == "AllTraffic"
    assert described["ProductionVariants"][0]["ModelName"] == "model-v1"
    assert [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]] == [
        config
    ]
    with pytest.raises(ClientError) as err:
        sm.create_endpoint_config(
            EndpointConfigName="broken",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "no-such-model",
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.xlarge",
                }
            ],
        )
    assert err.value.response["Error"]["Message"].startswith("Could not find model")
    sm.delete_endpoint_config(EndpointConfigName=config)
    with pytest.raises(ClientError) as err:
        sm.describe_endpoint_config(EndpointConfigName=config)
    assert "Could not find endpoint configuration" in err.value.response["Error"]["Message"]


def test_list_models_pages_and_sorts(aws, sm) -> None:
    for index in range(5):
        sm.create_model(ModelName=f"m-{index}", PrimaryContainer={"Image": IMAGE})
        aws.clock.advance(1)
    pages = sm.get_paginator("list_models").paginate(
        SortBy="Name", SortOrder="Ascending", PaginationConfig={"PageSize": 2}
    )
    names = [m["ModelName"] for page in pages for m in page["Models"]]
    assert names == [f"m-{i}" for i in range(5)]
    newest_first = [m["ModelName"] for m in sm.list_models()["Models"]]
    assert newest_first == [f"m-{i}" for i in reversed(range(5))]


def test_endpoint_creation_lifecycle(aws, aws_bucket, sm) -> None:
    config = model_and_config(sm, aws_bucket, "v1", upload=aws)
    sm.create_endpoint(EndpointName="od-endpoint", EndpointConfigName=config)
    creating = sm.describe_endpoint(EndpointName="od-endpoint")
    assert creating["EndpointStatus"] == "Creating"
    aws.clock.advance(CREATING - 1)
    assert sm.describe_endpoint(EndpointName="od-endpoint")["EndpointStatus"] == "Creating"
    aws.clock.advance(1)
    endpoint = sm.describe_endpoint(EndpointName="od-endpoint")
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == config
    [variant] = endpoint["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert (variant["CurrentWeight"], variant["DesiredWeight"]) == (1.0, 1.0)
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (1, 1)
    assert variant["DeployedImages"][0]["SpecifiedImage"] == IMAGE
    assert variant["DeployedImages"][0]["ResolvedImage"].startswith(
        IMAGE.rsplit(":", 1)[0] + "@sha256:"
    )
    summaries = sm.list_endpoints(StatusEquals="InService")["Endpoints"]
    assert [e["EndpointName"] for e in summaries] == ["od-endpoint"]
    waiter_free = sm.list_endpoints(StatusEquals="Creating")["Endpoints"]
    assert waiter_free == []


def test_missing_model_data_fails_the_endpoint(aws, aws_bucket, sm) -> None:
    config = model_and_config(sm, aws_bucket, "v1", upload=None)
    sm.create_endpoint(EndpointName="od-endpoint", EndpointConfigName=config)
    aws.clock.advance(CREATING)
    endpoint = sm.describe_endpoint(EndpointName="od-endpoint")
    assert endpoint["EndpointStatus"] == "Failed"
    assert "Failed to download model data" in endpoint["FailureReason"]


def test_update_endpoint_moves_to_new_config(aws, aws_bucket, sm) -> None:
    name = in_service_endpoint(aws, sm, aws_bucket)
    new = model_and_config(sm, aws_bucket, "v2", upload=aws)
    sm.update_endpoint(EndpointName=name, EndpointConfigName=new, DeploymentConfig=blue_green())
    updating = sm.describe_endpoint(EndpointName=name)
    assert updating["EndpointStatus"] == "Updating"
    assert updating["EndpointConfigName"] == "config-v1"  # old config serves meanwhile
    assert updating["PendingDeploymentSummary"]["EndpointConfigName"] == new
    assert updating["LastDeploymentConfig"] == blue_green()
    # provisioning + canary wait + termination wait
    aws.clock.advance(UPDATING + 600 + 600 - 1)
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
    aws.clock.advance(1)
    done = sm.describe_endpoint(EndpointName=name)
    assert done["EndpointStatus"] == "InService"
    assert done["EndpointConfigName"] == new
    assert "FailureReason" not in done
    assert "PendingDeploymentSummary" not in done


def test_update_while_updating_is_refused(aws, aws_bucket, sm) -> None:
    name = in_service_endpoint(aws, sm, aws_bucket)
    v2 = model_and_config(sm, aws_bucket, "v2", upload=aws)
    v3 = model_and_config(sm, aws_bucket, "v3", upload=aws)
    sm.update_endpoint(EndpointName=name, EndpointConfigName=v2)
    with pytest.raises(ClientError) as err:
        sm.update_endpoint(EndpointName=name, EndpointConfigName=v3)
    error = err.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"] == (
        'Cannot update in-progress endpoint "arn:aws:sagemaker:us-east-1:123456789012:'
        'endpoint/od-endpoint".'
    )
    with pytest.raises(ClientError) as err:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=name,
            DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredWeight": 0.5}],
        )
    assert "Cannot update in-progress endpoint" in err.value.response["Error"]["Message"]


def test_update_while_creating_is_refused(aws, aws_bucket, sm) -> None:
    config = model_and_config(sm, aws_bucket, "v1", upload=aws)
    sm.create_endpoint(EndpointName="od-endpoint", EndpointConfigName=config)
    with pytest.raises(ClientError) as err:
        sm.update_endpoint(EndpointName="od-endpoint", EndpointConfigName=config)
    assert "Cannot update in-progress endpoint" in err.value.response["Error"]["Message"]


def test_alarm_rolls_back_to_the_old_config(aws, aws_bucket, sm) -> None:
    cloudwatch = boto3.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="od-endpoint-5xx",
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[
            {"Name": "EndpointName", "Value": "od-endpoint"},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    name = in_service_endpoint(aws, sm, aws_bucket)
    v2 = model_and_config(sm, aws_bucket, "v2", upload=aws)
    sm.update_endpoint(
        EndpointName=name,
        EndpointConfigName=v2,
        DeploymentConfig=blue_green(alarms=["od-endpoint-5xx"]),
    )
    aws.clock.advance(UPDATING + 60)  # new fleet up, canary baking
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
    cloudwatch.set_alarm_state(
        AlarmName="od-endpoint-5xx", StateValue="ALARM", StateReason="5xx on the canary"
    )
    rolling_back = sm.describe_endpoint(EndpointName=name)
    assert rolling_back["EndpointStatus"] == "RollingBack"
    aws.clock.advance(ROLLBACK)
    after = sm.describe_endpoint(EndpointName=name)
    assert after["EndpointStatus"] == "InService"
    assert after["EndpointConfigName"] == "config-v1"  # the old model keeps serving
    assert "od-endpoint-5xx" in after["FailureReason"]
    assert "alarm" in after["FailureReason"].lower()
    # A later, healthy update succeeds and clears the failure.
    cloudwatch.set_alarm_state(AlarmName="od-endpoint-5xx", StateValue="OK", StateReason="ok")
    sm.update_endpoint(
        EndpointName=name,
        EndpointConfigName=v2,
        DeploymentConfig=blue_green(alarms=["od-endpoint-5xx"]),
    )
    aws.clock.advance(UPDATING + 1200)
    healed = sm.describe_endpoint(EndpointName=name)
    assert (healed["EndpointStatus"], healed["EndpointConfigName"]) == ("InService", v2)
    assert "FailureReason" not in healed


def test_alarm_in_state_ok_does_not_roll_back(aws, aws_bucket, sm) -> None:
    name = in_service_endpoint(aws, sm, aws_bucket)
    v2 = model_and_config(sm, aws_bucket, "v2", upload=aws)
    sm.update_endpoint(
        EndpointName=name, EndpointConfigName=v2, DeploymentConfig=blue_green(alarms=["unknown"])
    )
    aws.clock.advance(UPDATING + 1200)
    assert sm.describe_endpoint(EndpointName=name)["EndpointConfigName"] == v2


def test_failed_update_keeps_the_old_config(aws, aws_bucket, sm) -> None:
    name = in_service_endpoint(aws, sm, aws_bucket)
    v2 = model_and_config(sm, aws_bucket, "v2", upload=aws)
    aws.sagemaker.fail_next_update(name, "Insufficient capacity for ml.m5.xlarge")
    sm.update_endpoint(EndpointName=name, EndpointConfigName=v2)
    aws.clock.advance(UPDATING)
    endpoint = sm.describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == "config-v1"
    assert endpoint["FailureReason"] == "Insufficient capacity for ml.m5.xlarge"


def test_update_to_missing_model_data_fails(aws, aws_bucket, sm) -> None:
    name = in_service_endpoint(aws, sm, aws_bucket)
    v2 = model_and_config(sm, aws_bucket, "v2", upload=None)
    sm.update_endpoint(EndpointName=name, EndpointConfigName=v2)
    aws.clock.advance(UPDATING)
    endpoint = sm.describe_endpoint(EndpointName=name)
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == (
        "InService",
        "config-v1",
    )
    assert "Failed to download model data" in endpoint["FailureReason"]


def test_variant_weights_shift(aws, aws_bucket, sm) -> None:
    name = in_service_endpoint(aws, sm, aws_bucket)
    model_and_config(sm, aws_bucket, "v2", variant="Canary", upload=aws)
    sm.create_endpoint_config(
        EndpointConfigName="two-variants",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "model-v1",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.xlarge",
                "InitialVariantWeight": 0.9,
            },
            {
                "VariantName": "Canary",
                "ModelName": "model-v2",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.xlarge",
                "InitialVariantWeight": 0.1,
            },
        ],
    )
    sm.update_endpoint(EndpointName=name, EndpointConfigName="two-variants")
    aws.clock.advance(UPDATING)
    weights = {
        v["VariantName"]: v["CurrentWeight"]
        for v in sm.describe_endpoint(EndpointName=name)["ProductionVariants"]
    }
    assert weights == {"AllTraffic": 0.9, "Canary": 0.1}
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[
            {"VariantName": "AllTraffic", "DesiredWeight": 0.5},
            {"VariantName": "Canary", "DesiredWeight": 0.5},
        ],
    )
    shifting = sm.describe_endpoint(EndpointName=name)
    assert shifting["EndpointStatus"] == "Updating"
    canary = next(v for v in shifting["ProductionVariants"] if v["VariantName"] == "Canary")
    assert (canary["CurrentWeight"], canary["DesiredWeight"]) == (0.1, 0.5)
    aws.clock.advance(30)
    shifted = sm.describe_endpoint(EndpointName=name)
    assert shifted["EndpointStatus"] == "InService"
    assert {v["VariantName"]: v["CurrentWeight"] for v in shifted["ProductionVariants"]} == {
        "AllTraffic": 0.5,
        "Canary": 0.5,
    }
    with pytest.raises(ClientError) as err:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=name,
            DesiredWeightsAndCapacities=[{"VariantName": "Nope", "DesiredWeight": 1.0}],
        )
    assert "Nope" in err.value.response["Error"]["Message"]


def test_retain_all_variant_properties_keeps_weights(aws, aws_bucket, sm) -> None:
    name = in_service_endpoint(aws, sm, aws_bucket)
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 3}],
    )
    aws.clock.advance(30)
    v2 = model_and_config(sm, aws_bucket, "v2", upload=aws)
    sm.update_endpoint(EndpointName=name, EndpointConfigName=v2, RetainAllVariantProperties=True)
    aws.clock.advance(UPDATING)
    [variant] = sm.describe_endpoint(EndpointName=name)["ProductionVariants"]
    assert variant["CurrentInstanceCount"] == 3


def test_deployment_config_is_validated(aws, aws_bucket, sm) -> None:
    name = in_service_endpoint(aws, sm, aws_bucket)
    v2 = model_and_config(sm, aws_bucket, "v2", upload=aws)
    broken = blue_green()
    del broken["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["CanarySize"]
    with pytest.raises(ClientError) as err:
        sm.update_endpoint(EndpointName=name, EndpointConfigName=v2, DeploymentConfig=broken)
    assert "CanarySize is required" in err.value.response["Error"]["Message"]
    too_long = blue_green()
    too_long["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] = 3601
    with pytest.raises(ClientError) as err:
        sm.update_endpoint(EndpointName=name, EndpointConfigName=v2, DeploymentConfig=too_long)
    assert "less than or equal to 3600" in err.value.response["Error"]["Message"]


def test_rolling_update_bakes_per_batch(aws, aws_bucket, sm) -> None:
    name = in_service_endpoint(aws, sm, aws_bucket)
    v2 = model_and_config(sm, aws_bucket, "v2", upload=aws)
    rolling = {
        "RollingUpdatePolicy": {
            "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
            "WaitIntervalInSeconds": 120,
        }
    }
    sm.update_endpoint(EndpointName=name, EndpointConfigName=v2, DeploymentConfig=rolling)
    aws.clock.advance(UPDATING + 119)
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
    aws.clock.advance(1)
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"


def test_delete_endpoint_and_tags(aws, aws_bucket, sm) -> None:
    name = in_service_endpoint(aws, sm, aws_bucket)
    arn = sm.describe_endpoint(EndpointName=name)["EndpointArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [
        {"Key": "a", "Value": "1"},
        {"Key": "b", "Value": "2"},
    ]
    sm.delete_tags(ResourceArn=arn, TagKeys=["a"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "b", "Value": "2"}]
    sm.delete_endpoint(EndpointName=name)
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Deleting"
    aws.clock.advance(30)
    with pytest.raises(ClientError) as err:
        sm.describe_endpoint(EndpointName=name)
    assert err.value.response["Error"]["Message"].startswith("Could not find endpoint")
    with pytest.raises(ClientError):
        sm.list_tags(ResourceArn=arn)


def test_alarm_seen_only_after_the_window_still_rolls_back(aws, aws_bucket, sm) -> None:
    # Documented sampling rule: an observation after baking samples the alarms once.
    aws.admin_client("cloudwatch").put_metric_alarm(
        AlarmName="latency",
        Namespace="AWS/SageMaker",
        MetricName="ModelLatency",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    aws.admin_client("cloudwatch").set_alarm_state(
        AlarmName="latency", StateValue="ALARM", StateReason="slow"
    )
    name = in_service_endpoint(aws, sm, aws_bucket)
    v2 = model_and_config(sm, aws_bucket, "v2", upload=aws)
    sm.update_endpoint(
        EndpointName=name, EndpointConfigName=v2, DeploymentConfig=blue_green(alarms=["latency"])
    )
    aws.clock.advance(UPDATING + 1200 + ROLLBACK)
    endpoint = sm.describe_endpoint(EndpointName=name)
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == (
        "InService",
        "config-v1",
    )
    assert "latency" in endpoint["FailureReason"]
