"""Batch Transform in the SageMaker stand-in: the lifecycle on the clock, inputs and outputs as
SageMaker lays them out, and predictions whose quality follows the model's (issue 30)."""

from __future__ import annotations

import json
import urllib.error
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from retraining_operator.reconcile.evaluation.average_precision import Scores, scores
from retraining_operator.reconcile.evaluation.boxes import Box, LabelledImage, detections
from retraining_operator.reconcile.evaluation.held_out import answered
from retraining_standins.control import Control
from retraining_standins.demo import seed_demo
from retraining_standins.detector import ModelQuality, quality_table
from retraining_standins.images import Truth, image_bytes, truth_of
from retraining_standins.seed import VOC_CLASSES
from retraining_standins.stack import AwsStandins

from .builders import IMAGE, ROLE

SECONDS = 60  # Durations.transform's default
ModelUrls = dict[str, str]


@pytest.fixture
def sm(aws: AwsStandins) -> Any:
    return boto3.client("sagemaker")


def create_model(sm: Any, name: str, model_data_url: str) -> None:
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": model_data_url},
        ExecutionRoleArn=ROLE,
    )


def transform_job(
    name: str, model: str, source: str, output: str, *, data_type: str = "ManifestFile"
) -> dict[str, Any]:
    return {
        "TransformJobName": name,
        "ModelName": model,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": source}},
            "ContentType": "image/jpeg",
        },
        "TransformOutput": {"S3OutputPath": output, "Accept": "application/json"},
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    }


def put_manifest(aws: AwsStandins, uri: str, prefix: str, relatives: list[str]) -> None:
    aws.put_object(uri, json.dumps([{"prefix": prefix}, *relatives]))


def seed_images(aws: AwsStandins, bucket: str) -> list[str]:
    """Three images under `images/`, two in sub-folders; their relative keys."""
    relatives = ["a/1.jpg", "a/2.jpg", "b/3.jpg"]
    for index, relative in enumerate(relatives):
        boxes = [(index, 10, 20, 100, 80), (7, 200, 150, 50, 60)]
        aws.put_object(f"s3://{bucket}/images/{relative}", image_bytes(640, 480, boxes))
    return relatives


def finished(sm: Any, *names: str) -> list[str]:
    """Each job's status. Jobs move on when observed (as every emulated lifecycle does), so
    a test describes a job before it reads the job's outputs, as the operator does."""
    return [sm.describe_transform_job(TransformJobName=n)["TransformJobStatus"] for n in names]


def error_of(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


def test_an_image_carries_its_truth_and_only_its_own_bytes_are_read_as_truth() -> None:
    data = image_bytes(640, 480, [(7, 10, 20, 100.5, 80), (0, 0, 0, 1, 1)])
    assert data.startswith(b"\xff\xd8")
    width, height, boxes = truth_of(data) or (0, 0, ())
    assert (width, height) == (640, 480)
    assert boxes == ((7, 10, 20, 100.5, 80), (0, 0, 0, 1, 1))
    for other in (b"", b"\xff\xd8\xff\xe0JFIF", data[:-3], b"PNG" + data[2:]):
        assert truth_of(other) is None
    with pytest.raises(ValueError, match="class id"):
        image_bytes(10, 10, [(-1, 0, 0, 1, 1)])


def test_a_job_is_in_progress_then_completed_on_the_clock(aws, aws_bucket, sm) -> None:
    relatives = seed_images(aws, aws_bucket)
    put_manifest(aws, f"s3://{aws_bucket}/eval.manifest", f"s3://{aws_bucket}/images/", relatives)
    create_model(sm, "candidate", f"s3://{aws_bucket}/model/model.tar.gz")
    request = transform_job(
        "eval-1", "candidate", f"s3://{aws_bucket}/eval.manifest", f"s3://{aws_bucket}/out"
    )
    request["Tags"] = [{"Key": "policy", "Value": "pascal"}]
    arn = sm.create_transform_job(**request)["TransformJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:transform-job/eval-1"
    created = aws.clock.now()

    job = sm.describe_transform_job(TransformJobName="eval-1")
    assert job["TransformJobStatus"] == "InProgress"
    assert job["CreationTime"] == job["TransformStartTime"] == created
    assert "TransformEndTime" not in job
    for member in ("ModelName", "TransformInput", "TransformOutput", "TransformResources"):
        assert job[member] == request[member]
    aws.clock.advance(SECONDS - 1)
    assert sm.describe_transform_job(TransformJobName="eval-1")["TransformJobStatus"] == (
        "InProgress"
    )
    assert aws.get_object(f"s3://{aws_bucket}/out/a/1.jpg.out") is None

    aws.clock.advance(1)
    job = sm.describe_transform_job(TransformJobName="eval-1")
    assert job["TransformJobStatus"] == "Completed"
    assert job["TransformEndTime"] == created + timedelta(seconds=SECONDS)
    assert "FailureReason" not in job
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "policy", "Value": "pascal"}]
    [summary] = sm.list_transform_jobs(StatusEquals="Completed")["TransformJobSummaries"]
    assert (summary["TransformJobName"], summary["TransformJobArn"]) == ("eval-1", arn)
    assert sm.list_transform_jobs(StatusEquals="InProgress")["TransformJobSummaries"] == []


