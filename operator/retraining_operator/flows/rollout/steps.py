"""The executor of a rollout pass: make the run's Model, carry out the strategy's decision
(at most one changing call to the endpoint), and report.

Safe to call again after a crash at any point: Models and EndpointConfigs have
deterministic names and are adopted when they exist (describe first; "already exists" on
create means adopt), and UpdateEndpoint is only sent when the endpoint is not busy and the
run has not asked for that config before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from retraining_operator.api import RetrainingPolicySpec, ServingStatus, Strategy
from retraining_operator.aws import autoscaling, endpoints
from retraining_operator.aws.errors import AlreadyExists
from retraining_operator.flows.rollout.context import RolloutContext
from retraining_operator.flows.rollout.progress import RolloutProgress, finished
from retraining_operator.flows.rollout.strategy import RolloutStrategy
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.registry import ApprovalStatus, approval_of, package_container
from retraining_operator.reconcile.rollout.autoscaled import instance_type_changes, refusal
from retraining_operator.reconcile.rollout.decision import (
    Action,
    CreateEndpoint,
    Finish,
    RolloutResult,
    SetWeights,
    UpdateEndpoint,
    Wait,
)
from retraining_operator.reconcile.rollout.endpoint import served_model
from retraining_operator.reconcile.rollout.errors import EndpointOwnedElsewhere, RolloutError
from retraining_operator.reconcile.rollout.requests import (
    ModelSource,
    create_endpoint_request,
    first_endpoint_config_request,
    model_request,
    serving_container,
    update_endpoint_request,
)
from retraining_operator.reconcile.tenancy import TAG_ENDPOINT_OWNER, endpoint_owner_problem

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateEndpointConfigInputTypeDef

    from retraining_operator.aws.session import AwsSession


def unapproved_package(ctx: RolloutContext) -> RolloutProgress | None:
    """A run that serves a registered package deploys it only while the registry says
    Approved: a package Rejected after its approval (or a rollback to a Rejected one)
    ends the run before the endpoint is asked for anything."""
    arn = ctx.run.model_package_arn
    if not arn or ctx.run.endpoint_config_name is not None:
        return None  # nothing registered, or the endpoint already works on the run's config
    status = approval_of(ctx.package(arn))
    if status is ApprovalStatus.APPROVED:
        return None
    return finished(
        ctx.run,
        RolloutResult.FAILED,
        f"model package {arn} is {status.value} in the registry: not deployed",
        ctx.now,
        reason="ModelPackageNotApproved",
        actions=ctx.actions,
    )


def reconcile_model(ctx: RolloutContext) -> None:
    """Describe the run's Model; create it when missing; adopt it when the name is taken."""
    existing = ctx.model(ctx.names.model)
    wanted = ctx.run.model_data_url
    if existing is not None:
        found = existing.get("PrimaryContainer", {}).get("ModelDataUrl")
        if wanted and found and found != wanted:
            raise RolloutError(
                f"Model {ctx.names.model} exists with artifacts {found}, not the run's "
                f"{wanted}; delete it or start a new run"
            )
        return
    if not wanted:
        raise RolloutError(
            f"run {ctx.run.id} has no model artifacts (modelDataUrl) to create {ctx.names.model}"
        )
    image = ctx.image_uri()
    if ctx.run.model_package_arn:
        # A registered candidate: the Model serves the package's own container, so the
        # registry, the Model and the endpoint tell the same story.
        image, wanted = package_container(ctx.package(ctx.run.model_package_arn))
    source = ModelSource(wanted, image, serving_model=ctx.serving_model())
    request = model_request(
        ctx.policy, ctx.spec, run_id=ctx.run.id, model_name=ctx.names.model, source=source
    )
    try:
        endpoints.create_model(ctx.sm, request)
        ctx.actions.append(f"CreateModel {ctx.names.model}")
    except AlreadyExists:
        pass  # made by a concurrent pass: adopt


