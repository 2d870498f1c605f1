"""Variant shift's step machine (`decide_shift`), pure; see the package docstring."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import overload

from retraining_operator.api import CurrentRun, VariantShiftSpec, parse_duration
from retraining_operator.reconcile.rollout.decision import (
    DEFAULT_POLL,
    Action,
    Analyse,
    AnalysisWindow,
    CreateEndpoint,
    Decision,
    RolloutResult,
    SetWeights,
    UpdateEndpoint,
    Wait,
    finish,
    run_updates,
    wait,
)
from retraining_operator.reconcile.rollout.endpoint import (
    FAILED,
    IN_SERVICE,
    UPDATE_ROLLBACK_FAILED,
    EndpointView,
    busy_message,
    update_failed_unrecorded,
)
from retraining_operator.reconcile.rollout.requests import RolloutNames
from retraining_operator.reconcile.rollout.variant_shift.analysis import StepVerdict
from retraining_operator.reconcile.rollout.variant_shift.configs import (
    ShiftVariants,
    split_weight,
)

WEIGHT_TOLERANCE_PERCENT = 0.5


def step_of(share_percent: float, steps: Sequence[int]) -> int | None:
    """The index of the step whose percentage is `share_percent`, if any."""
    for index, percent in enumerate(steps):
        if abs(share_percent - percent) <= WEIGHT_TOLERANCE_PERCENT:
            return index
    return None


@overload
def decide_shift(
    *,
    endpoint: EndpointView | None,
    names: RolloutNames,
    variants: ShiftVariants | None,
    run: CurrentRun,
    spec: VariantShiftSpec,
    now: datetime,
    verdict: StepVerdict,
    config_created: datetime | None = None,
    poll: timedelta = DEFAULT_POLL,
) -> Action: ...


@overload
def decide_shift(
    *,
    endpoint: EndpointView | None,
    names: RolloutNames,
    variants: ShiftVariants | None,
    run: CurrentRun,
    spec: VariantShiftSpec,
    now: datetime,
    verdict: None = None,
    config_created: datetime | None = None,
    poll: timedelta = DEFAULT_POLL,
) -> Decision: ...


def decide_shift(
    *,
    endpoint: EndpointView | None,
    names: RolloutNames,
    variants: ShiftVariants | None,
    run: CurrentRun,
    spec: VariantShiftSpec,
    now: datetime,
    verdict: StepVerdict | None = None,
    config_created: datetime | None = None,
    poll: timedelta = DEFAULT_POLL,
) -> Decision:
    """The next step of a variant shift.

    `variants` is read from the endpoint's current config when that is the run's shift
    config (`names.config`), else None. `config_created` is the shift config's
    CreationTime when it exists (see `update_failed_unrecorded`). Given the `verdict` of
    a step, the answer is never `Analyse` (only the case that asks for one builds it).
    """
    if endpoint is None:
        return CreateEndpoint(
            f"creating the endpoint with {names.config}",
            names.config,
            run_updates(endpoint_config_name=names.config, deploy_step_started_at=now),
        )
    if endpoint.busy:
        return _while_busy(endpoint, names, run, now, poll)
    if endpoint.status == UPDATE_ROLLBACK_FAILED:
        return finish(
            RolloutResult.DEGRADED,
            f"endpoint {endpoint.name}: update rollback failed",
            endpoint.failure_reason,
        )
    if endpoint.status == FAILED:
        return finish(
            RolloutResult.FAILED,
            f"endpoint {endpoint.name} is Failed; it cannot be updated until it is fixed "
            "or deleted",
            endpoint.failure_reason,
        )
    if endpoint.config_name == names.final_config:
        return finish(
            RolloutResult.SERVING,
            f"variant shift done: endpoint {endpoint.name} serves {names.model} alone",
        )
    if endpoint.config_name == names.rollback_config:
        return finish(
            RolloutResult.DEGRADED,
            f"variant shift rolled back: endpoint {endpoint.name} serves the old variant alone",
            run.message or "a step failed its analysis",
        )
    if endpoint.config_name == names.config and endpoint.status == IN_SERVICE:
        if variants is None:
            raise ValueError("decide_shift needs the variants of the shift config")
        return _on_shift_config(endpoint, names, variants, run, spec, now, verdict, poll)
    return _before_shift(endpoint, names, run, now, config_created)


def _while_busy(
    endpoint: EndpointView, names: RolloutNames, run: CurrentRun, now: datetime, poll: timedelta
) -> Wait:
    pending = endpoint.pending_config_name
    if pending is not None and pending in names.configs and run.endpoint_config_name != pending:
        # Our UpdateEndpoint went out but the run did not record it (crash): adopt it.
        if pending == names.config:
            return wait(
                busy_message(endpoint),
                poll,
                endpoint_config_name=pending,
                deploy_step=0,
                deploy_step_started_at=None,
            )
        return wait(
            busy_message(endpoint), poll, endpoint_config_name=pending, deploy_step_started_at=now
        )
    return wait(busy_message(endpoint), poll)


def _before_shift(
    endpoint: EndpointView,
    names: RolloutNames,
    run: CurrentRun,
    now: datetime,
    config_created: datetime | None,
) -> Action:
    """The endpoint is on a config that is none of the run's: add the new variant, once."""
    if run.endpoint_config_name in names.configs or update_failed_unrecorded(
        endpoint, config_created
    ):
        return finish(
            RolloutResult.DEGRADED,
            f"SageMaker did not apply {run.endpoint_config_name or names.config}; endpoint "
            f"{endpoint.name} still serves {endpoint.config_name} (not retried)",
            endpoint.failure_reason or f"endpoint returned to {endpoint.config_name}",
        )
    return UpdateEndpoint(
        f"adding {names.model} as a second variant of endpoint {endpoint.name}",
        names.config,
        run_updates(endpoint_config_name=names.config, deploy_step=0, deploy_step_started_at=None),
    )