def test_the_duration_is_a_knob(aws, aws_bucket, sm) -> None:
    seed_images(aws, aws_bucket)
    aws.sagemaker.durations.transform = 5
    create_model(sm, "m", f"s3://{aws_bucket}/model/model.tar.gz")
    sm.create_transform_job(
        **transform_job(
            "quick",
            "m",
            f"s3://{aws_bucket}/images/",
            f"s3://{aws_bucket}/out",
            data_type="S3Prefix",
        )
    )
    aws.clock.advance(5)
    assert aws.sagemaker.describe_transform_job("quick")["TransformJobStatus"] == "Completed"


def test_stop_goes_through_stopping_to_stopped_without_outputs(aws, aws_bucket, sm) -> None:
    relatives = seed_images(aws, aws_bucket)
    put_manifest(aws, f"s3://{aws_bucket}/eval.manifest", f"s3://{aws_bucket}/images/", relatives)
    create_model(sm, "m", f"s3://{aws_bucket}/model/model.tar.gz")
    request = transform_job(
        "eval-1", "m", f"s3://{aws_bucket}/eval.manifest", f"s3://{aws_bucket}/o"
    )
    sm.create_transform_job(**request)
    aws.clock.advance(10)
    sm.stop_transform_job(TransformJobName="eval-1")
    assert sm.describe_transform_job(TransformJobName="eval-1")["TransformJobStatus"] == "Stopping"
    with pytest.raises(ClientError) as again:
        sm.stop_transform_job(TransformJobName="eval-1")
    assert error_of(again)[0] == "ValidationException"

    aws.clock.advance(SECONDS)  # past when it would have completed
    job = sm.describe_transform_job(TransformJobName="eval-1")
    assert job["TransformJobStatus"] == "Stopped"
    assert job["TransformEndTime"] == job["CreationTime"] + timedelta(seconds=10 + 10)
    assert aws.get_object(f"s3://{aws_bucket}/o/a/1.jpg.out") is None


def test_a_job_needs_an_existing_model_and_a_fresh_name(aws, aws_bucket, sm) -> None:
    seed_images(aws, aws_bucket)
    source = f"s3://{aws_bucket}/images/"
    request = transform_job(
        "eval-1", "nowhere", source, f"s3://{aws_bucket}/o", data_type="S3Prefix"
    )
    with pytest.raises(ClientError) as missing:
        sm.create_transform_job(**request)
    code, message = error_of(missing)
    assert code == "ValidationException"
    assert message.startswith("Could not find model")
    assert sm.list_transform_jobs()["TransformJobSummaries"] == []

    create_model(sm, "nowhere", f"s3://{aws_bucket}/model/model.tar.gz")
    sm.create_transform_job(**request)
    with pytest.raises(ClientError) as taken:
        sm.create_transform_job(**request)
    code, message = error_of(taken)
    assert code == "ResourceInUse"
    assert "already exists" in message
    with pytest.raises(ClientError) as unknown:
        sm.describe_transform_job(TransformJobName="never-created")
    assert error_of(unknown)[0] == "ValidationException"


def test_requests_are_validated_against_the_service_model(aws, aws_bucket, sm) -> None:
    create_model(sm, "m", f"s3://{aws_bucket}/model/model.tar.gz")
    request = transform_job("eval-1", "m", f"s3://{aws_bucket}/m.json", f"s3://{aws_bucket}/o")
    request["TransformResources"]["InstanceType"] = "ml.bogus.xlarge"
    with pytest.raises(ClientError) as bad:
        sm.create_transform_job(**request)
    code, message = error_of(bad)
    assert code == "ValidationException"
    assert "transformResources.instanceType" in message
    assert "Member must satisfy enum value set" in message


