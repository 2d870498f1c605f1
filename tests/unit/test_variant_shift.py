"""Variant shift (pure): configs, analysis of fetched numbers, the step machine on a test clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from retraining_operator.api import VariantShiftSpec
from retraining_operator.reconcile.rollout.decision import (
    Analyse,
    CreateEndpoint,
    Decision,
    RolloutResult,
    SetWeights,
    UpdateEndpoint,
    Wait,
)
from retraining_operator.reconcile.rollout.endpoint import EndpointView
from retraining_operator.reconcile.rollout.errors import RolloutError
from retraining_operator.reconcile.rollout.plan import plan_rollout
from retraining_operator.reconcile.rollout.requests import (
    ConfigTarget,
    LiveConfig,
    ModelSource,
    RolloutNames,
)
from retraining_operator.reconcile.rollout.variant_shift.analysis import (
    SERIES_ERRORS,
    SERIES_INVOCATIONS,
    SERIES_LATENCY_COUNT,
    SERIES_LATENCY_SUM,
    StepVerdict,
    VariantSample,
    analyse_step,
    sample,
)
from retraining_operator.reconcile.rollout.variant_shift.configs import (
    ShiftVariants,
    alternate_variant_name,
    drop_variant_request,
    shift_config_request,
    shift_variants,
    split_weight,
)
from retraining_operator.reconcile.rollout.variant_shift.steps import (
    ShiftFacts,
    decide_shift,
    step_of,
)
from unit.rollout_policies import (
    IMAGE,
    MODEL_DATA,
    POLICY,
    RUN_ID,
    T0,
    current_config,
    endpoint,
    run,
    single_variant_config,
    spec,
)

NAMES = RolloutNames.for_run(POLICY, RUN_ID)
VS = VariantShiftSpec(steps=[10, 50, 100], interval="10m", max5xxRate=0.01, maxLatencyIncrease=0.2)
SHIFT = spec(strategy="VariantShift", variantShift=VS.to_wire())


# ---------------------------------------------------------------------------------------
# Configs


def test_shift_variant_names_alternate() -> None:
    assert alternate_variant_name("AllTraffic") == "AllTraffic-alt"
    assert len(alternate_variant_name("x" * 63)) == 63
    base = single_variant_config()
    assert shift_variants(base, variant_name="AllTraffic", model_name="new") == ShiftVariants(
        old="AllTraffic", new="AllTraffic-alt"
    )
    after_one_shift = {"ProductionVariants": [{"VariantName": "AllTraffic-alt", "ModelName": "m"}]}
    assert shift_variants(
        after_one_shift, variant_name="AllTraffic", model_name="new"
    ) == ShiftVariants(old="AllTraffic-alt", new="AllTraffic")
    user_named = {"ProductionVariants": [{"VariantName": "Blue", "ModelName": "m"}]}
    assert shift_variants(user_named, variant_name="AllTraffic", model_name="new").old == "Blue"


def test_shift_variants_in_the_shift_config_find_the_new_model() -> None:
    shift = {
        "ProductionVariants": [
            {"VariantName": "AllTraffic", "ModelName": "old"},
            {"VariantName": "Experimental", "ModelName": "theirs"},
            {"VariantName": "AllTraffic-alt", "ModelName": "new"},
        ]
    }
    assert shift_variants(shift, variant_name="AllTraffic", model_name="new") == ShiftVariants(
        old="AllTraffic", new="AllTraffic-alt"
    )
    final = {"ProductionVariants": [{"VariantName": "AllTraffic-alt", "ModelName": "new"}]}
    assert shift_variants(final, variant_name="AllTraffic", model_name="new").old is None


def test_shift_variants_refuse_a_half_done_shift() -> None:
    both = {
        "EndpointConfigName": "c",
        "ProductionVariants": [
            {"VariantName": "AllTraffic", "ModelName": "a"},
            {"VariantName": "AllTraffic-alt", "ModelName": "b"},
        ],
    }
    with pytest.raises(RolloutError, match="half-done"):
        shift_variants(both, variant_name="AllTraffic", model_name="new")


def test_shift_config_adds_the_new_variant_at_the_first_step() -> None:
    request = shift_config_request(
        ConfigTarget(POLICY, RUN_ID, NAMES.config, NAMES.model), SHIFT, LiveConfig(current_config())
    )
    by_name = {v["VariantName"]: v for v in request["ProductionVariants"]}
    assert list(by_name) == ["AllTraffic", "Experimental", "AllTraffic-alt"]
    assert by_name["AllTraffic"]["ModelName"] == "od-model-2024"
    assert by_name["AllTraffic"]["InitialVariantWeight"] == 0.9
    assert by_name["AllTraffic-alt"]["ModelName"] == NAMES.model
    assert by_name["AllTraffic-alt"]["InitialVariantWeight"] == 0.1
    # The new variant gets the old one's instances; the user's variant keeps its weight.
    assert by_name["AllTraffic-alt"]["InstanceType"] == "ml.m5.xlarge"
    assert by_name["AllTraffic-alt"]["InitialInstanceCount"] == 2
    assert by_name["Experimental"]["InitialVariantWeight"] == 0.25
    assert request["DataCaptureConfig"] == current_config()["DataCaptureConfig"]


def test_plan_rollout_for_variant_shift_sends_no_deployment_config() -> None:
    plan = plan_rollout(
        POLICY,
        SHIFT,
        run_id=RUN_ID,
        source=ModelSource(MODEL_DATA, IMAGE),
        live=LiveConfig(single_variant_config()),
    )
    assert len(plan.create_endpoint_config["ProductionVariants"]) == 2
    assert plan.update_endpoint == {
        "EndpointName": "od-endpoint",
        "EndpointConfigName": NAMES.config,
        "RetainAllVariantProperties": True,
        "ExcludeRetainedVariantProperties": [{"VariantPropertyType": "DesiredWeight"}],
    }


def test_drop_variant_gives_the_pair_weight_back() -> None:
    shift = shift_config_request(
        ConfigTarget(POLICY, RUN_ID, NAMES.config, NAMES.model), SHIFT, LiveConfig(current_config())
    )
    rollback = drop_variant_request(
        ConfigTarget(POLICY, RUN_ID, NAMES.rollback_config, NAMES.model),
        LiveConfig(dict(shift)),
        drop="AllTraffic-alt",
        keep="AllTraffic",
    )
    variants = {v["VariantName"]: v for v in rollback["ProductionVariants"]}
    assert set(variants) == {"AllTraffic", "Experimental"}
    assert variants["AllTraffic"]["InitialVariantWeight"] == 1.0
    assert variants["AllTraffic"]["ModelName"] == "od-model-2024"
    final = drop_variant_request(
        ConfigTarget(POLICY, RUN_ID, NAMES.final_config, NAMES.model),
        LiveConfig(dict(shift)),
        drop="AllTraffic",
        keep="AllTraffic-alt",
    )
    assert [v["VariantName"] for v in final["ProductionVariants"]] == [
        "Experimental",
        "AllTraffic-alt",
    ]
    with pytest.raises(RolloutError, match="lacks variant"):
        drop_variant_request(
            ConfigTarget(POLICY, RUN_ID, "x", NAMES.model),
            LiveConfig(dict(final)),
            drop="AllTraffic",
            keep="AllTraffic-alt",
        )


def test_split_weight() -> None:
    assert split_weight(1.0, 10) == (0.9, 0.1)
    assert split_weight(2.0, 50) == (1.0, 1.0)
    assert split_weight(1.0, 100) == (0.0, 1.0)


# ---------------------------------------------------------------------------------------
# Analysis


def test_sample_sums_points_from_the_window_start() -> None:
    series = {
        SERIES_INVOCATIONS: [(T0, 100.0), (T0 + timedelta(minutes=1), 50.0)],
        SERIES_ERRORS: [(T0, 5.0), (T0 + timedelta(minutes=1), 1.0)],
        SERIES_LATENCY_SUM: [(T0 + timedelta(minutes=1), 5000.0)],
        SERIES_LATENCY_COUNT: [(T0 + timedelta(minutes=1), 50.0)],
    }
    later = sample(series, T0 + timedelta(seconds=30))
    assert later == VariantSample(50.0, 1.0, 5000.0, 50.0)
    assert later.error_rate == 0.02
    assert later.mean_latency == 100.0
    assert sample({}, T0).error_rate is None


def test_analysis_passes_healthy_numbers() -> None:
    verdict = analyse_step(
        new=VariantSample(1000, 5, 110_000, 1000),
        old=VariantSample(9000, 40, 900_000, 9000),
        firing_alarms=[],
        spec=VS,
    )
    assert verdict.passed, verdict
    assert "5XX rate 0.0050" in verdict.summary


def test_analysis_fails_on_5xx_rate() -> None:
    verdict = analyse_step(
        new=VariantSample(1000, 11, 100_000, 1000), old=None, firing_alarms=[], spec=VS
    )
    assert not verdict.passed
    assert "5XX rate 0.0110 (11/1000) is above max5xxRate 0.01" in verdict.text


def test_analysis_fails_on_latency_increase() -> None:
    verdict = analyse_step(
        new=VariantSample(100, 0, 12_100, 100),
        old=VariantSample(100, 0, 10_000, 100),
        firing_alarms=[],
        spec=VS,
    )
    assert not verdict.passed
    assert "+21%" in verdict.text


def test_analysis_fails_on_alarms_even_without_metrics() -> None:
    verdict = analyse_step(new=None, old=None, firing_alarms=["od-5xx"], spec=VS)
    assert not verdict.passed
    assert "od-5xx" in verdict.text
    assert analyse_step(new=None, old=None, firing_alarms=[], spec=VS).passed


def test_no_traffic_is_not_a_failure() -> None:
    verdict = analyse_step(new=VariantSample(), old=VariantSample(), firing_alarms=[], spec=VS)
    assert verdict.passed
    assert "no invocations" in verdict.summary


def test_step_of_matches_with_tolerance() -> None:
    assert step_of(10.0, [10, 50, 100]) == 0
    assert step_of(49.8, [10, 50, 100]) == 1
    assert step_of(30.0, [10, 50, 100]) is None


# ---------------------------------------------------------------------------------------
# The step machine, driven by a tiny simulated endpoint and an injected clock


OLD, NEW = "AllTraffic", "AllTraffic-alt"
PAIR = ShiftVariants(old=OLD, new=NEW)
PASS = StepVerdict(passed=True, summary="ok")


class Sim:
    """Applies the machine's decisions to an endpoint dict, as SageMaker would (instantly)."""

    def __init__(self) -> None:
        self.now = T0
        self.config = "base-config"
        self.weights = {OLD: 1.0}
        self.run = run()
        self.calls: list[tuple[type, Any]] = []

    def view(self) -> EndpointView:
        return EndpointView.from_describe(
            endpoint(config=self.config, variants={k: (v, v) for k, v in self.weights.items()})
        )

    def decide(self, verdict: StepVerdict | None = None) -> Decision:
        variants = PAIR if self.config == NAMES.config else None
        facts = ShiftFacts(
            endpoint=self.view(), names=NAMES, variants=variants, run=self.run, spec=VS,
            now=self.now,
        )  # fmt: skip
        return decide_shift(facts, verdict)

    def apply(self, decision: Decision) -> None:
        match decision:
            case UpdateEndpoint(config_name=config):
                self.calls.append((UpdateEndpoint, config))
                self.config = config
                if config == NAMES.config:
                    self.weights = {OLD: 0.9, NEW: 0.1}
                elif config == NAMES.final_config:
                    self.weights = {NEW: 1.0}
                elif config == NAMES.rollback_config:
                    self.weights = {OLD: 1.0}
            case SetWeights(weights=weights):
                self.calls.append((SetWeights, weights))
                self.weights = dict(weights)
            case _:
                self.calls.append((type(decision), None))
        updates = getattr(decision, "run_updates", {})
        self.run = self.run.model_copy(update=dict(updates))

    def step(self, verdict: StepVerdict = PASS) -> Decision:
        decision = self.decide()
        if isinstance(decision, Analyse):
            decision = self.decide(verdict)
        self.apply(decision)
        return decision


