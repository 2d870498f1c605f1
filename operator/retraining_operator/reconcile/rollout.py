"""Rollout planning and the blue/green (or rolling) step machine, pure.

Two halves:

* **Requests.** From the policy, the run (its trained `S3ModelArtifacts`) and the
  endpoint's current `DescribeEndpointConfig`, build the CreateModel, CreateEndpointConfig
  and UpdateEndpoint (or, for a first deployment, CreateEndpoint) requests in boto3's
  shape. The new config is the current one with the target variant pointing at the new
  model (instance type/count, other variants, data capture, KMS key, user tags copied);
  `DeploymentConfig` carries the policy's blue/green or rolling guardrails and its
  auto-rollback alarms. The `plan rollout` CLI prints exactly these requests.

* **Decisions.** `decide_update` looks at the endpoint as described now plus what the run
  recorded, and answers one small step (Argo Rollouts style: one early return per case):
  create the endpoint, update it, wait, or finish (Serving / Degraded / Failed). It never
  answers "update" while the endpoint is Creating/Updating/SystemUpdating/RollingBack/
  Deleting, and never twice for the same config: an update SageMaker rolled back is
  recorded as Degraded and the run ends (ACK's rule; the next run gets a new config).

Conventions in `CurrentRun` (the CRD's fields, no new ones):

* `model_name`: the Model the run deploys (derived from the run id unless already set,
  e.g. by a manual rollback to an older model).
* `endpoint_config_name`: the config the operator last *asked the endpoint to take*
  (None until the first CreateEndpoint/UpdateEndpoint of the run).
* `deploy_step_started_at`: when that request was made (blue/green), or when the current
  variant-shift step started baking (`reconcile/variant_shift.py`).
* variant shift: `deploy_step` is the step whose weights are applied; once a step fails,
  `endpoint_config_name` names the rollback config and `message` keeps the reason.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from retraining_operator.api import (
    BlueGreenSpec,
    CurrentRun,
    DeploymentSpec,
    HistoryEntry,
    Outcome,
    RetrainingPolicySpec,
    RollingSpec,
    RunStage,
    ServingStatus,
    Strategy,
    TrafficRouting,
    parse_duration,
)
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

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import (
        CreateEndpointConfigInputTypeDef,
        CreateEndpointInputTypeDef,
        CreateModelInputTypeDef,
        DeploymentConfigTypeDef,
        TagTypeDef,
        UpdateEndpointInputTypeDef,
    )

# Endpoint states in which SageMaker refuses (or must not get) another update.
BUSY_STATUSES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
IN_SERVICE = "InService"
FAILED = "Failed"
UPDATE_ROLLBACK_FAILED = "UpdateRollbackFailed"

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

# Bounds SageMaker puts on DeploymentConfig (botocore's model states only the minimums).
MAX_WAIT_SECONDS = 3600
MIN_EXECUTION_TIMEOUT = 600
MAX_EXECUTION_TIMEOUT = 28800

DEFAULT_POLL = timedelta(seconds=30)
ROLLBACK_RUN_PREFIX = "rb"


class RolloutError(ValueError):
    """The rollout cannot proceed as specified; a person has to act (message says what).

    The controller reports it as Degraded (kopf `PermanentError`) and does not retry
    until the spec or the endpoint changes.
    """


class UnknownRollbackTarget(RolloutError):
    """`rollback-to` names no run id or model in the policy's history."""


class RolloutResult(StrEnum):
    """How a rollout ended."""

    SERVING = "Serving"  # the endpoint serves the run's model
    DEGRADED = "Degraded"  # rolled back (by SageMaker or by the operator); old model serves
    FAILED = "Failed"  # the endpoint itself failed; nothing can be rolled out
    SKIPPED = "Skipped"  # strategy None: trained and gated, not deployed

    @property
    def outcome(self) -> Outcome:
        return {
            RolloutResult.SERVING: Outcome.DEPLOYED,
            RolloutResult.DEGRADED: Outcome.ROLLED_BACK,
            RolloutResult.FAILED: Outcome.FAILED,
            RolloutResult.SKIPPED: Outcome.TRAINED,
        }[self]


