"""Application Auto Scaling for SageMaker variants: wire-level (JSON 1.1, validated against
botocore's `application-autoscaling` model) and wired to the hosting emulator."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from retraining_standins.control import Control
from retraining_standins.stack import AwsStandins

from .builders import IMAGE, ROLE, model_and_config
from .test_hosting import UPDATING, in_service_endpoint

NS = "sagemaker"
DIM = "sagemaker:variant:DesiredInstanceCount"
RID = "endpoint/od-endpoint/variant/AllTraffic"
TRACKING = {
    "TargetValue": 70.0,
    "PredefinedMetricSpecification": {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    },
}


@pytest.fixture
def sm(aws: AwsStandins) -> Any:
    return boto3.client("sagemaker")


@pytest.fixture
def aas(aws: AwsStandins) -> Any:
    # Plain boto3: the stack's env() must route "application-autoscaling" to the emulator.
    return boto3.client("application-autoscaling")


def register(aas: Any, rid: str = RID, *, low: int = 2, high: int = 10) -> None:
    aas.register_scalable_target(
        ServiceNamespace=NS, ResourceId=rid, ScalableDimension=DIM, MinCapacity=low,
        MaxCapacity=high,
    )  # fmt: skip
    aas.put_scaling_policy(
        PolicyName="track", ServiceNamespace=NS, ResourceId=rid, ScalableDimension=DIM,
        PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration=TRACKING,
    )  # fmt: skip


def live(sm: Any, name: str = "od-endpoint") -> dict[str, tuple[int, float]]:
    return {
        v["VariantName"]: (v["DesiredInstanceCount"], v["DesiredWeight"])
        for v in sm.describe_endpoint(EndpointName=name)["ProductionVariants"]
    }


def test_env_points_boto3_at_the_emulator(aws: AwsStandins) -> None:
    assert os.environ["AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING"] == aws.server.url
    assert aws.env()["AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING"] == aws.server.url


def test_targets_and_policies_round_trip(aws, aws_bucket, sm, aas) -> None:
    in_service_endpoint(aws, sm, aws_bucket)
    register(aas)
    (target,) = aas.describe_scalable_targets(ServiceNamespace=NS)["ScalableTargets"]
    assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == (RID, 2, 10)
    (policy,) = aas.describe_scaling_policies(ServiceNamespace=NS, ResourceId=RID)[
        "ScalingPolicies"
    ]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 70.0
    register(aas, high=12)  # an upsert, as in AWS
    assert (
        aas.describe_scalable_targets(ServiceNamespace=NS)["ScalableTargets"][0]["MaxCapacity"]
        == 12
    )
    aas.delete_scaling_policy(
        PolicyName="track", ServiceNamespace=NS, ResourceId=RID, ScalableDimension=DIM
    )
    assert aas.describe_scaling_policies(ServiceNamespace=NS)["ScalingPolicies"] == []
    register(aas)
    aas.deregister_scalable_target(ServiceNamespace=NS, ResourceId=RID, ScalableDimension=DIM)
    assert aas.describe_scalable_targets(ServiceNamespace=NS)["ScalableTargets"] == []
    # Deregistering deleted the policies with the target.
    assert aas.describe_scaling_policies(ServiceNamespace=NS)["ScalingPolicies"] == []
    with pytest.raises(ClientError) as missing:
        aas.deregister_scalable_target(ServiceNamespace=NS, ResourceId=RID, ScalableDimension=DIM)
    assert missing.value.response["Error"]["Code"] == "ObjectNotFoundException"


def test_requests_are_validated_against_the_botocore_model(aws, aws_bucket, sm, aas) -> None:
    in_service_endpoint(aws, sm, aws_bucket)
    client = aws.client("application-autoscaling")
    with pytest.raises(ClientError, match="Unsupported service namespace ecs"):
        client.register_scalable_target(
            ServiceNamespace="ecs", ResourceId="service/x/y",
            ScalableDimension="ecs:service:DesiredCount", MinCapacity=1, MaxCapacity=2,
        )  # fmt: skip
    with pytest.raises(ClientError, match="does not exist"):
        register(aas, "endpoint/od-endpoint/variant/Nope")
    with pytest.raises(ClientError, match="Unsupported resource ID"):
        register(aas, "endpoint/od-endpoint")
    with pytest.raises(ClientError, match="length less than or equal to 1600"):
        register(aas, "endpoint/od-endpoint/variant/" + "x" * 1600)
    with pytest.raises(ClientError, match="ObjectNotFoundException"):
        aas.put_scaling_policy(
            PolicyName="p", ServiceNamespace=NS, ResourceId=RID, ScalableDimension=DIM,
            PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration=TRACKING,
        )  # fmt: skip
    calls = aws.log.calls("application-autoscaling")
    assert calls
    assert all(not c.ok for c in calls[-5:])


def test_the_autoscaler_grows_a_registered_variant_within_bounds(aws, aws_bucket, sm, aas) -> None:
    in_service_endpoint(aws, sm, aws_bucket)
    with pytest.raises(LookupError):
        aws.sagemaker.autoscale("od-endpoint", "AllTraffic", 6)  # not registered
    register(aas)
    assert aws.sagemaker.autoscale("od-endpoint", "AllTraffic", 6) == 6
    assert live(sm) == {"AllTraffic": (6, 1.0)}
    assert aws.sagemaker.autoscale("od-endpoint", "AllTraffic", 50) == 10  # clamped to max
    # The control API does the same for other processes.
    assert Control(aws.endpoints.control).autoscale("od-endpoint", "AllTraffic", 1) == 2


def test_update_without_retain_scales_the_fleet_in_and_with_it_keeps_it(
    aws, aws_bucket, sm, aas
) -> None:
    name = in_service_endpoint(aws, sm, aws_bucket)
    register(aas)
    aws.sagemaker.autoscale(name, "AllTraffic", 6)
    v2 = model_and_config(sm, aws_bucket, "v2", upload=aws)
    sm.update_endpoint(EndpointName=name, EndpointConfigName=v2)
    aws.clock.advance(UPDATING)
    assert live(sm) == {"AllTraffic": (1, 1.0)}  # the config's InitialInstanceCount

    aws.sagemaker.autoscale(name, "AllTraffic", 6)
    v3 = model_and_config(sm, aws_bucket, "v3", upload=aws)
    sm.update_endpoint(EndpointName=name, EndpointConfigName=v3, RetainAllVariantProperties=True)
    aws.clock.advance(UPDATING)
    assert live(sm) == {"AllTraffic": (6, 1.0)}

    v4 = model_and_config(sm, aws_bucket, "v4", upload=aws)
    sm.update_endpoint(
        EndpointName=name, EndpointConfigName=v4, RetainAllVariantProperties=True,
        ExcludeRetainedVariantProperties=[{"VariantPropertyType": "DesiredInstanceCount"}],
    )  # fmt: skip
    aws.clock.advance(UPDATING)
    assert live(sm) == {"AllTraffic": (1, 1.0)}


def test_an_instance_type_change_of_a_registered_variant_is_refused(
    aws, aws_bucket, sm, aas
) -> None:
    name = in_service_endpoint(aws, sm, aws_bucket)
    data = f"s3://{aws_bucket}/models/v1/model.tar.gz"
    sm.create_model(ModelName="model-big", PrimaryContainer={"Image": IMAGE, "ModelDataUrl": data},
                    ExecutionRoleArn=ROLE)  # fmt: skip
    sm.create_endpoint_config(
        EndpointConfigName="config-big",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "model-big",
                             "InitialInstanceCount": 1, "InstanceType": "ml.c5.2xlarge"}],
    )  # fmt: skip
    register(aas)
    with pytest.raises(ClientError, match="registered for automatic scaling"):
        sm.update_endpoint(EndpointName=name, EndpointConfigName="config-big")
    # AWS's documented sequence: deregister, update, register again.
    aas.deregister_scalable_target(ServiceNamespace=NS, ResourceId=RID, ScalableDimension=DIM)
    sm.update_endpoint(EndpointName=name, EndpointConfigName="config-big")
    aws.clock.advance(UPDATING)
    register(aas)
    assert sm.describe_endpoint(EndpointName=name)["EndpointConfigName"] == "config-big"


def test_reset_forgets_targets(aws, aws_bucket, sm, aas) -> None:
    in_service_endpoint(aws, sm, aws_bucket)
    register(aas)
    aws.reset()
    assert aas.describe_scalable_targets(ServiceNamespace=NS)["ScalableTargets"] == []