def test_a_shift_steps_10_50_100_then_removes_the_old_variant() -> None:
    sim = Sim()
    first = sim.step()
    assert isinstance(first, UpdateEndpoint)
    assert first.config_name == NAMES.config
    assert isinstance(sim.step(), Wait)  # 10 % observed: the bake starts now
    assert sim.run.deploy_step == 0
    assert sim.run.deploy_step_started_at == T0

    sim.now += timedelta(minutes=4)
    during = sim.decide()
    assert isinstance(during, Analyse)
    assert during.window is not None
    assert not during.window.full  # alarms only during the bake
    assert isinstance(sim.step(), Wait)

    for expected_weights in ({OLD: 0.5, NEW: 0.5}, {OLD: 0.0, NEW: 1.0}):
        sim.now += timedelta(minutes=10)
        end = sim.decide()
        assert end.window is not None
        assert end.window.full
        assert end.window.baseline_since < end.window.new_since
        shifted = sim.step()
        assert isinstance(shifted, SetWeights)
        assert dict(shifted.weights) == expected_weights
        assert isinstance(sim.step(), Wait)  # next step's bake starts

    sim.now += timedelta(minutes=10)
    final = sim.step()
    assert isinstance(final, UpdateEndpoint)
    assert final.config_name == NAMES.final_config
    done = sim.decide()
    assert done.result is RolloutResult.SERVING