class Step(StrEnum):
    """What one reconcile pass does next."""

    CREATE_ENDPOINT = "CreateEndpoint"  # first deployment: config with one variant + endpoint
    UPDATE_ENDPOINT = "UpdateEndpoint"  # ensure `config_name` exists, then UpdateEndpoint
    SET_WEIGHTS = "SetWeights"  # UpdateEndpointWeightsAndCapacities (variant shift)
    ANALYSE = "Analyse"  # fetch alarms (and metrics) and decide again (variant shift)
    WAIT = "Wait"  # nothing to do now; look again after `delay`
    FINISH = "Finish"  # terminal: `result`


_NO_UPDATES: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class AnalysisWindow:
    """What a variant-shift step is judged on.

    The new variant's numbers count from `new_since` (the step's start); the old variant's
    latency baseline from `baseline_since` (before the shift began, so the 100 % step still
    has a baseline). `full` is False for the alarms-only check during the bake.
    """

    new_since: datetime
    baseline_since: datetime
    until: datetime
    full: bool


@dataclass(frozen=True)
class Decision:
    step: Step
    message: str
    config_name: str | None = None  # CREATE_ENDPOINT / UPDATE_ENDPOINT
    weights: tuple[tuple[str, float], ...] = ()  # SET_WEIGHTS: (variant, desired weight)
    window: AnalysisWindow | None = None  # ANALYSE
    result: RolloutResult | None = None  # FINISH
    reason: str | None = None  # FINISH: why (SageMaker's FailureReason, the failed check)
    delay: timedelta | None = None  # WAIT
    run_updates: Mapping[str, Any] = field(default_factory=lambda: _NO_UPDATES)  # run fields


def wait(message: str, delay: timedelta, **run_updates: Any) -> Decision:
    return Decision(Step.WAIT, message, delay=delay, run_updates=MappingProxyType(run_updates))


def finish(result: RolloutResult, message: str, reason: str | None = None) -> Decision:
    return Decision(Step.FINISH, message, result=result, reason=reason)


# ---------------------------------------------------------------------------------------
# Names


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


# ---------------------------------------------------------------------------------------
# Requests


def _tags(policy: PolicyRef, run_id: str) -> list[TagTypeDef]:
    return cast("list[TagTypeDef]", policy.tags(run_id))


def model_request(
    policy: PolicyRef,
    spec: RetrainingPolicySpec,
    *,
    run_id: str,
    model_name: str,
    model_data_url: str,
    image: str,
) -> CreateModelInputTypeDef:
    """CreateModel: the algorithm's image serving the run's artifacts, the policy's role.

    For the built-in object-detection algorithm the training image is also the inference
    image (the seed notebook deploys the same image it trains with).
    """
    if not model_data_url.startswith("s3://"):
        raise RolloutError(f"model artifacts must be an s3:// URL, got {model_data_url!r}")
    return {
        "ModelName": model_name,
        "PrimaryContainer": {"Image": image, "ModelDataUrl": model_data_url},
        "ExecutionRoleArn": spec.training.role_arn,
        "Tags": _tags(policy, run_id),
    }


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


def target_variant(config: Mapping[str, Any], variant_name: str) -> str:
    """The production variant a rollout replaces: `variant_name`, else the only variant."""
    names = [str(v["VariantName"]) for v in config.get("ProductionVariants", [])]
    if variant_name in names:
        return variant_name
    if len(names) == 1:
        return names[0]
    raise RolloutError(
        f"endpoint config {config.get('EndpointConfigName')!r} has no production variant "
        f"{variant_name!r} (variants: {', '.join(names) or 'none'}); set "
        "deployment.variantName to the variant to replace"
    )


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


def endpoint_config_request(
    policy: PolicyRef,
    spec: RetrainingPolicySpec,
    *,
    run_id: str,
    config_name: str,
    model_name: str,
    current: Mapping[str, Any],
    current_tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
) -> CreateEndpointConfigInputTypeDef:
    """The current config with the target variant serving `model_name` (same variant name)."""
    variant = target_variant(current, spec.deployment.variant_name)
    request = copied_config(
        current, config_name=config_name, tags=_tags(policy, run_id), current_tags=current_tags
    )
    request["ProductionVariants"] = [
        {**v, "ModelName": model_name} if v["VariantName"] == variant else v
        for v in request["ProductionVariants"]
    ]
    return cast("CreateEndpointConfigInputTypeDef", request)


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
            "Tags": _tags(policy, run_id),
        },
    )


