"""The honest gate end to end (issue 30): the real operator process on the real kube-apiserver,
Batch Transform on the stand-ins (their detector answers from each image's true boxes and the
model's quality), the gate judging the candidate and the serving model on the same images."""

from __future__ import annotations

import random
from typing import Any

import pytest
from test_loop import event_reasons, operator_as_chart, policy, status_of, world

from retraining_standins.demo import DemoWorld, manifest_lines, put_manifest_images
from retraining_standins.detector import ModelQuality
from retraining_standins.stack import AwsStandins
from support.kube import KubeCluster
from support.operator import OperatorProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kube]

__all__ = ["operator_as_chart", "world"]  # fixtures, used by name

HELD_OUT = 150


def images_manifest(aws: AwsStandins, world: DemoWorld, name: str, count: int) -> str:
    lines = manifest_lines(random.Random(name), world.bucket, f"voc/{name}", count)
    uri = f"s3://{world.bucket}/voc/{name}.manifest"
    aws.put_object(uri, lines)
    put_manifest_images(aws, lines)
    return uri


def gated_policy(
    aws: AwsStandins, world: DemoWorld, namespace: str, **evaluation: Any
) -> dict[str, Any]:
    body = policy(world, namespace)
    spec = body["spec"]
    spec["dataset"]["validation"] = {
        "manifestS3Uri": images_manifest(aws, world, "held-out", HELD_OUT)
    }
    spec["gate"]["evaluation"] = {"minImages": 100, **evaluation}
    return body


class Quality:
    """The seed model's quality, and the next candidate's (set by the test as it goes)."""

    def __init__(self, world: DemoWorld, serving: float) -> None:
        self.table = {world.model_data_url: ModelQuality(serving)}
        self.candidate = ModelQuality(serving)

    def __call__(self, model_name: str, model_data_url: str) -> ModelQuality:
        return self.table.setdefault(model_data_url, self.candidate)


def history(kube: KubeCluster, namespace: str, count: int) -> Any:
    def ended() -> dict[str, Any] | None:
        st = status_of(kube, namespace)
        done = len(st.get("history") or []) >= count and not st.get("currentRun")
        return st if done else None

    return ended


def transform_jobs(aws: AwsStandins) -> list[str]:
    return [c.params["TransformJobName"] for c in aws.log.calls("sagemaker", "CreateTransformJob")]


def test_a_worse_candidate_is_refused_and_a_better_one_rolled_out(
    kube: KubeCluster,
    kube_namespace: str,
    aws: AwsStandins,
    world: DemoWorld,
    operator_as_chart: OperatorProcess,
) -> None:
    op = operator_as_chart
    quality = Quality(world, serving=0.7)
    aws.sagemaker.set_model_quality(quality)
    # The candidate's own training metric improves on the serving model's ...
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.9})
    quality.candidate = ModelQuality(0.45)  # ... yet it finds far fewer objects.
    kube.apply(gated_policy(aws, world, kube_namespace), check=True)
    st = wait_for(history(kube, kube_namespace, 1), timeout=180, what="run 1", on_timeout=op.log)
    entry = st["history"][0]
    assert entry["outcome"] == "GateRejected", entry
    comparison = entry["comparison"]
    assert comparison["passed"] is False
    assert comparison["images"] == HELD_OUT
    assert comparison["candidateMAP"] < comparison["servingMAP"]
    assert comparison["high"] < 0
    events = kube.kubectl_json("get", "events", namespace=kube_namespace)["items"]
    failed = [e["message"] for e in events if e["reason"] == "GateFailed"]
    assert len(failed) == 1, event_reasons(kube, kube_namespace)
    assert f"{comparison['candidateMAP']:.4f} (candidate)" in failed[0]
    assert f"{comparison['servingMAP']:.4f} (serving)" in failed[0]
    assert "interval [" in failed[0]
    assert st["heldOut"]["images"] == HELD_OUT
    assert aws.log.calls("sagemaker", "UpdateEndpoint") == []

    quality.candidate = ModelQuality(0.9)
    aws.a2i.add_loops("fd-demo", 10, interval=1.0)
    st = wait_for(history(kube, kube_namespace, 2), timeout=180, what="run 2", on_timeout=op.log)
    entry = st["history"][0]
    assert entry["outcome"] == "Deployed", entry
    assert entry["comparison"]["passed"] is True
    assert entry["comparison"]["low"] > 0
    assert st["serving"]["modelName"] == entry["modelName"]
    assert len(aws.log.calls("sagemaker", "UpdateEndpoint")) == 1
    # The seed model's predictions of the held-out images were kept: run 2 predicted only
    # with its candidate.
    assert [j.split("-")[-2] for j in transform_jobs(aws)] == ["tc", "ts", "tc"]
    assert op.alive()


def test_a_candidate_that_forgets_the_anchor_set_is_refused(
    kube: KubeCluster,
    kube_namespace: str,
    aws: AwsStandins,
    world: DemoWorld,
    operator_as_chart: OperatorProcess,
) -> None:
    op = operator_as_chart
    anchor = images_manifest(aws, world, "anchor", 120)
    quality = Quality(world, serving=0.7)
    aws.sagemaker.set_model_quality(quality)
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.8})
    forgotten = {c: 0.0 for c in range(0, 20, 3)}
    quality.candidate = ModelQuality(0.7, per_class=forgotten)
    body = gated_policy(
        aws, world, kube_namespace, anchorManifestS3Uri=anchor, maxForgetting=0.02,
        minImprovement=-1,
    )  # fmt: skip
    kube.apply(body, check=True)
    st = wait_for(history(kube, kube_namespace, 1), timeout=180, what="run 1", on_timeout=op.log)
    entry = st["history"][0]
    assert entry["outcome"] == "GateRejected", entry
    comparison = entry["comparison"]
    assert comparison["anchorImages"] == 120
    assert comparison["anchorServingMAP"] - comparison["anchorCandidateMAP"] > 0.02
    assert "forgot" in comparison["reason"]
    assert "GateFailed" in event_reasons(kube, kube_namespace)
    assert aws.log.calls("sagemaker", "UpdateEndpoint") == []


def test_a_killed_operator_resumes_the_evaluation_without_a_second_transform_job(
    kube: KubeCluster,
    kube_namespace: str,
    aws: AwsStandins,
    world: DemoWorld,
    operator_as_chart: OperatorProcess,
) -> None:
    op = operator_as_chart
    quality = Quality(world, serving=0.6)
    aws.sagemaker.set_model_quality(quality)
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.8})
    quality.candidate = ModelQuality(0.9)
    aws.sagemaker.durations.transform = 20.0
    kube.apply(gated_policy(aws, world, kube_namespace), check=True)

    def evaluating() -> dict[str, Any] | None:
        run = status_of(kube, kube_namespace).get("currentRun") or {}
        evaluation = run.get("evaluation") or {}
        return (
            evaluation if evaluation.get("candidateJob") and evaluation.get("servingJob") else None
        )

    evaluation = wait_for(evaluating, timeout=180, what="both transform jobs", on_timeout=op.log)
    op.kill()  # SIGKILL mid-evaluation: the jobs run on without it
    assert len(transform_jobs(aws)) == 2
    op.start()
    st = wait_for(history(kube, kube_namespace, 1), timeout=180, what="the run", on_timeout=op.log)
    assert st["history"][0]["outcome"] == "Deployed", st["history"][0]
    jobs = transform_jobs(aws)
    assert sorted(jobs) == sorted([evaluation["candidateJob"], evaluation["servingJob"]])
    assert op.starts == 2