def test_a_failed_50_percent_step_removes_the_new_variant() -> None:
    sim = Sim()
    sim.step()
    sim.step()
    sim.now += timedelta(minutes=10)
    assert isinstance(sim.step(), SetWeights)  # 10 % passed -> 50 %
    sim.step()  # bake of 50 % starts
    sim.now += timedelta(minutes=10)
    bad = StepVerdict(passed=False, reasons=("5XX rate 0.2 above 0.01",))
    zero = sim.step(bad)
    assert isinstance(zero, SetWeights)
    assert dict(zero.weights) == {OLD: 1.0, NEW: 0.0}
    assert sim.run.message is not None
    assert "step 2 (50 %) failed" in sim.run.message
    removal = sim.step()
    assert isinstance(removal, UpdateEndpoint)
    assert removal.config_name == NAMES.rollback_config
    degraded = sim.decide()
    assert degraded.result is RolloutResult.DEGRADED
    assert degraded.reason is not None
    assert "5XX rate 0.2" in degraded.reason


def test_alarm_during_the_bake_rolls_back_before_the_interval_ends() -> None:
    sim = Sim()
    sim.step()
    sim.step()
    sim.now += timedelta(minutes=1)
    decision = sim.step(StepVerdict(passed=False, reasons=("alarm in ALARM: od-5xx",)))
    assert isinstance(decision, SetWeights)
    assert dict(decision.weights)[NEW] == 0.0


