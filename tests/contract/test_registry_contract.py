"""AWS contract of the Model Registry: every request validates against botocore's model.

The request builders of `reconcile/registry.py` and the `plan registry` CLI's output are
checked with botocore's `ParamValidator` and with the stand-ins' strict validator (the
maximum lengths, patterns and enums AWS enforces and botocore skips); the gateway with
botocore's `Stubber` (which validates every request too).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import yaml
from botocore.stub import Stubber
from botocore.validate import ParamValidator

from retraining_operator.api import CurrentRun, RetrainingPolicySpec, RunSamples, RunStage
from retraining_operator.aws import registry as gateway
from retraining_operator.aws.errors import AlreadyExists, NotFound
from retraining_operator.cli import main
from retraining_operator.reconcile.gate import GateDecision
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.registry import (
    ApprovalStatus,
    Candidate,
    group_request,
    model_package_request,
    update_approval_request,
)
from retraining_standins.errors import ApiError
from retraining_standins.validation import validate_params

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "registry-manual-approval.yaml"
POLICY = PolicyRef(namespace="vision", name="pascal-detector", uid="0f8fad5b-d9cb-469f")
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/pascal-detectors/3"
MODEL_DATA = "s3://my-bucket/a2i-results/incremental-training/tj/output/model.tar.gz"
RUN_ID = "r20261129-210000"


def assert_valid(operation: str, params: Any) -> None:
    shape = SAGEMAKER.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), f"{operation}: {report.generate_report()}"
    validate_params(params, shape)  # AWS's lengths, patterns and enums (raises ApiError)


def spec(**registry: Any) -> RetrainingPolicySpec:
    document = yaml.safe_load(EXAMPLE.read_text())
    body = document["spec"]
    body["registry"] = {**body["registry"], **registry}
    return RetrainingPolicySpec.model_validate(body)


def candidate(*, passed: bool = True, manifest: str | None = None) -> Candidate:
    run = CurrentRun(
        id=RUN_ID,
        stage=RunStage.EVALUATING,
        started_at=datetime(2026, 11, 29, 21, tzinfo=UTC),
        trigger="MinNewSamples",
        manifest_s3_uri=manifest or "s3://my-bucket/a2i-results/manifests/train-1a2b.manifest",
        validation_manifest_s3_uri="s3://my-bucket/a2i-results/manifests/val-3c4d.manifest",
        base_model_data_url="s3://my-bucket/models/base/model.tar.gz",
        samples=RunSamples(new=120, replay=360, validation=12, train=468),
        training_job_name="pascal-detector-r20261129-210000-tj-1a2b3c4d",
    )
    decision = GateDecision(
        passed=passed,
        metric="validation:mAP",
        value=0.71 if passed else 0.4,
        reason="validation:mAP 0.71 passes" if passed else "validation:mAP 0.4 is below 0.5",
        required=0.5,
        serving_value=0.7,
    )
    return Candidate(
        run=run,
        training_job_name=run.training_job_name or "",
        model_data_url=MODEL_DATA,
        image="811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1",
        decision=decision,
    )


@pytest.mark.parametrize(
    ("approval", "passed", "status"),
    [
        ("Manual", True, "PendingManualApproval"),
        ("Automatic", True, "Approved"),
        ("Manual", False, "Rejected"),
        ("Automatic", False, "Rejected"),
    ],
)
def test_model_package_requests_are_valid(approval: str, passed: bool, status: str) -> None:
    request = model_package_request(POLICY, spec(approval=approval), candidate(passed=passed))
    assert_valid("CreateModelPackage", request)
    assert request["ModelApprovalStatus"] == status


def test_group_and_update_requests_are_valid() -> None:
    registry = spec().registry
    assert registry is not None
    assert_valid("CreateModelPackageGroup", group_request(POLICY, registry))
    for status in ApprovalStatus:
        assert_valid("UpdateModelPackage", update_approval_request(ARN, status, "x" * 5000))


def test_hostile_lineage_still_makes_a_valid_request() -> None:
    """A manifest URI longer than a metadata value and with characters the registry refuses
    (the spec allows any S3 key) is cut and cleaned, not sent as AWS would refuse it."""
    manifest = "s3://my-bucket/" + "deep/" * 200 + "train,%$;(1).manifest"
    request = model_package_request(POLICY, spec(), candidate(manifest=manifest))
    assert_valid("CreateModelPackage", request)
    value = request["CustomerMetadataProperties"]["retraining.hitl.dev/train-manifest"]
    assert len(value) == 256
    assert value.endswith("...")
    raw = dict(request)
    raw["CustomerMetadataProperties"] = {"retraining.hitl.dev/train-manifest": manifest}
    with pytest.raises(ApiError):  # the checker itself bites on the uncleaned value
        validate_params(raw, SAGEMAKER.operation_model("CreateModelPackage").input_shape)


@pytest.fixture(autouse=False)
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "none")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "none")


def test_plan_registry_prints_a_valid_create_model_package(
    no_aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["plan", "registry", "--policy", str(EXAMPLE), "--model-data", MODEL_DATA,
         "--run-id", RUN_ID]
    )  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["CreateModelPackage"]
    request = out["CreateModelPackage"]
    assert_valid("CreateModelPackage", request)
    assert request["ModelApprovalStatus"] == "PendingManualApproval"  # the example is Manual
    assert request["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == MODEL_DATA
    assert request["CustomerMetadataProperties"]["retraining.hitl.dev/run-id"] == RUN_ID


def test_plan_registry_judges_a_metric_value(
    no_aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["plan", "registry", "--policy", str(EXAMPLE), "--model-data", MODEL_DATA,
         "--run-id", RUN_ID, "--metric-value", "0.1", "--serving-value", "0.7"]
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    request = json.loads(captured.out)["CreateModelPackage"]
    assert_valid("CreateModelPackage", request)
    assert request["ModelApprovalStatus"] == "Rejected"
    assert "UpdateModelPackage" in captured.err


def test_plan_registry_refuses_a_policy_without_registry(
    no_aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    del document["spec"]["registry"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(document))
    code = main(["plan", "registry", "--policy", str(path), "--model-data", MODEL_DATA])
    assert code == 2
    assert "spec.registry is not set" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# The gateway (botocore Stubber validates every request against the model)


@pytest.fixture
def stubbed() -> Any:
    client = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        yield client, stub


def test_gateway_finds_creates_and_maps_errors(stubbed: Any) -> None:
    client, stub = stubbed
    stub.add_client_error(
        "describe_model_package_group",
        service_error_code="ValidationException",
        service_message="ModelPackageGroup pascal-detectors does not exist.",
        expected_params={"ModelPackageGroupName": "pascal-detectors"},
    )
    assert gateway.find_model_package_group(client, "pascal-detectors") is None
    registry = spec().registry
    assert registry is not None
    request = group_request(POLICY, registry)
    stub.add_client_error(
        "create_model_package_group",
        service_error_code="ValidationException",
        service_message="Model Package Group already exists: arn:...",
        expected_params=dict(request),
    )
    with pytest.raises(AlreadyExists):
        gateway.create_model_package_group(client, request)
    package = model_package_request(POLICY, spec(), candidate())
    stub.add_response(
        "create_model_package", {"ModelPackageArn": ARN}, expected_params=dict(package)
    )
    assert gateway.create_model_package(client, package) == ARN
    stub.add_client_error(
        "describe_model_package",
        service_error_code="ValidationException",
        service_message=f"ModelPackage {ARN} does not exist.",
        expected_params={"ModelPackageName": ARN},
    )
    with pytest.raises(NotFound):
        gateway.describe_model_package(client, ARN)
    update = update_approval_request(ARN, ApprovalStatus.APPROVED, "ok")
    stub.add_response("update_model_package", {"ModelPackageArn": ARN}, expected_params=update)
    assert gateway.update_model_package(client, update) == ARN
    stub.assert_no_pending_responses()
