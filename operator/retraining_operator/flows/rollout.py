"""Rollout workflow: what the controller calls on each reconcile pass of a deploying run.

* `advance_rollout` moves a run's rollout one step: describe first, decide (pure:
  `reconcile/rollout/blue_green.py` or `reconcile/rollout/variant_shift/`, whose reads
  are in `flows/variant_shift.py`), make at most one changing call to the endpoint,
  and report. Safe to call again after a crash at
  any point: Models and EndpointConfigs have deterministic names and are adopted when
  they exist (describe first; "already exists" on create means adopt), and
  UpdateEndpoint is only sent when the endpoint is not busy and the run has not asked
  for that config before.
* `rollback_to` serves a model from the history again (`retraining.hitl.dev/rollback-to`),
  as a deploy-only run under the same guardrails.
* `cleanup` deletes older operator-made Models and EndpointConfigs of the policy beyond
  `deployment.retainPreviousModels`, never what serves and never what is not ours.

Errors: `RolloutError` (reason RolloutBlocked; `UnknownRollbackTarget`:
RollbackTargetUnknown; `VariantNotFound`) when a person has to act — all
`NeedsAttention`; the gateways' errors are `RetryLater` or `NeedsAttention` too. An
endpoint that refuses an update because it is busy is not an error: the progress says
when to look again (`retry_after`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from retraining_operator.api import (
    CurrentRun,
    HistoryEntry,
    RetrainingPolicySpec,
    RunStage,
    ServingStatus,
    Strategy,
)
from retraining_operator.aws import autoscaling, endpoints, registry
from retraining_operator.aws.endpoints import EndpointBusy
from retraining_operator.aws.errors import AlreadyExists
from retraining_operator.flows.cleanup import CleanupReport, cleanup
from retraining_operator.flows.rollout_pass import RolloutPass, config_created
from retraining_operator.flows.serving import NotServing, serving
from retraining_operator.flows.variant_shift import (
    before_removal,
    next_shift_action,
    removal_config_request,
)
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.registry import package_container
from retraining_operator.reconcile.rollout.autoscaled import instance_type_changes, refusal
from retraining_operator.reconcile.rollout.blue_green import (
    decide_update,
    endpoint_config_request,
    failed_configs,
)
from retraining_operator.reconcile.rollout.decision import (
    DEFAULT_POLL,
    Action,
    CreateEndpoint,
    Finish,
    RolloutResult,
    SetWeights,
    UpdateEndpoint,
    Wait,
    history_entry,
    serving_status,
)
from retraining_operator.reconcile.rollout.endpoint import EndpointView
from retraining_operator.reconcile.rollout.errors import (
    EndpointOwnedElsewhere,
    RolloutError,
    UnknownRollbackTarget,
)
from retraining_operator.reconcile.rollout.requests import (
    RolloutNames,
    create_endpoint_request,
    first_endpoint_config_request,
    model_request,
    update_endpoint_request,
)
from retraining_operator.reconcile.rollout.rollback import resolve_rollback_target, rollback_run
from retraining_operator.reconcile.rollout.variant_shift.configs import (
    shift_config_request,
)
from retraining_operator.reconcile.tenancy import TAG_ENDPOINT_OWNER, endpoint_owner_problem

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateEndpointConfigInputTypeDef

    from retraining_operator.aws.session import AwsSession

# What the reconcile pass uses (cleanup lives in flows/cleanup.py; the errors in
# reconcile/rollout/errors.py): one import of this module serves a deploying run.
__all__ = [
    "CleanupReport",
    "RolloutError",
    "RolloutProgress",
    "RolloutResult",
    "UnknownRollbackTarget",
    "advance_rollout",
    "cleanup",
    "start_rollback",
]


@dataclass(frozen=True)
class RolloutProgress:
    """What one pass did and what comes next.

    * `run`: the run with its new fields (model/config names, step, timestamps, message);
      patch it into `status.currentRun`.
    * `actions`: the AWS changes made in this pass, e.g. `UpdateEndpoint od-endpoint -> ...`
      (post each as an Event).
    * terminal when `result` is set: then `history_entry` goes to the history, and on
      SERVING `serving` replaces `status.serving` (on DEGRADED/FAILED the old model keeps
      serving: leave `status.serving` as it is, set Degraded with `reason`).
    * otherwise `retry_after`: look again after that delay. The step that knows the
      deadline sets it: the poll interval while SageMaker works, and during a variant
      shift's bake the earlier of the next alarm check (the poll interval) and the end
      of the step's bake, so the step is judged when its `interval` is over.
    """

    run: CurrentRun
    message: str
    actions: tuple[str, ...] = ()
    result: RolloutResult | None = None
    reason: str | None = None
    retry_after: timedelta | None = None
    history_entry: HistoryEntry | None = None
    serving: ServingStatus | None = None

    @property
    def done(self) -> bool:
        return self.result is not None


def advance_rollout(
    session: AwsSession,
    policy: PolicyRef,
    spec: RetrainingPolicySpec,
    run: CurrentRun,
    now: datetime,
    *,
    history: Sequence[HistoryEntry] = (),
    image: str | None = None,
    poll: timedelta = DEFAULT_POLL,
    adopt: bool = False,
) -> RolloutProgress:
    """Move the run's rollout one step (see the module docstring).

    Before the first change to an existing endpoint, its owner tag is read: an endpoint
    another policy owns is refused (`EndpointOwnedElsewhere`) unless `adopt`; one nobody
    owns is claimed (tagged with this policy's UID).

    `run.model_data_url` is the passed training job's `S3ModelArtifacts`. `history` lets
    the guard refuse a config whose update failed in an earlier run. `image` overrides the
    model's image (default: the policy's training image, which serves for the built-in
    object-detection algorithm). `now` is the clock (tests pass their own).
    """
    if spec.deployment.strategy is Strategy.NONE:
        return _finished(
            run, RolloutResult.SKIPPED, "strategy None: trained and gated, not deployed", now
        )
    names = RolloutNames.for_run(policy, run.id, model=run.model_name)
    run = run.model_copy(update={"model_name": names.model, "stage": RunStage.DEPLOYING})
    p = RolloutPass(session, policy, spec, run, names, now, poll, image)
    try:
        _reconcile_model(p)
        described = endpoints.find_endpoint(p.sm, p.endpoint_name)
        p.endpoint = EndpointView.from_describe(described) if described else None
        decision = next_shift_action(p) if p.shifting else _decide_update(p, history)
        if described is not None and isinstance(decision, (UpdateEndpoint, SetWeights)):
            _claim_endpoint(p, str(described["EndpointArn"]), adopt=adopt)
        return _execute(p, decision)
    except EndpointBusy as busy:
        return _progress(p, f"endpoint refused the change while busy, waiting: {busy.message}")


def start_rollback(
    session: AwsSession,
    spec: RetrainingPolicySpec,
    *,
    target: str,
    history: Sequence[HistoryEntry],
    now: datetime,
) -> RolloutProgress:
    """A deploy-only run (`rb<timestamp>`) that serves `target` (a run id, model name or Model
    Package ARN/version from `history`) again, with the policy's strategy and guardrails.

    Raises `UnknownRollbackTarget` when the history has no such model. Keep `progress.run` as
    the current run (Deploying): the deploy stage advances it like any rollout, whatever the
    annotation says afterwards. A target that already serves finishes at once (`done`).
    """
    if spec.deployment.strategy is Strategy.NONE:
        raise RolloutError("deployment.strategy is None: the operator deploys nothing to roll back")
    entry = resolve_rollback_target(history, target)
    run = rollback_run(entry, target=target, now=now)
    try:
        found = serving(session, spec)
    except NotServing:
        found = None  # no endpoint (or config) yet: the rollout creates it
    # Only a settled endpoint counts: while busy it may still move away from the model.
    if found is not None and not found.endpoint.busy and found.variant.model_name == run.model_name:
        return _finished(
            run.model_copy(update={"endpoint_config_name": found.config_name}),
            RolloutResult.SERVING,
            f"{run.model_name} already serves on {spec.deployment.endpoint_name}",
            now,
        )
    return RolloutProgress(run=run, message=run.message or "rolling back")


# ---------------------------------------------------------------------------------------
# The steps of one pass


def _reconcile_model(p: RolloutPass) -> None:
    """Describe the run's Model; create it when missing; adopt it when the name is taken."""
    existing = endpoints.find_model(p.sm, p.names.model)
    wanted = p.run.model_data_url
    if existing is not None:
        found = existing.get("PrimaryContainer", {}).get("ModelDataUrl")
        if wanted and found and found != wanted:
            raise RolloutError(
                f"Model {p.names.model} exists with artifacts {found}, not the run's {wanted}; "
                "delete it or start a new run"
            )
        return
    if not wanted:
        raise RolloutError(
            f"run {p.run.id} has no model artifacts (modelDataUrl) to create {p.names.model}"
        )
    image = p.image_uri()
    if p.run.model_package_arn:
        # A registered candidate: the Model serves the package's own container, so the
        # registry, the Model and the endpoint tell the same story.
        package = registry.describe_model_package(p.sm, p.run.model_package_arn)
        image, wanted = package_container(package)
    request = model_request(
        p.policy,
        p.spec,
        run_id=p.run.id,
        model_name=p.names.model,
        model_data_url=wanted,
        image=image,
        serving_model=_serving_model(p),
    )
    try:
        endpoints.create_model(p.sm, request)
        p.actions.append(f"CreateModel {p.names.model}")
    except AlreadyExists:
        pass  # made by a concurrent pass: adopt


