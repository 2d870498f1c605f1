"""Variant shift: the operator-driven canary between two production variants, pure.

The new model joins the endpoint as a second production variant at the first step's
weight (one UpdateEndpoint to the run's config); then `UpdateEndpointWeightsAndCapacities`
moves its share through the policy's steps (e.g. 10 -> 50 -> 100 %). Each step bakes for
`interval`; during the bake the policy's CloudWatch alarms are checked on every pass, at
its end also the new variant's own numbers (5XX rate, ModelLatency against the old
variant's). A failed check sets the new variant's weight to 0 and removes it (a config
without it); the last step passing removes the old variant. Either removal is an
UpdateEndpoint, so both are guarded like any other: never while the endpoint is busy,
never the same config twice.

`decide_shift` is the step machine: a flat list of small cases that each return early,
a function of the endpoint as described now, the run's recorded fields and `now` (the
injectable clock). It answers `ANALYSE` when a judgement is due; the caller fetches the
numbers, `analyse_step` turns them into a `StepVerdict`, and `decide_shift` is asked
again with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from retraining_operator.api import CurrentRun, VariantShiftSpec, parse_duration
from retraining_operator.reconcile.rollout import (
    DEFAULT_POLL,
    FAILED,
    IN_SERVICE,
    UPDATE_ROLLBACK_FAILED,
    AnalysisWindow,
    Decision,
    EndpointView,
    RolloutNames,
    RolloutResult,
    ShiftVariants,
    Step,
    busy_message,
    finish,
    split_weight,
    update_failed_unrecorded,
    wait,
)

# CloudWatch: SageMaker's per-variant endpoint metrics.
NAMESPACE = "AWS/SageMaker"
INVOCATIONS = "Invocations"
ERRORS_5XX = "Invocation5XXErrors"
MODEL_LATENCY = "ModelLatency"
PERIOD_SECONDS = 60

# Keys of a variant's series as the CloudWatch gateway returns them.
SERIES_INVOCATIONS = "invocations"
SERIES_ERRORS = "errors5xx"
SERIES_LATENCY_SUM = "latencySum"
SERIES_LATENCY_COUNT = "latencyCount"

# (series key, metric name, statistic)
METRIC_QUERIES = (
    (SERIES_INVOCATIONS, INVOCATIONS, "Sum"),
    (SERIES_ERRORS, ERRORS_5XX, "Sum"),
    (SERIES_LATENCY_SUM, MODEL_LATENCY, "Sum"),
    (SERIES_LATENCY_COUNT, MODEL_LATENCY, "SampleCount"),
)

WEIGHT_TOLERANCE_PERCENT = 0.5

Points = Sequence[tuple[datetime, float]]


@dataclass(frozen=True)
class VariantSample:
    """A variant's totals over a window."""

    invocations: float = 0.0
    errors_5xx: float = 0.0
    latency_sum: float = 0.0
    latency_count: float = 0.0

    @property
    def error_rate(self) -> float | None:
        return self.errors_5xx / self.invocations if self.invocations > 0 else None

    @property
    def mean_latency(self) -> float | None:
        return self.latency_sum / self.latency_count if self.latency_count > 0 else None


def sample(series: Mapping[str, Points], since: datetime) -> VariantSample:
    """Sum a variant's per-period points from `since` on (period starts >= since)."""

    def total(key: str) -> float:
        return sum(value for when, value in series.get(key, ()) if when >= since)

    return VariantSample(
        invocations=total(SERIES_INVOCATIONS),
        errors_5xx=total(SERIES_ERRORS),
        latency_sum=total(SERIES_LATENCY_SUM),
        latency_count=total(SERIES_LATENCY_COUNT),
    )


@dataclass(frozen=True)
class StepVerdict:
    passed: bool
    reasons: tuple[str, ...] = ()
    summary: str = ""

    @property
    def text(self) -> str:
        return "; ".join(self.reasons) if self.reasons else self.summary


def analyse_step(
    *,
    new: VariantSample | None,
    old: VariantSample | None,
    firing_alarms: Sequence[str],
    spec: VariantShiftSpec,
) -> StepVerdict:
    """Judge a step from fetched numbers: alarms, then (when given) the new variant's metrics.

    Fails when an alarm is in ALARM, when the new variant's 5XX rate exceeds `max5xxRate`,
    or when its mean ModelLatency exceeds the old variant's by more than
    `maxLatencyIncrease` (a fraction: 0.2 = +20 %). Missing data is not a failure: a
    variant without invocations has nothing to judge (said in the summary).
    """
    reasons: list[str] = []
    notes: list[str] = []
    if firing_alarms:
        reasons.append(f"alarm in ALARM: {', '.join(sorted(firing_alarms))}")
    if new is not None:
        rate = new.error_rate
        if rate is None:
            notes.append("no invocations on the new variant")
        else:
            notes.append(f"5XX rate {rate:.4f} ({new.errors_5xx:g}/{new.invocations:g})")
            if rate > spec.max_5xx_rate:
                reasons.append(
                    f"new variant's 5XX rate {rate:.4f} ({new.errors_5xx:g}/"
                    f"{new.invocations:g}) is above max5xxRate {spec.max_5xx_rate:g}"
                )
        new_latency = new.mean_latency
        old_latency = old.mean_latency if old is not None else None
        if new_latency is not None and old_latency is not None and old_latency > 0:
            increase = new_latency / old_latency - 1.0
            notes.append(f"latency {new_latency:.0f}us vs {old_latency:.0f}us")
            if increase > spec.max_latency_increase:
                reasons.append(
                    f"new variant's ModelLatency {new_latency:.0f}us is {increase:+.0%} over the "
                    f"old variant's {old_latency:.0f}us (maxLatencyIncrease "
                    f"{spec.max_latency_increase:g})"
                )
        elif new_latency is not None:
            notes.append("no latency baseline on the old variant")
    return StepVerdict(passed=not reasons, reasons=tuple(reasons), summary=", ".join(notes))


