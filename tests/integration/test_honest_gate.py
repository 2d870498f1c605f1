"""The honest gate (issue 30) in process: the candidate and the serving model predict the same
held-out images with Batch Transform (the stand-ins' detector answers from each image's true
boxes and the model's quality), the operator scores them and judges with the interval."""

from __future__ import annotations

import random
from typing import Any

import pytest
from test_controller import Harness, policy_spec

from retraining_operator.api import RetrainingPolicyStatus, RunStage
from retraining_standins.demo import DemoWorld, manifest_lines, put_manifest_images, seed_demo
from retraining_standins.detector import ModelQuality
from retraining_standins.stack import AwsStandins

pytestmark = pytest.mark.timeout(180)

HELD_OUT_IMAGES = 150


@pytest.fixture
def world(aws: AwsStandins) -> DemoWorld:
    return seed_demo(aws, 12)


def held_out_manifest(aws: AwsStandins, world: DemoWorld, name: str, images: int) -> str:
    lines = manifest_lines(random.Random(name), world.bucket, f"voc/{name}", images)
    uri = f"s3://{world.bucket}/voc/{name}.manifest"
    aws.put_object(uri, lines)
    assert put_manifest_images(aws, lines) == images
    return uri


def gated_spec(aws: AwsStandins, world: DemoWorld, **evaluation: Any) -> dict[str, Any]:
    spec = policy_spec(world)
    spec["dataset"]["validation"] = {
        "manifestS3Uri": held_out_manifest(aws, world, "held-out", HELD_OUT_IMAGES)
    }
    spec["gate"]["evaluation"] = {"minImages": 100, **evaluation}
    return spec


class Quality:
    """The serving (seed) model's quality, and whatever the next candidate's is."""

    def __init__(self, world: DemoWorld, serving: float) -> None:
        self.serving = world.model_data_url
        self.table = {world.model_data_url: ModelQuality(serving)}
        self.candidate = ModelQuality(serving)

    def __call__(self, model_name: str, model_data_url: str) -> ModelQuality:
        return self.table.setdefault(model_data_url, self.candidate)


def ended(count: int) -> Any:
    return lambda s: s.current_run is None and len(s.history) == count


def transform_jobs(aws: AwsStandins) -> list[str]:
    return [c.params["TransformJobName"] for c in aws.log.calls("sagemaker", "CreateTransformJob")]


def test_a_candidate_better_on_its_own_metric_but_worse_on_held_out_images_is_rejected(
    aws: AwsStandins, world: DemoWorld
) -> None:
    quality = Quality(world, serving=0.75)
    aws.sagemaker.set_model_quality(quality)
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.92})  # "improves"
    h = Harness(aws, gated_spec(aws, world))
    quality.candidate = ModelQuality(0.45)

    status = h.until(ended(1), seconds=120)
    entry = status.history[0]
    assert entry.outcome.value == "GateRejected"
    comparison = entry.comparison
    assert comparison is not None
    assert not comparison.passed
    assert comparison.images == HELD_OUT_IMAGES
    assert comparison.serving_map is not None
    assert comparison.candidate_map < comparison.serving_map
    assert comparison.low is not None
    assert comparison.high is not None
    assert comparison.low <= comparison.difference <= comparison.high
    assert comparison.high < 0
    failed = [m for _, reason, m in h.events if reason == "GateFailed"]
    assert len(failed) == 1
    assert f"{comparison.candidate_map:.4f} (candidate)" in failed[0]
    assert f"{comparison.serving_map:.4f} (serving)" in failed[0]
    assert "interval" in failed[0]
    assert aws.log.calls("sagemaker", "UpdateEndpoint") == []
    assert status.held_out is not None
    assert status.held_out.images == HELD_OUT_IMAGES
    # One job per model; the candidate's Model is the rollout's name.
    assert sorted(j.split("-")[-2] for j in transform_jobs(aws)) == ["tc", "ts"]