def create_endpoint_request(
    policy: PolicyRef, spec: RetrainingPolicySpec, *, run_id: str, config_name: str
) -> CreateEndpointInputTypeDef:
    return {
        "EndpointName": _endpoint_name(spec.deployment),
        "EndpointConfigName": config_name,
        "Tags": _tags(policy, run_id),
    }


def _endpoint_name(deployment: DeploymentSpec) -> str:
    if deployment.endpoint_name is None:
        raise RolloutError("deployment.endpointName is required to deploy (strategy is not None)")
    return deployment.endpoint_name


def _seconds(duration: str, what: str, *, low: int = 0, high: int = MAX_WAIT_SECONDS) -> int:
    seconds = math.ceil(parse_duration(duration).total_seconds())
    if not low <= seconds <= high:
        raise RolloutError(f"{what} is {duration}; SageMaker accepts {low}s to {high}s")
    return seconds


def capacity_size(text: str) -> dict[str, Any]:
    """ "10%" -> CAPACITY_PERCENT 10, "2" -> INSTANCE_COUNT 2 (SageMaker's CapacitySize)."""
    if text.endswith("%"):
        return {"Type": "CAPACITY_PERCENT", "Value": int(text[:-1])}
    return {"Type": "INSTANCE_COUNT", "Value": int(text)}


_ROUTING_TYPE = {
    TrafficRouting.ALL_AT_ONCE: "ALL_AT_ONCE",
    TrafficRouting.CANARY: "CANARY",
    TrafficRouting.LINEAR: "LINEAR",
}


def blue_green_policy(blue_green: BlueGreenSpec) -> dict[str, Any]:
    routing: dict[str, Any] = {
        "Type": _ROUTING_TYPE[blue_green.traffic_routing],
        "WaitIntervalInSeconds": _seconds(
            blue_green.wait_interval, "deployment.blueGreen.waitInterval"
        ),
    }
    if blue_green.traffic_routing is TrafficRouting.CANARY:
        if blue_green.canary_size is None:
            raise RolloutError("deployment.blueGreen.canarySize is required with Canary")
        routing["CanarySize"] = capacity_size(blue_green.canary_size)
    elif blue_green.traffic_routing is TrafficRouting.LINEAR:
        if blue_green.linear_step_size is None:
            raise RolloutError("deployment.blueGreen.linearStepSize is required with Linear")
        routing["LinearStepSize"] = capacity_size(blue_green.linear_step_size)
    return {
        "TrafficRoutingConfiguration": routing,
        "TerminationWaitInSeconds": _seconds(
            blue_green.termination_wait, "deployment.blueGreen.terminationWait"
        ),
        "MaximumExecutionTimeoutInSeconds": _seconds(
            blue_green.maximum_execution_timeout,
            "deployment.blueGreen.maximumExecutionTimeout",
            low=MIN_EXECUTION_TIMEOUT,
            high=MAX_EXECUTION_TIMEOUT,
        ),
    }


def rolling_policy(rolling: RollingSpec) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "MaximumBatchSize": capacity_size(rolling.maximum_batch_size),
        "WaitIntervalInSeconds": _seconds(rolling.wait_interval, "deployment.rolling.waitInterval"),
        "MaximumExecutionTimeoutInSeconds": _seconds(
            rolling.maximum_execution_timeout,
            "deployment.rolling.maximumExecutionTimeout",
            low=MIN_EXECUTION_TIMEOUT,
            high=MAX_EXECUTION_TIMEOUT,
        ),
    }
    if rolling.rollback_maximum_batch_size is not None:
        policy["RollbackMaximumBatchSize"] = capacity_size(rolling.rollback_maximum_batch_size)
    return policy


def deployment_config(deployment: DeploymentSpec) -> DeploymentConfigTypeDef | None:
    """UpdateEndpoint's DeploymentConfig for BlueGreen/Rolling; None for the other strategies."""
    config: dict[str, Any]
    if deployment.strategy is Strategy.BLUE_GREEN:
        config = {"BlueGreenUpdatePolicy": blue_green_policy(deployment.effective_blue_green)}
    elif deployment.strategy is Strategy.ROLLING:
        config = {"RollingUpdatePolicy": rolling_policy(deployment.effective_rolling)}
    else:
        return None
    if deployment.auto_rollback_alarms:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": name} for name in deployment.auto_rollback_alarms]
        }
    return cast("DeploymentConfigTypeDef", config)


