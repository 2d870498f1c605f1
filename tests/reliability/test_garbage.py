"""Feed it garbage: an A2I listing that repeats itself, and outputs nobody can train on.
Every loop must land in exactly one dataset; every broken one is quarantined with its reason.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from reliability.conftest import CaseReport
from reliability.scene import Scene, manifest_loops, metric
from retraining_standins.seed import random_a2i_output

pytestmark = [pytest.mark.reliability, pytest.mark.kube, pytest.mark.e2e]

TRAIN_ONLY = {"deployment": {"strategy": "None", "blueGreen": None}}


def test_duplicate_and_relisted_loops_land_in_exactly_one_dataset(
    scene: Scene, report: CaseReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    report.case(3, "duplicate and re-listed human loops")
    report.inject(
        "ListHumanLoops pages of 7 that repeat 2 summaries in the page and the previous "
        "page's last loop; lookback 24 h re-lists every loop on every poll; 3 loops finish "
        "after a run started; two runs"
    )
    aws = scene.aws
    world = scene.seed(12)
    late = [aws.a2i.add_loop("fd-demo", status="InProgress") for _ in range(3)]

    listing = aws.emulator.a2i_operations["ListHumanLoops"]
    injected = Counter[str]()
    previous_last: dict[str, Any] = {}

    def repeating_listing(params: dict[str, Any]) -> dict[str, Any]:
        page = listing({**params, "MaxResults": min(params.get("MaxResults", 100), 7)})
        summaries = list(page["HumanLoopSummaries"])
        extra = summaries[:2]
        if params.get("NextToken") and previous_last:
            extra.append(previous_last["item"])  # a paginator that overlaps pages
        if summaries:
            previous_last["item"] = summaries[-1]
        injected["summaries"] += len(extra)
        page["HumanLoopSummaries"] = summaries + extra
        return page

    monkeypatch.setitem(aws.emulator.a2i_operations, "ListHumanLoops", repeating_listing)
    scene.operator().start()
    scene.apply(scene.policy(min_new_samples=12, **TRAIN_ONLY))

    scene.wait(lambda: scene.run().get("trainingJobName"), timeout=60, what="run 1")
    for loop in late:
        aws.a2i.complete_loop(loop.name)
    aws.a2i.add_loops("fd-demo", 9, interval=1.0)
    status = scene.wait(
        lambda: len((s := scene.status()).get("history") or []) == 2 and s,
        timeout=120,
        what="two runs",
    )

    creates = sorted(
        (c for c in aws.log.calls("sagemaker", "CreateTrainingJob") if c.ok),
        key=lambda c: c.seq,
    )
    runs = [manifest_loops(aws, c) for c in creates]
    everything = [loop.name for loop in aws.a2i.loops("fd-demo")]
    in_datasets = [name for run in runs for name in run]
    lists = aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops")
    report.observe(
        list_calls=len(lists),
        repeated_summaries_served=injected["summaries"],
        loops=len(everything),
        run_sizes="+".join(str(len(r)) for r in runs),
        loops_lost=len(set(everything) - set(in_datasets)),
        loops_doubled=len(in_datasets) - len(set(in_datasets)),
        jobs=len(creates),
    )
    report.summary()
    assert injected["summaries"] >= 10, "the listing did not repeat anything"
    assert len(creates) == 2
    assert sorted(in_datasets) == sorted(everything)  # each loop in exactly one dataset
    assert set(runs[0]).isdisjoint(runs[1])
    assert {loop.name for loop in late} <= set(runs[1])
    assert [h["outcome"] for h in status["history"]] == ["Trained", "Trained"]
    assert status["ingest"]["ingestedLoops"] == len(everything) == 24
    assert world.flow_definition_arn


def _broken_outputs(scene: Scene) -> dict[str, tuple[str, bytes]]:
    """Loop name -> (expected quarantine reason, output.json bytes)."""
    assert scene.world is not None

    def valid(name: str) -> dict[str, Any]:
        return random_a2i_output(
            flow_definition_arn=scene.world.flow_definition_arn,  # type: ignore[union-attr]
            human_loop_name=name,
            task_object=f"s3://{scene.world.bucket}/images/{name}.jpg",  # type: ignore[union-attr]
            rng=name,
            boxes=(2, 3),
            image_size=(640, 480),
        )

    def box(doc: dict[str, Any]) -> dict[str, Any]:
        box: dict[str, Any] = doc["humanAnswers"][0]["answerContent"]["annotatedResult"][
            "boundingBoxes"
        ][0]
        return box

    cases: dict[str, tuple[str, bytes]] = {}
    cases["broken-json"] = ("InvalidJson", b'{"humanAnswers": [{"answerContent": ')
    doc = valid("missing-field")
    del doc["humanAnswers"][0]["answerContent"]["annotatedResult"]["inputImageProperties"]
    cases["missing-field"] = ("MissingField", json.dumps(doc).encode())
    doc = valid("unknown-label")
    box(doc)["label"] = "unicorn"
    cases["unknown-label"] = ("UnknownLabel", json.dumps(doc).encode())
    doc = valid("box-outside")
    box(doc).update(left=600, width=100)
    cases["box-outside"] = ("BoxOutsideImage", json.dumps(doc).encode())
    doc = valid("zero-size")
    box(doc)["height"] = 0
    cases["zero-size"] = ("NonPositiveSize", json.dumps(doc).encode())
    doc = valid("not-a-number")
    box(doc)["top"] = "ten"
    cases["not-a-number"] = ("NonNumeric", json.dumps(doc).encode())
    return cases


def test_malformed_outputs_are_quarantined_with_reasons_and_the_rest_trains(
    scene: Scene, report: CaseReport
) -> None:
    report.case(10, "malformed A2I outputs of 6 kinds")
    aws = scene.aws
    world = scene.seed(12)
    broken = _broken_outputs(scene)
    report.inject(
        "6 broken output.json among 12 good ones: " + ", ".join(r for r, _ in broken.values())
    )
    for name, (_, body) in broken.items():
        aws.a2i.add_loop("fd-demo", name, output=body)
    op = scene.operator().start()
    scene.apply(scene.policy(min_new_samples=12, **TRAIN_ONLY))
    status = scene.wait(
        lambda: (s := scene.status()).get("history") and s, timeout=90, what="the run"
    )

    s3 = aws.admin_client("s3")
    records = {}
    for name in broken:
        key = f"a2i-results/quarantine/{name}.json"
        records[name] = json.loads(s3.get_object(Bucket=world.bucket, Key=key)["Body"].read())
    (create,) = [c for c in aws.log.calls("sagemaker", "CreateTrainingJob") if c.ok]
    trained = manifest_loops(aws, create)
    good = {loop.name for loop in aws.a2i.loops("fd-demo")} - set(broken)
    events = [e.message for e in scene.events() if e.reason == "SamplesQuarantined"]
    text = op.metrics()
    by_reason = {
        reason: metric(text, "rtp_loops_quarantined_total", reason=reason)
        for reason, _ in broken.values()
    }
    report.observe(
        quarantined_in_status=status["ingest"]["quarantinedSamples"],
        reasons_recorded=len({r["reason"] for r in records.values()}),
        trained_on=len(trained),
        broken_in_dataset=len(set(trained) & set(broken)),
        good_lost=len(good - set(trained)),
        quarantine_events=len(events),
        metric_total=int(sum(by_reason.values())),
    )
    report.summary()
    assert {name: records[name]["reason"] for name in broken} == {
        name: reason for name, (reason, _) in broken.items()
    }
    assert all(records[name]["detail"] for name in broken)
    assert status["ingest"]["quarantinedSamples"] == 6
    assert sorted(trained) == sorted(good)
    assert status["history"][0]["outcome"] == "Trained"
    assert len(events) == 1
    assert events[0].startswith("Quarantined 6 A2I output(s): ")
    assert "; and 1 more" in events[0]  # five shown with their reasons, the sixth counted
    assert by_reason == {reason: 1.0 for reason, _ in broken.values()}
