"""`kubectl rtp` on the real kube-apiserver: each verb puts its annotation or patch on the
server and says so in one line; what cannot be done is refused with one line and exit 1.

Verbs run in-process (`main(argv)`), as the installed `kubectl-rtp` script, and through a real
kubectl that finds the plugin on PATH. No operator runs here: what a verb wrote stays.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest
import yaml
from kubernetes import client

from retraining_operator.api import API_GROUP, API_VERSION, PLURAL
from retraining_operator.commands.kubectl_rtp import main
from support import tools
from support.envtest import REPO_ROOT
from support.kube import KubeCluster

pytestmark = pytest.mark.kube

BIN = Path(sys.executable).parent
PLUGIN = BIN / "kubectl-rtp"
NAME = "pascal"
NOW = "2026-12-01T09:00:00Z"
WAITING_RUN = "r20261201-090000"
PACKAGE = "arn:aws:sagemaker:eu-west-1:111122223333:model-package/pascal/7"
CAUSE = "AccessDenied: s3:GetObject on s3://my-bucket/a2i-results/ledger.json"


def entry(
    run_id: str, outcome: str, model: str | None, reason: str | None = None
) -> dict[str, Any]:
    found: dict[str, Any] = {"runId": run_id, "outcome": outcome, "finishedAt": NOW}
    if model is not None:
        found |= {"modelName": model, "modelDataUrl": f"s3://models/{run_id}/model.tar.gz"}
    if reason is not None:
        found["reason"] = reason
    return found


HISTORY = [  # newest first
    entry("r20261124-090000", "GateRejected", None, "validation:mAP 0.64 is below 0.66 - 0.01"),
    entry("r20261117-090000", "Deployed", "pascal-r20261117-090000-m-2b3c4d5e"),
    entry("r20261110-090000", "Deployed", "pascal-r20261110-090000-m-1a2b3c4d"),
]


def run(stage: str) -> dict[str, Any]:
    return {
        "id": WAITING_RUN,
        "stage": stage,
        "startedAt": NOW,
        "trigger": "minNewSamples",
        "modelPackageArn": PACKAGE,
    }


def apply_policy(
    kube: KubeCluster, namespace: str, status: dict[str, Any], *, suspend: bool = False
) -> None:
    """The example policy as NAME in `namespace`, with `status` written through the status
    subresource as the operator writes it."""
    api_client = kube.api_client()
    custom = client.CustomObjectsApi(api_client)
    doc = yaml.safe_load((REPO_ROOT / "examples" / "pascal-voc-detector.yaml").read_text())
    doc["metadata"] = {"name": NAME, "namespace": namespace}
    doc["spec"]["suspend"] = suspend
    custom.create_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, doc)
    custom.patch_namespaced_custom_object_status(
        API_GROUP, API_VERSION, namespace, PLURAL, NAME, {"status": status}
    )
    api_client.close()


def on_server(kube: KubeCluster, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = kube.kubectl_json("get", f"{PLURAL}.{API_GROUP}", NAME, "-n", namespace)
    return found


def annotations(kube: KubeCluster, namespace: str) -> dict[str, str]:
    return dict(on_server(kube, namespace)["metadata"].get("annotations") or {})


def rtp(kube: KubeCluster, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`kubectl rtp ARGV` in-process: exit code, stdout, stderr."""
    code = main([*argv, "--kubeconfig", str(kube.kubeconfig)])
    out, err = capsys.readouterr()
    return code, out, err


def plugin(
    kube: KubeCluster, *argv: str, via_kubectl: bool = False
) -> subprocess.CompletedProcess[str]:
    """The installed console script, or `kubectl rtp` with the script found on PATH."""
    return on_path(kube, "rtp", *argv) if via_kubectl else on_path(kube, str(PLUGIN), *argv)