def _serving_model(p: RolloutPass) -> Mapping[str, Any] | None:
    """The DescribeModel answer of the model the endpoint serves now (its hardening is
    inherited), None on a first deployment or when the link is gone."""
    try:
        found = serving(p.session, p.spec)
    except NotServing:
        return None
    return endpoints.find_model(p.sm, found.variant.model_name)


def _refuse_autoscaled_instance_type_change(p: RolloutPass, target: Mapping[str, Any]) -> None:
    """See `reconcile/rollout/autoscaled.py`: refuse before AWS does, saying what to do."""
    current_name = p.endpoint.config_name if p.endpoint is not None else None
    if not current_name or current_name == target.get("EndpointConfigName"):
        return
    current = endpoints.find_endpoint_config(p.sm, current_name)
    if current is None:
        return
    changes = instance_type_changes(current, target)
    if not changes:
        return
    client = p.session.autoscaling()
    for change in changes:
        if autoscaling.is_registered(client, p.endpoint_name, change.variant):
            raise refusal(p.endpoint_name, change)


def _decide_update(p: RolloutPass, history: Sequence[HistoryEntry]) -> Action:
    view = p.endpoint
    created = None
    if view is not None and not view.busy and view.config_name != p.names.config:
        created = config_created(endpoints.find_endpoint_config(p.sm, p.names.config))
    return decide_update(
        endpoint=view,
        config_name=p.names.config,
        run=p.run,
        now=p.now,
        config_created=created,
        failed=failed_configs(history),
        poll=p.poll,
    )


