"""Application Auto Scaling gateway for SageMaker endpoint variants. Thin boto3 calls.

A variant is a scalable target `endpoint/<endpoint>/variant/<variant>` on the dimension
`sagemaker:variant:DesiredInstanceCount`. The rollout reads a variant's registration
(`find_target`, min/max plus its scaling policies), registers a new variant like an old
one (`register_like`) and deregisters a variant before it is removed (`deregister`, which
deletes its policies too, as AWS does). Errors leave typed (`aws/errors.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from retraining_operator.aws.errors import NotFound, mapped

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient

NAMESPACE: Final = "sagemaker"
DIMENSION: Final = "sagemaker:variant:DesiredInstanceCount"
# What PutScalingPolicy takes from a DescribeScalingPolicies entry.
_POLICY_KEYS = (
    "PolicyType",
    "StepScalingPolicyConfiguration",
    "TargetTrackingScalingPolicyConfiguration",
)


def resource_id(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


@dataclass(frozen=True)
class VariantScaling:
    """A variant's registration: its bounds and its scaling policies (as described)."""

    resource_id: str
    min_capacity: int
    max_capacity: int
    policies: tuple[Mapping[str, Any], ...] = ()


def is_registered(client: ApplicationAutoScalingClient, endpoint: str, variant: str) -> bool:
    """One DescribeScalableTargets: is the variant a scalable target?"""
    return _target(client, resource_id(endpoint, variant)) is not None


def _target(client: ApplicationAutoScalingClient, rid: str) -> Any:
    with mapped("DescribeScalableTargets"):
        targets = client.describe_scalable_targets(
            ServiceNamespace=NAMESPACE, ResourceIds=[rid], ScalableDimension=DIMENSION
        )["ScalableTargets"]
    return next((t for t in targets if t["ResourceId"] == rid), None)


def find_target(
    client: ApplicationAutoScalingClient, endpoint: str, variant: str
) -> VariantScaling | None:
    """The variant's scalable target with its policies, None when it is not registered."""
    rid = resource_id(endpoint, variant)
    target = _target(client, rid)
    if target is None:
        return None
    with mapped("DescribeScalingPolicies"):
        policies = client.describe_scaling_policies(
            ServiceNamespace=NAMESPACE, ResourceId=rid, ScalableDimension=DIMENSION
        )["ScalingPolicies"]
    return VariantScaling(
        resource_id=rid,
        min_capacity=int(target["MinCapacity"]),
        max_capacity=int(target["MaxCapacity"]),
        policies=tuple(policies),
    )


def register_like(
    client: ApplicationAutoScalingClient, template: VariantScaling, endpoint: str, variant: str
) -> None:
    """Register `variant` with `template`'s min/max and put each of its policies on it.

    Both calls are upserts in AWS, so a pass that crashed halfway simply repeats them.
    """
    rid = resource_id(endpoint, variant)
    with mapped("RegisterScalableTarget"):
        client.register_scalable_target(
            ServiceNamespace=NAMESPACE,
            ResourceId=rid,
            ScalableDimension=DIMENSION,
            MinCapacity=template.min_capacity,
            MaxCapacity=template.max_capacity,
        )
    for policy in template.policies:
        request = {k: policy[k] for k in _POLICY_KEYS if policy.get(k) is not None}
        with mapped("PutScalingPolicy"):
            client.put_scaling_policy(
                PolicyName=policy["PolicyName"],
                ServiceNamespace=NAMESPACE,
                ResourceId=rid,
                ScalableDimension=DIMENSION,
                **request,
            )


def deregister(client: ApplicationAutoScalingClient, endpoint: str, variant: str) -> bool:
    """Deregister the variant (its policies go with it); False when it was not registered."""
    try:
        with mapped("DeregisterScalableTarget"):
            client.deregister_scalable_target(
                ServiceNamespace=NAMESPACE,
                ResourceId=resource_id(endpoint, variant),
                ScalableDimension=DIMENSION,
            )
    except NotFound:
        return False
    return True
