"""Label quality on the stand-ins: several reviewers per image, one line per image, and a
validation set that never overlaps train (issue 17)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.aws.session import AwsSession
from retraining_operator.flows.dataset import ValidationSource, WaitingForValidationData
from retraining_operator.flows.ingest import PollResult
from retraining_operator.manifest.split import is_validation
from retraining_standins.stack import AwsStandins
from support.ingest import assemble_run_dataset, poll
from unit.ingest_policies import flow_arn, ingest_spec

BUCKET = "rtp-test-bucket"
OUT = f"s3://{BUCKET}/out"
ATTRIBUTE = "a2i-retraining"


def _spec(flow: str = "fd-test", **kw: Any) -> RetrainingPolicySpec:
    return ingest_spec(output=OUT, flow=flow_arn(flow), **kw)


def _poll(aws: AwsStandins, spec: RetrainingPolicySpec) -> PollResult:
    return poll(AwsSession("us-east-1"), spec, clock=aws.clock.now)


def _lines(aws: AwsStandins, uri: str) -> list[dict[str, Any]]:
    body = aws.get_object(uri)
    assert body is not None, uri
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


def test_three_reviewers_per_image_train_on_consolidated_lines(
    aws: AwsStandins, aws_bucket: str
) -> None:
    flow = aws.a2i.create_flow_definition(
        "fd-three", f"s3://{aws_bucket}/a2i-results", task_count=3
    )
    assert flow.task_count == 3
    described = aws.client("sagemaker").describe_flow_definition(FlowDefinitionName="fd-three")
    assert described["HumanLoopConfig"]["TaskCount"] == 3
    aws.a2i.add_loops(flow, 60, interval=1)
    spec = _spec(
        "fd-three",
        labels={"consolidation": {"mode": "Consensus"}},
        dataset={"validation": {"holdoutPercent": 0, "allowTrainAsValidation": True}},
    )
    result = _poll(aws, spec)
    # Realistic reviewers: most images agree, a few are quarantined as disagreeing.
    assert result.new_samples + result.quarantined == 60
    assert result.new_samples >= 45
    assert set(result.quarantined_by_reason) <= {"WorkersDisagree"}
    for note in result.quarantine:
        record = json.loads(aws.get_object(note.record_uri or "") or b"")
        assert len(record["workers"]) == 3
        assert 'identityData": {"redacted": true}' in record["raw"]
        assert "cognito" not in record["raw"].lower()

    dataset = assemble_run_dataset(AwsSession("us-east-1"), spec, "r1", clock=aws.clock.now)
    train = _lines(aws, dataset.train_manifest_s3_uri)
    assert len(train) == result.new_samples == dataset.samples.train
    confidences = []
    for line in train:
        metadata = line[f"{ATTRIBUTE}-metadata"]
        assert metadata["worker-count"] == 3
        assert metadata["human-annotated"] == "yes"
        assert 0 <= metadata["agreement"] <= 1
        objects = metadata["objects"]
        assert len(objects) == len(line[ATTRIBUTE]["annotations"])
        confidences += [obj["confidence"] for obj in objects]
        image = line[ATTRIBUTE]["image_size"][0]
        for box in line[ATTRIBUTE]["annotations"]:
            assert box["left"] + box["width"] <= image["width"]
            assert box["top"] + box["height"] <= image["height"]
    assert confidences
    assert all(c in (0.67, 1) for c in confidences)
    assert 1 in confidences  # most boxes every reviewer drew
    # Reviewer agreement reached the poll's result (hashes, never worker ids).
    assert result.reviewers
    assert all(name.startswith("w") and len(name) == 13 for name in result.reviewers)


def test_the_newest_review_of_an_image_is_its_one_line(aws: AwsStandins, aws_bucket: str) -> None:
    flow = aws.a2i.create_flow_definition("fd-test", f"s3://{aws_bucket}/a2i-results")
    now = aws.clock.now()
    image = f"s3://{aws_bucket}/images/reviewed-twice.jpg"
    aws.a2i.add_loop(
        flow,
        "first-look",
        created=now - timedelta(hours=2),
        task_object=image,
        completed_at=now - timedelta(hours=2),
    )
    aws.a2i.add_loop(
        flow,
        "second-look",
        created=now - timedelta(hours=1),
        task_object=image,
        completed_at=now - timedelta(minutes=30),
    )
    aws.a2i.add_loops(flow, 20, interval=1)
    spec = _spec(dataset={"validation": {"holdoutPercent": 0, "allowTrainAsValidation": True}})
    assert _poll(aws, spec).new_samples == 22
    dataset = assemble_run_dataset(AwsSession("us-east-1"), spec, "r1", clock=aws.clock.now)
    train = _lines(aws, dataset.train_manifest_s3_uri)
    twice = [line for line in train if line["source-ref"] == image]
    assert [line[f"{ATTRIBUTE}-metadata"]["job-name"] for line in twice] == ["a2i/second-look"]
    assert dataset.samples.superseded == 1
    assert dataset.samples.new == 22
    assert dataset.samples.train == 21
    assert len({line["source-ref"] for line in train}) == len(train)


def test_twelve_new_samples_wait_for_validation_data_instead_of_validating_on_train(
    aws: AwsStandins, aws_bucket: str
) -> None:
    """The reported case: default 10 % holdout, 12 new samples -> no (or a 1-image)
    holdout; the seed validated on the train manifest. Now the run waits."""
    flow = aws.a2i.create_flow_definition("fd-test", f"s3://{aws_bucket}/a2i-results")
    aws.a2i.add_loops(flow, 12, interval=1)
    spec = _spec(dataset={"minNewSamples": 12})
    assert _poll(aws, spec).new_samples == 12
    with pytest.raises(WaitingForValidationData) as waited:
        assemble_run_dataset(AwsSession("us-east-1"), spec, "r1", clock=aws.clock.now)
    assert waited.value.holdout_images < 10
    assert waited.value.min_samples == 10
    # The claim was released: the samples are still pending, nothing was written.
    again = _poll(aws, spec)
    assert again.status.pending_samples == 12
    listed = aws.admin_client("s3").list_objects_v2(Bucket=BUCKET, Prefix="out/manifests/")
    assert listed.get("KeyCount", 0) == 0


def test_with_a_validation_manifest_no_image_is_in_both_manifests(
    aws: AwsStandins, aws_bucket: str
) -> None:
    flow = aws.a2i.create_flow_definition("fd-test", f"s3://{aws_bucket}/a2i-results")
    loops = aws.a2i.add_loops(flow, 12, interval=1)
    tasks = [json.loads(loop.input_content)["taskObject"] for loop in loops]
    original = [
        json.dumps(
            {
                "source-ref": ref,
                ATTRIBUTE: {
                    "annotations": [{"class_id": 1, "left": 1, "top": 1, "width": 5, "height": 5}],
                    "image_size": [{"width": 50, "height": 50, "depth": 3}],
                },
                f"{ATTRIBUTE}-metadata": {"type": "groundtruth/object-detection"},
            }
        )
        for ref in [*tasks[:3], *(f"s3://{BUCKET}/voc/{i}.jpg" for i in range(40))]
    ]
    # The validation manifest holds 3 of the reviewed images and 10 old ones; the replay
    # manifest holds all of them.
    aws.put_object(f"s3://{BUCKET}/voc/validation.manifest", "\n".join(original[:13]) + "\n")
    aws.put_object(f"s3://{BUCKET}/voc/train.manifest", "\n".join(original) + "\n")
    spec = _spec(
        dataset={
            "minNewSamples": 12,
            "validation": {"manifestS3Uri": f"s3://{BUCKET}/voc/validation.manifest"},
            "replay": {
                "manifestS3Uri": f"s3://{BUCKET}/voc/train.manifest",
                "samplesPerNewSample": 2,
            },
        }
    )
    assert _poll(aws, spec).new_samples == 12
    dataset = assemble_run_dataset(AwsSession("us-east-1"), spec, "r1", clock=aws.clock.now)
    assert dataset.validation_source is ValidationSource.MANIFEST
    train = {line["source-ref"] for line in _lines(aws, dataset.train_manifest_s3_uri)}
    validation = {line["source-ref"] for line in _lines(aws, dataset.validation_manifest_s3_uri)}
    assert train
    assert validation
    assert train.isdisjoint(validation)
    # 3 new lines dropped (their image validates) + replay lines of validation images.
    assert dataset.samples.overlap_dropped >= 3
    assert dataset.samples.new == 12
    assert not any(is_validation(ref, 0) for ref in train)


# -- through the reconcile pass -----------------------------------------------------------


def test_the_pass_waits_with_a_condition_then_trains_when_allowed(aws: AwsStandins) -> None:
    from integration.test_controller import Harness, policy_spec
    from retraining_standins.demo import seed_demo

    world = seed_demo(aws, 12)
    spec = policy_spec(world)
    spec["dataset"]["minNewSamples"] = 12
    spec["dataset"]["validation"] = {}  # the default 10 % holdout of 12 samples
    h = Harness(aws, spec)
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.72})

    status = h.until(lambda s: s.validation_wait is not None)
    assert status.current_run is None
    assert status.validation_wait is not None
    assert status.validation_wait.pending_samples == 12
    assert status.validation_wait.min_samples == 10
    progressing = next(c for c in status.conditions if c.type.value == "Progressing")
    assert (progressing.status, progressing.reason) == ("False", "WaitingForValidationData")
    assert "minSamples 10" in progressing.message
    for _ in range(5):  # nothing starts while nothing changed; announced once
        status = h.tick(60)
        assert status.current_run is None
    assert h.reasons().count("WaitingForValidationData") == 1
    assert "RunStarted" in h.reasons()  # the one attempt that found the holdout too small
    assert status.ingest.pending_samples == 12  # the samples stayed pending
    assert not status.history

    spec["dataset"]["validation"] = {"allowTrainAsValidation": True}
    status = h.until(lambda s: bool(s.history), limit=120)
    assert "TrainAsValidation" in h.reasons()
    assert status.history[0].train_as_validation is True
    assert status.validation_wait is None


def test_reviewer_agreement_reaches_status_and_metrics_by_hash_only(
    aws: AwsStandins, aws_bucket: str
) -> None:
    from integration.test_controller import Harness, policy_spec
    from retraining_operator import metrics
    from retraining_operator.flows.ingest.kernel import REVIEWER_SERIES
    from retraining_standins.demo import seed_demo

    world = seed_demo(aws, 0)
    flow = aws.a2i.create_flow_definition(
        "fd-three", f"s3://{world.bucket}/a2i-results", task_count=3
    )
    aws.a2i.add_loops(flow, 30, interval=1)
    spec = policy_spec(world)
    spec["humanLoops"]["flowDefinitionArn"] = flow.arn
    spec["labels"]["consolidation"] = {"mode": "Consensus"}
    spec["dataset"]["minNewSamples"] = 1000
    h = Harness(aws, spec)
    status = h.until(lambda s: s.ingest.reviewers is not None)
    reviewers = status.ingest.reviewers
    assert reviewers is not None
    assert reviewers.workers == 90  # 3 fresh reviewers per image in the stand-in
    assert reviewers.mean_agreement is not None
    assert 0.5 < reviewers.mean_agreement <= 1
    assert len(reviewers.lowest) == 5
    assert reviewers.lowest[0].agreement <= reviewers.lowest[-1].agreement
    samples = [
        sample
        for family in metrics.REGISTRY.collect()
        if family.name == "rtp_reviewer_agreement"
        for sample in family.samples
        if sample.labels.get("policy") == "pascal-detector"
    ]
    # 90 reviewers, but a bounded set of series: the most recently active (issue 27).
    assert len(samples) == REVIEWER_SERIES
    assert all(len(s.labels["worker"]) == 13 for s in samples)
    raw_ids = {
        answer["workerId"]
        for loop in aws.a2i.loops()
        if loop.output_uri
        for answer in json.loads(aws.get_object(loop.output_uri) or b"{}")["humanAnswers"]
    }
    assert raw_ids
    assert not raw_ids & {s.labels["worker"] for s in samples}
    assert not any(raw in json.dumps(h.status) for raw in raw_ids)