def test_a_missing_input_object_fails_the_job_and_writes_nothing(aws, aws_bucket, sm) -> None:
    relatives = [*seed_images(aws, aws_bucket), "c/missing.jpg"]
    put_manifest(aws, f"s3://{aws_bucket}/eval.manifest", f"s3://{aws_bucket}/images/", relatives)
    create_model(sm, "m", f"s3://{aws_bucket}/model/model.tar.gz")
    source, output = f"s3://{aws_bucket}/eval.manifest", f"s3://{aws_bucket}/o"
    sm.create_transform_job(**transform_job("eval-1", "m", source, output))
    sm.create_transform_job(**transform_job("eval-2", "m", f"{source}.gone", output))
    aws.clock.advance(SECONDS)

    job = sm.describe_transform_job(TransformJobName="eval-1")
    assert job["TransformJobStatus"] == "Failed"
    assert f"s3://{aws_bucket}/images/c/missing.jpg" in job["FailureReason"]
    assert job["TransformEndTime"] == job["CreationTime"] + timedelta(seconds=SECONDS)
    assert aws.get_object(f"{output}/a/1.jpg.out") is None
    no_manifest = sm.describe_transform_job(TransformJobName="eval-2")
    assert no_manifest["TransformJobStatus"] == "Failed"
    assert f"{source}.gone" in no_manifest["FailureReason"]
    [summary] = sm.list_transform_jobs(NameContains="eval-1")["TransformJobSummaries"]
    assert summary["FailureReason"] == job["FailureReason"]


def test_manifest_inputs_are_answered_at_their_path_relative_to_the_prefix(
    aws, aws_bucket, sm
) -> None:
    relatives = seed_images(aws, aws_bucket)
    put_manifest(aws, f"s3://{aws_bucket}/eval.manifest", f"s3://{aws_bucket}/images/", relatives)
    create_model(sm, "m", f"s3://{aws_bucket}/model/model.tar.gz")
    output = f"s3://{aws_bucket}/eval/out/"  # a trailing slash is not doubled
    sm.create_transform_job(
        **transform_job("eval-1", "m", f"s3://{aws_bucket}/eval.manifest", output)
    )
    aws.clock.advance(SECONDS)
    assert finished(sm, "eval-1") == ["Completed"]

    listed = aws.admin_client("s3").list_objects_v2(Bucket=aws_bucket, Prefix="eval/out/")
    assert [o["Key"] for o in listed["Contents"]] == [
        "eval/out/a/1.jpg.out",
        "eval/out/a/2.jpg.out",
        "eval/out/b/3.jpg.out",
    ]
    for relative in relatives:
        body = aws.get_object(f"s3://{aws_bucket}/eval/out/{relative}.out")
        assert body is not None
        assert_prediction_format(json.loads(body))


def test_prefix_inputs_are_every_object_under_the_prefix(aws, aws_bucket, sm) -> None:
    seed_images(aws, aws_bucket)
    aws.put_object(f"s3://{aws_bucket}/elsewhere/4.jpg", image_bytes(10, 10, []))
    create_model(sm, "m", f"s3://{aws_bucket}/model/model.tar.gz")
    source, output = f"s3://{aws_bucket}/images/", f"s3://{aws_bucket}/out"
    sm.create_transform_job(**transform_job("eval-1", "m", source, output, data_type="S3Prefix"))
    sm.create_transform_job(
        **transform_job("empty", "m", f"{source}none/", output, data_type="S3Prefix")
    )
    aws.clock.advance(SECONDS)

    assert sm.describe_transform_job(TransformJobName="eval-1")["TransformJobStatus"] == (
        "Completed"
    )
    listed = aws.admin_client("s3").list_objects_v2(Bucket=aws_bucket, Prefix="out/")
    assert [o["Key"] for o in listed["Contents"]] == [
        "out/a/1.jpg.out",
        "out/a/2.jpg.out",
        "out/b/3.jpg.out",
    ]
    empty = sm.describe_transform_job(TransformJobName="empty")
    assert empty["TransformJobStatus"] == "Failed"
    assert "No objects found" in empty["FailureReason"]


