"""Variant shift's endpoint configs: which variant is old and which new, and the configs
that add the new model, keep only it, or keep only the old one. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.reconcile.rollout.endpoint import served_model
from retraining_operator.reconcile.rollout.errors import RolloutError
from retraining_operator.reconcile.rollout.requests import ConfigTarget, LiveConfig, copied_config

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateEndpointConfigInputTypeDef

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
    # The previous shift may have left the alternate name serving alone.
    old = alt if alt in names else served_model(config, variant_name).name
    return ShiftVariants(old=old, new=alt if old == variant_name else variant_name)


def split_weight(total: float, percent: int) -> tuple[float, float]:
    """(old, new) weights giving the new variant `percent` % of the pair's `total`."""
    new = round(total * percent / 100.0, 6)
    return round(total - new, 6), new


def _weight(variant: Mapping[str, Any]) -> float:
    return float(variant.get("InitialVariantWeight", 1.0))


def shift_config_request(
    target: ConfigTarget, spec: RetrainingPolicySpec, live: LiveConfig
) -> CreateEndpointConfigInputTypeDef:
    """The current config plus the new model as a second variant at the first step's weight.

    The new variant copies the old one's instances (type, volume, timeouts) and its live
    instance count (`live.endpoint`, as described: what Application Auto Scaling grew
    it to, else the config's count), so the new model can carry the whole load at 100 %;
    the pair's weight is split so the new variant gets `steps[0]` % of what the old one
    had, and every other variant keeps its share.
    """
    model_name = target.model_name
    pair = shift_variants(
        live.config, variant_name=spec.deployment.variant_name, model_name=model_name
    )
    request = copied_config(
        live.config, config_name=target.config_name, tags=target.tags, current_tags=live.tags
    )
    old = next(v for v in request["ProductionVariants"] if v["VariantName"] == pair.old)
    old_weight, new_weight = split_weight(
        _weight(old), spec.deployment.effective_variant_shift.steps[0]
    )
    new = {
        **old,
        "VariantName": pair.new,
        "ModelName": model_name,
        "InitialVariantWeight": new_weight,
    }
    live_old = live.endpoint.variant(str(pair.old)) if live.endpoint is not None else None
    if live_old is not None and live_old.desired_instance_count and "InitialInstanceCount" in old:
        new["InitialInstanceCount"] = live_old.desired_instance_count
    request["ProductionVariants"] = [
        {**v, "InitialVariantWeight": old_weight} if v["VariantName"] == pair.old else v
        for v in request["ProductionVariants"]
    ] + [new]
    return cast("CreateEndpointConfigInputTypeDef", request)


def drop_variant_request(
    target: ConfigTarget, live: LiveConfig, *, drop: str, keep: str
) -> CreateEndpointConfigInputTypeDef:
    """The shift config (`live.config`) without `drop`; `keep` gets the pair's whole weight
    back. (`target.model_name` is not used: the kept variant keeps its model.)"""
    current = live.config
    request = copied_config(
        current, config_name=target.config_name, tags=target.tags, current_tags=live.tags
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
