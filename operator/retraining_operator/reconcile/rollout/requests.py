"""The SageMaker requests every rollout strategy shares, in boto3's shape, pure.

From the policy, the run (its trained `S3ModelArtifacts`) and the endpoint's current
`DescribeEndpointConfig`: CreateModel, a copy of the current config under a new name
(instance type/count, other variants, data capture, KMS key and user tags kept), a first
deployment's one-variant config and CreateEndpoint, and UpdateEndpoint. What a strategy
changes in the copied config lives with the strategy (`blue_green.py`, `variant_shift/`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from retraining_operator.api import DeploymentSpec, RetainedVariantProperty, RetrainingPolicySpec
from retraining_operator.reconcile.naming import (
    TAG_MANAGED_BY,
    TAG_NAMESPACE,
    TAG_POLICY,
    TAG_POLICY_UID,
    TAG_RUN_ID,
    PolicyRef,
    endpoint_config_name,
    model_name,
    resource_name,
)
from retraining_operator.reconcile.rollout.endpoint import EndpointView
from retraining_operator.reconcile.rollout.errors import RolloutError
from retraining_operator.reconcile.rollout.guardrails import deployment_config

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import (
        CreateEndpointConfigInputTypeDef,
        CreateEndpointInputTypeDef,
        CreateModelInputTypeDef,
        TagTypeDef,
        UpdateEndpointInputTypeDef,
        VariantPropertyTypeDef,
    )

# Keys of a DescribeEndpointConfig response that CreateEndpointConfig takes unchanged.
COPIED_CONFIG_KEYS = (
    "ProductionVariants",
    "DataCaptureConfig",
    "KmsKeyId",
    "AsyncInferenceConfig",
    "ExplainerConfig",
    "ShadowProductionVariants",
    "ExecutionRoleArn",
    "VpcConfig",
    "EnableNetworkIsolation",
    "MetricsConfig",
    "CrossRegionTrafficConfig",
)
OUR_TAG_KEYS = frozenset({TAG_MANAGED_BY, TAG_NAMESPACE, TAG_POLICY, TAG_POLICY_UID, TAG_RUN_ID})
MAX_TAGS = 50


@dataclass(frozen=True)
class RolloutNames:
    """The deterministic SageMaker names of one run's rollout."""

    model: str
    config: str  # blue/green target config; the variant-shift config with both variants
    final_config: str  # variant shift: the new variant alone (old removed)
    rollback_config: str  # variant shift: the old variant alone (new removed)

    @classmethod
    def for_run(cls, policy: PolicyRef, run_id: str, *, model: str | None = None) -> RolloutNames:
        def name(kind: str) -> str:
            return resource_name(
                kind, policy_name=policy.name, policy_uid=policy.uid, run_id=run_id
            )

        return cls(
            model=model
            or model_name(policy_name=policy.name, policy_uid=policy.uid, run_id=run_id),
            config=endpoint_config_name(
                policy_name=policy.name, policy_uid=policy.uid, run_id=run_id
            ),
            final_config=name("ecf"),
            rollback_config=name("ecr"),
        )

    @property
    def configs(self) -> tuple[str, str, str]:
        return (self.config, self.final_config, self.rollback_config)


@dataclass(frozen=True)
class ConfigTarget:
    """An endpoint config a run creates: whose it is, its name, and the model it serves."""

    policy: PolicyRef
    run_id: str
    config_name: str
    model_name: str

    @property
    def tags(self) -> list[TagTypeDef]:
        return run_tags(self.policy, self.run_id)


@dataclass(frozen=True)
class LiveConfig:
    """What a new config is derived from: the endpoint's current config as described
    (DescribeEndpointConfig), that config's tags, and the endpoint itself (DescribeEndpoint,
    whose live instance counts a variant shift copies)."""

    config: Mapping[str, Any]
    tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None
    endpoint: EndpointView | None = None


@dataclass(frozen=True)
class ModelSource:
    """What a run's Model is made of: its artifacts, the image serving them, and the
    serving model's DescribeModel answer (whose hardening the new Model inherits)."""

    model_data_url: str
    image: str
    serving_model: Mapping[str, Any] | None = None


def run_tags(policy: PolicyRef, run_id: str) -> list[TagTypeDef]:
    """The ownership tags of everything a run creates."""
    return cast("list[TagTypeDef]", policy.tags(run_id))


# What the new Model's container inherits from the serving model's (its hardening).
INHERITED_CONTAINER_KEYS = ("Environment", "Mode", "ImageConfig")


