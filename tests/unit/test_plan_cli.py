"""`retraining-operator plan training`: the exact request on stdout, no AWS calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from retraining_operator.cli import main
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.training_request import (
    TrainingData,
    training_job_request,
    tuning_job_request,
)
from unit.training_policies import PASCAL, TUNING, document, spec

ARGS = [
    "--train-manifest",
    "s3://my-bucket/a2i-results/runs/r1/train.manifest",
    "--validation-manifest",
    "s3://my-bucket/voc/validation.manifest",
    "--train-samples",
    "400",
    "--base-model",
    "s3://my-bucket/model/model.tar.gz",
]
DATA = TrainingData(
    "s3://my-bucket/a2i-results/runs/r1/train.manifest",
    "s3://my-bucket/voc/validation.manifest",
    400,
    "s3://my-bucket/model/model.tar.gz",
)
IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"


@pytest.fixture(autouse=True)
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any AWS call would need an endpoint; point them all at a closed port."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "none")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "none")


def test_prints_the_create_training_job_request(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "training", "--policy", str(PASCAL), *ARGS, "--run-id", "r1"])

    out = capsys.readouterr().out
    assert code == 0
    printed = json.loads(out)
    expected = training_job_request(
        spec(), PolicyRef.without_uid("vision", "pascal-detector"), "r1", DATA, image_uri=IMAGE
    )
    assert printed == json.loads(json.dumps(expected))
    assert printed["HyperParameters"]["num_training_samples"] == "400"


def test_metadata_uid_names_the_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = document()
    doc["metadata"]["uid"] = "6f1c2d3e-1111-4222-8333-444455556666"
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))

    assert main(["plan", "training", "--policy", str(path), *ARGS, "--run-id", "r1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    live = PolicyRef("vision", "pascal-detector", "6f1c2d3e-1111-4222-8333-444455556666")
    assert printed["TrainingJobName"] == live.training_job_name("r1")
    assert {"Key": "retraining.hitl.dev/policy-uid", "Value": live.uid} in printed["Tags"]


def test_default_run_id_is_time_based(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "training", "--policy", str(PASCAL), *ARGS]) == 0
    tags = {t["Key"]: t["Value"] for t in json.loads(capsys.readouterr().out)["Tags"]}
    assert tags["retraining.hitl.dev/run-id"].startswith("r20")


def test_tuning_policy_prints_tuning_request(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "training", "--policy", str(TUNING), *ARGS, "--run-id", "r1"]) == 0
    captured = capsys.readouterr()
    assert "CreateHyperParameterTuningJob" in captured.err
    expected = tuning_job_request(
        spec(TUNING),
        PolicyRef.without_uid("vision", "retail-shelves"),
        "r1",
        DATA,
        image_uri="685385470294.dkr.ecr.eu-west-1.amazonaws.com/object-detection:1",
    )
    assert json.loads(captured.out) == json.loads(json.dumps(expected))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--policy", str(PASCAL), *ARGS[:-2]], "pass --base-model"),
        (["--policy", str(PASCAL), *ARGS, "--run-id", "bad id!"], "--run-id"),
        (["--policy", str(PASCAL), *ARGS[:-1], "/tmp/model.tar.gz"], "not an s3:// URI"),
        (["--policy", "/nonexistent/policy.yaml", *ARGS], "cannot read"),
        (["--policy", str(PASCAL), *ARGS[:5], "0", *ARGS[6:]], "0 samples"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "training", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err


def test_not_a_policy_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert main(["plan", "training", "--policy", str(path), *ARGS]) == 2
    assert "is not a RetrainingPolicy" in capsys.readouterr().err


def test_invalid_spec_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = document()
    doc["spec"]["training"]["maxRuntime"] = "forever"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["plan", "training", "--policy", str(path), *ARGS]) == 2
    assert "maxRuntime" in capsys.readouterr().err


def test_registering_plan_is_argparse_only() -> None:
    probe = (
        "import argparse, sys\n"
        "from retraining_operator.commands import plan\n"
        "parser = argparse.ArgumentParser()\n"
        "plan.register(parser.add_subparsers())\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'yaml', 'pydantic') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
