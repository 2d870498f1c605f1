"""Application Auto Scaling for SageMaker variants, wired to the hosting emulator.

Only the `sagemaker` namespace and the `sagemaker:variant:DesiredInstanceCount` dimension
are emulated (resource ids `endpoint/<endpoint>/variant/<variant>`), with AWS's rules:

* RegisterScalableTarget needs the variant to exist on the endpoint; registering again
  updates min/max (an upsert, as AWS does). DeregisterScalableTarget deletes the target's
  scaling policies with it.
* PutScalingPolicy needs a registered target and upserts by policy name.
* The autoscaler (`scale`, a test/control call standing in for CloudWatch driving a
  target-tracking policy) moves a registered variant's desired and current instance count,
  clamped to the target's min/max.

The hosting side consults `registered` when an UpdateEndpoint would change the instance
type of a registered variant, which AWS refuses until the variant is deregistered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from retraining_standins.errors import ApiError, validation

if TYPE_CHECKING:
    from retraining_standins.hosting import HostingStore
    from retraining_standins.state import EmulatorState

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def resource_id(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def not_found(message: str) -> ApiError:
    return ApiError("ObjectNotFoundException", message, 400)


@dataclass
class ScalableTarget:
    resource_id: str
    min_capacity: int
    max_capacity: int
    role_arn: str
    created: datetime
    arn: str
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "ServiceNamespace": NAMESPACE,
            "ResourceId": self.resource_id,
            "ScalableDimension": DIMENSION,
            "MinCapacity": self.min_capacity,
            "MaxCapacity": self.max_capacity,
            "RoleARN": self.role_arn,
            "CreationTime": self.created,
            "ScalableTargetARN": self.arn,
        }


class AutoScalingStore:
    def __init__(self, state: EmulatorState, hosting: HostingStore) -> None:
        self.state = state
        self.hosting = hosting
        self.targets: dict[str, ScalableTarget] = {}
        self._serial = 0

    def reset(self) -> None:
        self.targets.clear()
        self._serial = 0

    def registered(self, endpoint: str, variant: str) -> ScalableTarget | None:
        return self.targets.get(resource_id(endpoint, variant))

    # -- checks ----------------------------------------------------------------------------
    def _check_kind(self, params: dict[str, Any]) -> None:
        if params["ServiceNamespace"] != NAMESPACE:
            raise validation(f"Unsupported service namespace {params['ServiceNamespace']}")
        dimension = params.get("ScalableDimension")
        if dimension is not None and dimension != DIMENSION:
            raise validation(
                f"Unsupported scalable dimension {dimension} for namespace {NAMESPACE}"
            )

    def _variant_of(self, rid: str) -> tuple[str, str]:
        parts = rid.split("/")
        if len(parts) != 4 or parts[0] != "endpoint" or parts[2] != "variant":
            raise validation(f"Unsupported resource ID {rid} for namespace {NAMESPACE}")
        return parts[1], parts[3]

    def _target(self, params: dict[str, Any]) -> ScalableTarget:
        target = self.targets.get(params["ResourceId"])
        if target is None:
            raise not_found(
                f"No scalable target registered for service namespace: {NAMESPACE}, "
                f"resource ID: {params['ResourceId']}, scalable dimension: {DIMENSION}"
            )
        return target

    # -- operations ------------------------------------------------------------------------
    def register_scalable_target(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_kind(params)
        rid = params["ResourceId"]
        endpoint_name, variant_name = self._variant_of(rid)
        existing = self.targets.get(rid)
        if existing is None:
            endpoint = self.hosting.get_endpoint(endpoint_name)
            if not any(v.name == variant_name for v in endpoint.variants):
                raise validation(
                    f"The endpoint variant {variant_name} of endpoint {endpoint_name} does "
                    "not exist."
                )
            if "MinCapacity" not in params or "MaxCapacity" not in params:
                raise validation("MinCapacity and MaxCapacity are required to register a target")
            self._serial += 1
            existing = ScalableTarget(
                resource_id=rid,
                min_capacity=int(params["MinCapacity"]),
                max_capacity=int(params["MaxCapacity"]),
                role_arn=params.get("RoleARN")
                or (
                    f"arn:aws:iam::{self.state.account_id}:role/aws-service-role/"
                    "sagemaker.application-autoscaling.amazonaws.com/"
                    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
                ),
                created=self.state.clock.now(),
                arn=(
                    f"arn:aws:application-autoscaling:{self.state.region}:"
                    f"{self.state.account_id}:scalable-target/{self._serial:032x}"
                ),
            )
            self.targets[rid] = existing
        else:
            existing.min_capacity = int(params.get("MinCapacity", existing.min_capacity))
            existing.max_capacity = int(params.get("MaxCapacity", existing.max_capacity))
        if existing.min_capacity > existing.max_capacity:
            raise validation("Minimum capacity cannot be greater than maximum capacity")
        return {"ScalableTargetARN": existing.arn}

    def describe_scalable_targets(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_kind(params)
        wanted = params.get("ResourceIds")
        targets = [
            t.describe() for rid, t in sorted(self.targets.items()) if not wanted or rid in wanted
        ]
        return {"ScalableTargets": targets}

    def deregister_scalable_target(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_kind(params)
        target = self._target(params)
        del self.targets[target.resource_id]
        return {}

    def put_scaling_policy(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_kind(params)
        target = self._target(params)
        kind = params.get("PolicyType", "StepScaling")
        name = params["PolicyName"]
        arn = (
            f"arn:aws:autoscaling:{self.state.region}:{self.state.account_id}:scalingPolicy:"
            f"{target.arn.rsplit('/', 1)[-1]}:resource/sagemaker/{target.resource_id}:"
            f"policyName/{name}"
        )
        policy: dict[str, Any] = {
            "PolicyARN": arn,
            "PolicyName": name,
            "ServiceNamespace": NAMESPACE,
            "ResourceId": target.resource_id,
            "ScalableDimension": DIMENSION,
            "PolicyType": kind,
            "CreationTime": self.state.clock.now(),
        }
        for key in ("StepScalingPolicyConfiguration", "TargetTrackingScalingPolicyConfiguration"):
            if params.get(key) is not None:
                policy[key] = params[key]
        target.policies[name] = policy
        return {"PolicyARN": arn, "Alarms": []}

    def describe_scaling_policies(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_kind(params)
        names = params.get("PolicyNames")
        rid = params.get("ResourceId")
        policies = [
            policy
            for target in self.targets.values()
            if rid is None or target.resource_id == rid
            for name, policy in sorted(target.policies.items())
            if not names or name in names
        ]
        return {"ScalingPolicies": policies}

    def delete_scaling_policy(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_kind(params)
        target = self._target(params)
        if target.policies.pop(params["PolicyName"], None) is None:
            raise not_found(f"No scaling policy found for {params['PolicyName']}")
        return {}

    # -- the autoscaler --------------------------------------------------------------------
    def scale(self, endpoint_name: str, variant_name: str, desired: int) -> int:
        """Move a registered variant to `desired` instances (clamped to min/max), as a
        target-tracking policy would under load; answers the count set."""
        target = self.registered(endpoint_name, variant_name)
        if target is None:
            raise LookupError(f"{resource_id(endpoint_name, variant_name)} is not registered")
        if not target.policies:
            raise LookupError(f"{target.resource_id} has no scaling policy to act on")
        endpoint = self.hosting.get_endpoint(endpoint_name)
        variant = next((v for v in endpoint.variants if v.name == variant_name), None)
        if variant is None:
            raise LookupError(f"endpoint {endpoint_name} has no live variant {variant_name}")
        count = max(target.min_capacity, min(target.max_capacity, int(desired)))
        variant.desired_count = count
        variant.current_count = count
        return count