def update_endpoint_request(
    spec: RetrainingPolicySpec, *, config_name: str, guarded: bool = True
) -> UpdateEndpointInputTypeDef:
    """UpdateEndpoint to `config_name`, with the policy's DeploymentConfig when `guarded`."""
    request: UpdateEndpointInputTypeDef = {
        "EndpointName": _endpoint_name(spec.deployment),
        "EndpointConfigName": config_name,
    }
    config = deployment_config(spec.deployment) if guarded else None
    if config is not None:
        request["DeploymentConfig"] = config
    return request


# Variant shift: the new model joins as a second production variant. Its name alternates
# between `variantName` and `<variantName>-alt`, so after a shift the endpoint keeps one
# variant and the next shift has a free name (CloudWatch alarms can watch both names).
ALT_SUFFIX = "-alt"
MAX_VARIANT_NAME = 63


def alternate_variant_name(variant_name: str) -> str:
    return f"{variant_name[: MAX_VARIANT_NAME - len(ALT_SUFFIX)]}{ALT_SUFFIX}"


@dataclass(frozen=True)
class ShiftVariants:
    """Which production variant is the old model and which the new one."""

    old: str | None  # None once the old variant has been removed
    new: str


def _variants(config: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(config.get("ProductionVariants") or [])


def shift_variants(
    config: Mapping[str, Any], *, variant_name: str, model_name: str
) -> ShiftVariants:
    """Old and new variant of a shift to `model_name`, read from any config of the shift.

    In the config that already holds the new model, the new variant is the one serving
    `model_name`; otherwise the new variant takes the free one of `variantName` and
    `<variantName>-alt`, and the old variant is the other (or the only variant).
    """
    names = [str(v["VariantName"]) for v in _variants(config)]
    alt = alternate_variant_name(variant_name)
    ours = [str(v["VariantName"]) for v in _variants(config) if v.get("ModelName") == model_name]
    if ours:
        new = ours[0]
        others = [n for n in names if n != new]
        partner = alt if new == variant_name else variant_name
        if partner in others:
            return ShiftVariants(old=partner, new=new)
        return ShiftVariants(old=others[0] if len(others) == 1 else None, new=new)
    if variant_name in names and alt in names:
        raise RolloutError(
            f"endpoint config {config.get('EndpointConfigName')!r} has both variants "
            f"{variant_name!r} and {alt!r} (a shift left half-done?); remove one before the "
            "next variant shift"
        )
    if variant_name in names:
        return ShiftVariants(old=variant_name, new=alt)
    if alt in names:
        return ShiftVariants(old=alt, new=variant_name)
    if len(names) == 1:
        return ShiftVariants(old=names[0], new=variant_name)
    raise RolloutError(
        f"endpoint config {config.get('EndpointConfigName')!r} has no production variant "
        f"{variant_name!r} or {alt!r} (variants: {', '.join(names) or 'none'}); set "
        "deployment.variantName to the variant to shift traffic away from"
    )


def split_weight(total: float, percent: int) -> tuple[float, float]:
    """(old, new) weights giving the new variant `percent` % of the pair's `total`."""
    new = round(total * percent / 100.0, 6)
    return round(total - new, 6), new


def _weight(variant: Mapping[str, Any]) -> float:
    return float(variant.get("InitialVariantWeight", 1.0))


def shift_config_request(
    policy: PolicyRef,
    spec: RetrainingPolicySpec,
    *,
    run_id: str,
    config_name: str,
    model_name: str,
    current: Mapping[str, Any],
    current_tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
) -> CreateEndpointConfigInputTypeDef:
    """The current config plus the new model as a second variant at the first step's weight.

    The new variant copies the old one's instances (type, count, volume, timeouts); the
    pair's weight is split so the new variant gets `steps[0]` % of what the old one had,
    and every other variant keeps its share.
    """
    pair = shift_variants(current, variant_name=spec.deployment.variant_name, model_name=model_name)
    request = copied_config(
        current, config_name=config_name, tags=_tags(policy, run_id), current_tags=current_tags
    )
    old = next(v for v in request["ProductionVariants"] if v["VariantName"] == pair.old)
    old_weight, new_weight = split_weight(
        _weight(old), spec.deployment.effective_variant_shift.steps[0]
    )
    request["ProductionVariants"] = [
        {**v, "InitialVariantWeight": old_weight} if v["VariantName"] == pair.old else v
        for v in request["ProductionVariants"]
    ] + [
        {
            **old,
            "VariantName": pair.new,
            "ModelName": model_name,
            "InitialVariantWeight": new_weight,
        }
    ]
    return cast("CreateEndpointConfigInputTypeDef", request)


def drop_variant_request(
    policy: PolicyRef,
    *,
    run_id: str,
    config_name: str,
    current: Mapping[str, Any],
    drop: str,
    keep: str,
    current_tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
) -> CreateEndpointConfigInputTypeDef:
    """The shift config without `drop`; `keep` gets the pair's whole weight back."""
    request = copied_config(
        current, config_name=config_name, tags=_tags(policy, run_id), current_tags=current_tags
    )
    variants = request["ProductionVariants"]
    dropped = [v for v in variants if v["VariantName"] == drop]
    if not dropped or not any(v["VariantName"] == keep for v in variants):
        raise RolloutError(
            f"endpoint config {current.get('EndpointConfigName')!r} lacks variant {drop!r} "
            f"or {keep!r}; cannot remove one of them"
        )
    total = sum(_weight(v) for v in variants if v["VariantName"] in (drop, keep))
    request["ProductionVariants"] = [
        {**v, "InitialVariantWeight": round(total, 6)} if v["VariantName"] == keep else v
        for v in variants
        if v["VariantName"] != drop
    ]
    return cast("CreateEndpointConfigInputTypeDef", request)


@dataclass(frozen=True)
class RolloutPlan:
    """The requests one rollout sends (the `plan rollout` CLI prints them)."""

    create_model: CreateModelInputTypeDef
    create_endpoint_config: CreateEndpointConfigInputTypeDef
    update_endpoint: UpdateEndpointInputTypeDef | None
    create_endpoint: CreateEndpointInputTypeDef | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "CreateModel": self.create_model,
            "CreateEndpointConfig": self.create_endpoint_config,
        }
        if self.update_endpoint is not None:
            out["UpdateEndpoint"] = self.update_endpoint
        if self.create_endpoint is not None:
            out["CreateEndpoint"] = self.create_endpoint
        return out


