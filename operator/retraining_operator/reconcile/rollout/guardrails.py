"""UpdateEndpoint's DeploymentConfig: the policy's blue/green or rolling guardrails, pure.

SageMaker itself shifts the traffic (all at once, canary or linear; or instance batches)
and rolls back when one of `deployment.autoRollbackAlarms` fires; the operator only
builds the request and refuses durations SageMaker would refuse.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

from retraining_operator.api import (
    BlueGreenSpec,
    DeploymentSpec,
    RollingSpec,
    Strategy,
    TrafficRouting,
    parse_duration,
)
from retraining_operator.reconcile.rollout.errors import RolloutError

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import DeploymentConfigTypeDef

# Bounds SageMaker puts on DeploymentConfig (botocore's model states only the minimums).
MAX_WAIT_SECONDS = 3600
MIN_EXECUTION_TIMEOUT = 600
MAX_EXECUTION_TIMEOUT = 28800


def _seconds(duration: str, what: str, *, low: int = 0, high: int = MAX_WAIT_SECONDS) -> int:
    seconds = math.ceil(parse_duration(duration).total_seconds())
    if not low <= seconds <= high:
        raise RolloutError(f"{what} is {duration}; SageMaker accepts {low}s to {high}s")
    return seconds


def capacity_size(text: str) -> dict[str, Any]:
    """ "10%" -> CAPACITY_PERCENT 10, "2" -> INSTANCE_COUNT 2 (SageMaker's CapacitySize)."""
    if text.endswith("%"):
        return {"Type": "CAPACITY_PERCENT", "Value": int(text[:-1])}
    return {"Type": "INSTANCE_COUNT", "Value": int(text)}


_ROUTING_TYPE = {
    TrafficRouting.ALL_AT_ONCE: "ALL_AT_ONCE",
    TrafficRouting.CANARY: "CANARY",
    TrafficRouting.LINEAR: "LINEAR",
}


def blue_green_policy(blue_green: BlueGreenSpec) -> dict[str, Any]:
    routing: dict[str, Any] = {
        "Type": _ROUTING_TYPE[blue_green.traffic_routing],
        "WaitIntervalInSeconds": _seconds(
            blue_green.wait_interval, "deployment.blueGreen.waitInterval"
        ),
    }
    if blue_green.traffic_routing is TrafficRouting.CANARY:
        if blue_green.canary_size is None:
            raise RolloutError("deployment.blueGreen.canarySize is required with Canary")
        routing["CanarySize"] = capacity_size(blue_green.canary_size)
    elif blue_green.traffic_routing is TrafficRouting.LINEAR:
        if blue_green.linear_step_size is None:
            raise RolloutError("deployment.blueGreen.linearStepSize is required with Linear")
        routing["LinearStepSize"] = capacity_size(blue_green.linear_step_size)
    return {
        "TrafficRoutingConfiguration": routing,
        "TerminationWaitInSeconds": _seconds(
            blue_green.termination_wait, "deployment.blueGreen.terminationWait"
        ),
        "MaximumExecutionTimeoutInSeconds": _seconds(
            blue_green.maximum_execution_timeout,
            "deployment.blueGreen.maximumExecutionTimeout",
            low=MIN_EXECUTION_TIMEOUT,
            high=MAX_EXECUTION_TIMEOUT,
        ),
    }


def rolling_policy(rolling: RollingSpec) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "MaximumBatchSize": capacity_size(rolling.maximum_batch_size),
        "WaitIntervalInSeconds": _seconds(rolling.wait_interval, "deployment.rolling.waitInterval"),
        "MaximumExecutionTimeoutInSeconds": _seconds(
            rolling.maximum_execution_timeout,
            "deployment.rolling.maximumExecutionTimeout",
            low=MIN_EXECUTION_TIMEOUT,
            high=MAX_EXECUTION_TIMEOUT,
        ),
    }
    if rolling.rollback_maximum_batch_size is not None:
        policy["RollbackMaximumBatchSize"] = capacity_size(rolling.rollback_maximum_batch_size)
    return policy


def deployment_config(deployment: DeploymentSpec) -> DeploymentConfigTypeDef | None:
    """UpdateEndpoint's DeploymentConfig for BlueGreen/Rolling; None for the other strategies."""
    config: dict[str, Any]
    if deployment.strategy is Strategy.BLUE_GREEN:
        config = {"BlueGreenUpdatePolicy": blue_green_policy(deployment.effective_blue_green)}
    elif deployment.strategy is Strategy.ROLLING:
        config = {"RollingUpdatePolicy": rolling_policy(deployment.effective_rolling)}
    else:
        return None
    if deployment.auto_rollback_alarms:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": name} for name in deployment.auto_rollback_alarms]
        }
    return cast("DeploymentConfigTypeDef", config)
