"""`retraining-operator status` on the real kube-apiserver: a policy with a run history
(written through the status subresource, as the operator writes it) and Events."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from kubernetes import client

from retraining_operator.api import API_GROUP, API_VERSION, KIND, PLURAL
from support.envtest import REPO_ROOT
from support.kube import KubeCluster

pytestmark = pytest.mark.kube

NAME = "pascal-detector"
NOW = datetime.now(UTC).replace(microsecond=0)
# Oldest first: the gate metric climbs, one run is rejected, one training job fails.
RUNS = [
    ("r20261101-090000", "Deployed", 0.61, None),
    ("r20261108-090000", "Deployed", 0.66, None),
    ("r20261115-090000", "GateRejected", 0.64, "validation:mAP 0.64 is below 0.66 - 0.01"),
    ("r20261122-090000", "TrainingFailed", None, "AlgorithmError: out of memory"),
    ("r20261129-090000", "Deployed", 0.72, None),
]


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def history() -> list[dict[str, Any]]:
    entries = []
    for index, (run_id, outcome, value, reason) in enumerate(RUNS):
        finished = datetime.strptime(run_id, "r%Y%m%d-%H%M%S").replace(tzinfo=UTC)
        finished += timedelta(hours=2, minutes=index)
        entry: dict[str, Any] = {
            "runId": run_id,
            "outcome": outcome,
            "trainingJobName": f"pascal-detector-{run_id}-tj-0a1b2c3d",
            "startedAt": stamp(finished - timedelta(hours=2)),
            "finishedAt": stamp(finished),
        }
        if value is not None:
            entry["metricValue"] = value
        if reason is not None:
            entry["reason"] = reason
        entries.append(entry)
    return list(reversed(entries))  # the operator keeps history newest first


STATUS = {
    "observedGeneration": 1,
    "phase": "Training",
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Serving",
            "message": "pascal-detector-r20261129-090000-m-5e6f7a8b serves pascal-endpoint",
            "lastTransitionTime": stamp(NOW - timedelta(days=1)),
        },
        {
            "type": "Degraded",
            "status": "False",
            "reason": "AsExpected",
            "message": "",
            "lastTransitionTime": stamp(NOW - timedelta(days=3)),
        },
    ],
    "ingest": {"pendingSamples": 4, "ingestedLoops": 212, "quarantinedSamples": 3},
    "currentRun": {
        "id": "r20261130-090000",
        "stage": "Training",
        "trigger": "minNewSamples",
        "startedAt": stamp(NOW - timedelta(minutes=42)),
        "samples": {"new": 40, "replay": 120, "validation": 16, "train": 144},
        "trainingJobName": "pascal-detector-r20261130-090000-tj-9f8e7d6c",
        "trainingJobStatus": "InProgress",
        "secondaryStatus": "Training",
    },
    "history": history(),
    "serving": {
        "modelName": "pascal-detector-r20261129-090000-m-5e6f7a8b",
        "endpointConfigName": "pascal-detector-r20261129-090000-ec-1c2d3e4f",
        "runId": "r20261129-090000",
        "metricValue": 0.72,
        "since": stamp(NOW - timedelta(days=1)),
    },
}


@pytest.fixture
def policy(kube: KubeCluster, rtp_crd: Any, kube_namespace: str) -> Iterator[dict[str, Any]]:
    # Ages are printed relative to the time the CLI runs: stamp them now, not at import
    # (a long session imports this module minutes before the test runs).
    global NOW
    NOW = datetime.now(UTC).replace(microsecond=0)
    api_client = kube.api_client()
    custom = client.CustomObjectsApi(api_client)
    core = client.CoreV1Api(api_client)
    doc = yaml.safe_load((REPO_ROOT / "examples" / "pascal-voc-detector.yaml").read_text())
    doc["metadata"] = {"name": NAME, "namespace": kube_namespace}
    created = custom.create_namespaced_custom_object(
        API_GROUP, API_VERSION, kube_namespace, PLURAL, doc
    )
    custom.patch_namespaced_custom_object_status(
        API_GROUP, API_VERSION, kube_namespace, PLURAL, NAME, {"status": STATUS}
    )
    for minutes, kind, reason, message in (
        (50, "Normal", "RunStarted", "Run r20261130-090000 started: 40 new samples"),
        (45, "Normal", "TrainingSubmitted", "pascal-detector-r20261130-090000-tj-9f8e7d6c"),
        (5, "Warning", "AwsThrottled", "AWS throttled 7 call(s) in the last 5 minutes"),
    ):
        when = NOW - timedelta(minutes=minutes)
        core.create_namespaced_event(
            kube_namespace,
            {
                "metadata": {"generateName": f"{NAME}."},
                "involvedObject": {
                    "apiVersion": f"{API_GROUP}/{API_VERSION}",
                    "kind": KIND,
                    "name": NAME,
                    "namespace": kube_namespace,
                    "uid": created["metadata"]["uid"],
                },
                "type": kind,
                "reason": reason,
                "message": message,
                "firstTimestamp": stamp(when),
                "lastTimestamp": stamp(when),
                "count": 1,
                "source": {"component": "a2i-retraining-operator"},
            },
        )
    yield created
    api_client.close()


def status_cli(kube: KubeCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retraining_operator", "status", *args],
        env={**os.environ, "KUBECONFIG": str(kube.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_status_tells_the_story_of_a_policy_with_history(
    kube: KubeCluster, kube_namespace: str, policy: dict[str, Any]
) -> None:
    result = status_cli(kube, NAME, "-n", kube_namespace)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    print(out)
    assert f"RetrainingPolicy {kube_namespace}/{NAME}" in out
    assert "Phase:       Training" in out
    assert "Serving:     pascal-detector-r20261129-090000-m-5e6f7a8b" in out
    assert "4 pending, 212 loops ingested, 3 quarantined" in out
    lines = out.splitlines()
    ready = next(line for line in lines if line.strip().startswith("Ready"))
    assert ready.split()[:4] == ["Ready", "True", "Serving", "1d"]
    assert "Current run: r20261130-090000  stage Training" in out
    assert "40 new, 120 replay, 144 train, 16 validation" in out
    assert "pascal-detector-r20261130-090000-tj-9f8e7d6c InProgress Training" in out
    # History: newest first, the gate metric per run, and the trend oldest -> newest.
    rows = [line.split() for line in lines if line.strip().startswith("r202611")]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (run_id, outcome, "-" if value is None else f"{value:.4g}")
        for run_id, outcome, value, _ in reversed(RUNS)
    ]
    assert "out of memory" in out
    assert rows[1][4:6] == ["2026-11-22", "11:03"]
    assert "Trend (oldest -> newest): ▁▄▃·█  0.61 -> 0.72" in out
    # The last Events, oldest first, with their age.
    events = lines[lines.index("Events (last 3):") + 2 :]
    assert [e.split()[:3] for e in events] == [
        ["50m", "Normal", "RunStarted"],
        ["45m", "Normal", "TrainingSubmitted"],
        ["5m", "Warning", "AwsThrottled"],
    ]
    limited = status_cli(kube, NAME, "-n", kube_namespace, "--events", "1").stdout
    assert "Events (last 1):" in limited
    assert "RunStarted" not in limited


def test_status_of_a_missing_policy_is_an_error_not_a_traceback(
    kube: KubeCluster, kube_namespace: str, rtp_crd: Any
) -> None:
    result = status_cli(kube, "no-such-policy", "-n", kube_namespace)
    assert result.returncode == 1
    # One line, with kubectl's lowercase kind, as `kubectl rtp` says it.
    assert result.stderr == f"error: retrainingpolicy {kube_namespace}/no-such-policy not found\n"


# A 200-character condition message whose cause is at its end, where a cut would fall.
LEDGER_PROBLEM = (
    "cannot read the ingest ledger s3://my-bucket/a2i-results/ledger/pascal-detector/"
    "ledger.json: An error occurred (AccessDenied) when calling the GetObject operation: "
    "Access Denied for role rtp-pascal-ml"
)
assert len(LEDGER_PROBLEM) == 200


def degrade(kube: KubeCluster, namespace: str) -> None:
    """Ready False and Degraded True, both with LEDGER_PROBLEM (a merge patch replaces the
    conditions list as a whole)."""
    since = stamp(NOW - timedelta(minutes=3))
    conditions = [
        {"type": kind, "status": value, "reason": "IngestFailed", "message": LEDGER_PROBLEM,
         "lastTransitionTime": since}
        for kind, value in (("Ready", "False"), ("Degraded", "True"))
    ]  # fmt: skip
    api_client = kube.api_client()
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object_status(
        API_GROUP, API_VERSION, namespace, PLURAL, NAME, {"status": {"conditions": conditions}}
    )
    api_client.close()


def test_the_default_view_shows_a_condition_message_whole_on_its_own_lines(
    kube: KubeCluster, kube_namespace: str, policy: dict[str, Any]
) -> None:
    degrade(kube, kube_namespace)
    result = status_cli(kube, NAME, "-n", kube_namespace)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    degraded = next(i for i, line in enumerate(lines) if line.strip().startswith("Degraded"))
    assert lines[degraded].split() == ["Degraded", "True", "IngestFailed", "3m"]
    below = []
    for line in lines[degraded + 1 :]:
        if not line.startswith("      "):
            break
        below.append(line)
    assert " ".join(line.strip() for line in below) == LEDGER_PROBLEM
    assert len(below) > 1  # wrapped, not one 200-column line
    assert max(len(line) for line in below) <= 100
    assert "…" not in result.stdout.split("Current run:")[0]


def test_wide_shows_a_200_character_message_in_full_and_more_columns(
    kube: KubeCluster, kube_namespace: str, policy: dict[str, Any]
) -> None:
    degrade(kube, kube_namespace)
    story = status_cli(kube, NAME, "-n", kube_namespace, "--wide")
    assert story.returncode == 0, story.stderr
    ready = next(line for line in story.stdout.splitlines() if line.strip().startswith("Ready"))
    assert ready.split()[:4] == ["Ready", "False", "IngestFailed", "3m"]
    assert ready.endswith(LEDGER_PROBLEM)

    listed = status_cli(kube, "-n", kube_namespace, "--wide")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == [
        "NAME", "PHASE", "STAGE", "PENDING", "READY", "PROBLEM", "AGE",
        "READY-REASON", "SERVING", "LAST-RUN", "OUTCOME", "MESSAGE",
    ]  # fmt: skip
    assert row.split()[:6] == [NAME, "Training", "Training", "4", "False", "IngestFailed"]
    assert row.split()[7:11] == [
        "IngestFailed",
        "pascal-detector-r20261129-090000-m-5e6f7a8b",
        "r20261129-090000",
        "Deployed",
    ]
    assert row.endswith(LEDGER_PROBLEM)
    narrow = status_cli(kube, "-n", kube_namespace).stdout
    assert narrow.splitlines()[0].split()[-1] == "AGE"


def test_all_namespaces_lists_with_the_namespace_first(
    kube: KubeCluster, kube_namespace: str, policy: dict[str, Any]
) -> None:
    result = status_cli(kube, "-A")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAMESPACE", "NAME", "PHASE"]
    assert [kube_namespace, NAME, "Training"] in [line.split()[:3] for line in lines[1:]]
    both = status_cli(kube, NAME, "-A")
    assert both.returncode == 1
    assert "drop -A or the NAME" in both.stderr


def test_watch_prints_the_story_again_after_a_change_and_ctrl_c_exits_0(
    kube: KubeCluster, kube_namespace: str, policy: dict[str, Any]
) -> None:
    watching = subprocess.Popen(
        [sys.executable, "-m", "retraining_operator", "status", NAME, "-n", kube_namespace, "-w"],
        env={**os.environ, "KUBECONFIG": str(kube.kubeconfig)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watching.stdout is not None
    assert watching.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in watching.stdout], daemon=True).start()

    def phases(until: str, timeout: float) -> list[str]:
        """The Phase lines printed until one shows `until`, or until `timeout` passes."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line.startswith("Phase:"):
                seen.append(line.split()[1])
                if seen[-1] == until:
                    break
        return seen

    try:
        assert phases("Training", 30) == ["Training"]
        assert phases("-", 1.5) == []  # nothing changed, nothing printed
        api_client = kube.api_client()
        client.CustomObjectsApi(api_client).patch_namespaced_custom_object_status(
            API_GROUP, API_VERSION, kube_namespace, PLURAL, NAME, {"status": {"phase": "Deploying"}}
        )
        api_client.close()
        assert phases("Deploying", 30) == ["Deploying"]
        watching.send_signal(signal.SIGINT)
        assert watching.wait(timeout=30) == 0
        assert watching.stderr.read() == ""
    finally:
        watching.kill()
        watching.wait()
