"""The restricted-profile checker is only worth something if it can fail: feed it bad pods."""

from __future__ import annotations

from typing import Any

import pytest
from helmkit import one, render
from pss_cases import CASES, Case
from pss_restricted import violations


@pytest.fixture(scope="module")
def chart_pod() -> dict[str, Any]:
    spec: dict[str, Any] = one(render({}), "Deployment")["spec"]["template"]["spec"]
    return spec


def test_chart_pod_is_clean(chart_pod: dict[str, Any]) -> None:
    assert violations(chart_pod) == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_checker_names_the_broken_control(case: Case, chart_pod: dict[str, Any]) -> None:
    found = violations(case.apply(chart_pod))
    if case.control is None:
        assert found == []
    else:
        assert found, f"{case.id} slipped through"
        assert any(v.startswith(case.control + ":") for v in found), found


def test_pod_level_settings_cover_containers_that_set_nothing() -> None:
    # runAsNonRoot and seccomp may come from the pod alone; capabilities and escalation may not.
    pod = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "c",
                "image": "x",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    assert violations(pod) == []
    pod["containers"][0]["securityContext"] = {}
    assert sorted(v.split(":")[0] for v in violations(pod)) == [
        "allowPrivilegeEscalation",
        "capabilities",
    ]
    del pod["securityContext"]
    assert {v.split(":")[0] for v in violations(pod)} == {
        "allowPrivilegeEscalation",
        "capabilities",
        "runAsNonRoot",
        "seccompProfile",
    }


def test_apparmor_annotations_are_checked() -> None:
    pod: dict[str, Any] = {"containers": []}
    key = "container.apparmor.security.beta.kubernetes.io/operator"
    assert violations(pod, {key: "runtime/default"}) == []
    assert violations(pod, {key: "localhost/operator"}) == []
    assert violations(pod, {key: "unconfined"}) == [f"appArmorProfile: annotation {key}=unconfined"]