def serving_container(model: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A DescribeModel answer's primary container (else its first container), else {}."""
    if not model:
        return {}
    primary = model.get("PrimaryContainer")
    if primary:
        return cast("Mapping[str, Any]", primary)
    containers = model.get("Containers") or []
    return cast("Mapping[str, Any]", containers[0]) if containers else {}


def inherited_container(served: Mapping[str, Any], *, image: str) -> dict[str, Any]:
    """What the new container keeps of the serving one, where it applies to the run's
    single model.tar.gz: Environment always; Mode unless MultiModel (which serves an S3
    prefix of many models); ImageConfig (registry access) only for the very same image."""
    kept: dict[str, Any] = {}
    for key in INHERITED_CONTAINER_KEYS:
        value = served.get(key)
        if not value:
            continue
        if key == "Mode" and value == "MultiModel":
            continue
        if key == "ImageConfig" and served.get("Image") != image:
            continue
        kept[key] = _drop_none(value)
    return kept


def model_request(
    policy: PolicyRef,
    spec: RetrainingPolicySpec,
    *,
    run_id: str,
    model_name: str,
    source: ModelSource,
) -> CreateModelInputTypeDef:
    """CreateModel: the algorithm's image serving the run's artifacts, the policy's role.

    For the built-in object-detection algorithm the training image is also the inference
    image (the seed notebook deploys the same image it trains with). The new Model keeps
    the serving model's hardening (`source.serving_model`): VpcConfig,
    EnableNetworkIsolation and the container's Environment, Mode and ImageConfig where
    they apply (`inherited_container`);
    `training.vpcConfig` / `training.enableNetworkIsolation` override the first two.
    """
    model_data_url, image, serving_model = source.model_data_url, source.image, source.serving_model
    if not model_data_url.startswith("s3://"):
        raise RolloutError(f"model artifacts must be an s3:// URL, got {model_data_url!r}")
    container = inherited_container(serving_container(serving_model), image=image)
    container.update(Image=image, ModelDataUrl=model_data_url)
    request: dict[str, Any] = {
        "ModelName": model_name,
        "PrimaryContainer": container,
        "ExecutionRoleArn": spec.training.role_arn,
        "Tags": run_tags(policy, run_id),
    }
    training = spec.training
    if training.vpc_config is not None:
        request["VpcConfig"] = {
            "SecurityGroupIds": list(training.vpc_config.security_group_ids),
            "Subnets": list(training.vpc_config.subnets),
        }
    elif serving_model and serving_model.get("VpcConfig"):
        request["VpcConfig"] = _drop_none(serving_model["VpcConfig"])
    if training.enable_network_isolation is not None:
        request["EnableNetworkIsolation"] = training.enable_network_isolation
    elif serving_model and serving_model.get("EnableNetworkIsolation"):
        request["EnableNetworkIsolation"] = True
    return cast("CreateModelInputTypeDef", request)


def _drop_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def user_tags(tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None) -> list[TagTypeDef]:
    """A config's own tags worth copying: not AWS-reserved (`aws:`), not our ownership tags."""
    if tags is None:
        return []
    pairs = (
        list(tags.items())
        if isinstance(tags, Mapping)
        else [(t["Key"], t.get("Value", "")) for t in tags]
    )
    return [
        {"Key": key, "Value": value}
        for key, value in pairs
        if not key.startswith("aws:") and key not in OUR_TAG_KEYS
    ]


def copied_config(
    current: Mapping[str, Any],
    *,
    config_name: str,
    tags: Sequence[TagTypeDef],
    current_tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """A CreateEndpointConfig request copying `current` (a DescribeEndpointConfig answer)."""
    request: dict[str, Any] = {"EndpointConfigName": config_name}
    for key in COPIED_CONFIG_KEYS:
        if current.get(key) is not None:
            request[key] = _drop_none(current[key])
    own = list(tags)
    request["Tags"] = own + user_tags(current_tags)[: MAX_TAGS - len(own)]
    return request


def first_endpoint_config_request(
    policy: PolicyRef,
    spec: RetrainingPolicySpec,
    *,
    run_id: str,
    config_name: str,
    model_name: str,
) -> CreateEndpointConfigInputTypeDef:
    """A new endpoint's config: one variant from the policy's `deployment` fields."""
    deployment = spec.deployment
    return cast(
        "CreateEndpointConfigInputTypeDef",
        {
            "EndpointConfigName": config_name,
            "ProductionVariants": [
                {
                    "VariantName": deployment.variant_name,
                    "ModelName": model_name,
                    "InitialInstanceCount": deployment.initial_instance_count,
                    "InstanceType": deployment.instance_type,
                    "InitialVariantWeight": 1.0,
                }
            ],
            "Tags": run_tags(policy, run_id),
        },
    )


def create_endpoint_request(
    policy: PolicyRef, spec: RetrainingPolicySpec, *, run_id: str, config_name: str
) -> CreateEndpointInputTypeDef:
    return {
        "EndpointName": required_endpoint_name(spec.deployment),
        "EndpointConfigName": config_name,
        "Tags": run_tags(policy, run_id),
    }


def required_endpoint_name(deployment: DeploymentSpec) -> str:
    if deployment.endpoint_name is None:
        raise RolloutError("deployment.endpointName is required to deploy (strategy is not None)")
    return deployment.endpoint_name


def update_endpoint_request(
    spec: RetrainingPolicySpec,
    *,
    config_name: str,
    guarded: bool = True,
    config_weights: bool = False,
) -> UpdateEndpointInputTypeDef:
    """UpdateEndpoint to `config_name`, with the policy's DeploymentConfig when `guarded`.

    Same-named variants keep their live instance count and weight
    (`RetainAllVariantProperties`, unless the policy opts out): an endpoint Application Auto
    Scaling grew is not scaled back to the config's `InitialInstanceCount` (AWS's procedure
    for updating autoscaled endpoints). `config_weights`: the config's weights win over the
    live ones (a variant shift sets the weights it shifts).
    """
    request: UpdateEndpointInputTypeDef = {
        "EndpointName": required_endpoint_name(spec.deployment),
        "EndpointConfigName": config_name,
    }
    config = deployment_config(spec.deployment) if guarded else None
    if config is not None:
        request["DeploymentConfig"] = config
    deployment = spec.deployment
    if deployment.retain_variant_properties:
        request["RetainAllVariantProperties"] = True
        # Each property once (a list repeating one would be refused by SageMaker).
        excluded = list(
            dict.fromkeys(str(p) for p in deployment.exclude_retained_variant_properties)
        )
        if config_weights and RetainedVariantProperty.DESIRED_WEIGHT not in excluded:
            excluded.append(RetainedVariantProperty.DESIRED_WEIGHT.value)
        if excluded:
            request["ExcludeRetainedVariantProperties"] = cast(
                "list[VariantPropertyTypeDef]",
                [{"VariantPropertyType": p} for p in excluded],
            )
    return request
