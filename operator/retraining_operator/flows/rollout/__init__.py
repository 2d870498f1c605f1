"""Rollout flow: what the deploy and rollback stages call for a deploying run.

* `advance_rollout` moves a run's rollout one step: build the pass's context (each
  resource described at most once), make the run's Model, ask the policy's strategy for
  its decision (`strategy.py`: `blue_green.py`, `variant_shift.py`), make at most one
  changing call to the endpoint (`steps.py`), and report (`RolloutProgress`).
* `start_rollback` serves a model from the history again (`retraining.hitl.dev/rollback-to`),
  as a deploy-only run under the same guardrails, or the model that served before the
  operator's first rollout (`pre-operator`).
* `cleanup` deletes older operator-made Models and EndpointConfigs of the policy beyond
  `deployment.retainPreviousModels`, never what serves and never what is not ours.

Errors: `RolloutError` (reason RolloutBlocked; `UnknownRollbackTarget`:
RollbackTargetUnknown; `VariantNotFound`) when a person has to act — all
`NeedsAttention`; the gateways' errors are `RetryLater` or `NeedsAttention` too. An
endpoint that refuses an update because it is busy is not an error: the progress says
when to look again (`retry_after`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from retraining_operator.api import (
    CurrentRun,
    HistoryEntry,
    RetrainingPolicySpec,
    RunStage,
    Strategy,
)
from retraining_operator.aws.endpoints import EndpointBusy
from retraining_operator.flows.cleanup import CleanupReport, cleanup
from retraining_operator.flows.rollout import steps
from retraining_operator.flows.rollout.context import RolloutContext
from retraining_operator.flows.rollout.progress import RolloutProgress, finished
from retraining_operator.flows.rollout.strategy import strategy_for
from retraining_operator.flows.serving import NotServing, serving
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.rollout.decision import (
    DEFAULT_POLL,
    RolloutResult,
    SetWeights,
    UpdateEndpoint,
)
from retraining_operator.reconcile.rollout.errors import RolloutError, UnknownRollbackTarget
from retraining_operator.reconcile.rollout.requests import RolloutNames
from retraining_operator.reconcile.rollout.rollback import resolve_rollback_target, rollback_run

if TYPE_CHECKING:
    from retraining_operator.aws.session import AwsSession

__all__ = [
    "CleanupReport",
    "RolloutError",
    "RolloutProgress",
    "RolloutResult",
    "RolloutRun",
    "UnknownRollbackTarget",
    "advance_rollout",
    "cleanup",
    "release_endpoint",
    "start_rollback",
    "undo_on_deletion",
]


@dataclass(frozen=True)
class RolloutRun:
    """What a rollout pass is about: the policy, its spec and the deploying run, with the
    history (configs that failed before) and the stage's options: the model's image
    (default: the policy's training image) and whether an endpoint another policy owns
    may be adopted."""

    policy: PolicyRef
    spec: RetrainingPolicySpec
    run: CurrentRun
    history: Sequence[HistoryEntry] = ()
    image: str | None = None
    adopt: bool = False


def advance_rollout(
    session: AwsSession,
    subject: RolloutRun,
    now: datetime,
    *,
    poll: timedelta = DEFAULT_POLL,
) -> RolloutProgress:
    """Move the run's rollout one step (see the module docstring).

    Before the first change to an existing endpoint, its owner tag is read: an endpoint
    another policy owns is refused (`EndpointOwnedElsewhere`) unless `subject.adopt`; one
    nobody owns is claimed (tagged with this policy's UID).

    `run.model_data_url` is the passed training job's `S3ModelArtifacts`. `history` lets
    the guard refuse a config whose update failed in an earlier run. `image` overrides the
    model's image (default: the policy's training image, which serves for the built-in
    object-detection algorithm). `now` is the clock (tests pass their own).
    """
    spec, run = subject.spec, subject.run
    if spec.deployment.strategy is Strategy.NONE:
        return finished(
            run, RolloutResult.SKIPPED, "strategy None: trained and gated, not deployed", now
        )
    strategy = strategy_for(spec)
    names = RolloutNames.for_run(subject.policy, run.id, model=run.model_name)
    run = run.model_copy(update={"model_name": names.model, "stage": RunStage.DEPLOYING})
    ctx = RolloutContext(session, subject.policy, spec, run, names, now, poll, subject.image)
    try:
        refused = steps.unapproved_package(ctx)
        if refused is not None:
            return refused
        steps.reconcile_model(ctx)
        decision = strategy.decide(ctx, subject.history)
        if isinstance(decision, (UpdateEndpoint, SetWeights)):
            steps.claim_endpoint(ctx, adopt=subject.adopt)
        return replace(steps.execute(ctx, strategy, decision), pre_operator=ctx.taken_from)
    except EndpointBusy as busy:
        message = f"endpoint refused the change while busy, waiting: {busy.message}"
        return steps.progress(ctx, strategy, message)


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
        return finished(
            run.model_copy(update={"endpoint_config_name": found.config_name}),
            RolloutResult.SERVING,
            f"{run.model_name} already serves on {spec.deployment.endpoint_name}",
            now,
        )
    return RolloutProgress(run=run, message=run.message or "rolling back")


def undo_on_deletion(
    session: AwsSession, subject: RolloutRun, now: datetime, *, poll: timedelta = DEFAULT_POLL
) -> RolloutProgress | None:
    """The policy is being deleted mid-rollout: one step of undoing it, None when there is
    nothing to undo.

    Only a variant shift the operator was still judging is undone: the new variant goes to
    weight 0 and is removed (the shift's own rollback, so it is guarded the same way). A
    shift already judged (its final config asked for) completes on its own; blue/green and
    rolling updates are SageMaker's to finish or roll back (auto-rollback alarms).
    """
    spec, run = subject.spec, subject.run
    if (
        spec.deployment.strategy is not Strategy.VARIANT_SHIFT
        or run.stage is not RunStage.DEPLOYING
    ):
        return None
    names = RolloutNames.for_run(subject.policy, run.id, model=run.model_name)
    if run.endpoint_config_name not in (names.config, names.rollback_config):
        return None  # the endpoint was never asked to serve the new model, or it is judged
    if run.endpoint_config_name == names.config:
        run = run.model_copy(
            update={
                "endpoint_config_name": names.rollback_config,
                "deploy_step_started_at": None,
                "message": "the policy was deleted before its new model was judged",
            }
        )
    return advance_rollout(session, replace(subject, run=run), now, poll=poll)


def release_endpoint(
    session: AwsSession, policy: PolicyRef, spec: RetrainingPolicySpec
) -> str | None:
    """Remove this policy's owner tag from its endpoint (a policy created again under the
    same name has another UID, and would be refused the endpoint). Says what it did."""
    return steps.release_endpoint(session, policy, spec)
