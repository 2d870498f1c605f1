"""Variant shift's judgement of one step, from numbers the workflow fetched. Pure.

A step fails when one of the policy's CloudWatch alarms is in ALARM (checked on every
pass of the bake), or at the bake's end when the new variant's 5XX rate or its mean
ModelLatency against the old variant's is over the policy's limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from retraining_operator.api import VariantShiftSpec

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
