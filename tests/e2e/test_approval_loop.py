"""End to end with the Model Registry: the real operator process, the real kube-apiserver,
the AWS stand-ins (see test_loop.py for the setup).

A Manual policy stops in AwaitingApproval until `kubectl annotate ... approve=<run>`; a
second run rejected in SageMaker is never deployed; a gate failure is registered Rejected
with its reason; each package names the exact manifests its job trained on.
"""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest
from test_loop import event_reasons, get, operator_as_chart, policy, status_of, world

from retraining_standins.demo import DemoWorld
from retraining_standins.stack import AwsStandins
from support.kube import KubeCluster
from support.operator import OperatorProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kube]
__all__ = ["operator_as_chart", "world"]  # fixtures, used by name

GROUP = "pascal-detectors"
APPROVE = "retraining.hitl.dev/approve"


def awaiting(kube: KubeCluster, namespace: str) -> dict[str, Any] | None:
    run = status_of(kube, namespace).get("currentRun") or {}
    return run if run.get("stage") == "AwaitingApproval" else None


def trained_on(aws: AwsStandins, job: str) -> dict[str, str]:
    (create,) = [
        c for c in aws.log.calls("sagemaker", "CreateTrainingJob")
        if c.params["TrainingJobName"] == job
    ]  # fmt: skip
    return {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in create.params["InputDataConfig"]
    }


def test_manual_approval_rejection_and_gate_failure_in_the_registry(
    kube: KubeCluster,
    kube_namespace: str,
    aws: AwsStandins,
    world: DemoWorld,
    operator_as_chart: OperatorProcess,
) -> None:
    op, ns = operator_as_chart, kube_namespace
    sm = boto3.client("sagemaker")  # the stand-ins (the aws fixture points boto3 at them)
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.74})
    body = policy(world, ns)
    body["spec"]["registry"] = {"modelPackageGroupName": GROUP, "approval": "Manual"}
    kube.apply(body, check=True)

    # 1. The run stops in AwaitingApproval: visible in the printer columns, as an Event.
    run = wait_for(
        lambda: awaiting(kube, ns), timeout=120, what="AwaitingApproval", on_timeout=op.log
    )
    arn = run["modelPackageArn"]
    table = kube.kubectl("get", "rtp", namespace=ns, check=True).stdout
    assert re.search(r"pascal-detector\s+Evaluating\s.*AwaitingApproval", table), table
    assert "AwaitingApproval" in event_reasons(kube, ns)
    package = sm.describe_model_package(ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    metadata = package["CustomerMetadataProperties"]
    channels = trained_on(aws, run["trainingJobName"])
    assert metadata["retraining.hitl.dev/train-manifest"] == channels["train"]
    assert metadata["retraining.hitl.dev/validation-manifest"] == channels["validation"]
    assert metadata["retraining.hitl.dev/training-job"] == run["trainingJobName"]
    assert aws.log.calls("sagemaker", "CreateModel") == []

    # 2. kubectl annotate approves it: UpdateModelPackage, the annotation cleared, rolled out.
    kube.kubectl(
        "annotate", "rtp", "pascal-detector", f"{APPROVE}={run['id']}", namespace=ns, check=True
    )

    def serving() -> dict[str, Any] | None:
        st = status_of(kube, ns)
        history = st.get("history") or []
        return st if st.get("phase") == "Serving" and history else None

    st = wait_for(serving, timeout=120, what="phase Serving", on_timeout=op.log)
    assert st["history"][0]["outcome"] == "Deployed"
    assert st["serving"]["modelPackageArn"] == arn
    assert sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Approved"
    assert APPROVE not in (get(kube, ns)["metadata"].get("annotations") or {})
    (model,) = aws.log.calls("sagemaker", "CreateModel")
    container = package["InferenceSpecification"]["Containers"][0]
    assert model.params["PrimaryContainer"]["ModelDataUrl"] == container["ModelDataUrl"]
    serving_before = st["serving"]

    # 3. A second run, rejected in SageMaker by a person: never deployed.
    aws.a2i.add_loops("fd-demo", 10, interval=1.0)
    run = wait_for(
        lambda: (r := awaiting(kube, ns)) and r["modelPackageArn"] != arn and r,
        timeout=120,
        what="the second run to await approval",
        on_timeout=op.log,
    )
    sm.update_model_package(
        ModelPackageArn=run["modelPackageArn"],
        ModelApprovalStatus="Rejected",
        ApprovalDescription="boxes drift on bicycles",
    )
    st = wait_for(
        lambda: (s := status_of(kube, ns)) and len(s.get("history") or []) == 2 and s,
        timeout=120,
        what="the second run to end",
        on_timeout=op.log,
    )
    assert st["history"][0]["outcome"] == "Rejected"
    assert "boxes drift on bicycles" in st["history"][0]["reason"]
    assert st["serving"] == serving_before
    assert len(aws.log.calls("sagemaker", "CreateModel")) == 1
    assert len(aws.log.calls("sagemaker", "UpdateEndpoint")) == 1

    # 4. A third run fails the gate: registered Rejected with the gate's reason.
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.30})
    aws.a2i.add_loops("fd-demo", 10, interval=1.0)
    st = wait_for(
        lambda: (s := status_of(kube, ns)) and len(s.get("history") or []) == 3 and s,
        timeout=120,
        what="the third run to end",
        on_timeout=op.log,
    )
    entry = st["history"][0]
    assert entry["outcome"] == "GateRejected"
    rejected = sm.describe_model_package(ModelPackageName=entry["modelPackageArn"])
    assert rejected["ModelApprovalStatus"] == "Rejected"
    assert "0.3" in rejected["ApprovalDescription"]
    channels = trained_on(aws, entry["trainingJobName"])
    assert (
        rejected["CustomerMetadataProperties"]["retraining.hitl.dev/train-manifest"]
        == (channels["train"])
    )
    assert len(aws.log.calls("sagemaker", "UpdateEndpoint")) == 1
    assert op.alive()