def test_busy_endpoint_gets_nothing_but_waiting() -> None:
    for status in ("Updating", "Creating", "SystemUpdating", "RollingBack"):
        decision = decide_shift(ShiftFacts(
            endpoint=EndpointView.from_describe(endpoint(status, config=NAMES.config)),
            names=NAMES, variants=None, run=run(), spec=VS, now=T0,
        ))  # fmt: skip
        assert isinstance(decision, Wait), status
        assert not decision.run_updates


def test_a_crash_after_set_weights_adopts_the_observed_step() -> None:
    sim = Sim()
    sim.step()
    sim.step()
    # SetWeights to 50 % went out, then the process died before recording step 1.
    sim.weights = {OLD: 0.5, NEW: 0.5}
    sim.now += timedelta(minutes=11)
    decision = sim.decide()
    assert isinstance(decision, Wait)
    assert decision.run_updates["deploy_step"] == 1
    assert decision.run_updates["deploy_step_started_at"] == sim.now


def test_a_crash_after_setting_weight_zero_continues_the_rollback() -> None:
    sim = Sim()
    sim.step()
    sim.step()
    sim.weights = {OLD: 1.0, NEW: 0.0}  # our SetWeights(0) landed; the run did not record it
    decision = sim.decide()
    assert isinstance(decision, UpdateEndpoint)
    assert decision.config_name == NAMES.rollback_config


