"""Stop when told (issue 29): SIGTERM stops the operator within 5 s, releases its Lease, exits 0,
and the standby leads within one retry period.

Before: the operator logged "Operator is stopping" and "Activity 'cleanup' succeeded", then
stayed up (standalone until kopf's own 10-minute limit; with leader election it kept renewing
its Lease), so every pod stop became a SIGKILL after the grace period plus a Lease expiry:
about 45 s without a reconciler on each rollout of the operator.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from reliability.conftest import CaseReport
from reliability.scene import Scene
from support.operator import OPERATOR_NAMESPACE

pytestmark = [pytest.mark.reliability, pytest.mark.kube, pytest.mark.e2e]

LEASE = "rtp-a2i-retraining-operator"  # the chart's default (its RBAC names it)
RETRY = 2.0  # controller-runtime's retry period (the production default)
TIMING = ("--lease-duration=15", "--renew-deadline=10", f"--retry-period={RETRY:g}")


def _holder(scene: Scene) -> str:
    out = scene.kube.kubectl(
        "get", "lease", LEASE, "-o", "jsonpath={.spec.holderIdentity}", namespace=OPERATOR_NAMESPACE
    )
    return str(out.stdout.strip())


def test_sigterm_stops_within_5_s_releases_the_lease_and_the_standby_leads(
    scene: Scene, report: CaseReport
) -> None:
    report.case(21, "SIGTERM: stop in seconds, hand over the Lease")
    report.inject("SIGTERM to the leader while it reconciles 6 live policies (events on one)")
    scene.kube.kubectl(
        "delete", "lease", LEASE, "--ignore-not-found", namespace=OPERATOR_NAMESPACE, check=True
    )
    scene.seed(40)
    ops = [
        scene.operator(
            "--leader-election",
            f"--identity={identity}",
            f"--lease-namespace={OPERATOR_NAMESPACE}",
            f"--lease-name={LEASE}",
            *TIMING,
        )
        for identity in ("op-a", "op-b")
    ]
    leader, standby = ops
    leader.start()
    scene.wait(lambda: _holder(scene) == "op-a", timeout=60, what="op-a to lead")
    standby.start()
    scene.wait(
        lambda: "standby: lease" in standby.log_path.read_text(errors="replace"),
        timeout=60,
        what="op-b to wait as the standby",
    )
    queue = scene.aws.create_queue("shutdown-events")
    for body in scene.idle_policies("live-", 5):
        scene.apply(body)
    scene.apply(scene.policy(humanLoops={"events": {"sqsQueueUrl": queue}}, min_new_samples=1000))
    scene.wait(
        lambda: all(scene.status(n).get("observedGeneration") for n in scene_names(scene)),
        timeout=90,
        what="every policy reconciled",
    )
    assert leader.popen is not None
    sent = time.monotonic()
    leader.popen.send_signal(signal.SIGTERM)
    try:
        code = leader.popen.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 30 s after SIGTERM:\n{leader.log(40)}")
    stopped = time.monotonic() - sent
    released = _holder(scene) in ("", "op-b")
    taken = scene.wait(
        lambda: _holder(scene) == "op-b" and time.monotonic(), timeout=60, what="op-b to lead"
    )
    takeover = taken - sent
    report.observe(
        exit_code=code,
        stopped_s=round(stopped, 2),
        lease_released=released,
        standby_leads_after_s=round(takeover, 2),
    )
    report.summary()
    assert code == 0, leader.log(60)
    assert stopped <= 5.0, leader.log(60)
    assert released, _holder(scene)
    assert takeover <= stopped + RETRY + 1.0  # one retry period after the release (+ polling)
    log = leader.log_path.read_text(errors="replace")
    assert "released" in log


def scene_names(scene: Scene) -> list[str]:
    return [*(f"live-{i:03d}" for i in range(5)), "pascal-detector"]


def test_sigterm_stops_a_standby_and_a_standalone_operator_in_seconds(scene: Scene) -> None:
    scene.kube.kubectl(
        "delete", "lease", LEASE, "--ignore-not-found", namespace=OPERATOR_NAMESPACE, check=True
    )
    scene.seed(12)
    for body in scene.idle_policies("quiet-", 3):
        scene.apply(body)
    leader, standby = (
        scene.operator(
            "--leader-election",
            f"--identity={identity}",
            f"--lease-namespace={OPERATOR_NAMESPACE}",
            f"--lease-name={LEASE}",
            *TIMING,
        )
        for identity in ("op-a", "op-b")
    )
    leader.start()
    scene.wait(lambda: _holder(scene) == "op-a", timeout=60, what="op-a to lead")
    standby.start()
    scene.wait(
        lambda: "standby: lease" in standby.log_path.read_text(errors="replace"),
        timeout=60,
        what="op-b to wait as the standby",
    )
    for op in (standby, leader):  # the standby first: it must not take over on the way out
        assert op.popen is not None
        sent = time.monotonic()
        op.popen.send_signal(signal.SIGTERM)
        assert op.popen.wait(30) == 0, op.log(40)
        assert time.monotonic() - sent <= 5.0, op.log(40)
    standalone = scene.operator().start()
    scene.wait(
        lambda: "Initial authentication has finished" in standalone.log(),
        timeout=60,
        what="the standalone operator to run",
    )
    assert standalone.popen is not None
    sent = time.monotonic()
    standalone.popen.send_signal(signal.SIGTERM)
    assert standalone.popen.wait(30) == 0, standalone.log(40)
    assert time.monotonic() - sent <= 5.0, standalone.log(40)
