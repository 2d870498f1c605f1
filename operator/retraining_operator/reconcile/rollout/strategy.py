"""What a rollout strategy is, pure: the rules the pass, `plan rollout` and `iam-policy` share.

A strategy has two halves. This one (`StrategyRules`, one instance per strategy module:
`blue_green.RULES`, `variant_shift.RULES`) says which config the run creates from the
live one, how its UpdateEndpoint is sent, and which IAM actions it needs beyond those of
every rollout. The other half, the step machine with its reads, is the strategy's module
in `flows/rollout/` (the `RolloutStrategy` protocol there). `strategies.py` names the
rules of each `deployment.strategy`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.reconcile.rollout.requests import ConfigTarget, LiveConfig

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateEndpointConfigInputTypeDef

ConfigRequest = Callable[
    [ConfigTarget, RetrainingPolicySpec, LiveConfig], "CreateEndpointConfigInputTypeDef"
]


@dataclass(frozen=True)
class StrategyIam:
    """The IAM actions a strategy needs beyond every rollout's (Create/Update the endpoint,
    its Models and configs, DescribeScalableTargets): on the endpoint, on its scalable
    targets (Application Auto Scaling has no resource-level permission for reads), and on
    CloudWatch metrics (GetMetricData has none either)."""

    endpoint: tuple[str, ...] = ()
    autoscaling_reads: tuple[str, ...] = ()
    autoscaling_writes: tuple[str, ...] = ()
    metric_reads: tuple[str, ...] = ()

    @property
    def actions(self) -> frozenset[str]:
        return frozenset(
            self.endpoint + self.autoscaling_reads + self.autoscaling_writes + self.metric_reads
        )


@dataclass(frozen=True)
class StrategyRules:
    """One strategy's pure rules.

    * `config_request`: the run's config, derived from the endpoint's current one (a first
      deployment's config is the same for every strategy: `first_endpoint_config_request`).
    * `sagemaker_shifts`: SageMaker moves the traffic on UpdateEndpoint, guarded by the
      policy's DeploymentConfig (blue/green, rolling); False when the operator moves it
      itself (variant shift: the config's weights win over the live ones).
    * `iam`: the actions it needs beyond every rollout's.
    """

    config_request: ConfigRequest
    sagemaker_shifts: bool
    iam: StrategyIam