def claim_endpoint(ctx: RolloutContext, *, adopt: bool) -> None:
    """Refuse an endpoint another policy owns (unless adopting); tag one nobody owns."""
    described = ctx.described_endpoint()
    if described is None:
        return
    arn = str(described["EndpointArn"])
    owner = ctx.tags(arn).get(TAG_ENDPOINT_OWNER)
    problem = endpoint_owner_problem(owner, ctx.policy.uid, endpoint=ctx.endpoint_name, adopt=adopt)
    if problem is not None:
        raise EndpointOwnedElsewhere(problem)
    if owner != ctx.policy.uid:
        ctx.taken_from = _served_now(ctx)
        endpoints.add_tags(ctx.sm, arn, {TAG_ENDPOINT_OWNER: ctx.policy.uid})
        ctx.actions.append(f"AddTags {ctx.endpoint_name} {TAG_ENDPOINT_OWNER}={ctx.policy.uid}")


def release_endpoint(
    session: AwsSession, policy: PolicyRef, spec: RetrainingPolicySpec
) -> str | None:
    """Remove `policy`'s owner tag from the endpoint, if it is there (None: nothing to do)."""
    name = spec.deployment.endpoint_name
    if spec.deployment.strategy is Strategy.NONE or not name:
        return None
    sm = session.sagemaker()
    described = endpoints.find_endpoint(sm, name)
    if described is None:
        return None
    arn = str(described["EndpointArn"])
    if endpoints.list_tags(sm, arn).get(TAG_ENDPOINT_OWNER) != policy.uid:
        return None  # another policy's, or nobody's: not ours to release
    endpoints.delete_tags(sm, arn, [TAG_ENDPOINT_OWNER])
    return f"endpoint {name} released: tag {TAG_ENDPOINT_OWNER} removed"


def _served_now(ctx: RolloutContext) -> ServingStatus | None:
    """What the endpoint serves as the operator takes it: the policy's variant's model."""
    current = ctx.current_config()
    if current is None:
        return None
    variant = served_model(current, ctx.spec.deployment.variant_name)
    container = serving_container(ctx.model(variant.model_name))
    return ServingStatus(
        model_name=variant.model_name,
        endpoint_config_name=str(current["EndpointConfigName"]),
        model_data_url=container.get("ModelDataUrl"),
        since=ctx.now,
    )


def execute(ctx: RolloutContext, strategy: RolloutStrategy, decision: Action) -> RolloutProgress:
    """Carry out one decision: at most one changing call to the endpoint."""
    match decision:
        case Finish(message=message, result=result, reason=reason):
            return _finish(ctx, result, message, reason)
        case Wait(delay=delay):
            ctx.run = ctx.run.model_copy(update=dict(decision.run_updates))
            return progress(ctx, strategy, decision.message, delay=delay)
        case CreateEndpoint(config_name=config_name):
            _create_endpoint(ctx, strategy, config_name)
        case UpdateEndpoint(config_name=config_name):
            _update_endpoint(ctx, strategy, config_name)
        case SetWeights(weights=weights):
            _set_weights(ctx, weights)
    ctx.run = ctx.run.model_copy(update=dict(decision.run_updates))
    return progress(ctx, strategy, decision.message)


def progress(
    ctx: RolloutContext, strategy: RolloutStrategy, message: str, *, delay: Any = None
) -> RolloutProgress:
    """A pass that did not finish; `delay` when the decision knows better than the poll."""
    run = (
        ctx.run if strategy.keeps_message(ctx) else ctx.run.model_copy(update={"message": message})
    )
    return RolloutProgress(
        run=run,
        message=message,
        actions=tuple(ctx.actions),
        retry_after=ctx.poll if delay is None else delay,
    )


def _finish(
    ctx: RolloutContext, result: RolloutResult, message: str, reason: str | None
) -> RolloutProgress:
    run = ctx.run
    view = ctx.endpoint
    if result is RolloutResult.SERVING and view is not None:
        run = run.model_copy(update={"endpoint_config_name": view.config_name})
    elif run.endpoint_config_name is None:
        run = run.model_copy(update={"endpoint_config_name": ctx.names.config})
    return finished(run, result, message, ctx.now, reason=reason, actions=ctx.actions)


