"""Why a rollout cannot go on: each a `NeedsAttention` (a person has to act)."""

from __future__ import annotations

from retraining_operator.errors import NeedsAttention


class RolloutError(NeedsAttention):
    """The rollout cannot proceed as specified; the message says what to change.

    The policy goes Degraded with `reason` and nothing is retried until the spec or the
    endpoint changes.
    """

    reason_code = "RolloutBlocked"

    def __init__(self, message: str) -> None:
        super().__init__(self.reason_code, message)


class UnknownRollbackTarget(RolloutError):
    """`rollback-to` names no run id or model in the policy's history."""

    reason_code = "RollbackTargetUnknown"


class VariantNotFound(RolloutError):
    """An endpoint config has neither the policy's `variantName` nor a single variant."""

    reason_code = "VariantNotFound"


class EndpointOwnedElsewhere(RolloutError):
    """The endpoint carries another policy's owner tag (and this policy does not adopt it)."""

    reason_code = "EndpointOwnedElsewhere"
