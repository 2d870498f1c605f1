"""End to end: the real operator process, the real kube-apiserver, the AWS stand-ins.

The operator runs as `python -m retraining_operator run` with a ServiceAccount token bound
to exactly the Helm chart's RBAC. The stand-ins run on a real-time clock with short
lifecycles, so every step happens as it would against AWS, only faster.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from retraining_standins.demo import DemoWorld, seed_demo
from retraining_standins.demo_run import DEMO_DURATIONS, demo_policy
from retraining_standins.stack import AwsStandins
from support.grafana_dashboard import DASHBOARD_FILE, names_missing_from
from support.kube import KubeCluster
from support.operator import OperatorProcess, chart_rbac, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kube]


@pytest.fixture
def world(aws: AwsStandins) -> DemoWorld:
    aws.clock.reset(speed=1.0)
    for name in vars(DEMO_DURATIONS):
        setattr(aws.sagemaker.durations, name, getattr(DEMO_DURATIONS, name))
    return seed_demo(aws, 12)


def policy(world: DemoWorld, namespace: str) -> dict[str, Any]:
    body = demo_policy(world, min_new_samples=10)
    body["metadata"]["namespace"] = namespace
    return body


def get(kube: KubeCluster, namespace: str, name: str = "pascal-detector") -> dict[str, Any]:
    obj: dict[str, Any] = kube.kubectl_json("get", "retrainingpolicy", name, namespace=namespace)
    return obj


def status_of(kube: KubeCluster, namespace: str) -> dict[str, Any]:
    return get(kube, namespace).get("status") or {}


def event_reasons(kube: KubeCluster, namespace: str) -> list[str]:
    events = kube.kubectl_json("get", "events", namespace=namespace)["items"]
    return [e["reason"] for e in events if e["involvedObject"]["name"] == "pascal-detector"]


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    found = False
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    assert found, f"no sample of {name} with {labels}"
    return total


@pytest.fixture
def operator_as_chart(
    kube: KubeCluster, rtp_crd: Any, kube_namespace: str, operator_factory: Any
) -> OperatorProcess:
    sa_namespace, sa = chart_rbac(kube)
    kubeconfig = kube.service_account_kubeconfig(sa_namespace, sa, create=False)
    return operator_factory(kubeconfig, namespaces=(kube_namespace,)).start()


def test_full_loop_then_a_failing_gate_keeps_the_first_model(
    kube: KubeCluster,
    kube_namespace: str,
    aws: AwsStandins,
    world: DemoWorld,
    operator_as_chart: OperatorProcess,
) -> None:
    op = operator_as_chart
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.74})
    kube.apply(policy(world, kube_namespace), check=True)

    def serving() -> dict[str, Any] | None:
        st = status_of(kube, kube_namespace)
        history = st.get("history") or []
        return st if st.get("phase") == "Serving" and history else None

    st = wait_for(serving, timeout=120, what="phase Serving", on_timeout=op.log)
    assert st["history"][0]["outcome"] == "Deployed"
    model = st["serving"]["modelName"]
    assert model != world.model_name
    job = st["lastTrainingJobName"]
    assert st["ingest"]["ingestedLoops"] == 12
    assert st["observedGeneration"] == get(kube, kube_namespace)["metadata"]["generation"]

    table = kube.kubectl("get", "rtp", namespace=kube_namespace, check=True).stdout
    assert re.search(
        rf"pascal-detector\s+Serving\s+0\s+{re.escape(job)}\s+{re.escape(model)}", table
    ), table

    reasons = event_reasons(kube, kube_namespace)
    for reason in (
        "SamplesIngested",
        "RunStarted",
        "DatasetWritten",
        "TrainingSubmitted",
        "GatePassed",
        "RolloutStep",
        "Serving",
    ):
        assert reason in reasons, reasons

    text = op.metrics()
    labels = {"namespace": kube_namespace, "policy": "pascal-detector"}
    assert metric(text, "rtp_loops_ingested_total", **labels) == 12
    assert metric(text, "rtp_runs_total", outcome="Deployed", **labels) == 1
    assert metric(text, "rtp_aws_calls_total", operation="CreateTrainingJob") == 1
    assert metric(text, "rtp_aws_calls_total", operation="UpdateEndpoint") == 1
    assert len(aws.log.calls("sagemaker", "CreateTrainingJob")) == 1

    # Second run: 0.70 < 0.74 - 0.01, so the gate rejects it and the first model keeps serving.
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.70})
    aws.a2i.add_loops("fd-demo", 10, interval=1.0)
    st = wait_for(
        lambda: (s := status_of(kube, kube_namespace)) and len(s.get("history") or []) == 2 and s,
        timeout=120,
        what="the second run to end",
        on_timeout=op.log,
    )
    assert st["history"][0]["outcome"] == "GateRejected"
    assert st["serving"]["modelName"] == model
    assert (
        aws.sagemaker.describe_endpoint(world.endpoint_name)["EndpointConfigName"]
        == st["serving"]["endpointConfigName"]
    )
    assert len(aws.log.calls("sagemaker", "UpdateEndpoint")) == 1
    assert "GateRejected" in event_reasons(kube, kube_namespace)
    assert metric(op.metrics(), "rtp_runs_total", outcome="GateRejected", **labels) == 1
    assert op.alive()

    # The Grafana dashboard reads only what this operator serves (PromQL parsed, not grepped).
    scrape = op.metrics()
    assert names_missing_from(scrape, json.loads(DASHBOARD_FILE.read_text())) == set()
    gate = {"metric": "validation:mAP", **labels}
    assert metric(scrape, "rtp_gate_metric", model="candidate", **gate) == pytest.approx(0.70)
    assert metric(scrape, "rtp_gate_metric", model="serving", **gate) == pytest.approx(0.74)
    assert metric(scrape, "rtp_phase", phase="Serving", **labels) == 1
    assert metric(scrape, "rtp_phase", phase="Training", **labels) == 0


def test_delete_during_training_stops_the_job_and_releases_the_finalizer(
    kube: KubeCluster,
    kube_namespace: str,
    aws: AwsStandins,
    world: DemoWorld,
    operator_as_chart: OperatorProcess,
) -> None:
    aws.sagemaker.durations.training_training = 3600.0
    kube.apply(policy(world, kube_namespace), check=True)
    wait_for(
        lambda: (status_of(kube, kube_namespace).get("currentRun") or {}).get("trainingJobName"),
        timeout=90,
        what="a training job",
        on_timeout=operator_as_chart.log,
    )
    assert "retraining.hitl.dev/finalizer" in get(kube, kube_namespace)["metadata"]["finalizers"]
    kube.kubectl(
        "delete", "rtp", "pascal-detector", "--wait=false", namespace=kube_namespace, check=True
    )
    wait_for(
        lambda: (
            kube.kubectl("get", "rtp", "pascal-detector", namespace=kube_namespace).returncode != 0
        ),
        timeout=60,
        what="the policy to be gone",
        on_timeout=operator_as_chart.log,
    )
    stops = aws.log.calls("sagemaker", "StopTrainingJob")
    assert len(stops) == 1
    (job,) = aws.sagemaker.call("ListTrainingJobs")["TrainingJobSummaries"]
    assert job["TrainingJobName"] == stops[0].params["TrainingJobName"]
    assert aws.sagemaker.call("DescribeTrainingJob", TrainingJobName=job["TrainingJobName"])[
        "TrainingJobStatus"
    ] in ("Stopping", "Stopped")
