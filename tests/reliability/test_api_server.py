"""The Kubernetes side: the API server goes away, 500 policies wake up at once, and people
write invalid specs. All against the real kube-apiserver + etcd and the real operator."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from reliability.conftest import CaseReport
from reliability.scene import Scene, per_second
from retraining_operator.api import API_GROUP, API_VERSION, PLURAL
from retraining_operator.config import OperatorConfig
from support.apiserver import start_apiserver, start_replica, stop_apiserver, stop_replica

pytestmark = [pytest.mark.reliability, pytest.mark.kube, pytest.mark.e2e]

OUTAGE_SECONDS = 60.0


@pytest.mark.slow
def test_api_server_outage_then_the_operator_reconciles_what_changed_meanwhile(
    scene: Scene, report: CaseReport
) -> None:
    report.case(6, "API server stopped, then restarted")
    report.inject(
        f"kube-apiserver stopped {OUTAGE_SECONDS:.0f} s (etcd kept); meanwhile 10 new A2I loops "
        "and a spec change (minNewSamples 100 -> 12) made through a second API server replica "
        "on the same etcd"
    )
    aws = scene.aws
    plane = scene.kube.plane
    world = scene.seed(5)
    aws.sagemaker.durations.training_training = 3600.0
    op = scene.operator().start()
    scene.apply(scene.policy(min_new_samples=100))
    scene.wait(
        lambda: scene.status().get("ingest", {}).get("pendingSamples") == 5,
        timeout=60,
        what="the first poll",
    )
    generation = scene.get()["metadata"]["generation"]  # type: ignore[index]

    outage = stop_apiserver(plane)
    try:
        aws.a2i.add_loops("fd-demo", 10, interval=1.0)
        replica = start_replica(plane, outage)
        try:
            patch = {"spec": {"dataset": {"minNewSamples": 12}}}
            scene.kube.kubectl(
                "patch", "rtp", "pascal-detector", "--type=merge", "-p", json.dumps(patch),
                namespace=scene.namespace, kubeconfig=replica.kubeconfig, check=True,
            )  # fmt: skip
        finally:
            stop_replica(plane, replica)
        remaining = OUTAGE_SECONDS - (time.monotonic() - outage.stopped_at)
        assert op.alive(), f"the operator died with the API server\n{op.log()}"
        time.sleep(max(0.0, remaining))
        assert op.alive(), f"the operator died during the outage\n{op.log()}"
    finally:
        down = start_apiserver(plane, outage)
    back = time.monotonic()

    scene.wait(
        lambda: scene.status().get("observedGeneration") == generation + 1,
        timeout=90,
        what="the spec change to be observed",
    )
    noticed = time.monotonic() - back
    run = scene.wait(
        lambda: (r := scene.run()).get("trainingJobName") and r, timeout=60, what="a run"
    )
    reconciled = time.monotonic() - back
    status = scene.status()
    window = [
        c
        for c in aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops")
        if outage.stopped_wall <= c.wall_time <= time.time()
    ]
    logs = scene.logs()
    report.observe(
        outage_s=round(down, 1),
        polls_during_outage_and_recovery=len(window),
        stale_writes_refused=logs.count("changed since this pass read it"),
        operator_alive=op.alive(),
        operator_starts=op.starts,
        spec_change_observed_after_s=round(noticed, 1),
        run_started_after_s=round(reconciled, 1),
        samples_in_run=run["samples"]["new"],
        loops_ingested=status["ingest"]["ingestedLoops"],
        jobs=len(aws.sagemaker.training_job_names()),
    )
    report.summary()
    assert op.alive()
    assert op.starts == 1
    assert run["samples"]["new"] == 15
    assert status["ingest"]["ingestedLoops"] == 15
    assert len(aws.sagemaker.training_job_names()) == 1
    assert world.flow_definition_arn
    # The watch retries at most 5 s apart; the timer retries a refused write on its next tick.
    assert noticed < 15
    # One poll per pollInterval (10 s) at most, although no status could be written for 60 s.
    span = time.time() - outage.stopped_wall
    assert len(window) <= span / 10 + 2


REFUSED_EDITS = {
    "pollInterval 1s": {"humanLoops": {"pollInterval": "1s"}},
    "region not the flow definition's": {"aws": {"region": "eu-west-1"}},
    "strategy Rolling with blueGreen set": {"deployment": {"strategy": "Rolling"}},
    "minNewSamples -5": {"dataset": {"minNewSamples": -5}},
    "both algorithm and image": {"training": {"image": "111122223333.dkr.ecr/x:1"}},
    "strategy Sideways": {"deployment": {"strategy": "Sideways"}},
}
# Accepted by the schema and CEL, refused by the operator's own validation.
NOT_ASCENDING = {
    "deployment": {
        "strategy": "VariantShift",
        "blueGreen": None,
        "variantShift": {"steps": [50, 10, 100], "interval": "10s"},
    }
}


def test_invalid_spec_edits_are_refused_or_degraded_and_nothing_is_half_applied(
    scene: Scene, report: CaseReport
) -> None:
    report.case(12, "spec edited to invalid values")
    report.inject(
        f"{len(REFUSED_EDITS)} invalid merge patches during training ("
        + "; ".join(REFUSED_EDITS)
        + "), then variantShift steps [50, 10, 100] (valid for the schema), then a fix"
    )
    aws = scene.aws
    scene.seed(12)
    aws.sagemaker.durations.training_training = 3600.0
    scene.operator().start()
    scene.apply(scene.policy())
    job = scene.wait(lambda: scene.run().get("trainingJobName"), timeout=60, what="training")
    before = scene.get()
    assert before is not None

    refusals = {}
    for what, spec in REFUSED_EDITS.items():
        result = scene.kube.kubectl(
            "patch", "rtp", "pascal-detector", "--type=merge", "-p",
            json.dumps({"spec": spec}), namespace=scene.namespace,
        )  # fmt: skip
        refusals[what] = (result.returncode, result.stderr.strip())
    after = scene.get()
    assert after is not None

    mark = len(aws.log)
    patch = {"spec": NOT_ASCENDING}
    scene.kube.kubectl(
        "patch", "rtp", "pascal-detector", "--type=merge", "-p", json.dumps(patch),
        namespace=scene.namespace, check=True,
    )  # fmt: skip
    degraded = scene.wait(
        lambda: (c := scene.condition("Degraded")).get("reason") == "InvalidSpec" and c,
        timeout=30,
        what="Degraded InvalidSpec",
    )
    time.sleep(3)  # more passes with the invalid spec
    during = scene.status()
    changes = [
        c.operation
        for c in aws.log.calls()[mark:]
        if c.operation.startswith(("Create", "Update", "Delete", "Stop", "Put"))
    ]

    fix = {"spec": {"deployment": {"strategy": "BlueGreen", "variantShift": None}}}
    fix["spec"]["deployment"]["blueGreen"] = scene.policy()["spec"]["deployment"]["blueGreen"]
    scene.kube.kubectl(
        "patch", "rtp", "pascal-detector", "--type=merge", "-p", json.dumps(fix),
        namespace=scene.namespace, check=True,
    )  # fmt: skip
    healed = scene.wait(
        lambda: scene.condition("Degraded").get("status") == "False" and scene.status(),
        timeout=30,
        what="Degraded to clear",
    )
    report.observe(
        refused_by_api_server=sum(code != 0 for code, _ in refusals.values()),
        generation_changed_by_refusals=after["metadata"]["generation"]
        - before["metadata"]["generation"],
        degraded_reason=degraded["reason"],
        aws_changes_while_invalid=len(changes),
        job_kept=during.get("currentRun", {}).get("trainingJobName") == job,
        phase_while_invalid=during.get("phase"),
        phase_after_fix=healed.get("phase"),
        jobs=len(aws.sagemaker.training_job_names()),
    )
    report.summary()
    for what, (code, stderr) in refusals.items():
        assert code != 0, f"{what} was accepted"
        assert "is invalid" in stderr, stderr
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"] == before["spec"]
    assert "strictly ascending" in degraded["message"]
    assert "spec.deployment.variantShift" in degraded["message"]
    assert during["phase"] == "Failed"
    assert during["observedGeneration"] == before["metadata"]["generation"] + 1
    assert during["currentRun"]["trainingJobName"] == job  # the run is kept, untouched
    assert changes == []
    assert healed["phase"] == "Training"
    assert healed["currentRun"]["trainingJobName"] == job
    assert aws.sagemaker.training_job_names() == [job]
    assert aws.sagemaker.describe_training_job(job)["TrainingJobStatus"] == "InProgress"


POLICIES = 500
BUDGET = 60.0
TICK = OperatorConfig().tick_seconds  # the defaults
SPREAD = OperatorConfig().poll_spread_seconds
OBSERVE_SECONDS = 50.0


@pytest.mark.slow
def test_five_hundred_policies_restarted_at_once_spread_their_polls_within_budget(
    scene: Scene, report: CaseReport
) -> None:
    report.case(11, f"{POLICIES} policies restarted at once")
    report.inject(
        f"{POLICIES} policies created while the operator is down, then one operator started "
        f"(--tick-seconds={TICK:g}, --aws-calls-per-second={BUDGET:g}); "
        f"observed {OBSERVE_SECONDS:.0f} s"
    )
    aws = scene.aws
    scene.seed(0)
    bodies = scene.idle_policies("p-", POLICIES)
    created = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda body: scene.custom.create_namespaced_custom_object(
                    API_GROUP, API_VERSION, scene.namespace, PLURAL, body
                ),
                bodies,
            )
        )
    create_seconds = time.monotonic() - created
    listed = scene.custom.list_namespaced_custom_object(
        API_GROUP, API_VERSION, scene.namespace, PLURAL
    )["items"]
    assert len(listed) == POLICIES

    op = scene.operator(f"--aws-calls-per-second={BUDGET:g}", tick=TICK)
    began = time.time()
    op.start()
    time.sleep(OBSERVE_SECONDS)
    assert op.alive(), op.log()
    ended = time.time()

    calls = [c for c in aws.log.calls() if began <= c.wall_time < ended]
    most, mean = per_second([c.wall_time for c in calls])
    first_poll: dict[str, float] = {}
    for call in calls:
        key = call.params.get("Key", "")
        if call.operation == "GetObject" and key.endswith("/ledger/head.json"):
            first_poll.setdefault(key.split("/")[1], call.wall_time)
    polled = sorted(first_poll.values())
    busiest_first, _ = per_second(polled)
    statuses = scene.custom.list_namespaced_custom_object(
        API_GROUP, API_VERSION, scene.namespace, PLURAL
    )["items"]
    recorded = sum(
        1 for s in statuses if (s.get("status") or {}).get("ingest", {}).get("lastPollTime")
    )
    report.observe(
        create_500_s=round(create_seconds, 1),
        policies_polled=len(first_poll),
        first_polls_span_s=round(polled[-1] - polled[0], 1) if polled else 0,
        max_first_polls_in_1s=busiest_first,
        first_polls_within_s=round(polled[-1] - began, 1) if polled else 0,
        aws_calls=len(calls),
        max_calls_in_1s=most,
        mean_calls_per_s=round(mean, 1),
        budget_per_s=BUDGET,
        statuses_with_a_poll=recorded,
        operator_starts=op.starts,
    )
    report.summary()
    assert len(first_poll) == POLICIES  # every policy polled within the window
    # Not a thundering herd: the first polls are spread over the spread window (30 s) by
    # each policy's UID-derived offset, never more than a tenth of them in one second.
    assert polled[-1] - polled[0] >= 0.7 * SPREAD
    assert busiest_first <= POLICIES / 10
    # The operator-wide token bucket: never more than burst + rate calls in one second
    # (counted at the stand-ins, so a few ms of network jitter get 5 % of slack).
    assert most <= 2 * BUDGET * 1.05
    assert len(calls) <= BUDGET * OBSERVE_SECONDS + BUDGET
    assert recorded == POLICIES
