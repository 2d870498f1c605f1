"""Kill it: SIGKILL the real operator process inside its most delicate windows, restart it,
and count what happened in AWS (the stand-ins' request log is the witness).

Each window is made real with the stand-ins: a tripwire fires the moment the call arrives,
and an injected latency keeps it in flight while the operator is killed; the stand-in still
completes the call afterwards, exactly as AWS completes a request whose client died.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from reliability.conftest import CaseReport
from reliability.scene import FINALIZER, Scene
from retraining_operator.aws.s3 import S3Location

pytestmark = [pytest.mark.reliability, pytest.mark.kube, pytest.mark.e2e]


def test_sigkill_between_create_training_job_and_the_status_patch_leaves_one_job(
    scene: Scene, report: CaseReport
) -> None:
    report.case(1, "SIGKILL between CreateTrainingJob and the status patch")
    report.inject(
        "CreateTrainingJob held in flight 4 s by injected latency; SIGKILL the moment it "
        "arrives; restart"
    )
    aws = scene.aws
    scene.seed(12)
    aws.sagemaker.durations.training_training = 3600.0  # the job stays InProgress
    latency = aws.faults.delay("sagemaker", "CreateTrainingJob", seconds=4.0)
    create_arrived = scene.tripwire("sagemaker", "CreateTrainingJob")
    op = scene.operator().start()
    scene.apply(scene.policy())

    assert create_arrived.wait(90), f"no CreateTrainingJob\n{op.log()}"
    op.kill()  # the create is in flight: SageMaker will make the job, nobody will record it
    killed_at = time.monotonic()

    created = scene.wait(
        lambda: [c for c in aws.log.calls("sagemaker", "CreateTrainingJob") if c.ok],
        timeout=15,
        what="the in-flight CreateTrainingJob to complete",
    )
    job = created[0].params["TrainingJobName"]
    run = scene.run()
    assert run.get("stage") == "Training"
    assert not run.get("trainingJobName"), "the kill came too late: status already knew the job"
    assert time.monotonic() - killed_at < 5

    aws.faults.remove(latency)
    op.start()
    scene.wait(lambda: scene.run().get("trainingJobName"), timeout=60, what="the job in status")
    time.sleep(3)  # a few more passes (tick 1 s): nothing may be submitted again

    creates = aws.log.calls("sagemaker", "CreateTrainingJob")
    jobs = aws.sagemaker.training_job_names()
    submitted = [e.message for e in scene.events() if e.reason == "TrainingSubmitted"]
    report.observe(
        create_calls=len(creates),
        creates_ok=sum(c.ok for c in creates),
        jobs_in_sagemaker=len(jobs),
        adopted=sum("adopted" in m for m in submitted),
        restarts=op.starts - 1,
    )
    report.summary()
    assert [c.ok for c in creates] == [True]
    assert jobs == [job]
    assert scene.run()["trainingJobName"] == job
    assert submitted == [f"run {run['id']}: adopted {job}"]
    assert scene.status()["lastTrainingJobName"] == job


def _manifest_objects(scene: Scene, bucket: str) -> list[str]:
    s3 = scene.aws.admin_client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="a2i-results/manifests/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def _open_uploads(scene: Scene, bucket: str) -> list[str]:
    s3 = scene.aws.admin_client("s3")
    listed = s3.list_multipart_uploads(Bucket=bucket, Prefix="a2i-results/staging/")
    return [u["Key"] for u in listed.get("Uploads", [])]


def test_sigkill_mid_manifest_write_rewrites_the_same_content_addressed_object(
    scene: Scene, report: CaseReport
) -> None:
    report.case(2, "SIGKILL mid-manifest write")
    report.inject(
        "150 loops x 100 replay samples = an 11 MB train manifest (multipart); SIGKILL while "
        "part 1 is uploading, restart; SIGKILL again while the staging object is deleted "
        "(after the content-addressed copy), restart"
    )
    aws = scene.aws
    world = scene.seed(150)
    aws.sagemaker.durations.training_training = 3600.0
    bucket = world.bucket
    policy = scene.policy(
        min_new_samples=150,
        dataset={"replay": {"samplesPerNewSample": 100}},
    )
    aws.faults.delay("s3", "UploadPart", seconds=3.0)
    aws.faults.delay("s3", "DeleteObject", seconds=3.0)
    part_arrived = scene.tripwire("s3", "UploadPart")
    op = scene.operator("--aws-calls-per-second=0").start()
    scene.apply(policy)

    # Kill 1: the first part of the train manifest is on the wire.
    assert part_arrived.wait(120), f"no UploadPart\n{op.log()}"
    op.kill()
    run = scene.run()
    partial = {
        "manifest_objects": _manifest_objects(scene, bucket),
        "status_manifest": run.get("manifestS3Uri"),
    }
    time.sleep(3.5)  # the stand-in finishes the part it was sent
    partial["open_uploads"] = _open_uploads(scene, bucket)
    assert partial["manifest_objects"] == [], partial
    assert partial["status_manifest"] is None, partial
    assert len(partial["open_uploads"]) == 1, partial

    # Kill 2: the object is complete at its content address, the staging copy is being
    # deleted, the ledger and status do not know the object yet.
    delete_arrived = scene.tripwire("s3", "DeleteObject")
    op.start()
    assert delete_arrived.wait(120), f"no DeleteObject\n{op.log()}"
    op.kill()
    (written,) = _manifest_objects(scene, bucket)
    assert scene.run().get("manifestS3Uri") is None

    aws.faults.clear()
    op.start()
    run = scene.wait(
        lambda: (r := scene.run()).get("trainingJobName") and r, timeout=90, what="training"
    )

    uri = run["manifestS3Uri"]
    assert uri == f"s3://{bucket}/{written}"
    body = aws.get_object(uri)
    assert body is not None
    digest = hashlib.sha256(body).hexdigest()
    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    loops_in_manifest = [
        line["a2i-retraining-metadata"]["job-name"].removeprefix("a2i/")
        for line in lines
        if "job-name" in line.get("a2i-retraining-metadata", {})
    ]
    all_loops = {loop.name for loop in aws.a2i.loops("fd-demo")}
    copies = [
        c for c in aws.log.calls("s3", "CopyObject") if c.params.get("Key") == written and c.ok
    ]
    uploads = aws.log.calls("s3", "CreateMultipartUpload")
    report.observe(
        manifest_mb=round(len(body) / 2**20, 1),
        lines=len(lines),
        uploads_started=len(uploads),
        copies_to_address=len(copies),
        manifest_objects=len(_manifest_objects(scene, bucket)),
        loops=len(all_loops),
        loops_lost=len(all_loops - set(loops_in_manifest)),
        loops_doubled=len(loops_in_manifest) - len(set(loops_in_manifest)),
        jobs=len(aws.sagemaker.training_job_names()),
        abandoned_multipart_uploads=len(_open_uploads(scene, bucket)),
    )
    report.summary()
    assert S3Location.parse(uri).key.endswith(f"/{digest}.jsonl")
    assert len(lines) == run["samples"]["train"] == 150 + 150 * 100
    assert sorted(loops_in_manifest) == sorted(all_loops)
    assert len(copies) == 1  # the restart found the object complete and did not rewrite it
    assert len(uploads) == 3  # one per start: each restart rebuilt the same bytes
    assert _manifest_objects(scene, bucket) == [written]
    assert scene.status()["ingest"]["pendingSamples"] == 0
    assert len(aws.sagemaker.training_job_names()) == 1


def test_policy_deleted_while_the_operator_is_down_is_cleaned_up_exactly_once(
    scene: Scene, report: CaseReport
) -> None:
    report.case(7, "policy deleted while the operator is down")
    report.inject(
        "operator SIGKILLed during training; policy deleted; restart with StopTrainingJob held "
        "in flight 3 s and SIGKILL on its arrival; restart again"
    )
    aws = scene.aws
    scene.seed(12)
    aws.sagemaker.durations.training_training = 3600.0
    op = scene.operator().start()
    scene.apply(scene.policy())
    job = scene.wait(lambda: scene.run().get("trainingJobName"), timeout=60, what="a job")
    op.kill()

    scene.kube.kubectl(
        "delete", "rtp", "pascal-detector", "--wait=false", namespace=scene.namespace, check=True
    )
    time.sleep(2)
    held = scene.get()
    assert held is not None
    assert held["metadata"].get("deletionTimestamp")
    assert held["metadata"]["finalizers"] == [FINALIZER]

    aws.faults.delay("sagemaker", "StopTrainingJob", seconds=3.0)
    stop_arrived = scene.tripwire("sagemaker", "StopTrainingJob")
    op.start()
    assert stop_arrived.wait(60), f"no StopTrainingJob\n{op.log()}"
    op.kill()
    time.sleep(3.5)
    assert scene.get() is not None, "the finalizer was released before cleanup finished"

    aws.faults.clear()
    op.start()
    scene.wait(lambda: scene.get() is None, timeout=60, what="the policy to be gone")
    stops = aws.log.calls("sagemaker", "StopTrainingJob")
    state = aws.sagemaker.describe_training_job(job)["TrainingJobStatus"]
    endpoint = aws.sagemaker.describe_endpoint("demo-endpoint")
    changes = [
        c.operation
        for c in aws.log.calls("sagemaker")
        if c.operation.startswith(("Update", "Delete"))
    ]
    report.observe(
        stop_calls=len(stops),
        job_state=state,
        operator_starts=op.starts,
        endpoint_changes=len(changes),
    )
    report.summary()
    assert [c.ok for c in stops] == [True]
    assert stops[0].params["TrainingJobName"] == job
    assert state in ("Stopping", "Stopped")
    assert changes == []
    assert endpoint["EndpointConfigName"] == "demo-endpoint-config-v0"