def assert_prediction_format(answer: dict[str, Any]) -> None:
    """The built-in algorithm's answer: `{"prediction": [[class, score, xmin, ymin, xmax, ymax]]}`
    normalized to the image, highest score first, readable by the operator's own parser."""
    assert list(answer) == ["prediction"]
    rows = answer["prediction"]
    for row in rows:
        assert len(row) == 6
        assert all(isinstance(v, float) for v in row)
        class_id, score, xmin, ymin, xmax, ymax = row
        assert class_id == int(class_id) >= 0
        assert 0 <= score < 1
        assert 0 <= xmin <= xmax <= 1
        assert 0 <= ymin <= ymax <= 1
    assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
    image = LabelledImage("s3://b/i.jpg", 640, 480, ())
    assert len(detections(answer, image)) == len(rows)


def test_an_image_without_truth_has_nothing_found(aws, aws_bucket, sm) -> None:
    aws.put_object(f"s3://{aws_bucket}/images/photo.jpg", b"\xff\xd8\xff\xe0 a real JPEG")
    aws.put_object(f"s3://{aws_bucket}/images/empty.jpg", image_bytes(300, 300, []))
    create_model(sm, "m", f"s3://{aws_bucket}/model/model.tar.gz")
    source, output = f"s3://{aws_bucket}/images/", f"s3://{aws_bucket}/out"
    sm.create_transform_job(**transform_job("eval-1", "m", source, output, data_type="S3Prefix"))
    aws.clock.advance(SECONDS)
    assert finished(sm, "eval-1") == ["Completed"]
    for name in ("photo.jpg", "empty.jpg"):
        assert json.loads(aws.get_object(f"{output}/{name}.out") or b"") == {"prediction": []}


def test_the_same_model_answers_the_same_images_with_the_same_bytes(aws, aws_bucket, sm) -> None:
    relatives = seed_images(aws, aws_bucket)
    put_manifest(aws, f"s3://{aws_bucket}/eval.manifest", f"s3://{aws_bucket}/images/", relatives)
    create_model(sm, "first", f"s3://{aws_bucket}/model/a.tar.gz")
    create_model(sm, "again", f"s3://{aws_bucket}/model/a.tar.gz")
    create_model(sm, "other", f"s3://{aws_bucket}/model/b.tar.gz")
    source = f"s3://{aws_bucket}/eval.manifest"
    for job, model in (("j1", "first"), ("j2", "again"), ("j3", "other")):
        sm.create_transform_job(**transform_job(job, model, source, f"s3://{aws_bucket}/{job}"))
    aws.clock.advance(SECONDS)
    assert finished(sm, "j1", "j2", "j3") == ["Completed"] * 3

    def outputs(job: str) -> list[bytes | None]:
        return [aws.get_object(f"s3://{aws_bucket}/{job}/{r}.out") for r in relatives]

    assert outputs("j1") == outputs("j2")
    assert None not in outputs("j1")
    assert outputs("j1") != outputs("j3")


def test_seeded_a2i_loops_put_their_images_with_the_answers_boxes(aws, a2i_flow) -> None:
    loops = aws.a2i.add_loops(a2i_flow.name, 5)
    for loop in loops:
        task = json.loads(loop.input_content)["taskObject"]
        assert loop.output_uri is not None
        output = json.loads(aws.get_object(loop.output_uri) or b"")
        assert output["inputContent"]["taskObject"] == task
        result = output["humanAnswers"][0]["answerContent"]["annotatedResult"]
        data = aws.get_object(task)
        assert data is not None
        assert data.startswith(b"\xff\xd8")
        size = result["inputImageProperties"]
        assert truth_of(data) == Truth(
            size["width"],
            size["height"],
            tuple(
                (VOC_CLASSES.index(b["label"]), b["left"], b["top"], b["width"], b["height"])
                for b in result["boundingBoxes"]
            ),
        )


def test_the_demo_world_has_every_image_it_names(aws) -> None:
    world = seed_demo(aws, 3)
    for manifest in (world.train_manifest, world.validation_manifest):
        lines = [json.loads(text) for text in (aws.get_object(manifest) or b"").splitlines()]
        assert lines
        for line in lines:
            label = line["a2i-retraining"]
            truth = truth_of(aws.get_object(line["source-ref"]) or b"")
            assert truth is not None
            assert (truth.width, truth.height) == (
                label["image_size"][0]["width"],
                label["image_size"][0]["height"],
            )
            assert [list(b) for b in truth.boxes] == [
                [a["class_id"], a["left"], a["top"], a["width"], a["height"]]
                for a in label["annotations"]
            ]
    for loop in aws.a2i.loops("fd-demo"):
        assert truth_of(aws.get_object(json.loads(loop.input_content)["taskObject"]) or b"")


