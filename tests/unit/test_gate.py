"""The quality gate: floor, regression against the serving model, missing metrics."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from retraining_operator.api import (
    CurrentRun,
    GateEvaluationSpec,
    GateSpec,
    HistoryEntry,
    Outcome,
    RetrainingPolicyStatus,
    RunStage,
    ServingStatus,
)
from retraining_operator.reconcile.gate import (
    evaluate_gate,
    rejection_history_entry,
    serving_metric_value,
)

GATE = GateSpec(metric="validation:mAP", minimum=0.5, max_regression=0.01)
T0 = datetime(2026, 11, 24, 22, 5, tzinfo=UTC)


def test_passes_above_floor_and_within_regression() -> None:
    decision = evaluate_gate(GATE, {"validation:mAP": 0.605}, serving_value=0.61, job_name="j1")

    assert decision.passed
    assert decision.value == 0.605
    assert decision.required == pytest.approx(0.6)
    assert decision.serving_value == 0.61
    assert "j1" in decision.reason
    assert "passes" in decision.reason


def test_fails_below_floor() -> None:
    decision = evaluate_gate(GATE, {"validation:mAP": 0.42}, serving_value=None)

    assert not decision.passed
    assert decision.value == 0.42
    assert "below gate.minimum 0.5" in decision.reason
    assert "not deployed" in decision.reason


def test_fails_on_regression_against_serving_model() -> None:
    decision = evaluate_gate(GATE, {"validation:mAP": 0.58}, serving_value=0.61)

    assert not decision.passed
    assert "gate.maxRegression" in decision.reason
    assert "0.61" in decision.reason
    assert "gate.minimum" not in decision.reason  # 0.58 clears the floor


def test_both_bars_failing_are_both_named() -> None:
    decision = evaluate_gate(GATE, {"validation:mAP": 0.3}, serving_value=0.61)
    assert not decision.passed
    assert "gate.minimum" in decision.reason
    assert "gate.maxRegression" in decision.reason


def test_exact_regression_bound_passes_despite_float_noise() -> None:
    # 0.61 - 0.01 == 0.6 on paper, 0.59999999999999998 in floats.
    assert evaluate_gate(GATE, {"validation:mAP": 0.6}, serving_value=0.61).passed
    assert not evaluate_gate(GATE, {"validation:mAP": 0.5999}, serving_value=0.61).passed


def test_missing_metric_fails_with_reason() -> None:
    decision = evaluate_gate(GATE, {"train:progress": 100.0}, serving_value=0.61, job_name="j2")

    assert not decision.passed
    assert decision.value is None
    assert "reported no validation:mAP" in decision.reason
    assert "train:progress" in decision.reason


def test_nan_metric_fails() -> None:
    assert not evaluate_gate(GATE, {"validation:mAP": math.nan}).passed


def test_no_bars_passes_and_says_so() -> None:
    gate = GateSpec(metric="validation:mAP", minimum=None, max_regression=None)
    decision = evaluate_gate(gate, {"validation:mAP": 0.01})
    assert decision.passed
    assert decision.required is None
    assert "no bar" in decision.reason


def test_unknown_serving_value_only_checks_floor() -> None:
    decision = evaluate_gate(GATE, {"validation:mAP": 0.55}, serving_value=None)
    assert decision.passed
    assert "regression was not checked" in decision.reason


def test_held_out_evaluation_says_where_regression_is_judged() -> None:
    gate = GATE.model_copy(update={"evaluation": GateEvaluationSpec()})
    decision = evaluate_gate(gate, {"validation:mAP": 0.55}, serving_value=None)
    assert decision.passed
    assert "regression was not checked" not in decision.reason
    assert "held-out images (gate.evaluation)" in decision.reason


def test_serving_value_from_status_or_history() -> None:
    assert serving_metric_value(RetrainingPolicyStatus()) is None
    direct = RetrainingPolicyStatus(serving=ServingStatus(model_name="m2", metric_value=0.7))
    assert serving_metric_value(direct) == 0.7
    from_history = RetrainingPolicyStatus(
        serving=ServingStatus(model_name="m2"),
        history=[
            HistoryEntry(run_id="r3", outcome=Outcome.GATE_REJECTED, metric_value=0.9),
            HistoryEntry(run_id="r2", outcome=Outcome.DEPLOYED, model_name="m2", metric_value=0.66),
            HistoryEntry(run_id="r1", outcome=Outcome.DEPLOYED, model_name="m1", metric_value=0.6),
        ],
    )
    assert serving_metric_value(from_history) == 0.66
    external = RetrainingPolicyStatus(serving=ServingStatus(model_name="hand-made"))
    assert serving_metric_value(external) is None


def test_rejection_history_entry() -> None:
    run = CurrentRun(id="r1", stage=RunStage.EVALUATING, started_at=T0)
    decision = evaluate_gate(GATE, {"validation:mAP": 0.42})
    finished = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)

    entry = rejection_history_entry(
        run,
        decision,
        training_job_name="job-1",
        model_data_url="s3://b/out/job-1/output/model.tar.gz",
        finished_at=finished,
    )

    assert entry.outcome is Outcome.GATE_REJECTED
    assert entry.metric_value == 0.42
    assert entry.reason == decision.reason
    assert entry.model_name is None  # never became a SageMaker model
    assert (entry.started_at, entry.finished_at) == (T0, finished)
    assert entry.to_wire()["outcome"] == "GateRejected"


@pytest.mark.parametrize(
    ("gate", "problem"),
    [
        ({"minimum": -0.5}, "greater than or equal to 0"),
        ({"metric": "validation:mAP", "minimum": 50}, "at most 1 for a mAP metric"),
    ],
)
def test_gate_floor_is_refused_where_no_model_could_meet_it(
    gate: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        GateSpec.model_validate(gate)


def test_a_floor_above_one_is_fine_for_a_metric_that_is_not_a_fraction() -> None:
    assert GateSpec.model_validate({"metric": "validation:loss_inv", "minimum": 50}).minimum == 50
