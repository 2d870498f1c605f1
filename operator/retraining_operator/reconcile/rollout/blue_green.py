"""Blue/green and rolling rollouts: SageMaker shifts the traffic, the operator guards it.

The new config is the current one with the served variant (`served_model`) pointing at
the run's model; one UpdateEndpoint carries the policy's DeploymentConfig
(`guardrails.py`) and SageMaker does the rest, rolling back on its own when an
auto-rollback alarm fires.

`decide_update` answers one small step (Argo Rollouts style: one early return per
case): create the endpoint, update it, wait, or finish (Serving / Degraded / Failed).
It never answers "update" while the endpoint is Creating/Updating/SystemUpdating/
RollingBack/Deleting, and never twice for the same config: an update SageMaker rolled
back is recorded as Degraded and the run ends (ACK's rule; the next run gets a new
config).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from retraining_operator.api import CurrentRun, HistoryEntry, Outcome, RetrainingPolicySpec
from retraining_operator.reconcile.rollout.decision import (
    DEFAULT_POLL,
    CreateEndpoint,
    Finish,
    RolloutResult,
    UpdateEndpoint,
    Wait,
    finish,
    run_updates,
    wait,
)
from retraining_operator.reconcile.rollout.endpoint import (
    IN_SERVICE,
    EndpointView,
    busy_message,
    served_model,
    stuck,
    update_failed_unrecorded,
)
from retraining_operator.reconcile.rollout.requests import ConfigTarget, LiveConfig, copied_config
from retraining_operator.reconcile.rollout.strategy import StrategyIam, StrategyRules

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateEndpointConfigInputTypeDef


def endpoint_config_request(
    target: ConfigTarget, spec: RetrainingPolicySpec, live: LiveConfig
) -> CreateEndpointConfigInputTypeDef:
    """The current config with the served variant serving the run's model (same variant name)."""
    variant = served_model(live.config, spec.deployment.variant_name).name
    request = copied_config(
        live.config, config_name=target.config_name, tags=target.tags, current_tags=live.tags
    )
    request["ProductionVariants"] = [
        {**v, "ModelName": target.model_name} if v["VariantName"] == variant else v
        for v in request["ProductionVariants"]
    ]
    return cast("CreateEndpointConfigInputTypeDef", request)


def failed_configs(history: Sequence[HistoryEntry]) -> frozenset[str]:
    """Configs whose update failed in an earlier run (never tried again)."""
    return frozenset(
        h.endpoint_config_name
        for h in history
        if h.endpoint_config_name and h.outcome in (Outcome.ROLLED_BACK, Outcome.FAILED)
    )


@dataclass(frozen=True)
class UpdateFacts:
    """What `decide_update` decides on: the endpoint as described now (None: no endpoint),
    the run's config and record, the clock, the config's CreationTime when it exists (see
    `update_failed_unrecorded`) and the configs whose update failed in earlier runs."""

    endpoint: EndpointView | None
    config_name: str
    run: CurrentRun
    now: datetime
    config_created: datetime | None = None
    failed: Collection[str] = frozenset()
    poll: timedelta = DEFAULT_POLL


def decide_update(facts: UpdateFacts) -> CreateEndpoint | UpdateEndpoint | Wait | Finish:
    """The next step of a blue/green or rolling rollout of `facts.config_name`."""
    endpoint, config_name, run, now = facts.endpoint, facts.config_name, facts.run, facts.now
    config_created, failed, poll = facts.config_created, facts.failed, facts.poll
    requested = run.endpoint_config_name == config_name and run.deploy_step_started_at is not None
    mark = {"endpoint_config_name": config_name, "deploy_step_started_at": now}

    if endpoint is None:
        return CreateEndpoint(
            f"creating the endpoint with {config_name}", config_name, run_updates(**mark)
        )
    if endpoint.busy:
        if endpoint.pending_config_name == config_name and not requested:
            return wait(busy_message(endpoint), poll, **mark)  # our request, not recorded yet
        return wait(busy_message(endpoint), poll)
    if endpoint.config_name == config_name and endpoint.status == IN_SERVICE:
        return finish(RolloutResult.SERVING, f"endpoint {endpoint.name} serves {config_name}")
    ended = stuck(endpoint)
    if ended is not None:
        return ended
    if endpoint.config_name == config_name:  # settled on our config, yet not InService
        return finish(
            RolloutResult.FAILED,
            f"endpoint {endpoint.name} is {endpoint.status} on {config_name}",
            endpoint.failure_reason,
        )
    # The endpoint is on some other config.
    if requested or config_name in failed or update_failed_unrecorded(endpoint, config_created):
        return finish(
            RolloutResult.DEGRADED,
            f"SageMaker rolled back the update to {config_name}; endpoint {endpoint.name} "
            f"still serves {endpoint.config_name} (this config is not retried)",
            endpoint.failure_reason or f"endpoint returned to {endpoint.config_name}",
        )
    return UpdateEndpoint(
        f"updating endpoint {endpoint.name} from {endpoint.config_name} to {config_name}",
        config_name,
        run_updates(**mark),
    )


# Blue/green and rolling: SageMaker shifts the traffic (no action beyond every rollout's).
RULES = StrategyRules(
    config_request=endpoint_config_request, sagemaker_shifts=True, iam=StrategyIam()
)
