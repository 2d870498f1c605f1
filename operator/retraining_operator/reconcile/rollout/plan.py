"""Every request of a rollout at once, for the `plan rollout` CLI (which prints them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retraining_operator.api import RetrainingPolicySpec, Strategy
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.rollout.blue_green import endpoint_config_request
from retraining_operator.reconcile.rollout.endpoint import EndpointView
from retraining_operator.reconcile.rollout.errors import RolloutError
from retraining_operator.reconcile.rollout.requests import (
    RolloutNames,
    create_endpoint_request,
    first_endpoint_config_request,
    model_request,
    update_endpoint_request,
)
from retraining_operator.reconcile.rollout.variant_shift.configs import shift_config_request

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
    model_data_url: str,
    image: str,
    current_config: Mapping[str, Any] | None,
    current_tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
    model: str | None = None,
    current_endpoint: Mapping[str, Any] | None = None,
    current_model: Mapping[str, Any] | None = None,
) -> RolloutPlan:
    """Every request of a rollout, from the policy, the artifacts and the current config.

    `current_config` is the endpoint's DescribeEndpointConfig answer, or None when the
    endpoint does not exist yet (then a first deployment: one variant + CreateEndpoint).
    For VariantShift the config is the one that adds the new model as a second variant
    at the first step's weight (see `variant_shift/`).

    The live state makes the requests exactly the operator's for that endpoint:
    `current_endpoint` (its DescribeEndpoint answer: the live instance counts a variant
    shift gives the new variant) and `current_model` (the serving model's DescribeModel
    answer, whose hardening the new Model inherits).
    """
    strategy = spec.deployment.strategy
    if strategy is Strategy.NONE:
        raise RolloutError("deployment.strategy is None: the run stops after the gate")
    names = RolloutNames.for_run(policy, run_id, model=model)
    create_model = model_request(
        policy,
        spec,
        run_id=run_id,
        model_name=names.model,
        model_data_url=model_data_url,
        image=image,
        serving_model=current_model,
    )
    if current_config is None:
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
    # Variant shift moves the traffic itself; blue/green and rolling leave it to SageMaker.
    shifting = strategy is Strategy.VARIANT_SHIFT
    config: CreateEndpointConfigInputTypeDef
    if shifting:
        live = EndpointView.from_describe(current_endpoint) if current_endpoint else None
        config = shift_config_request(
            policy, spec, run_id=run_id, config_name=names.config, model_name=names.model,
            current=current_config, current_tags=current_tags, live=live,
        )  # fmt: skip
    else:
        config = endpoint_config_request(
            policy, spec, run_id=run_id, config_name=names.config, model_name=names.model,
            current=current_config, current_tags=current_tags,
        )  # fmt: skip
    return RolloutPlan(
        create_model=create_model,
        create_endpoint_config=config,
        update_endpoint=update_endpoint_request(
            spec, config_name=names.config, guarded=not shifting, config_weights=shifting
        ),
    )
