"""The rules of each `deployment.strategy` (see `strategy.py`); None deploys nothing."""

from __future__ import annotations

from retraining_operator.api import Strategy
from retraining_operator.reconcile.rollout import blue_green, variant_shift
from retraining_operator.reconcile.rollout.errors import RolloutError
from retraining_operator.reconcile.rollout.strategy import StrategyRules

RULES: dict[Strategy, StrategyRules] = {
    Strategy.BLUE_GREEN: blue_green.RULES,
    Strategy.ROLLING: blue_green.RULES,
    Strategy.VARIANT_SHIFT: variant_shift.RULES,
}


def rules_for(strategy: Strategy) -> StrategyRules:
    """The strategy's rules; `RolloutError` for None (the run stops after the gate)."""
    try:
        return RULES[strategy]
    except KeyError:
        raise RolloutError(
            f"deployment.strategy is {strategy}: the run stops after the gate"
        ) from None