def evaluate(aws: AwsStandins, bucket: str, images: int, models: ModelUrls) -> dict[str, Scores]:
    """Seed `images` reviewed images through A2I, run one transform job per model on them
    and score each model with the operator's own mAP."""
    sm = boto3.client("sagemaker")
    flow = aws.a2i.create_flow_definition("fd-eval", f"s3://{bucket}/a2i-results")
    tasks = [
        json.loads(loop.input_content)["taskObject"] for loop in aws.a2i.add_loops(flow, images)
    ]
    prefix = f"s3://{bucket}/"
    put_manifest(aws, f"s3://{bucket}/held-out.manifest", prefix, [t[len(prefix) :] for t in tasks])
    held_out = []
    for task in tasks:
        truth = truth_of(aws.get_object(task) or b"")
        assert truth is not None
        boxes = tuple(Box(*box) for box in truth.boxes)
        held_out.append(LabelledImage(task, truth.width, truth.height, boxes))
    for name, url in models.items():
        create_model(sm, name, url)
        source, output = f"s3://{bucket}/held-out.manifest", f"s3://{bucket}/eval/{name}"
        sm.create_transform_job(**transform_job(f"eval-{name}", name, source, output))
    aws.clock.advance(SECONDS)
    result = {}
    for name in models:
        job = sm.describe_transform_job(TransformJobName=f"eval-{name}")
        assert job["TransformJobStatus"] == "Completed"
        answers = {
            task: json.loads(
                aws.get_object(f"s3://{bucket}/eval/{name}/{task[len(prefix) :]}.out") or b""
            )
            for task in tasks
        }
        judged = answered(held_out, answers)
        assert judged.problems == ()
        result[name] = scores(judged.matched)
    return result


def test_a_better_model_has_a_clearly_higher_map_on_the_same_images(aws, aws_bucket) -> None:
    urls = {
        "better": f"s3://{aws_bucket}/models/better/model.tar.gz",
        "worse": f"s3://{aws_bucket}/models/worse/model.tar.gz",
        "forgetful": f"s3://{aws_bucket}/models/forgetful/model.tar.gz",
    }
    aws.sagemaker.set_model_quality(
        quality_table(
            {
                urls["better"]: ModelQuality(0.8),
                urls["worse"]: ModelQuality(0.6),
                urls["forgetful"]: ModelQuality(0.8, per_class={3: 0.0}),
            }
        )
    )
    judged = evaluate(aws, aws_bucket, 200, urls)

    better, worse, forgetful = judged["better"], judged["worse"], judged["forgetful"]
    assert better.images == worse.images == 200
    assert better.mean_ap - worse.mean_ap > 0.1
    # mAP at IoU 0.5 follows the chance of finding an object.
    assert better.mean_ap == pytest.approx(0.8, abs=0.06)
    assert worse.mean_ap == pytest.approx(0.6, abs=0.06)
    # A model that forgot class 3 (boat) finds none of them; the other classes are as good.
    assert forgetful.per_class[3] < 0.02
    assert better.per_class[3] > 0.5
    others = [c for c in better.per_class if c != 3]
    assert min(forgetful.per_class[c] for c in others) > 0.5


def test_the_default_quality_and_reset(aws, aws_bucket) -> None:
    aws.sagemaker.set_model_quality(lambda name, url: ModelQuality(0.0))
    aws.reset()  # forgets the provider: every model is ModelQuality() again
    aws.create_bucket(aws_bucket)
    judged = evaluate(aws, aws_bucket, 60, {"plain": f"s3://{aws_bucket}/m.tar.gz"})
    assert judged["plain"].mean_ap == pytest.approx(0.7, abs=0.12)


def test_model_quality_over_the_control_api(aws, aws_bucket) -> None:
    control = Control(aws.endpoints.control)
    good, bad = f"s3://{aws_bucket}/good.tar.gz", f"s3://{aws_bucket}/bad.tar.gz"
    control.set_model_quality({good: {"overall": 1.0}, "bad": {"overall": 0.0}}, {"overall": 0.5})
    judged = evaluate(aws, aws_bucket, 20, {"good": good, "bad": bad})
    assert judged["good"].mean_ap == pytest.approx(1.0)
    assert judged["bad"].mean_ap == 0.0
    control.set_model_quality()
    with pytest.raises(urllib.error.HTTPError, match="400"):
        control.set_model_quality(default={"overall": 2.0})