def _execute(p: RolloutPass, decision: Action) -> RolloutProgress:
    match decision:
        case Finish(message=message, result=result, reason=reason):
            run = p.run
            if result is RolloutResult.SERVING and p.endpoint is not None:
                run = run.model_copy(update={"endpoint_config_name": p.endpoint.config_name})
            elif run.endpoint_config_name is None:
                run = run.model_copy(update={"endpoint_config_name": p.names.config})
            return _finished(run, result, message, p.now, reason=reason, actions=p.actions)
        case Wait(delay=delay):
            p.run = p.run.model_copy(update=dict(decision.run_updates))
            return _progress(p, decision.message, delay=delay)
        case CreateEndpoint(config_name=config_name):
            _ensure_config(p, config_name)
            request = create_endpoint_request(
                p.policy, p.spec, run_id=p.run.id, config_name=config_name
            )
            # The endpoint this policy creates is its own from the start.
            request["Tags"] = [
                *request.get("Tags", []),
                {"Key": TAG_ENDPOINT_OWNER, "Value": p.policy.uid},
            ]
            try:
                endpoints.create_endpoint(p.sm, request)
                p.actions.append(f"CreateEndpoint {p.endpoint_name} with {config_name}")
            except AlreadyExists:
                pass  # created meanwhile (another pass); the next describe sees it
        case UpdateEndpoint(config_name=config_name):
            adopted = _ensure_config(p, config_name)
            if adopted is not None:
                _refuse_autoscaled_instance_type_change(p, adopted)
            if p.shifting:
                before_removal(p, config_name)
            # A variant shift moves traffic itself; SageMaker's guardrails are blue/green's.
            # Live counts are kept (autoscaling); a shift's weights are the config's.
            update = update_endpoint_request(
                p.spec, config_name=config_name, guarded=not p.shifting, config_weights=p.shifting
            )
            endpoints.update_endpoint(p.sm, update)
            p.actions.append(f"UpdateEndpoint {p.endpoint_name} -> {config_name}")
        case SetWeights(weights=weights):
            endpoints.update_weights(
                p.sm,
                {
                    "EndpointName": p.endpoint_name,
                    "DesiredWeightsAndCapacities": [
                        {"VariantName": variant, "DesiredWeight": weight}
                        for variant, weight in weights
                    ],
                },
            )
            shares = ", ".join(f"{v}={w:g}" for v, w in weights)
            p.actions.append(f"UpdateEndpointWeightsAndCapacities {p.endpoint_name}: {shares}")
    p.run = p.run.model_copy(update=dict(decision.run_updates))
    return _progress(p, decision.message)


