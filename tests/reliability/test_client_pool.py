"""AWS clients are shared per identity and nothing of a deleted policy stays (issue 18).

The real operator on the real kube-apiserver with 20 policies in one namespace, all acting
as the operator's own identity: /metrics shows one identity holding clients for 20 policies;
after the policies are deleted it shows none (no client, session or credential provider is
kept for a policy that is gone).
"""

from __future__ import annotations

import json

import pytest

from reliability.conftest import CaseReport
from reliability.scene import Scene

pytestmark = [pytest.mark.reliability, pytest.mark.kube, pytest.mark.e2e]

POLICIES = 20


def _gauge(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ", 1)[1])
    return None


def test_policies_share_one_identity_and_deleted_ones_leave_nothing(
    scene: Scene, report: CaseReport
) -> None:
    report.case(20, "client pool: 20 policies, one identity, then deleted")
    report.inject("20 idle policies in one namespace, then `kubectl delete rtp --all`")
    scene.seed(0)
    bodies = scene.idle_policies("pool-p", POLICIES, humanLoops={"pollInterval": "1h"})
    created = scene.kube.kubectl("apply", "-f", "-", input="\n---\n".join(map(json.dumps, bodies)))
    assert created.returncode == 0, created.stderr
    op = scene.operator(tick=30.0)
    op.start()

    def pool() -> tuple[float | None, float | None]:
        try:
            text = op.metrics()
        except OSError:  # not listening yet
            return None, None
        return _gauge(text, "rtp_aws_identities"), _gauge(text, "rtp_aws_sessions")

    def polled() -> int:
        return len(scene.aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops"))

    scene.wait(lambda: polled() >= POLICIES, timeout=120, what="every policy's first poll")
    scene.wait(lambda: pool() == (1.0, float(POLICIES)), timeout=30, what="one identity, 20 users")
    polls = polled()
    assumed = len(scene.aws.log.calls("sts", "AssumeRole"))

    deleted = scene.kube.kubectl("delete", "rtp", "--all", "--wait=true", namespace=scene.namespace)
    assert deleted.returncode == 0, deleted.stderr
    scene.wait(lambda: pool() == (0.0, 0.0), timeout=60, what="the pool to be empty")
    assert 'policy="pool-p' not in op.metrics()  # no series of a deleted policy stays
    report.observe(policies=POLICIES, polls=polls, assume_role_calls=assumed, after_delete=pool())
    report.summary()
    assert polls >= POLICIES
    assert op.alive()
    # Every watch event (each status write) ran the live-body slimming handler; kopf's
    # per-event "succeeded" line for it is filtered, so it is neither logged nor posted.
    log = op.log_path.read_text(errors="replace")
    assert "Handler 'slim'" not in log, op.log()
    events = scene.kube.kubectl("get", "events", "-o", "json", namespace=scene.namespace)
    assert events.returncode == 0, events.stderr
    assert "Handler 'slim'" not in events.stdout