def on_path(kube: KubeCluster, *argv: str) -> subprocess.CompletedProcess[str]:
    """`kubectl ARGV` (or the program ARGV[0] when it is a path) with a PATH on which the
    venv's scripts are the only kubectl plugins."""
    kubectl = tools.kubectl_path()
    path = os.pathsep.join([str(BIN), str(Path(kubectl).parent), "/usr/bin", "/bin"])
    command = list(argv) if argv[0].startswith("/") else [kubectl, *argv]
    return subprocess.run(
        command,
        env={**kube.env(), "PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# ------------------------------------------------------------------------------- approve


def test_approve_annotates_the_run_awaiting_approval(
    kube: KubeCluster, rtp_crd: Any, kube_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_policy(kube, kube_namespace, {"currentRun": run("AwaitingApproval")})
    code, out, err = rtp(kube, capsys, "approve", NAME, "-n", kube_namespace)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == (
        f"retrainingpolicy {kube_namespace}/{NAME} annotated "
        f"retraining.hitl.dev/approve={WAITING_RUN}"
    )
    assert f"sets {PACKAGE} to Approved" in lines[1]
    assert annotations(kube, kube_namespace)["retraining.hitl.dev/approve"] == WAITING_RUN


def test_approve_refuses_when_nothing_awaits_approval(
    kube: KubeCluster, rtp_crd: Any, kube_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_policy(kube, kube_namespace, {"currentRun": run("Training")})
    code, out, err = rtp(kube, capsys, "approve", NAME, "-n", kube_namespace)
    assert (code, out) == (1, "")
    assert err == (
        f"error: nothing awaits approval on retrainingpolicy {kube_namespace}/{NAME}: "
        f"run {WAITING_RUN} is in stage Training\n"
    )
    assert "retraining.hitl.dev/approve" not in annotations(kube, kube_namespace)


def test_approve_refuses_another_run_than_the_one_waiting(
    kube: KubeCluster, rtp_crd: Any, kube_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_policy(kube, kube_namespace, {"currentRun": run("AwaitingApproval")})
    code, _, err = rtp(kube, capsys, "approve", NAME, "r20991231-000000", "-n", kube_namespace)
    assert code == 1
    assert "run r20991231-000000 does not await approval" in err
    assert f"run {WAITING_RUN} does" in err
    assert "retraining.hitl.dev/approve" not in annotations(kube, kube_namespace)


# ------------------------------------------------------------------------------- rollback


def test_rollback_annotates_a_model_from_the_history(
    kube: KubeCluster, rtp_crd: Any, kube_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_policy(kube, kube_namespace, {"history": HISTORY})
    model = HISTORY[2]["modelName"]
    code, out, err = rtp(kube, capsys, "-n", kube_namespace, "rollback", NAME, "--to", model)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == (
        f"retrainingpolicy {kube_namespace}/{NAME} annotated "
        f"retraining.hitl.dev/rollback-to={model}"
    )
    assert f"serves {model} (run r20261110-090000) again" in lines[1]
    assert annotations(kube, kube_namespace)["retraining.hitl.dev/rollback-to"] == model


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("pascal-m-nope", "names no run id, model or model package in the history"),
        ("r20261124-090000", "ended GateRejected and has no model to serve"),
    ],
)
def test_rollback_to_an_unknown_model_is_refused(
    kube: KubeCluster,
    rtp_crd: Any,
    kube_namespace: str,
    capsys: pytest.CaptureFixture[str],
    target: str,
    why: str,
) -> None:
    apply_policy(kube, kube_namespace, {"history": HISTORY})
    code, out, err = rtp(kube, capsys, "rollback", NAME, "--to", target, "-n", kube_namespace)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: retrainingpolicy {kube_namespace}/{NAME}: rollback-to ")
    assert why in err
    assert "r20261117-090000 (pascal-r20261117-090000-m-2b3c4d5e)" in err  # what it could be
    assert len(err.splitlines()) == 1
    assert "retraining.hitl.dev/rollback-to" not in annotations(kube, kube_namespace)


# ------------------------------------------------------------------------------- retrain


def test_retrain_as_the_installed_script_annotates_retrain_now(
    kube: KubeCluster, rtp_crd: Any, kube_namespace: str
) -> None:
    apply_policy(kube, kube_namespace, {"ingest": {"pendingSamples": 12}})
    before = datetime.now(UTC).replace(microsecond=0)
    done = plugin(kube, "retrain", NAME, "-n", kube_namespace)
    assert done.returncode == 0, done.stderr
    value = annotations(kube, kube_namespace)["retraining.hitl.dev/retrain-now"]
    asked = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= asked <= datetime.now(UTC)
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"retrainingpolicy {kube_namespace}/{NAME} annotated "
        f"retraining.hitl.dev/retrain-now={value}"
    )
    assert "pending samples (12 now)" in lines[1]
    assert len(lines) == 2  # nothing makes it wait


def test_retrain_says_it_waits_for_the_run_in_flight(
    kube: KubeCluster, rtp_crd: Any, kube_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_policy(kube, kube_namespace, {"currentRun": run("Training")})
    code, out, _ = rtp(kube, capsys, "retrain", NAME, "-n", kube_namespace)
    assert code == 0
    assert f"run {WAITING_RUN} is in flight (stage Training): it waits until it ends" in out
    assert "retraining.hitl.dev/retrain-now" in annotations(kube, kube_namespace)


# ------------------------------------------------------------------------------- suspend/resume


def test_suspend_and_resume_through_kubectl_patch_spec_suspend(
    kube: KubeCluster, rtp_crd: Any, kube_namespace: str
) -> None:
    apply_policy(kube, kube_namespace, {"currentRun": run("Training")})
    listed = on_path(kube, "plugin", "list")
    assert str(PLUGIN) in listed.stdout, listed.stdout + listed.stderr

    done = plugin(kube, "suspend", NAME, "-n", kube_namespace, via_kubectl=True)
    assert done.returncode == 0, done.stderr
    label = f"retrainingpolicy {kube_namespace}/{NAME}"
    assert done.stdout.splitlines()[0] == f"{label} patched spec.suspend=true"
    assert f"stops run {WAITING_RUN}'s training job;" in done.stdout
    assert on_server(kube, kube_namespace)["spec"]["suspend"] is True

    again = plugin(kube, "suspend", NAME, "-n", kube_namespace, via_kubectl=True)
    assert (again.returncode, again.stdout) == (
        0,
        f"{label} unchanged: spec.suspend is already true\n",
    )

    resumed = plugin(kube, "resume", NAME, "-n", kube_namespace, via_kubectl=True)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[0] == f"{label} patched spec.suspend=false"
    assert on_server(kube, kube_namespace)["spec"]["suspend"] is False


# ------------------------------------------------------------------------------- read only


def test_history_shows_every_run_with_its_reason_in_full(
    kube: KubeCluster, rtp_crd: Any, kube_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    long_reason = "gate: " + "x" * 150 + " " + CAUSE
    history = [entry("r20261201-090000", "GateRejected", None, long_reason), *HISTORY]
    apply_policy(kube, kube_namespace, {"history": history})
    code, out, _ = rtp(kube, capsys, "history", NAME, "-n", kube_namespace)
    assert code == 0
    assert long_reason in out
    rows = [line.split()[:2] for line in out.splitlines() if line.strip().startswith("r2026")]
    assert rows == [[h["runId"], h["outcome"]] for h in history]


def test_status_through_kubectl_lists_the_contexts_namespace_by_default(
    kube: KubeCluster, rtp_crd: Any, kube_namespace: str, tmp_path: Path
) -> None:
    apply_policy(kube, kube_namespace, {"phase": "Serving", "ingest": {"pendingSamples": 3}})
    config = yaml.safe_load(kube.kubeconfig.read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = kube_namespace
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    done = plugin(kube, "status", "--kubeconfig", str(kubeconfig), via_kubectl=True)
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "STAGE", "PENDING", "READY", "PROBLEM", "AGE"]
    assert row.split()[:6] == [NAME, "Serving", "-", "3", "-", "-"]


# ------------------------------------------------------------------------------- failures


def test_a_missing_policy_is_one_line_and_exit_1(
    kube: KubeCluster, rtp_crd: Any, kube_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for verb in (["approve"], ["rollback", "--to", "x"], ["retrain"], ["suspend"], ["history"]):
        code, out, err = rtp(kube, capsys, verb[0], "nope", *verb[1:], "-n", kube_namespace)
        assert (code, out) == (1, ""), verb
        assert err == f"error: retrainingpolicy {kube_namespace}/nope not found\n", verb


def test_usage_errors_exit_2_and_no_kubeconfig_exits_1(tmp_path: Path) -> None:
    missing = plugin_without_cluster("rollback", NAME)
    assert missing.returncode == 2
    assert "the following arguments are required: --to" in missing.stderr
    assert plugin_without_cluster().returncode == 2
    absent = tmp_path / "absent"
    nothing = plugin_without_cluster("status", env={"KUBECONFIG": str(absent)})
    assert nothing.returncode == 1
    assert nothing.stderr == (
        f"error: no kubeconfig: {absent} does not exist (set KUBECONFIG or pass --kubeconfig)\n"
    )


def plugin_without_cluster(
    *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    return subprocess.run(
        [str(PLUGIN), *argv],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_closed_pipe_ends_a_watch_quietly(
    kube: KubeCluster, rtp_crd: Any, kube_namespace: str
) -> None:
    apply_policy(kube, kube_namespace, {"phase": "Serving"})
    watching = subprocess.Popen(
        [str(PLUGIN), "status", "-w", "-n", kube_namespace],
        env=kube.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watching.stdout is not None
    assert watching.stderr is not None
    try:
        assert watching.stdout.readline().split()[0] == "NAME"  # like `| head -1`
        watching.stdout.close()
        set_phase(kube, kube_namespace, "Training")  # the next line meets a closed pipe
        assert watching.wait(timeout=30) == 0
        assert watching.stderr.read() == ""
    finally:
        watching.kill()
        watching.wait()


def set_phase(kube: KubeCluster, namespace: str, phase: str) -> None:
    api_client = kube.api_client()
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object_status(
        API_GROUP, API_VERSION, namespace, PLURAL, NAME, {"status": {"phase": phase}}
    )
    api_client.close()


def lines_of(stream: IO[str]) -> Callable[[float], str]:
    """A reader of `stream`'s next line that gives up after a timeout ("" then)."""
    found: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [found.put(line) for line in stream], daemon=True).start()

    def next_line(timeout: float) -> str:
        try:
            return found.get(timeout=timeout)
        except queue.Empty:
            return ""

    return next_line


def test_status_watch_through_the_plugin_prints_a_line_per_change_and_ctrl_c_exits_0(
    kube: KubeCluster, rtp_crd: Any, kube_namespace: str
) -> None:
    apply_policy(kube, kube_namespace, {"phase": "Serving"})
    watching = subprocess.Popen(
        [str(PLUGIN), "status", "--watch", "--wide", "-n", kube_namespace],
        env=kube.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watching.stdout is not None
    assert watching.stderr is not None
    try:
        next_line = lines_of(watching.stdout)
        assert next_line(30).split()[:2] == ["NAME", "PHASE"]
        assert next_line(30).split()[:2] == [NAME, "Serving"]
        assert next_line(1) == ""  # nothing changed, nothing printed
        set_phase(kube, kube_namespace, "Training")
        assert next_line(30).split()[:2] == [NAME, "Training"]
        watching.send_signal(signal.SIGINT)
        assert watching.wait(timeout=30) == 0
        assert "Traceback" not in watching.stderr.read()
    finally:
        watching.kill()
        watching.wait()


def test_status_into_a_pipe_closed_early_exits_quietly(
    kube: KubeCluster, rtp_crd: Any, kube_namespace: str
) -> None:
    apply_policy(kube, kube_namespace, {"phase": "Serving", "history": HISTORY})
    status = f"'{PLUGIN}' status {NAME} -n {kube_namespace}"
    for reader, shown in (
        ("head -1", f"RetrainingPolicy {kube_namespace}/{NAME}  (generation 1)\n"),
        # `true` reads nothing and is gone before the plugin has connected: every write fails.
        ("true", ""),
    ):
        done = subprocess.run(
            ["bash", "-c", f"{status} | {reader}; exit ${{PIPESTATUS[0]}}"],
            env=kube.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (done.returncode, done.stderr, done.stdout) == (0, "", shown), reader
