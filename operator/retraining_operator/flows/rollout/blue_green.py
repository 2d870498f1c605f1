"""Blue/green and rolling: one UpdateEndpoint with the policy's DeploymentConfig, and
SageMaker shifts the traffic (rolling back on its own when an alarm fires). The step
machine is `reconcile/rollout/blue_green.decide_update`; this module gives it its facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from retraining_operator.api import HistoryEntry
from retraining_operator.flows.rollout.context import RolloutContext, config_created
from retraining_operator.reconcile.rollout import blue_green
from retraining_operator.reconcile.rollout.decision import Action
from retraining_operator.reconcile.rollout.strategy import StrategyRules

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateEndpointConfigInputTypeDef


class BlueGreen:
    """The `RolloutStrategy` of BlueGreen and Rolling (they differ in DeploymentConfig only)."""

    rules: StrategyRules = blue_green.RULES

    def decide(self, ctx: RolloutContext, history: Sequence[HistoryEntry]) -> Action:
        view = ctx.endpoint
        created = None
        if view is not None and not view.busy and view.config_name != ctx.names.config:
            created = config_created(ctx.config(ctx.names.config))
        facts = blue_green.UpdateFacts(
            endpoint=view,
            config_name=ctx.names.config,
            run=ctx.run,
            now=ctx.now,
            config_created=created,
            failed=blue_green.failed_configs(history),
            poll=ctx.poll,
        )
        return blue_green.decide_update(facts)

    def config_request(
        self, ctx: RolloutContext, config_name: str
    ) -> CreateEndpointConfigInputTypeDef:
        return self.rules.config_request(ctx.target(config_name), ctx.spec, ctx.live())

    def before_update(self, ctx: RolloutContext, config_name: str) -> None:
        return None

    def keeps_message(self, ctx: RolloutContext) -> bool:
        return False
