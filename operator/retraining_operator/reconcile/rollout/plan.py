"""Every request of a rollout at once, for the `plan rollout` CLI (which prints them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.rollout.requests import (
    ConfigTarget,
    LiveConfig,
    ModelSource,
    RolloutNames,
    create_endpoint_request,
    first_endpoint_config_request,
    model_request,
    update_endpoint_request,
)
from retraining_operator.reconcile.rollout.strategies import rules_for

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import (
        CreateEndpointConfigInputTypeDef,
        CreateEndpointInputTypeDef,
        CreateModelInputTypeDef,
        UpdateEndpointInputTypeDef,
    )


@dataclass(frozen=True)
class RolloutPlan:
    """The requests one rollout sends (the `plan rollout` CLI prints them)."""

    create_model: CreateModelInputTypeDef
    create_endpoint_config: CreateEndpointConfigInputTypeDef
    update_endpoint: UpdateEndpointInputTypeDef | None
    create_endpoint: CreateEndpointInputTypeDef | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "CreateModel": self.create_model,
            "CreateEndpointConfig": self.create_endpoint_config,
        }
        if self.update_endpoint is not None:
            out["UpdateEndpoint"] = self.update_endpoint
        if self.create_endpoint is not None:
            out["CreateEndpoint"] = self.create_endpoint
        return out


def plan_rollout(
    policy: PolicyRef,
    spec: RetrainingPolicySpec,
    *,
    run_id: str,
    source: ModelSource,
    live: LiveConfig | None = None,
    model: str | None = None,
) -> RolloutPlan:
    """Every request of a rollout, from the policy, the model's source and the live state.

    `live` is the endpoint's current config (with its tags and the endpoint as described),
    or None when the endpoint does not exist yet (then a first deployment: one variant +
    CreateEndpoint). The config is the strategy's (`strategies.rules_for`): for
    VariantShift the one that adds the new model as a second variant at the first step's
    weight, copying the live instance counts of `live.endpoint`. `source.serving_model`
    (the serving model's DescribeModel answer) gives the new Model its hardening, so the
    requests are exactly the operator's for that endpoint.
    """
    rules = rules_for(spec.deployment.strategy)
    names = RolloutNames.for_run(policy, run_id, model=model)
    create_model = model_request(policy, spec, run_id=run_id, model_name=names.model, source=source)
    if live is None:
        return RolloutPlan(
            create_model=create_model,
            create_endpoint_config=first_endpoint_config_request(
                policy, spec, run_id=run_id, config_name=names.config, model_name=names.model
            ),
            update_endpoint=None,
            create_endpoint=create_endpoint_request(
                policy, spec, run_id=run_id, config_name=names.config
            ),
        )
    target = ConfigTarget(policy, run_id, names.config, names.model)
    return RolloutPlan(
        create_model=create_model,
        create_endpoint_config=rules.config_request(target, spec, live),
        update_endpoint=update_endpoint_request(
            spec,
            config_name=names.config,
            guarded=rules.sagemaker_shifts,
            config_weights=not rules.sagemaker_shifts,
        ),
    )