def plan_rollout(
    policy: PolicyRef,
    spec: RetrainingPolicySpec,
    *,
    run_id: str,
    model_data_url: str,
    image: str,
    current_config: Mapping[str, Any] | None,
    current_tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
    model: str | None = None,
) -> RolloutPlan:
    """Every request of a rollout, from the policy, the artifacts and the current config.

    `current_config` is the endpoint's DescribeEndpointConfig answer, or None when the
    endpoint does not exist yet (then a first deployment: one variant + CreateEndpoint).
    For VariantShift the config is the one that adds the new model as a second variant
    at the first step's weight (see `reconcile/variant_shift.py`).
    """
    strategy = spec.deployment.strategy
    if strategy is Strategy.NONE:
        raise RolloutError("deployment.strategy is None: the run stops after the gate")
    names = RolloutNames.for_run(policy, run_id, model=model)
    create_model = model_request(
        policy,
        spec,
        run_id=run_id,
        model_name=names.model,
        model_data_url=model_data_url,
        image=image,
    )
    if current_config is None:
        return RolloutPlan(
            create_model=create_model,
            create_endpoint_config=first_endpoint_config_request(
                policy, spec, run_id=run_id, config_name=names.config, model_name=names.model
            ),
            update_endpoint=None,
            create_endpoint=create_endpoint_request(
                policy, spec, run_id=run_id, config_name=names.config
            ),
        )
    if strategy is Strategy.VARIANT_SHIFT:
        config = shift_config_request(
            policy,
            spec,
            run_id=run_id,
            config_name=names.config,
            model_name=names.model,
            current=current_config,
            current_tags=current_tags,
        )
        return RolloutPlan(
            create_model=create_model,
            create_endpoint_config=config,
            update_endpoint=update_endpoint_request(spec, config_name=names.config, guarded=False),
        )
    return RolloutPlan(
        create_model=create_model,
        create_endpoint_config=endpoint_config_request(
            policy,
            spec,
            run_id=run_id,
            config_name=names.config,
            model_name=names.model,
            current=current_config,
            current_tags=current_tags,
        ),
        update_endpoint=update_endpoint_request(spec, config_name=names.config),
    )