def test_a_better_candidate_rolls_out_and_the_serving_predictions_are_reused(
    aws: AwsStandins, world: DemoWorld
) -> None:
    quality = Quality(world, serving=0.6)
    aws.sagemaker.set_model_quality(quality)
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.7})
    h = Harness(aws, gated_spec(aws, world))
    quality.candidate = ModelQuality(0.4)  # the first candidate is rejected ...
    status = h.until(ended(1), seconds=120)
    assert status.history[0].outcome.value == "GateRejected"
    assert len(transform_jobs(aws)) == 2

    quality.candidate = ModelQuality(0.9)  # ... the second is clearly better
    aws.a2i.add_loops("fd-demo", 10, interval=5.0)
    status = h.until(lambda s: len(s.history) == 2 and s.current_run is None, seconds=120)
    entry = status.history[0]
    assert entry.outcome.value == "Deployed", entry.reason
    assert entry.comparison is not None
    assert entry.comparison.passed
    assert entry.comparison.low is not None
    assert entry.comparison.low > 0
    # The seed model still served: its predictions of the same images were kept, so the
    # second run started one transform job, the candidate's.
    jobs = transform_jobs(aws)
    assert len(jobs) == 3
    assert jobs[-1].split("-")[-2] == "tc"
    assert status.serving is not None
    created = {c.params["ModelName"] for c in aws.log.calls("sagemaker", "CreateModel")}
    assert status.serving.model_name in created  # the evaluation's Model is the one served
    assert len(aws.log.calls("sagemaker", "CreateModel")) == 2  # one per candidate, never twice


def test_a_candidate_that_forgets_the_anchor_set_is_rejected(
    aws: AwsStandins, world: DemoWorld
) -> None:
    anchor = held_out_manifest(aws, world, "anchor", 120)
    quality = Quality(world, serving=0.7)
    aws.sagemaker.set_model_quality(quality)
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.8})
    spec = gated_spec(aws, world, anchorManifestS3Uri=anchor, maxForgetting=0.02, minImprovement=-1)
    h = Harness(aws, spec)
    # As good as the serving model on the held-out images (minImprovement -1 lets that pass),
    # but it lost a third of what it knew on the anchor set.
    forgetful = {c: 0.0 for c in range(0, 20, 3)}
    quality.candidate = ModelQuality(0.7, per_class=forgetful)

    status = h.until(ended(1), seconds=120)
    comparison = status.history[0].comparison
    assert status.history[0].outcome.value == "GateRejected"
    assert comparison is not None
    assert comparison.anchor_images == 120
    assert comparison.anchor_serving_map is not None
    assert comparison.anchor_candidate_map is not None
    assert comparison.anchor_serving_map - comparison.anchor_candidate_map > 0.02
    assert "forgot" in comparison.reason
    assert comparison.worst_classes  # named: the classes it forgot
    assert {w.class_id for w in comparison.worst_classes} <= set(forgetful)


def test_too_few_held_out_images_ends_the_run_without_a_transform_job(
    aws: AwsStandins, world: DemoWorld
) -> None:
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.8})
    spec = gated_spec(aws, world)
    spec["gate"]["evaluation"]["minImages"] = HELD_OUT_IMAGES + 1
    spec["gate"]["evaluation"]["maxImages"] = HELD_OUT_IMAGES + 1
    h = Harness(aws, spec)
    status = h.until(ended(1), seconds=120)
    assert status.history[0].outcome.value == "Failed"
    assert "minImages" in (status.history[0].reason or "")
    assert transform_jobs(aws) == []


def test_suspending_during_the_evaluation_stops_its_jobs(
    aws: AwsStandins, world: DemoWorld
) -> None:
    aws.sagemaker.durations.transform = 10_000.0
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.8})
    h = Harness(aws, gated_spec(aws, world))
    h.until(
        lambda s: (
            s.current_run is not None
            and s.current_run.stage is RunStage.EVALUATING
            and s.current_run.evaluation is not None
            and s.current_run.evaluation.candidate_job is not None
        ),
        seconds=60,
    )
    h.spec["suspend"] = True
    status: RetrainingPolicyStatus = h.tick()
    assert status.current_run is None
    assert status.history[0].outcome.value == "Stopped"
    stopped = {c.params["TransformJobName"] for c in aws.log.calls("sagemaker", "StopTransformJob")}
    assert stopped == set(transform_jobs(aws))
