"""Two operators, one Lease: kill (or freeze) the active one inside its delicate windows and
count what happened in AWS.

Both processes run as the chart's ServiceAccount (its Lease Role included) with leader
election and distinct identities. Each is given its own AWS access key id, so the stand-ins'
request log (which records the key every request was signed with) attributes every call to
the process that made it.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import pytest

from reliability.conftest import CaseReport
from reliability.scene import Scene, manifest_loops
from support.operator import OPERATOR_NAMESPACE, OperatorProcess

pytestmark = [pytest.mark.reliability, pytest.mark.kube, pytest.mark.e2e]

LEASE = "rtp-a2i-retraining-operator"  # the chart's default: its full name
KEYS = {"op-a": "AKIAFAILOVERA0000001", "op-b": "AKIAFAILOVERB0000002"}
# Scaled-down Lease timings (duration 4 s, renew deadline 3 s, retry 0.5 s); the SIGKILL
# mid-ingest case runs with controller-runtime's 15/10/2, the production defaults.
SHORT = ("--lease-duration=4", "--renew-deadline=3", "--retry-period=0.5")
TAKEOVER_LIMIT = 30.0
LOOPS = 40


@dataclass
class Pair:
    leader: OperatorProcess
    standby: OperatorProcess


def _holder(scene: Scene) -> str:
    out = scene.kube.kubectl(
        "get", "lease", LEASE, "-o", "jsonpath={.spec.holderIdentity}", namespace=OPERATOR_NAMESPACE
    )
    return str(out.stdout.strip())


def _pair(scene: Scene, *timing: str) -> Pair:
    """op-a started first and leading, op-b waiting as the standby."""
    scene.kube.kubectl(
        "delete", "lease", LEASE, "--ignore-not-found", namespace=OPERATOR_NAMESPACE, check=True
    )
    ops = []
    for identity, key in KEYS.items():
        op = scene.operator(
            "--leader-election",
            f"--identity={identity}",
            f"--lease-namespace={OPERATOR_NAMESPACE}",
            f"--lease-name={LEASE}",
            *timing,
        )
        op.aws_env = {**op.aws_env, "AWS_ACCESS_KEY_ID": key}
        ops.append(op)
    leader, standby = ops
    leader.start()
    scene.wait(lambda: _holder(scene) == "op-a", timeout=60, what="op-a to lead")
    standby.start()
    scene.wait(
        lambda: "standby: lease" in standby.log_path.read_text(errors="replace"),
        timeout=60,
        what="op-b to wait as the standby",
    )
    return Pair(leader, standby)


def _calls_by(scene: Scene, identity: str, *, after: float = 0.0) -> list[object]:
    key = KEYS[identity]
    return [c for c in scene.aws.log.calls() if c.access_key == key and c.wall_time > after]


def _first_call_after(scene: Scene, identity: str, after: float) -> float:
    calls = scene.wait(
        lambda: _calls_by(scene, identity, after=after),
        timeout=TAKEOVER_LIMIT + 30,
        what=f"{identity}'s first AWS call",
    )
    return float(min(c.wall_time for c in calls)) - after  # type: ignore[attr-defined]


def _assert_one_job_with_every_loop_once(
    scene: Scene, report: CaseReport, **observed: object
) -> None:
    aws = scene.aws
    run = scene.wait(
        lambda: (r := scene.run()).get("trainingJobName") and r, timeout=90, what="training"
    )
    time.sleep(3)  # a few more passes (tick 1 s): nothing may be submitted again
    creates = aws.log.calls("sagemaker", "CreateTrainingJob")
    ok = [c for c in creates if c.ok]
    jobs = aws.sagemaker.training_job_names()
    loops = manifest_loops(aws, ok[0]) if ok else []
    every = {loop.name for loop in aws.a2i.loops("fd-demo")}
    report.observe(
        **observed,
        create_calls=len(creates),
        jobs_in_sagemaker=len(jobs),
        loops=len(every),
        loops_lost=len(every - set(loops)),
        loops_doubled=len(loops) - len(set(loops)),
    )
    report.summary()
    assert len(ok) == 1, [(c.access_key, c.outcome) for c in creates]
    assert jobs == [ok[0].params["TrainingJobName"]] == [run["trainingJobName"]]
    assert sorted(loops) == sorted(every)  # each loop exactly once: none lost, none doubled
    assert len(every) == LOOPS


def test_sigkill_of_the_leader_mid_ingest_standby_continues_with_default_lease_timings(
    scene: Scene, report: CaseReport
) -> None:
    report.case(15, "HA: SIGKILL the leader mid-ingest (Lease 15/10/2 s)")
    report.inject(
        "two operators, leader election with the production timings; the pending segment's "
        "PutObject held 3 s; SIGKILL the leader the moment it arrives (before the ledger commit)"
    )
    aws = scene.aws
    scene.seed(LOOPS)
    aws.sagemaker.durations.training_training = 3600.0
    pair = _pair(scene)
    latency = aws.faults.delay("s3", "PutObject", seconds=3.0)
    segment_put = scene.tripwire("s3", "PutObject")
    scene.apply(scene.policy(min_new_samples=LOOPS))

    assert segment_put.wait(90), f"no PutObject\n{pair.leader.log()}"
    pair.leader.kill()
    killed = time.time()
    aws.faults.remove(latency)
    assert (scene.status().get("ingest") or {}).get("pendingSamples", 0) == 0  # uncommitted

    takeover = _first_call_after(scene, "op-b", killed)
    assert _holder(scene) == "op-b"
    _assert_one_job_with_every_loop_once(
        scene,
        report,
        takeover_s=round(takeover, 1),
        leader_calls_after_kill=len(_calls_by(scene, "op-a", after=killed)),
    )
    assert takeover < TAKEOVER_LIMIT
    assert _calls_by(scene, "op-a", after=killed) == []
    creates = aws.log.calls("sagemaker", "CreateTrainingJob")
    assert {c.access_key for c in creates} == {KEYS["op-b"]}


def test_sigkill_of_the_leader_right_after_create_training_job_leaves_one_job(
    scene: Scene, report: CaseReport
) -> None:
    report.case(16, "HA: SIGKILL the leader right after CreateTrainingJob")
    report.inject(
        "two operators (Lease 4/3/0.5 s); CreateTrainingJob held in flight 4 s; SIGKILL the "
        "leader the moment it arrives; SageMaker still creates the job"
    )
    aws = scene.aws
    scene.seed(LOOPS)
    aws.sagemaker.durations.training_training = 3600.0
    pair = _pair(scene, *SHORT)
    aws.faults.delay("sagemaker", "CreateTrainingJob", seconds=4.0)
    create_arrived = scene.tripwire("sagemaker", "CreateTrainingJob")
    scene.apply(scene.policy(min_new_samples=LOOPS))

    assert create_arrived.wait(90), f"no CreateTrainingJob\n{pair.leader.log()}"
    pair.leader.kill()
    killed = time.time()
    assert not scene.run().get("trainingJobName"), "the kill came too late"

    takeover = _first_call_after(scene, "op-b", killed)
    _assert_one_job_with_every_loop_once(scene, report, takeover_s=round(takeover, 1))
    assert takeover < TAKEOVER_LIMIT
    submitted = [e.message for e in scene.events() if e.reason == "TrainingSubmitted"]
    assert any("adopted" in m for m in submitted), submitted
    assert _calls_by(scene, "op-a", after=killed) == []


def test_a_frozen_leader_resumed_after_the_takeover_makes_no_aws_call_and_exits(
    scene: Scene, report: CaseReport
) -> None:
    report.case(17, "HA: SIGSTOP the leader, takeover, SIGCONT")
    report.inject(
        "two operators (Lease 4/3/0.5 s); CreateTrainingJob held in flight 4 s; SIGSTOP the "
        "leader the moment it arrives; SIGCONT it once the standby works"
    )
    aws = scene.aws
    scene.seed(LOOPS)
    aws.sagemaker.durations.training_training = 3600.0
    pair = _pair(scene, *SHORT)
    aws.faults.delay("sagemaker", "CreateTrainingJob", seconds=4.0)
    create_arrived = scene.tripwire("sagemaker", "CreateTrainingJob")
    scene.apply(scene.policy(min_new_samples=LOOPS))

    assert create_arrived.wait(90), f"no CreateTrainingJob\n{pair.leader.log()}"
    assert pair.leader.popen is not None
    os.killpg(pair.leader.popen.pid, signal.SIGSTOP)
    frozen = time.time()
    takeover = _first_call_after(scene, "op-b", frozen)
    scene.wait(lambda: scene.run().get("trainingJobName"), timeout=60, what="the adopted job")
    os.killpg(pair.leader.popen.pid, signal.SIGCONT)
    resumed = time.time()
    # The resumed process finds its renewals too old (the fence), then the Lease moved on:
    # it stops kopf and exits 1 without a single AWS request.
    code = pair.leader.popen.wait(30)
    _assert_one_job_with_every_loop_once(
        scene,
        report,
        takeover_s=round(takeover, 1),
        old_leader_exit=code,
        old_leader_calls_after_resume=len(_calls_by(scene, "op-a", after=resumed)),
    )
    assert code == 1
    assert _calls_by(scene, "op-a", after=resumed) == []
    assert "leadership lost" in pair.leader.log(200)
    assert takeover < TAKEOVER_LIMIT
    assert _holder(scene) == "op-b"
