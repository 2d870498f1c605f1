"""Autoscaled endpoints, pure: which variants an update would change the instance type of.

AWS refuses an UpdateEndpoint that changes the instance type of a variant registered with
Application Auto Scaling; its documented way out is deregister, update, register again.
The operator never changes a variant's instance type itself (a new config copies the
current one's), so such a change means the endpoint's configs were edited by hand: the
rollout refuses it up front with reason `AutoscaledInstanceTypeChange` rather than
deregistering a production fleet's autoscaling on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from retraining_operator.errors import NeedsAttention

REASON = "AutoscaledInstanceTypeChange"


class AutoscaledInstanceTypeChange(NeedsAttention):
    def __init__(self, message: str) -> None:
        super().__init__(REASON, message)


@dataclass(frozen=True)
class InstanceTypeChange:
    variant: str
    old: str | None
    new: str | None


def instance_type_changes(
    current: Mapping[str, Any], target: Mapping[str, Any]
) -> list[InstanceTypeChange]:
    """Same-named variants of two endpoint configs whose InstanceType differs."""
    before = {
        str(v["VariantName"]): v.get("InstanceType")
        for v in current.get("ProductionVariants") or []
    }
    return [
        InstanceTypeChange(str(v["VariantName"]), before[v["VariantName"]], v.get("InstanceType"))
        for v in target.get("ProductionVariants") or []
        if v["VariantName"] in before and before[v["VariantName"]] != v.get("InstanceType")
    ]


def refusal(endpoint: str, change: InstanceTypeChange) -> AutoscaledInstanceTypeChange:
    return AutoscaledInstanceTypeChange(
        f"the update would change the instance type of variant {change.variant} of endpoint "
        f"{endpoint} from {change.old} to {change.new}, and that variant is registered with "
        "Application Auto Scaling; AWS refuses this until the variant is deregistered. "
        "Deregister it, update the endpoint, register it again with the same policies "
        "(see docs/rollout.md, Autoscaled endpoints), or keep the instance type"
    )
