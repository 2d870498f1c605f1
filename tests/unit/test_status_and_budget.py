"""Pure status bookkeeping and the AWS call budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from retraining_operator.api import (
    ConditionType,
    CurrentRun,
    HistoryEntry,
    Outcome,
    Phase,
    RetrainingPolicyStatus,
    RunStage,
    ServingStatus,
)
from retraining_operator.aws.session import CallBudget
from retraining_operator.reconcile import status as st

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_phase_follows_the_run_then_serving() -> None:
    run = CurrentRun(id="r1", stage=RunStage.EVALUATING, started_at=T0)
    assert (
        st.derive_phase(suspended=False, spec_error=False, current_run=run, serving=False)
        is Phase.EVALUATING
    )
    assert (
        st.derive_phase(suspended=False, spec_error=False, current_run=None, serving=True)
        is Phase.SERVING
    )
    assert (
        st.derive_phase(suspended=False, spec_error=False, current_run=None, serving=False)
        is Phase.COLLECTING
    )
    assert (
        st.derive_phase(suspended=True, spec_error=False, current_run=None, serving=True)
        is Phase.SUSPENDED
    )
    assert (
        st.derive_phase(suspended=False, spec_error=True, current_run=run, serving=True)
        is Phase.FAILED
    )


def test_condition_keeps_transition_time_while_status_holds() -> None:
    conds = st.set_condition(
        [],
        type=ConditionType.READY,
        status=True,
        reason="A",
        message="a",
        observed=st.Observation(T0, 1),
    )
    later = T0 + timedelta(minutes=5)
    same = st.set_condition(
        conds,
        type=ConditionType.READY,
        status=True,
        reason="B",
        message="b",
        observed=st.Observation(later, 2),
    )
    assert same[0].last_transition_time == T0
    assert same[0].reason == "B"
    flipped = st.set_condition(
        same,
        type=ConditionType.READY,
        status=False,
        reason="C",
        message="c",
        observed=st.Observation(later, 2),
    )
    assert flipped[0].last_transition_time == later
    assert len(flipped) == 1


def test_history_is_bounded_newest_first_and_deduplicated() -> None:
    history: list[HistoryEntry] = []
    for i in range(25):
        history = st.push_history(history, HistoryEntry(run_id=f"r{i}", outcome=Outcome.TRAINED))
    assert len(history) == 20
    assert history[0].run_id == "r24"
    assert history[-1].run_id == "r5"
    again = st.push_history(history, HistoryEntry(run_id="r24", outcome=Outcome.DEPLOYED))
    assert [h.run_id for h in again].count("r24") == 1
    assert again[0].outcome is Outcome.DEPLOYED


def test_conditions_report_a_rolled_back_run_until_a_later_success() -> None:
    status = RetrainingPolicyStatus(
        phase=Phase.SERVING,
        serving=ServingStatus(model_name="m1"),
        history=[
            HistoryEntry(run_id="r2", outcome=Outcome.ROLLED_BACK, reason="alarm od-5xx fired")
        ],
    )
    conds = {
        c.type: c
        for c in st.refresh_conditions(status, observed=st.Observation(T0, 3), degraded=None)
    }
    assert conds[ConditionType.DEGRADED].status == "True"
    assert conds[ConditionType.DEGRADED].reason == "RolledBack"
    assert "od-5xx" in conds[ConditionType.DEGRADED].message
    assert conds[ConditionType.READY].status == "False"
    # Ready names the problem, not only the phase (printer column Ready/Reason).
    assert conds[ConditionType.READY].reason == "RolledBack"
    assert conds[ConditionType.READY].message.startswith("Degraded in phase Serving: ")
    assert "od-5xx" in conds[ConditionType.READY].message
    status.history.insert(0, HistoryEntry(run_id="r3", outcome=Outcome.DEPLOYED))
    status.conditions = list(conds.values())
    conds = {
        c.type: c
        for c in st.refresh_conditions(status, observed=st.Observation(T0, 3), degraded=None)
    }
    assert conds[ConditionType.DEGRADED].status == "False"
    assert conds[ConditionType.READY].status == "True"
    assert conds[ConditionType.READY].message == "serving model m1"


def test_explicit_degradation_wins() -> None:
    status = RetrainingPolicyStatus(phase=Phase.COLLECTING)
    conds = {
        c.type: c
        for c in st.refresh_conditions(
            status, observed=st.Observation(T0, 1), degraded=("RoleNotAllowed", "role x refused")
        )
    }
    assert conds[ConditionType.DEGRADED].reason == "RoleNotAllowed"
    assert conds[ConditionType.PROGRESSING].status == "False"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_call_budget_spaces_calls_to_its_rate() -> None:
    clock = FakeClock()
    budget = CallBudget(5.0, burst=5, clock=clock, sleep=clock.sleep)
    for _ in range(55):
        budget.acquire()
    # 5 from the burst, then 50 more at 5/s = 10 s of waiting.
    assert abs(clock.now - 10.0) < 1e-6
    assert abs(budget.waited_seconds - 10.0) < 1e-6


def test_zero_rate_means_unlimited() -> None:
    clock = FakeClock()
    budget = CallBudget(0, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        budget.acquire()
    assert clock.now == 0.0