def step_of(share_percent: float, steps: Sequence[int]) -> int | None:
    """The index of the step whose percentage is `share_percent`, if any."""
    for index, percent in enumerate(steps):
        if abs(share_percent - percent) <= WEIGHT_TOLERANCE_PERCENT:
            return index
    return None


def _updates(**fields: Any) -> Mapping[str, Any]:
    return MappingProxyType(fields)


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
    CreationTime when it exists (see `update_failed_unrecorded`).
    """
    if endpoint is None:
        return Decision(
            Step.CREATE_ENDPOINT,
            f"creating the endpoint with {names.config}",
            config_name=names.config,
            run_updates=_updates(endpoint_config_name=names.config, deploy_step_started_at=now),
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
) -> Decision:
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
) -> Decision:
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
    return Decision(
        Step.UPDATE_ENDPOINT,
        f"adding {names.model} as a second variant of endpoint {endpoint.name}",
        config_name=names.config,
        run_updates=_updates(
            endpoint_config_name=names.config, deploy_step=0, deploy_step_started_at=None
        ),
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
    if variants.old is None:
        # The run's config holds only the new model: a first deployment, done.
        return finish(RolloutResult.SERVING, f"endpoint {endpoint.name} serves {names.model}")
    old = endpoint.variant(variants.old)
    new = endpoint.variant(variants.new)
    if old is None or new is None:
        return wait(f"endpoint {endpoint.name} does not report both variants yet", poll)
    total = old.weight + new.weight
    requested_removal = run.deploy_step_started_at is not None
    if run.endpoint_config_name == names.final_config and requested_removal:
        return finish(
            RolloutResult.DEGRADED,
            f"SageMaker did not remove the old variant {variants.old} (update to "
            f"{names.final_config} rolled back); both variants remain",
            endpoint.failure_reason or "removing the old variant failed",
        )
    rolling_back = run.endpoint_config_name == names.rollback_config or new.weight <= 0
    if rolling_back:
        reason = run.message or f"the new variant {variants.new} was set to weight 0"
        if run.endpoint_config_name == names.rollback_config and requested_removal:
            return finish(
                RolloutResult.DEGRADED,
                f"SageMaker did not remove the new variant {variants.new} (update to "
                f"{names.rollback_config} rolled back); it stays at weight 0",
                reason,
            )
        if new.weight > 0:
            return _set_to_zero(names, variants, total, reason)
        return Decision(
            Step.UPDATE_ENDPOINT,
            f"removing the new variant {variants.new} (weight 0): {reason}",
            config_name=names.rollback_config,
            run_updates=_updates(
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
            variants,
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
            f"step {index + 1}/{len(spec.steps)}: {percent} % on {variants.new}, baking",
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
        return Decision(
            Step.ANALYSE,
            f"step {index + 1}/{len(spec.steps)}: judging {percent} %",
            window=AnalysisWindow(
                new_since=started,
                baseline_since=started - interval * (index + 1),
                until=now,
                full=full,
            ),
        )
    if not verdict.passed:
        return _set_to_zero(
            names, variants, total, f"step {index + 1} ({percent} %) failed: {verdict.text}"
        )
    if not full:
        return wait(
            f"step {index + 1}/{len(spec.steps)}: {percent} % on {variants.new}, baking "
            f"({int(elapsed.total_seconds())}s of {int(interval.total_seconds())}s)",
            min(poll, interval - elapsed),
        )
    if index + 1 == len(spec.steps):
        return Decision(
            Step.UPDATE_ENDPOINT,
            f"all steps passed ({verdict.summary or 'no findings'}); removing the old "
            f"variant {variants.old}",
            config_name=names.final_config,
            run_updates=_updates(
                endpoint_config_name=names.final_config, deploy_step_started_at=now
            ),
        )
    following = spec.steps[index + 1]
    old_weight, new_weight = split_weight(total, following)
    return Decision(
        Step.SET_WEIGHTS,
        f"step {index + 1} passed ({verdict.summary or 'no findings'}); shifting to {following} %",
        weights=((variants.old, old_weight), (variants.new, new_weight)),
        run_updates=_updates(deploy_step=index + 1, deploy_step_started_at=None),
    )


def _set_to_zero(
    names: RolloutNames, variants: ShiftVariants, total: float, reason: str
) -> Decision:
    """Take all traffic off the new variant; the run now heads for the rollback config.

    `message` keeps the reason from here on (the workflow does not overwrite it while the
    run heads for the rollback config), so the Degraded outcome can name it.
    """
    assert variants.old is not None
    return Decision(
        Step.SET_WEIGHTS,
        f"rolling back: {reason}; new variant {variants.new} to weight 0",
        weights=((variants.old, round(total, 6)), (variants.new, 0.0)),
        run_updates=_updates(
            endpoint_config_name=names.rollback_config, deploy_step_started_at=None, message=reason
        ),
    )
