"""The Model Registry's pure rules: approval status, lineage, reading a package back,
rollback targets by package."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from retraining_operator.api import (
    Approval,
    CurrentRun,
    HistoryEntry,
    Outcome,
    RegistrySpec,
    RunStage,
)
from retraining_operator.reconcile.gate import GateDecision
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.registry import (
    ApprovalStatus,
    Candidate,
    RegistryError,
    approval_description,
    approval_of,
    client_token,
    foreign_group,
    initial_approval,
    lineage,
    metrics_document,
    names_package,
    package_container,
    package_version,
)
from retraining_operator.reconcile.rollout.errors import UnknownRollbackTarget
from retraining_operator.reconcile.rollout.rollback import resolve_rollback_target, rollback_run

POLICY = PolicyRef(namespace="vision", name="pascal", uid="uid-1")
GROUP_ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/pascal-detectors"
T0 = datetime(2026, 11, 29, 21, tzinfo=UTC)


def decision(passed: bool) -> GateDecision:
    return GateDecision(
        passed=passed, metric="validation:mAP", value=0.7, reason="why", serving_value=0.69
    )


def registry(approval: Approval) -> RegistrySpec:
    return RegistrySpec(model_package_group_name="pascal-detectors", approval=approval)


@pytest.mark.parametrize(
    ("approval", "passed", "status"),
    [
        (Approval.MANUAL, True, ApprovalStatus.PENDING),
        (Approval.AUTOMATIC, True, ApprovalStatus.APPROVED),
        (Approval.MANUAL, False, ApprovalStatus.REJECTED),
        (Approval.AUTOMATIC, False, ApprovalStatus.REJECTED),
    ],
)
def test_initial_approval_follows_the_gate_then_the_policy(
    approval: Approval, passed: bool, status: ApprovalStatus
) -> None:
    assert initial_approval(registry(approval), decision(passed)) is status
    described = approval_description(registry(approval), decision(passed))
    assert (described is None) == (status is ApprovalStatus.PENDING)


def test_client_token_is_stable_per_run_and_differs_across_policies_and_runs() -> None:
    token = client_token(POLICY, "r1")
    assert token == client_token(POLICY, "r1")
    assert token != client_token(POLICY, "r2")
    assert token != client_token(PolicyRef("vision", "pascal", "uid-2"), "r1")
    assert len(token) <= 36
    assert token.isalnum()


def test_lineage_and_metrics_name_the_runs_manifests_and_both_values() -> None:
    run = CurrentRun(
        id="r1", stage=RunStage.EVALUATING, started_at=T0,
        manifest_s3_uri="s3://b/m/train.manifest", validation_manifest_s3_uri="s3://b/m/val",
    )  # fmt: skip
    candidate = Candidate(run, "tj-1", "s3://b/out/model.tar.gz", "img", decision(True))
    meta = lineage(POLICY, candidate)
    assert meta["retraining.hitl.dev/train-manifest"] == "s3://b/m/train.manifest"
    assert meta["retraining.hitl.dev/training-job"] == "tj-1"
    assert "retraining.hitl.dev/train-lines" not in meta  # unknown counts are left out
    document = metrics_document(POLICY, candidate)
    assert document["candidate"]["value"] == 0.7
    assert document["serving"]["value"] == 0.69


def test_approval_of_an_unknown_status_is_pending() -> None:
    assert approval_of({"ModelApprovalStatus": "Approved"}) is ApprovalStatus.APPROVED
    assert approval_of({"ModelApprovalStatus": "Maybe"}) is ApprovalStatus.PENDING
    assert approval_of({}) is ApprovalStatus.PENDING


@pytest.mark.parametrize(
    "package",
    [
        {},
        {"InferenceSpecification": {"Containers": []}},
        {"InferenceSpecification": {"Containers": [{"Image": "i", "ModelDataUrl": "http://x"}]}},
        {"InferenceSpecification": {"Containers": [{"ModelDataUrl": "s3://b/m.tar.gz"}]}},
    ],
)
def test_a_package_without_a_usable_container_needs_attention(package: dict[str, Any]) -> None:
    with pytest.raises(RegistryError):
        package_container(package)


def test_package_container_is_the_first_container() -> None:
    package = {
        "InferenceSpecification": {"Containers": [{"Image": "img", "ModelDataUrl": "s3://b/m"}]}
    }
    assert package_container(package) == ("img", "s3://b/m")


def test_foreign_group_is_one_tagged_for_another_policy() -> None:
    assert foreign_group(POLICY, {"retraining.hitl.dev/policy-uid": "uid-2"})
    assert not foreign_group(POLICY, {"retraining.hitl.dev/policy-uid": "uid-1"})
    assert not foreign_group(POLICY, {})  # a group a person made: IAM decides


def test_package_names_by_arn_group_version_or_version() -> None:
    arn = f"{GROUP_ARN}/3"
    assert package_version(arn) == 3
    assert names_package(arn, arn)
    assert names_package(arn, "3")
    assert names_package(arn, "pascal-detectors/3")
    assert not names_package(arn, "30")
    assert not names_package(arn, "other-group/3")
    assert not names_package(None, "3")


HISTORY = [
    HistoryEntry(run_id="r3", outcome=Outcome.REJECTED, model_package_arn=f"{GROUP_ARN}/3"),
    HistoryEntry(
        run_id="r2", outcome=Outcome.DEPLOYED, model_name="m2", model_data_url="s3://b/2",
        model_package_arn=f"{GROUP_ARN}/2",
    ),
]  # fmt: skip


def test_rollback_to_a_package_arn_or_version() -> None:
    assert resolve_rollback_target(HISTORY, f"{GROUP_ARN}/2").run_id == "r2"
    entry = resolve_rollback_target(HISTORY, "2")
    run = rollback_run(entry, target="2", now=T0)
    assert run.model_package_arn == f"{GROUP_ARN}/2"
    assert run.model_name == "m2"


def test_rollback_to_a_rejected_or_foreign_package_is_refused() -> None:
    with pytest.raises(UnknownRollbackTarget, match="no model to serve"):
        resolve_rollback_target(HISTORY, "3")
    theirs = "arn:aws:sagemaker:us-east-1:999999999999:model-package/their-group/2"
    with pytest.raises(UnknownRollbackTarget, match="names no run id"):
        resolve_rollback_target(HISTORY, theirs)
