"""What an endpoint looks like and what it serves, read from SageMaker's Describe answers.

`served_model` is the one rule for "which variant serves the policy's model", used by
the base-model lookup (`training.baseModel.fromEndpoint`), the rollout (which variant a
new config replaces) and the manual rollback (is the target already serving).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from retraining_operator.reconcile.rollout.decision import Finish, RolloutResult
from retraining_operator.reconcile.rollout.errors import VariantNotFound

# Endpoint states in which SageMaker refuses (or must not get) another update.
BUSY_STATUSES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
IN_SERVICE = "InService"
FAILED = "Failed"
UPDATE_ROLLBACK_FAILED = "UpdateRollbackFailed"


@dataclass(frozen=True)
class ServedVariant:
    """The production variant of a config that serves the policy's model."""

    name: str
    model_name: str


def served_model(config: Mapping[str, Any], variant_name: str) -> ServedVariant:
    """The variant named `variant_name`, else the config's only variant, else an error.

    A single-variant endpoint serves one model whatever its variant is called (e.g.
    `variant-1` from the console), so the policy's `deployment.variantName` only has to
    match when there is a choice. Raises `VariantNotFound` naming the variants.
    """
    variants = list(config.get("ProductionVariants") or [])
    chosen = next((v for v in variants if v.get("VariantName") == variant_name), None)
    if chosen is None and len(variants) == 1:
        chosen = variants[0]
    if chosen is None:
        names = ", ".join(str(v.get("VariantName", "?")) for v in variants) or "none"
        raise VariantNotFound(
            f"endpoint config {config.get('EndpointConfigName')!r} has no production variant "
            f"{variant_name!r} (variants: {names}); set deployment.variantName to the variant "
            "that serves the policy's model"
        )
    return ServedVariant(
        name=str(chosen["VariantName"]), model_name=str(chosen.get("ModelName") or "")
    )


@dataclass(frozen=True)
class VariantState:
    name: str
    current_weight: float | None = None
    desired_weight: float | None = None
    desired_instance_count: int | None = None  # live: what Application Auto Scaling set

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
                    desired_instance_count=_int(v.get("DesiredInstanceCount")),
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


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def busy_message(endpoint: EndpointView) -> str:
    text = f"endpoint {endpoint.name} is {endpoint.status}"
    if endpoint.pending_config_name:
        text += f" (to {endpoint.pending_config_name})"
    if endpoint.status == "RollingBack" and endpoint.failure_reason:
        text += f": {endpoint.failure_reason}"
    return text + "; no update is stacked on it, waiting"


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


def stuck(endpoint: EndpointView) -> Finish | None:
    """The end of any rollout on an endpoint that cannot take an update, else None.

    UpdateRollbackFailed: an update failed and so did SageMaker's rollback (Degraded: the
    old model may still serve); Failed: the endpoint itself is broken (Failed).
    """
    if endpoint.status == UPDATE_ROLLBACK_FAILED:
        return Finish(
            f"endpoint {endpoint.name}: an update failed and so did its rollback",
            RolloutResult.DEGRADED,
            endpoint.failure_reason,
        )
    if endpoint.status == FAILED:
        return Finish(
            f"endpoint {endpoint.name} is Failed; it cannot be updated until it is fixed "
            "or deleted",
            RolloutResult.FAILED,
            endpoint.failure_reason,
        )
    return None