# ---------------------------------------------------------------------------------------
# What the endpoint looks like now


@dataclass(frozen=True)
class VariantState:
    name: str
    current_weight: float | None = None
    desired_weight: float | None = None

    @property
    def weight(self) -> float:
        """The weight SageMaker is moving to (desired), else the one in effect."""
        if self.desired_weight is not None:
            return self.desired_weight
        return self.current_weight if self.current_weight is not None else 0.0


@dataclass(frozen=True)
class EndpointView:
    """The parts of a DescribeEndpoint answer the rollout decides on."""

    name: str
    status: str
    config_name: str | None
    pending_config_name: str | None = None
    failure_reason: str | None = None
    last_modified: datetime | None = None
    variants: tuple[VariantState, ...] = ()

    @classmethod
    def from_describe(cls, answer: Mapping[str, Any]) -> EndpointView:
        pending = answer.get("PendingDeploymentSummary") or {}
        return cls(
            name=str(answer["EndpointName"]),
            status=str(answer["EndpointStatus"]),
            config_name=answer.get("EndpointConfigName"),
            pending_config_name=pending.get("EndpointConfigName"),
            failure_reason=answer.get("FailureReason") or None,
            last_modified=answer.get("LastModifiedTime"),
            variants=tuple(
                VariantState(
                    name=str(v["VariantName"]),
                    current_weight=_float(v.get("CurrentWeight")),
                    desired_weight=_float(v.get("DesiredWeight")),
                )
                for v in answer.get("ProductionVariants") or []
            ),
        )

    @property
    def busy(self) -> bool:
        return self.status in BUSY_STATUSES

    def variant(self, name: str) -> VariantState | None:
        return next((v for v in self.variants if v.name == name), None)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def busy_message(endpoint: EndpointView) -> str:
    text = f"endpoint {endpoint.name} is {endpoint.status}"
    if endpoint.pending_config_name:
        text += f" (to {endpoint.pending_config_name})"
    if endpoint.status == "RollingBack" and endpoint.failure_reason:
        text += f": {endpoint.failure_reason}"
    return text + "; no update is stacked on it, waiting"


def failed_configs(history: Sequence[HistoryEntry]) -> frozenset[str]:
    """Configs whose update failed in an earlier run (never tried again)."""
    return frozenset(
        h.endpoint_config_name
        for h in history
        if h.endpoint_config_name and h.outcome in (Outcome.ROLLED_BACK, Outcome.FAILED)
    )


def update_failed_unrecorded(endpoint: EndpointView, config_created: datetime | None) -> bool:
    """An update after our config existed failed, though the run did not record asking.

    Covers a crash between UpdateEndpoint and the status patch, when SageMaker finished
    (and rolled back) the update before the next pass: the endpoint is InService on the
    old config, carries a FailureReason, and changed after our config was created.
    """
    return (
        endpoint.failure_reason is not None
        and config_created is not None
        and endpoint.last_modified is not None
        and endpoint.last_modified > config_created
    )


