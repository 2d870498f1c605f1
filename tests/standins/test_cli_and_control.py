"""`retraining-standins serve|demo` in a subprocess, and the HTTP control API."""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from retraining_standins.control import Control
from retraining_standins.stack import AwsStandins

CLI = Path(sys.executable).parent / "retraining-standins"
REQUIRED = {
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SAGEMAKER",
    "AWS_ENDPOINT_URL_SAGEMAKER_A2I_RUNTIME",
    "AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_CLOUDWATCH",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "DEMO_BUCKET",
    "DEMO_FLOW_DEFINITION_ARN",
    "DEMO_ENDPOINT_NAME",
    "DEMO_MODEL_DATA_URL",
}


def read_exports(process: subprocess.Popen[str], timeout: float = 60) -> tuple[list[str], dict]:
    """Read stdout lines until every required export arrived (the process keeps serving)."""
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if {ln.split("=", 1)[0].removeprefix("export ") for ln in seen} >= REQUIRED:
            break
    exports = {}
    for line in seen:
        name, _, value = line.removeprefix("export ").partition("=")
        exports[name] = shlex.split(value)[0]
    return seen, exports


@pytest.fixture
def standins_process() -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen(
        [str(CLI), "serve", "--seed-loops", "3", "--speed", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_standins_command_prints_exports_first_and_serves(
    standins_process: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines, exports = read_exports(standins_process)
    assert lines, "no output from `retraining-standins serve`"
    assert all(line.startswith("export ") for line in lines)
    assert lines[0].startswith("export AWS_ENDPOINT_URL_")
    assert exports.keys() >= REQUIRED
    assert exports["AWS_ENDPOINT_URL_S3"].startswith("http://127.0.0.1:")

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in exports.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)

    a2i = boto3.client("sagemaker-a2i-runtime")
    loops = a2i.list_human_loops(FlowDefinitionArn=exports["DEMO_FLOW_DEFINITION_ARN"])
    assert [s["HumanLoopStatus"] for s in loops["HumanLoopSummaries"]] == ["Completed"] * 3
    output = a2i.describe_human_loop(HumanLoopName=loops["HumanLoopSummaries"][0]["HumanLoopName"])[
        "HumanLoopOutput"
    ]["OutputS3Uri"]
    assert output.startswith(f"s3://{exports['DEMO_BUCKET']}/a2i-results/fd-demo/")

    sm = boto3.client("sagemaker")
    endpoint = sm.describe_endpoint(EndpointName=exports["DEMO_ENDPOINT_NAME"])
    assert endpoint["EndpointStatus"] == "InService"
    assert [v["VariantName"] for v in endpoint["ProductionVariants"]] == ["AllTraffic"]
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == exports["DEMO_MODEL_DATA_URL"]
    assert "object-detection" in model["PrimaryContainer"]["Image"]
    bucket, key = exports["DEMO_MODEL_DATA_URL"][len("s3://") :].split("/", 1)
    assert boto3.client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"] > 0

    standins_process.send_signal(signal.SIGTERM)
    assert standins_process.wait(timeout=20) == 0


def test_serve_sandbox_and_demo_are_the_commands() -> None:
    out = subprocess.run([str(CLI), "--help"], capture_output=True, text=True, check=True)
    assert "usage: retraining-standins" in out.stdout
    assert set(re.findall(r"^ {4}(\w\S*)", out.stdout, re.MULTILINE)) == {
        "serve",
        "sandbox",
        "demo",
    }
    serve = subprocess.run([str(CLI), "serve", "--help"], capture_output=True, text=True)
    assert serve.returncode == 0
    assert "--seed-loops" in serve.stdout
    assert "--speed" in serve.stdout
    module = [sys.executable, "-m", "retraining_standins", "demo", "--help"]
    demo = subprocess.run(module, capture_output=True, text=True)
    assert demo.returncode == 0
    assert "--assets" in demo.stdout


def test_demo_without_envtest_binaries_says_where_to_get_them(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUBEBUILDER_ASSETS"}
    result = subprocess.run(
        [str(CLI), "demo", "--timeout", "1"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2, result.stderr
    assert "KUBEBUILDER_ASSETS" in result.stderr
    assert "--assets" in result.stderr
    assert "tests/envtest/build.sh" in result.stderr
    empty = subprocess.run(
        [str(CLI), "demo", "--assets", str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert empty.returncode == 2
    assert f"not found in --assets {tmp_path}" in empty.stderr


def test_control_api_drives_clock_log_and_loops(aws: AwsStandins, a2i_flow: Any) -> None:
    control = Control(aws.endpoints.control)
    assert control.health()["ok"] is True
    before = aws.clock.now()
    control.advance(120)
    assert (aws.clock.now() - before).total_seconds() == 120
    names = control.add_loops("fd-test", 2, status="InProgress")
    assert [loop.name for loop in aws.a2i.loops("fd-test")] == names
    uri = control.complete_loop(names[0])
    assert aws.get_object(uri) is not None
    control.set_metrics("job-x", {"validation:mAP": 0.9})
    assert aws.emulator.training.metric_overrides["job-x"] == {"validation:mAP": 0.9}
    control.plan_training("job-y", outcome="Failed", failure_reason="boom")
    assert aws.emulator.training.plans["job-y"].outcome == "Failed"
    boto3.client("sagemaker").list_models()
    assert [c["operation"] for c in control.calls("sagemaker")] == ["ListModels"]
    control.clear_log()
    assert control.calls() == []
    control.reset()
    with pytest.raises(ClientError):
        boto3.client("sagemaker").describe_flow_definition(FlowDefinitionName="fd-test")
