"""rtp_phase has a series only for the phases a policy has been in (issue 18: an idle policy
costs one labelled child, not seven)."""

from __future__ import annotations

from retraining_operator import metrics


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
