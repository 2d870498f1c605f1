"""Event storm (issue 19): thousands of A2I status-change events at once on one shared queue.

The real operator process consumes one SQS queue (moto) for 20 policies; the A2I emulator
publishes one EventBridge-envelope event per loop that ends. Memory must stay bounded (the
consumer stops receiving while its in-flight set is full), the operator's AWS call budget
must hold, and every loop must land in exactly one policy's pending data, once.

Its operator's last 20 s long poll (ReceiveMessage) may complete after the case ends; the
stand-ins' request log drops calls that arrived before a `clear()` (each test's reset), so the
next test's IAM audit never sees it (it once failed test_failover's teardown for that reason).

History: in its first run (issue 19's session) 4,999 of 5,000 loops were settled from events
within the wait; the case tolerates 0.1 % missing for that reason (what events miss, the
hourly backstop listing takes, and this case does not wait an hour). In its second run
(2026-11-30, machine shared with a benchmark) all 5,000 were settled exactly once: published in
233 s, all ingested after 534 s, 13,307 AWS calls, at most 100 in any second (budget 50/s,
burst 50), RSS 104 -> 109 MiB. Publishing took minutes then because moto's SQS spent ~0.1 s
per SendMessage with thousands queued; with its clock made cheap (the stand-ins' moto_server)
the third run published all 5,000 in 60 s and ingested them all, once each, after 361 s.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reliability.conftest import CaseReport
from reliability.scene import Scene, per_second

pytestmark = [pytest.mark.reliability, pytest.mark.kube, pytest.mark.e2e, pytest.mark.events]

POLICIES = 20
EVENTS = 5000
STORM_SECONDS = 60.0
BUDGET = 50.0  # --aws-calls-per-second
ACCOUNT = "123456789012"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _pending_loops(scene: Scene, output: str) -> Counter[str]:
    aws = scene.aws
    body = aws.get_object(f"{output}/ledger/head.json")
    if body is None:
        return Counter()
    seen: Counter[str] = Counter()
    for segment in json.loads(body).get("pending", []):
        lines = aws.get_object(f"{output}/pending/{segment['sha256']}.jsonl") or b""
        for line in lines.decode().splitlines():
            seen[json.loads(line)["a2i-retraining-metadata"]["job-name"][4:]] += 1
    return seen


def test_event_storm_on_one_queue_keeps_memory_and_the_call_budget(
    scene: Scene, report: CaseReport
) -> None:
    report.case(19, "event storm")
    report.inject(
        f"{EVENTS} A2I status-change events within about {STORM_SECONDS:.0f} s for {POLICIES} "
        f"policies sharing one SQS queue; --aws-calls-per-second={BUDGET:g}"
    )
    aws = scene.aws
    world = scene.seed(0)
    assert aws.events is not None
    url = aws.create_queue("a2i-events", VisibilityTimeout="60")
    per_policy = EVENTS // POLICIES
    flows, outputs, names = [], [], []
    for i in range(POLICIES):
        flow = aws.a2i.create_flow_definition(f"fd-storm-{i}", f"s3://{world.bucket}/a2i-storm")
        flows.append(flow)
        outputs.append(f"s3://{world.bucket}/storm/{i}")
        for j in range(per_policy):
            names.append(aws.a2i.add_loop(flow, f"s{i}-{j}", status="InProgress").name)

    op = scene.operator(f"--aws-calls-per-second={BUDGET:g}").start()
    for i, flow in enumerate(flows):
        scene.apply(
            scene.policy(
                f"storm-{i}",
                min_new_samples=100000,
                humanLoops={
                    "flowDefinitionArn": flow.arn,
                    "pollInterval": "5m",
                    "events": {"sqsQueueUrl": url, "backstopInterval": "1h"},
                },
                dataset={"outputS3Uri": outputs[i]},
                deployment={"strategy": "None", "blueGreen": None},
            )
        )
    arns = {flow.arn for flow in flows}

    def listed() -> set[str]:
        calls = aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops")
        return {str(c.params.get("FlowDefinitionArn")) for c in calls}

    scene.wait(
        lambda: (
            listed() >= arns
            and all(
                scene.condition("EventsFlowing", f"storm-{i}").get("status") == "True"
                for i in range(POLICIES)
            )
        ),
        timeout=180,
        what="every policy consuming events, after its first listing",
    )
    # The reviews finish (outputs written) before the rule exists; then EventBridge
    # delivers their 5,000 events within a minute, as a storm.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(aws.a2i.complete_loop, names))
    loops = [aws.a2i.loop(name) for name in names]
    loops.sort(key=lambda loop: hash(loop.name))  # interleave the policies
    for flow in flows:
        aws.events.route(flow.arn, url)
    assert op.popen is not None
    baseline = _rss_kib(op.popen.pid)
    aws.log.clear()
    began = time.time()
    peak = baseline
    for start in range(0, len(loops), 250):
        aws.events.publish_again(loops[start : start + 250])
        peak = max(peak, _rss_kib(op.popen.pid))
        ahead = began + STORM_SECONDS * (start + 250) / len(loops) - time.time()
        if ahead > 0:
            time.sleep(ahead)
    published = time.time() - began

    def counted() -> int:
        return sum(
            int((scene.status(f"storm-{i}").get("ingest") or {}).get("pendingSamples", 0))
            for i in range(POLICIES)
        )

    def all_ingested() -> bool:
        nonlocal peak
        peak = max(peak, _rss_kib(op.popen.pid))  # type: ignore[union-attr]
        return counted() == EVENTS

    # What events miss the hourly backstop listing takes; this case does not wait an hour,
    # so it waits for every event and accepts at most 0.1 % missing after 5 minutes.
    deadline = time.monotonic() + 300
    while not all_ingested() and time.monotonic() < deadline:
        time.sleep(2)
    settled = time.time() - began
    assert op.alive(), op.log()
    calls = aws.log.calls()
    most, mean = per_second([c.wall_time for c in calls])
    receives = len(aws.log.calls("sqs", "ReceiveMessage"))
    every_listing = aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops")
    # Listing polls list since the watermark; an events settle's confirmation (issue 27: A2I's
    # word before anything is recorded) lists a bounded window, with CreationTimeBefore.
    listings = sum(1 for c in every_listing if "CreationTimeBefore" not in c.params)
    confirmations = (
        len(every_listing)
        - listings
        + len(aws.log.calls("sagemaker-a2i-runtime", "DescribeHumanLoop"))
    )
    seen = Counter[str]()
    for output in outputs:
        seen.update(_pending_loops(scene, output))
    report.observe(
        events=EVENTS,
        published_s=round(published, 1),
        all_ingested_s=round(settled, 1),
        aws_calls=len(calls),
        max_calls_in_1s=most,
        mean_calls_per_s=round(mean, 1),
        budget_per_s=BUDGET,
        receive_message_calls=receives,
        list_human_loops_calls=listings,
        confirmation_calls=confirmations,
        aws_calls_per_event=round(len(calls) / EVENTS, 2),
        rss_baseline_mib=round(baseline / 1024, 1),
        rss_peak_mib=round(peak / 1024, 1),
        loops_ingested=sum(seen.values()),
        failed_sends=aws.events.failed_sends,
    )
    report.summary()
    assert set(seen) <= set(names)
    assert len(seen) >= EVENTS * 0.999
    assert max(seen.values()) == 1  # exactly once
    # A token bucket of BUDGET/s with a burst of BUDGET never allows more than this in 1 s.
    assert most <= 2 * BUDGET + 1
    assert (peak - baseline) / 1024 < 150
    assert listings == 0  # events carried it all; no listing poll while they flow
    # Confirmed in batches: a listing page for several events, not a describe per event (that
    # would be EVENTS calls). How many events share one settle depends on the machine's pace:
    # measured 0.52 confirmation calls per event on a quiet 2-core machine, 0.61 in CI.
    assert confirmations <= EVENTS * 0.75
    scene.wait(
        lambda: (
            sum(
                int(v)
                for v in aws.admin_client("sqs")
                .get_queue_attributes(
                    QueueUrl=url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                    ],
                )["Attributes"]
                .values()
            )
            == 0
        ),
        timeout=60,
        what="the queue to drain",
    )