def _claim_endpoint(p: RolloutPass, arn: str, *, adopt: bool) -> None:
    """Refuse an endpoint another policy owns (unless adopting); tag one nobody owns."""
    owner = endpoints.list_tags(p.sm, arn).get(TAG_ENDPOINT_OWNER)
    problem = endpoint_owner_problem(owner, p.policy.uid, endpoint=p.endpoint_name, adopt=adopt)
    if problem is not None:
        raise EndpointOwnedElsewhere(problem)
    if owner != p.policy.uid:
        endpoints.add_tags(p.sm, arn, {TAG_ENDPOINT_OWNER: p.policy.uid})
        p.actions.append(f"AddTags {p.endpoint_name} {TAG_ENDPOINT_OWNER}={p.policy.uid}")


def _ensure_config(p: RolloutPass, config_name: str) -> Mapping[str, Any] | None:
    """Describe `config_name`; build and create it when missing (adopt on "already exists").

    Answers the adopted config's description (None when this pass built it: a config the
    operator builds copies every variant's instance type, so only an adopted one can
    change it)."""
    existing = endpoints.find_endpoint_config(p.sm, config_name)
    if existing is not None:
        return existing
    request = _config_request(p, config_name)
    try:
        endpoints.create_endpoint_config(p.sm, request)
        p.actions.append(f"CreateEndpointConfig {config_name}")
    except AlreadyExists:
        pass
    return None


def _config_request(p: RolloutPass, config_name: str) -> CreateEndpointConfigInputTypeDef:
    names, run_id = p.names, p.run.id
    if config_name == names.config:
        if p.endpoint is None:
            return first_endpoint_config_request(
                p.policy, p.spec, run_id=run_id, config_name=config_name, model_name=names.model
            )
        current_name = p.endpoint.config_name
        current = endpoints.find_endpoint_config(p.sm, current_name) if current_name else None
        if current is None:
            raise RolloutError(
                f"endpoint {p.endpoint.name} has no describable config ({current_name!r})"
            )
        tags = endpoints.list_tags(p.sm, current["EndpointConfigArn"])
        if p.shifting:
            return shift_config_request(
                p.policy,
                p.spec,
                run_id=run_id,
                config_name=config_name,
                model_name=names.model,
                current=current,
                current_tags=tags,
                live=p.endpoint,
            )
        return endpoint_config_request(
            p.policy,
            p.spec,
            run_id=run_id,
            config_name=config_name,
            model_name=names.model,
            current=current,
            current_tags=tags,
        )
    return removal_config_request(p, config_name)


def _progress(p: RolloutPass, message: str, *, delay: timedelta | None = None) -> RolloutProgress:
    """A pass that did not finish; `delay` when the decision knows better than the poll."""
    # While a variant shift heads for its rollback config, the run's message keeps the reason.
    sticky = p.shifting and p.run.endpoint_config_name == p.names.rollback_config
    run = p.run if sticky else p.run.model_copy(update={"message": message})
    return RolloutProgress(
        run=run,
        message=message,
        actions=tuple(p.actions),
        retry_after=p.poll if delay is None else delay,
    )


def _finished(
    run: CurrentRun,
    result: RolloutResult,
    message: str,
    now: datetime,
    *,
    reason: str | None = None,
    actions: Sequence[str] = (),
) -> RolloutProgress:
    text = f"{message}: {reason}" if reason and reason not in message else message
    run = run.model_copy(update={"stage": RunStage.DONE, "message": text})
    return RolloutProgress(
        run=run,
        message=text,
        actions=tuple(actions),
        result=result,
        reason=reason,
        history_entry=history_entry(run, result=result, now=now, reason=reason or message),
        serving=serving_status(run, now=now) if result is RolloutResult.SERVING else None,
    )