def test_a_rolled_back_add_is_degraded_not_retried() -> None:
    sim = Sim()
    sim.step()  # UpdateEndpoint to the shift config requested
    sim.config = "base-config"  # SageMaker failed it and went back
    sim.weights = {OLD: 1.0}
    decision = sim.decide()
    assert decision.result is RolloutResult.DEGRADED
    assert [c for c in sim.calls if c[0] is UpdateEndpoint] == [(UpdateEndpoint, NAMES.config)]


def test_a_rolled_back_removal_of_the_old_variant_is_degraded() -> None:
    sim = Sim()
    sim.config = NAMES.config
    sim.weights = {OLD: 0.0, NEW: 1.0}
    sim.run = run(endpoint_config_name=NAMES.final_config, deploy_step=2, deploy_step_started_at=T0)
    decision = sim.decide()
    assert decision.result is RolloutResult.DEGRADED
    assert "did not remove the old variant" in decision.message


def test_weights_changed_outside_the_operator_roll_back() -> None:
    sim = Sim()
    sim.step()
    sim.weights = {OLD: 0.7, NEW: 0.3}
    decision = sim.decide()
    assert isinstance(decision, SetWeights)
    assert "no step of [10, 50, 100]" in decision.message


def test_first_deployment_creates_the_endpoint_and_finishes_on_it() -> None:
    created = decide_shift(
        ShiftFacts(endpoint=None, names=NAMES, variants=None, run=run(), spec=VS, now=T0)
    )
    assert isinstance(created, CreateEndpoint)
    serving = decide_shift(ShiftFacts(
        endpoint=EndpointView.from_describe(endpoint(config=NAMES.config)),
        names=NAMES, variants=ShiftVariants(old=None, new=OLD), run=run(), spec=VS, now=T0,
    ))  # fmt: skip
    assert serving.result is RolloutResult.SERVING


def test_the_100_percent_step_still_has_a_latency_baseline_window() -> None:
    sim = Sim()
    sim.config = NAMES.config
    sim.weights = {OLD: 0.0, NEW: 1.0}
    started = T0 + timedelta(minutes=30)
    sim.run = run(endpoint_config_name=NAMES.config, deploy_step=2, deploy_step_started_at=started)
    sim.now = started + timedelta(minutes=10)
    window = sim.decide().window
    assert window is not None
    # Three intervals back: covers the 10 % and 50 % steps, when the old variant had traffic.
    assert window.baseline_since == started - timedelta(minutes=30)


def test_a_bake_waits_for_the_next_alarm_check_or_its_end_whichever_is_first() -> None:
    sim = Sim()
    sim.step()  # the shift config is requested
    started = sim.step()  # 10 % observed: the bake starts now, first check one poll later
    assert isinstance(started, Wait)
    assert started.delay == timedelta(seconds=30)
    sim.now += timedelta(minutes=5)
    midway = sim.step()
    assert isinstance(midway, Wait)
    assert midway.delay == timedelta(seconds=30)  # the poll: alarms are checked meanwhile
    sim.now += timedelta(minutes=4, seconds=45)
    near_end = sim.step()
    assert isinstance(near_end, Wait)
    assert near_end.delay == timedelta(seconds=15)  # exactly when the 10 m bake ends
    sim.now += near_end.delay
    assert isinstance(sim.step(), SetWeights)  # judged on time: 10 % passed -> 50 %
