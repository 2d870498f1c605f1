"""Variant shift's step machine (`decide_shift`), pure; see the package docstring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
    Finish,
    RolloutResult,
    SetWeights,
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
    stuck,
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


@dataclass(frozen=True)
class ShiftFacts:
    """What `decide_shift` decides on: the endpoint as described now and the run's record.

    `variants` is read from the endpoint's current config when that is the run's shift
    config (`names.config`), else None. `config_created` is the shift config's
    CreationTime when it exists (see `update_failed_unrecorded`).
    """

    endpoint: EndpointView | None
    names: RolloutNames
    variants: ShiftVariants | None
    run: CurrentRun
    spec: VariantShiftSpec
    now: datetime
    config_created: datetime | None = None
    poll: timedelta = DEFAULT_POLL


@overload
def decide_shift(facts: ShiftFacts, verdict: StepVerdict) -> Action: ...


@overload
def decide_shift(facts: ShiftFacts, verdict: None = None) -> Decision: ...


def decide_shift(facts: ShiftFacts, verdict: StepVerdict | None = None) -> Decision:
    """The next step of a variant shift.

    Without a `verdict`, a step whose judgement is due answers `Analyse`; given the
    verdict of that step, the answer is an `Action` (only that case builds an `Analyse`).
    """
    endpoint, names, run = facts.endpoint, facts.names, facts.run
    if endpoint is None:
        return CreateEndpoint(
            f"creating the endpoint with {names.config}",
            names.config,
            run_updates(endpoint_config_name=names.config, deploy_step_started_at=facts.now),
        )
    if endpoint.busy:
        return _while_busy(facts, endpoint)
    ended = stuck(endpoint)
    if ended is not None:
        return ended
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
        if facts.variants is None:
            raise ValueError("decide_shift needs the variants of the shift config")
        if facts.variants.old is None:
            # The run's config holds only the new model: a first deployment, done.
            return finish(RolloutResult.SERVING, f"endpoint {endpoint.name} serves {names.model}")
        pair = _Pair(facts, endpoint, facts.variants.old, facts.variants.new)
        return pair.decide(verdict)
    return _before_shift(facts, endpoint)


def _while_busy(facts: ShiftFacts, endpoint: EndpointView) -> Wait:
    names, run = facts.names, facts.run
    pending = endpoint.pending_config_name
    if pending is not None and pending in names.configs and run.endpoint_config_name != pending:
        # Our UpdateEndpoint went out but the run did not record it (crash): adopt it.
        if pending == names.config:
            return wait(
                busy_message(endpoint),
                facts.poll,
                endpoint_config_name=pending,
                deploy_step=0,
                deploy_step_started_at=None,
            )
        return wait(
            busy_message(endpoint),
            facts.poll,
            endpoint_config_name=pending,
            deploy_step_started_at=facts.now,
        )
    return wait(busy_message(endpoint), facts.poll)


def _before_shift(facts: ShiftFacts, endpoint: EndpointView) -> Action:
    """The endpoint is on a config that is none of the run's: add the new variant, once."""
    names, run = facts.names, facts.run
    if run.endpoint_config_name in names.configs or update_failed_unrecorded(
        endpoint, facts.config_created
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


@dataclass(frozen=True)
class _Pair:
    """The endpoint serves the shift config: the old and the new variant side by side."""

    facts: ShiftFacts
    endpoint: EndpointView
    old: str
    new: str

    def decide(self, verdict: StepVerdict | None) -> Decision:
        facts, names, run = self.facts, self.facts.names, self.facts.run
        old = self.endpoint.variant(self.old)
        new = self.endpoint.variant(self.new)
        if old is None or new is None:
            return wait(
                f"endpoint {self.endpoint.name} does not report both variants yet", facts.poll
            )
        total = old.weight + new.weight
        if self._asked_for(names.final_config):
            return _not_removed(
                f"the old variant {self.old}",
                names.final_config,
                "both variants remain",
                self.endpoint.failure_reason or "removing the old variant failed",
            )
        if run.endpoint_config_name == names.rollback_config or new.weight <= 0:
            return self._rolling_back(total, new.weight)
        share = 100.0 * new.weight / total if total > 0 else 0.0
        index = step_of(share, facts.spec.steps)
        if index is None:
            return self._set_to_zero(
                total,
                f"the new variant's share is {share:.1f} %, no step of "
                f"{list(facts.spec.steps)} (weights changed outside the operator)",
            )
        return self._stepping(index, total, verdict)

    def _asked_for(self, config: str) -> bool:
        """The run sent UpdateEndpoint to `config` (a variant removed), yet the endpoint is
        back on the shift config: SageMaker rolled that update back."""
        run = self.facts.run
        return run.endpoint_config_name == config and run.deploy_step_started_at is not None

    def _rolling_back(self, total: float, new_weight: float) -> Action:
        names, run = self.facts.names, self.facts.run
        reason = run.message or f"the new variant {self.new} was set to weight 0"
        if self._asked_for(names.rollback_config):
            return _not_removed(
                f"the new variant {self.new}", names.rollback_config, "it stays at weight 0", reason
            )
        if new_weight > 0:
            return self._set_to_zero(total, reason)
        return UpdateEndpoint(
            f"removing the new variant {self.new} (weight 0): {reason}",
            names.rollback_config,
            run_updates(
                endpoint_config_name=names.rollback_config,
                deploy_step_started_at=self.facts.now,
                message=reason,
            ),
        )

    def _stepping(self, index: int, total: float, verdict: StepVerdict | None) -> Decision:
        """Step `index`'s weights are applied: start its bake, judge it, or move on."""
        facts, names, run, steps = (
            self.facts,
            self.facts.names,
            self.facts.run,
            self.facts.spec.steps,
        )
        percent = steps[index]
        interval = parse_duration(facts.spec.interval)
        label = f"step {index + 1}/{len(steps)}: {percent} % on {self.new}, baking"
        started = run.deploy_step_started_at
        if run.deploy_step != index or started is None or run.endpoint_config_name != names.config:
            return wait(
                label,
                min(facts.poll, interval),
                endpoint_config_name=names.config,
                deploy_step=index,
                deploy_step_started_at=facts.now,
            )
        elapsed = facts.now - started
        full = elapsed >= interval
        if verdict is None:
            return Analyse(
                f"step {index + 1}/{len(steps)}: judging {percent} %",
                endpoint_name=self.endpoint.name,
                old_variant=self.old,
                new_variant=self.new,
                window=AnalysisWindow(
                    new_since=started,
                    baseline_since=started - interval * (index + 1),
                    until=facts.now,
                    full=full,
                ),
            )
        if not verdict.passed:
            return self._set_to_zero(
                total, f"step {index + 1} ({percent} %) failed: {verdict.text}"
            )
        if not full:
            # The step that knows the deadline sets the requeue: the next alarm check, or
            # the bake's end if that comes first.
            return wait(
                f"{label} ({int(elapsed.total_seconds())}s of {int(interval.total_seconds())}s)",
                min(facts.poll, interval - elapsed),
            )
        findings = verdict.summary or "no findings"
        if index + 1 == len(steps):
            return UpdateEndpoint(
                f"all steps passed ({findings}); removing the old variant {self.old}",
                names.final_config,
                run_updates(
                    endpoint_config_name=names.final_config, deploy_step_started_at=facts.now
                ),
            )
        following = steps[index + 1]
        old_weight, new_weight = split_weight(total, following)
        return SetWeights(
            f"step {index + 1} passed ({findings}); shifting to {following} %",
            weights=((self.old, old_weight), (self.new, new_weight)),
            run_updates=run_updates(deploy_step=index + 1, deploy_step_started_at=None),
        )

    def _set_to_zero(self, total: float, reason: str) -> SetWeights:
        """Take all traffic off the new variant; the run now heads for the rollback config.

        `message` keeps the reason from here on (the workflow does not overwrite it while
        the run heads for the rollback config), so the Degraded outcome can name it.
        """
        return SetWeights(
            f"rolling back: {reason}; new variant {self.new} to weight 0",
            weights=((self.old, round(total, 6)), (self.new, 0.0)),
            run_updates=run_updates(
                endpoint_config_name=self.facts.names.rollback_config,
                deploy_step_started_at=None,
                message=reason,
            ),
        )


def _not_removed(variant: str, config: str, remains: str, reason: str) -> Finish:
    return finish(
        RolloutResult.DEGRADED,
        f"SageMaker did not remove {variant} (update to {config} rolled back); {remains}",
        reason,
    )