def _on_shift_config(
    endpoint: EndpointView,
    names: RolloutNames,
    variants: ShiftVariants,
    run: CurrentRun,
    spec: VariantShiftSpec,
    now: datetime,
    verdict: StepVerdict | None,
    poll: timedelta,
) -> Decision:
    old_name, new_name = variants.old, variants.new
    if old_name is None:
        # The run's config holds only the new model: a first deployment, done.
        return finish(RolloutResult.SERVING, f"endpoint {endpoint.name} serves {names.model}")
    old = endpoint.variant(old_name)
    new = endpoint.variant(new_name)
    if old is None or new is None:
        return wait(f"endpoint {endpoint.name} does not report both variants yet", poll)
    total = old.weight + new.weight
    requested_removal = run.deploy_step_started_at is not None
    if run.endpoint_config_name == names.final_config and requested_removal:
        return finish(
            RolloutResult.DEGRADED,
            f"SageMaker did not remove the old variant {old_name} (update to "
            f"{names.final_config} rolled back); both variants remain",
            endpoint.failure_reason or "removing the old variant failed",
        )
    rolling_back = run.endpoint_config_name == names.rollback_config or new.weight <= 0
    if rolling_back:
        reason = run.message or f"the new variant {new_name} was set to weight 0"
        if run.endpoint_config_name == names.rollback_config and requested_removal:
            return finish(
                RolloutResult.DEGRADED,
                f"SageMaker did not remove the new variant {new_name} (update to "
                f"{names.rollback_config} rolled back); it stays at weight 0",
                reason,
            )
        if new.weight > 0:
            return _set_to_zero(names, old_name, new_name, total, reason)
        return UpdateEndpoint(
            f"removing the new variant {new_name} (weight 0): {reason}",
            names.rollback_config,
            run_updates(
                endpoint_config_name=names.rollback_config,
                deploy_step_started_at=now,
                message=reason,
            ),
        )

    share = 100.0 * new.weight / total if total > 0 else 0.0
    index = step_of(share, spec.steps)
    if index is None:
        return _set_to_zero(
            names,
            old_name,
            new_name,
            total,
            f"the new variant's share is {share:.1f} %, no step of {list(spec.steps)} "
            "(weights changed outside the operator)",
        )
    percent = spec.steps[index]
    if (
        run.deploy_step != index
        or run.deploy_step_started_at is None
        or run.endpoint_config_name != names.config
    ):
        return wait(
            f"step {index + 1}/{len(spec.steps)}: {percent} % on {new_name}, baking",
            min(poll, parse_duration(spec.interval)),
            endpoint_config_name=names.config,
            deploy_step=index,
            deploy_step_started_at=now,
        )
    started = run.deploy_step_started_at
    interval = parse_duration(spec.interval)
    elapsed = now - started
    full = elapsed >= interval
    if verdict is None:
        return Analyse(
            f"step {index + 1}/{len(spec.steps)}: judging {percent} %",
            endpoint_name=endpoint.name,
            old_variant=old_name,
            new_variant=new_name,
            window=AnalysisWindow(
                new_since=started,
                baseline_since=started - interval * (index + 1),
                until=now,
                full=full,
            ),
        )
    if not verdict.passed:
        return _set_to_zero(
            names,
            old_name,
            new_name,
            total,
            f"step {index + 1} ({percent} %) failed: {verdict.text}",
        )
    if not full:
        return wait(
            f"step {index + 1}/{len(spec.steps)}: {percent} % on {new_name}, baking "
            f"({int(elapsed.total_seconds())}s of {int(interval.total_seconds())}s)",
            min(poll, interval - elapsed),
        )
    if index + 1 == len(spec.steps):
        return UpdateEndpoint(
            f"all steps passed ({verdict.summary or 'no findings'}); removing the old "
            f"variant {old_name}",
            names.final_config,
            run_updates(endpoint_config_name=names.final_config, deploy_step_started_at=now),
        )
    following = spec.steps[index + 1]
    old_weight, new_weight = split_weight(total, following)
    return SetWeights(
        f"step {index + 1} passed ({verdict.summary or 'no findings'}); shifting to {following} %",
        weights=((old_name, old_weight), (new_name, new_weight)),
        run_updates=run_updates(deploy_step=index + 1, deploy_step_started_at=None),
    )


def _set_to_zero(names: RolloutNames, old: str, new: str, total: float, reason: str) -> SetWeights:
    """Take all traffic off the new variant; the run now heads for the rollback config.

    `message` keeps the reason from here on (the workflow does not overwrite it while the
    run heads for the rollback config), so the Degraded outcome can name it.
    """
    return SetWeights(
        f"rolling back: {reason}; new variant {new} to weight 0",
        weights=((old, round(total, 6)), (new, 0.0)),
        run_updates=run_updates(
            endpoint_config_name=names.rollback_config, deploy_step_started_at=None, message=reason
        ),
    )
