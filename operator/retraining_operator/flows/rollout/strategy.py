"""The rollout strategy protocol, and which strategy serves a policy.

A strategy is one module here (`blue_green.py`, `variant_shift.py`) with its pure rules
beside it in `reconcile/rollout/` (`StrategyRules`: the config it creates, how the
update is sent, the IAM actions it needs). The executor (`steps.py`) carries out
whatever the strategy decides; it never asks which strategy it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from retraining_operator.api import HistoryEntry, RetrainingPolicySpec, Strategy
from retraining_operator.flows.rollout import blue_green, variant_shift
from retraining_operator.flows.rollout.context import RolloutContext
from retraining_operator.reconcile.rollout.decision import Action
from retraining_operator.reconcile.rollout.errors import RolloutError
from retraining_operator.reconcile.rollout.strategy import StrategyRules

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateEndpointConfigInputTypeDef


class RolloutStrategy(Protocol):
    """What the executor asks a strategy, each pass of a deploying run."""

    @property
    def rules(self) -> StrategyRules:
        """The pure half: the config request, how UpdateEndpoint is sent, IAM actions."""
        ...

    def decide(self, ctx: RolloutContext, history: Sequence[HistoryEntry]) -> Action:
        """The next step, from the endpoint as described in this pass (and the history:
        a config whose update failed in an earlier run is never tried again)."""
        ...

    def config_request(
        self, ctx: RolloutContext, config_name: str
    ) -> CreateEndpointConfigInputTypeDef:
        """The request of one of the run's configs, derived from the live endpoint (a
        first deployment's config is the same for every strategy and not asked here)."""
        ...

    def before_update(self, ctx: RolloutContext, config_name: str) -> None:
        """Just before UpdateEndpoint to `config_name` (e.g. deregister the autoscaling
        target of a variant that config removes)."""
        ...

    def keeps_message(self, ctx: RolloutContext) -> bool:
        """Whether the run's message stays as it is this pass (a variant shift heading for
        its rollback config keeps the reason it rolls back)."""
        ...


_STRATEGIES: dict[Strategy, RolloutStrategy] = {
    Strategy.BLUE_GREEN: blue_green.BlueGreen(),
    Strategy.ROLLING: blue_green.BlueGreen(),
    Strategy.VARIANT_SHIFT: variant_shift.VariantShift(),
}


def strategy_for(spec: RetrainingPolicySpec) -> RolloutStrategy:
    """The policy's strategy; `RolloutError` for None (nothing is deployed)."""
    try:
        return _STRATEGIES[spec.deployment.strategy]
    except KeyError:
        raise RolloutError(
            f"deployment.strategy is {spec.deployment.strategy}: the operator deploys nothing"
        ) from None