def _create_endpoint(ctx: RolloutContext, strategy: RolloutStrategy, config_name: str) -> None:
    _ensure_config(ctx, strategy, config_name)
    request = create_endpoint_request(
        ctx.policy, ctx.spec, run_id=ctx.run.id, config_name=config_name
    )
    # The endpoint this policy creates is its own from the start.
    request["Tags"] = [
        *request.get("Tags", []),
        {"Key": TAG_ENDPOINT_OWNER, "Value": ctx.policy.uid},
    ]
    try:
        endpoints.create_endpoint(ctx.sm, request)
        ctx.actions.append(f"CreateEndpoint {ctx.endpoint_name} with {config_name}")
    except AlreadyExists:
        pass  # created meanwhile (another pass); the next describe sees it


def _update_endpoint(ctx: RolloutContext, strategy: RolloutStrategy, config_name: str) -> None:
    adopted = _ensure_config(ctx, strategy, config_name)
    if adopted is not None:
        _refuse_autoscaled_instance_type_change(ctx, adopted)
    strategy.before_update(ctx, config_name)
    shifts = strategy.rules.sagemaker_shifts
    # SageMaker's guardrails apply where SageMaker moves the traffic; live counts are kept
    # (autoscaling); where the operator moves it, the config's weights win.
    update = update_endpoint_request(
        ctx.spec, config_name=config_name, guarded=shifts, config_weights=not shifts
    )
    endpoints.update_endpoint(ctx.sm, update)
    ctx.actions.append(f"UpdateEndpoint {ctx.endpoint_name} -> {config_name}")


def _set_weights(ctx: RolloutContext, weights: Sequence[tuple[str, float]]) -> None:
    endpoints.update_weights(
        ctx.sm,
        {
            "EndpointName": ctx.endpoint_name,
            "DesiredWeightsAndCapacities": [
                {"VariantName": variant, "DesiredWeight": weight} for variant, weight in weights
            ],
        },
    )
    shares = ", ".join(f"{v}={w:g}" for v, w in weights)
    ctx.actions.append(f"UpdateEndpointWeightsAndCapacities {ctx.endpoint_name}: {shares}")


def _ensure_config(
    ctx: RolloutContext, strategy: RolloutStrategy, config_name: str
) -> Mapping[str, Any] | None:
    """Describe `config_name`; build and create it when missing (adopt on "already exists").

    Answers the adopted config's description (None when this pass built it: a config the
    operator builds copies every variant's instance type, so only an adopted one can
    change it)."""
    existing = ctx.config(config_name)
    if existing is not None:
        return existing
    request: CreateEndpointConfigInputTypeDef
    if ctx.endpoint is None:
        request = first_endpoint_config_request(
            ctx.policy,
            ctx.spec,
            run_id=ctx.run.id,
            config_name=config_name,
            model_name=ctx.names.model,
        )
    else:
        request = strategy.config_request(ctx, config_name)
    try:
        endpoints.create_endpoint_config(ctx.sm, request)
        ctx.actions.append(f"CreateEndpointConfig {config_name}")
    except AlreadyExists:
        pass
    ctx.created(config_name)
    return None


def _refuse_autoscaled_instance_type_change(ctx: RolloutContext, target: Mapping[str, Any]) -> None:
    """See `reconcile/rollout/autoscaled.py`: refuse before AWS does, saying what to do."""
    current = ctx.current_config()
    if current is None or current.get("EndpointConfigName") == target.get("EndpointConfigName"):
        return
    changes = instance_type_changes(current, target)
    client = ctx.session.autoscaling()
    for change in changes:
        if autoscaling.is_registered(client, ctx.endpoint_name, change.variant):
            raise refusal(ctx.endpoint_name, change)