def decide_update(
    *,
    endpoint: EndpointView | None,
    config_name: str,
    run: CurrentRun,
    now: datetime,
    config_created: datetime | None = None,
    failed: Collection[str] = frozenset(),
    poll: timedelta = DEFAULT_POLL,
) -> Decision:
    """The next step of a blue/green or rolling rollout of `config_name`."""
    requested = run.endpoint_config_name == config_name and run.deploy_step_started_at is not None
    mark = {"endpoint_config_name": config_name, "deploy_step_started_at": now}

    if endpoint is None:
        return Decision(
            Step.CREATE_ENDPOINT,
            f"creating the endpoint with {config_name}",
            config_name=config_name,
            run_updates=MappingProxyType(mark),
        )
    if endpoint.busy:
        if endpoint.pending_config_name == config_name and not requested:
            return wait(busy_message(endpoint), poll, **mark)  # our request, not recorded yet
        return wait(busy_message(endpoint), poll)
    if endpoint.config_name == config_name:
        if endpoint.status == IN_SERVICE:
            return finish(RolloutResult.SERVING, f"endpoint {endpoint.name} serves {config_name}")
        if endpoint.status == UPDATE_ROLLBACK_FAILED:
            return finish(
                RolloutResult.DEGRADED,
                f"endpoint {endpoint.name}: update rollback failed",
                endpoint.failure_reason,
            )
        return finish(
            RolloutResult.FAILED,
            f"endpoint {endpoint.name} is {endpoint.status} on {config_name}",
            endpoint.failure_reason,
        )
    # The endpoint is on some other config.
    if endpoint.status == UPDATE_ROLLBACK_FAILED:
        return finish(
            RolloutResult.DEGRADED,
            f"endpoint {endpoint.name}: the update to {config_name} failed and so did its rollback",
            endpoint.failure_reason,
        )
    if endpoint.status == FAILED:
        return finish(
            RolloutResult.FAILED,
            f"endpoint {endpoint.name} is Failed; it cannot be updated until it is fixed "
            "or deleted",
            endpoint.failure_reason,
        )
    if requested or config_name in failed or update_failed_unrecorded(endpoint, config_created):
        return finish(
            RolloutResult.DEGRADED,
            f"SageMaker rolled back the update to {config_name}; endpoint {endpoint.name} "
            f"still serves {endpoint.config_name} (this config is not retried)",
            endpoint.failure_reason or f"endpoint returned to {endpoint.config_name}",
        )
    return Decision(
        Step.UPDATE_ENDPOINT,
        f"updating endpoint {endpoint.name} from {endpoint.config_name} to {config_name}",
        config_name=config_name,
        run_updates=MappingProxyType(mark),
    )


# ---------------------------------------------------------------------------------------
# Records of a finished rollout


def history_entry(
    run: CurrentRun, *, result: RolloutResult, now: datetime, reason: str | None
) -> HistoryEntry:
    return HistoryEntry(
        run_id=run.id,
        outcome=result.outcome,
        training_job_name=run.training_job_name,
        metric_value=run.metric_value,
        model_name=run.model_name if result is not RolloutResult.SKIPPED else None,
        model_data_url=run.model_data_url,
        endpoint_config_name=run.endpoint_config_name,
        started_at=run.started_at,
        finished_at=now,
        reason=reason,
    )


def serving_status(run: CurrentRun, *, now: datetime) -> ServingStatus:
    return ServingStatus(
        model_name=run.model_name,
        endpoint_config_name=run.endpoint_config_name,
        model_data_url=run.model_data_url,
        run_id=run.id,
        metric_value=run.metric_value,
        since=now,
    )


# ---------------------------------------------------------------------------------------
# Manual rollback (`retraining.hitl.dev/rollback-to`)


def resolve_rollback_target(history: Sequence[HistoryEntry], target: str) -> HistoryEntry:
    """The newest history entry whose run id or model name is `target`, with a model.

    Raises `UnknownRollbackTarget` naming the candidates when nothing matches, or when
    the match never produced a model (e.g. a gate-rejected run).
    """
    target = target.strip()
    matches = [h for h in history if target in (h.run_id, h.model_name)]
    usable = [h for h in matches if h.model_name and h.model_data_url]
    if usable:
        return usable[0]
    candidates = [
        f"{h.run_id} ({h.model_name})" for h in history if h.model_name and h.model_data_url
    ]
    known = ", ".join(candidates) or "none"
    if matches:
        raise UnknownRollbackTarget(
            f"rollback-to {target!r}: run {matches[0].run_id} ended {matches[0].outcome} "
            f"and has no model to serve; models in history: {known}"
        )
    raise UnknownRollbackTarget(
        f"rollback-to {target!r} names no run id or model in the history; models in history: "
        f"{known}"
    )


def rollback_run(entry: HistoryEntry, *, target: str, now: datetime) -> CurrentRun:
    """A deploy-only run that puts `entry`'s model back, under a new run id (new configs).

    The id `rb<yyyymmdd-hhmmss>` is new per request, so a rollback whose update failed is
    never retried with the same config; the Model is the history's own (recreated from its
    artifacts if cleanup deleted it).
    """
    return CurrentRun(
        id=now.astimezone(UTC).strftime(f"{ROLLBACK_RUN_PREFIX}%Y%m%d-%H%M%S"),
        stage=RunStage.DEPLOYING,
        trigger=f"rollback-to:{target}",
        started_at=now,
        training_job_name=entry.training_job_name,
        model_data_url=entry.model_data_url,
        metric_value=entry.metric_value,
        model_name=entry.model_name,
        message=f"rolling back to {entry.model_name} (run {entry.run_id})",
    )
