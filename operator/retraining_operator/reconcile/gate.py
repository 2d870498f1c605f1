"""The quality gate: may a freshly trained model replace the one serving? (pure)

A model passes only when its `gate.metric` (from the job's `FinalMetricDataList`) is
at least `gate.minimum` (if set) and at least the serving model's own value minus
`gate.maxRegression` (if the serving value is known). A missing metric fails. Higher
is better (object detection's metric is `validation:mAP`). A rejected model is
recorded in history (`rejection_history_entry`) and never deployed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from retraining_operator.api import (
    CurrentRun,
    GateSpec,
    HistoryEntry,
    Outcome,
    RetrainingPolicyStatus,
)

# Float noise must not flip a decision: 0.61 - 0.01 is 0.6 on the gate's scale.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    metric: str
    value: float | None  # the new model's metric value (None: not reported)
    reason: str  # a sentence a person can act on
    required: float | None = None  # the bar the value had to reach (None: no bar)
    serving_value: float | None = None  # the serving model's value, when known


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def evaluate_gate(
    gate: GateSpec,
    metrics: Mapping[str, float],
    *,
    serving_value: float | None = None,
    job_name: str | None = None,
) -> GateDecision:
    """Judge a finished job's final metrics against the gate (see the module docstring)."""
    metric = gate.metric
    source = f"training job {job_name}" if job_name else "the training job"
    value = metrics.get(metric)
    if value is None or not math.isfinite(value):
        reported = ", ".join(sorted(metrics)) or "none"
        return GateDecision(
            passed=False,
            metric=metric,
            value=None,
            serving_value=serving_value,
            reason=(
                f"{source} reported no {metric} (reported metrics: {reported}); check that "
                "gate.metric names a metric the algorithm emits (object detection: "
                "validation:mAP) and that the validation manifest has samples"
            ),
        )
    bars: list[tuple[float, str]] = []
    if gate.minimum is not None:
        bars.append((gate.minimum, f"gate.minimum {_fmt(gate.minimum)}"))
    if serving_value is not None and gate.max_regression is not None:
        floor = serving_value - gate.max_regression
        bars.append(
            (
                floor,
                f"the serving model's {_fmt(serving_value)} minus gate.maxRegression "
                f"{_fmt(gate.max_regression)} (= {_fmt(floor)})",
            )
        )
    required = max((bar for bar, _ in bars), default=None)
    failed = [text for bar, text in bars if value < bar - TOLERANCE]
    if failed:
        return GateDecision(
            passed=False,
            metric=metric,
            value=value,
            required=required,
            serving_value=serving_value,
            reason=(
                f"{metric} {_fmt(value)} of {source} is below {' and below '.join(failed)}; "
                "the model is not deployed. More or better-labelled samples, a replay mix, "
                "or tuning (training.tuning) may help; or relax the gate if the bar is too high"
            ),
        )
    if not bars:
        basis = "no bar is set (gate.minimum unset and no serving value known)"
    else:
        basis = " and ".join(f">= {text}" for _, text in bars)
    if gate.evaluation is not None:
        basis += "; regression is judged on the held-out images (gate.evaluation)"
    elif gate.max_regression is not None and serving_value is None:
        basis += "; the serving model's value is unknown, so regression was not checked"
    return GateDecision(
        passed=True,
        metric=metric,
        value=value,
        required=required,
        serving_value=serving_value,
        reason=f"{metric} {_fmt(value)} of {source} passes: {basis}",
    )


def serving_metric_value(status: RetrainingPolicyStatus) -> float | None:
    """The serving model's own gate metric: `status.serving.metricValue`, else the history
    entry that deployed the serving model. None for a model the operator did not train."""
    serving = status.serving
    if serving is None:
        return None
    if serving.metric_value is not None:
        return serving.metric_value
    for entry in status.history:
        if entry.outcome is not Outcome.DEPLOYED or entry.metric_value is None:
            continue
        if (serving.model_name and entry.model_name == serving.model_name) or (
            serving.run_id and entry.run_id == serving.run_id
        ):
            return entry.metric_value
    return None


def rejection_history_entry(
    run: CurrentRun,
    decision: GateDecision,
    *,
    training_job_name: str | None,
    model_data_url: str | None,
    finished_at: datetime,
) -> HistoryEntry:
    """The history entry of a run whose model the gate rejected (never deployed)."""
    return HistoryEntry(
        run_id=run.id,
        outcome=Outcome.GATE_REJECTED,
        training_job_name=training_job_name,
        metric_value=decision.value,
        model_data_url=model_data_url,
        started_at=run.started_at,
        finished_at=finished_at,
        reason=decision.reason,
    )
