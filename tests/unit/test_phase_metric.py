"""rtp_phase has a series only for the phases a policy has been in (issue 18: an idle policy
costs one labelled child, not seven) and for every phase once entered, Failed included (issue
32), and a deleted policy keeps no series at all."""

from __future__ import annotations

from typing import NoReturn

import pytest
from prometheus_client.metrics import MetricWrapperBase

from retraining_operator import metrics
from retraining_operator.api import Phase
from retraining_operator.config import OperatorConfig
from retraining_operator.policy_pass.context import PolicyMemo, PolicyView
from retraining_operator.policy_pass.controller import Controller
from retraining_operator.reconcile.naming import PolicyRef


def _phases(namespace: str, policy: str) -> dict[str, float]:
    return {
        sample.labels["phase"]: sample.value
        for family in metrics.REGISTRY.collect()
        if family.name == "rtp_phase"
        for sample in family.samples
        if sample.labels["namespace"] == namespace and sample.labels["policy"] == policy
    }


def test_an_idle_policy_has_one_phase_series() -> None:
    metrics.set_phase("ns-phase", "idle", "Collecting")
    metrics.set_phase("ns-phase", "idle", "Collecting", "Collecting")
    assert _phases("ns-phase", "idle") == {"Collecting": 1}


def test_a_phase_left_reads_0_and_the_current_one_1() -> None:
    metrics.set_phase("ns-phase", "busy", "Collecting")
    metrics.set_phase("ns-phase", "busy", "Training", "Collecting")
    metrics.set_phase("ns-phase", "busy", "Serving", "Training")
    assert _phases("ns-phase", "busy") == {"Collecting": 0, "Training": 0, "Serving": 1}


def test_a_deleted_policy_leaves_no_series_and_others_keep_theirs() -> None:
    for policy in ("gone", "stays"):
        metrics.set_phase("ns-forget", policy, "Collecting")
        metrics.PENDING_SAMPLES.labels("ns-forget", policy).set(3)
        metrics.RUNS.labels("ns-forget", policy, "Succeeded").inc()
        metrics.REVIEWER_IMAGES.labels("ns-forget", policy, "w1").set(2)
    metrics.forget_policy("ns-forget", "gone")
    policies = {
        sample.labels.get("policy")
        for family in metrics.REGISTRY.collect()
        for sample in family.samples
        if sample.labels.get("namespace") == "ns-forget"
    }
    assert policies == {"stays"}


def test_every_metric_labelled_by_policy_is_forgotten() -> None:
    labelled = {
        name
        for name, value in vars(metrics).items()
        if isinstance(value, MetricWrapperBase)
        and {"namespace", "policy"} <= set(value._labelnames)
    }
    assert labelled == {
        name for name, value in vars(metrics).items() if value in metrics._PER_POLICY
    }


@pytest.mark.parametrize("phase", list(Phase))
def test_every_phase_has_its_series_once_entered(phase: Phase) -> None:
    metrics.set_phase("ns-every", f"p-{phase.value.lower()}", "Collecting")
    metrics.set_phase("ns-every", f"p-{phase.value.lower()}", phase.value, "Collecting")
    assert _phases("ns-every", f"p-{phase.value.lower()}")[phase.value] == 1


def test_a_refused_policy_reports_phase_failed_and_its_degraded_condition() -> None:
    """The pass that refuses a policy (here: an invalid spec, before any AWS call) reports
    like any other: rtp_phase{phase="Failed"} 1 and rtp_condition Degraded InvalidSpec."""
    ref = PolicyRef(
        namespace="ns-refused", name="broken", uid="0f1e2d3c-4b5a-4968-8776-655443322110"
    )
    controller = Controller(OperatorConfig(), _no_session)
    memo = PolicyMemo()
    controller.reconcile(PolicyView(ref, 1, {}, {"nonsense": True}, {}), lambda _: None, memo)
    assert _phases("ns-refused", "broken") == {"Failed": 1}
    degraded = [
        sample.labels
        for family in metrics.REGISTRY.collect()
        if family.name == "rtp_condition"
        for sample in family.samples
        if sample.labels["policy"] == "broken" and sample.labels["type"] == "Degraded"
    ]
    assert degraded == [
        {
            "namespace": "ns-refused",
            "policy": "broken",
            "type": "Degraded",
            "status": "True",
            "reason": "InvalidSpec",
        }
    ]
    assert memo.status_series.phase == "Failed"


def _no_session(ref: PolicyRef, spec: object) -> NoReturn:
    raise AssertionError("a refused policy makes no AWS session")
