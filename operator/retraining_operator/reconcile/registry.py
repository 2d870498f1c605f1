"""The SageMaker Model Registry requests of a run (pure): every candidate with its evidence.

Each run whose training job succeeds registers one versioned Model Package in the
policy's Model Package Group (`spec.registry`): the inference container (image and the
trained artifacts), `ModelMetrics` pointing at a metrics JSON written under the dataset
prefix (the gate metric of the new model and of the serving one), the run's lineage as
`CustomerMetadataProperties`, and an approval status that says what the gate and the
policy decided: `Rejected` (gate failed; the reason in `ApprovalDescription`, sent
with an UpdateModelPackage because CreateModelPackage takes none),
`Approved` (gate passed, approval Automatic) or `PendingManualApproval` (approval Manual).

CreateModelPackage takes no name for a versioned package, so a crash between the call
and the status write must not register the candidate twice: the request carries a
`ClientToken` derived from the policy UID and the run id, and SageMaker answers a repeated
token with the package it already made.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from retraining_operator.api import (
    API_GROUP,
    Approval,
    CurrentRun,
    RegistrySpec,
    RetrainingPolicySpec,
    ShadowTest,
)
from retraining_operator.errors import NeedsAttention
from retraining_operator.reconcile.gate import GateDecision
from retraining_operator.reconcile.naming import TAG_POLICY_UID, TAG_RUN_ID, PolicyRef

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import (
        CreateModelPackageGroupInputTypeDef,
        CreateModelPackageInputTypeDef,
        UpdateModelPackageInputTypeDef,
    )

METRICS_PREFIX = "registry"
METRICS_FILE = "model-metrics.json"
METRICS_SCHEMA = "retraining.hitl.dev/model-metrics/v1"

# CustomerMetadataProperties: at most 50 entries, keys up to 128 and values up to 256
# characters of letters, digits, spaces and `_.:/=+-@`.
MAX_METADATA_VALUE = 256
_METADATA_DISALLOWED = re.compile(r"[^\w\s.:/=+\-@]")
# ApprovalDescription and ModelPackageDescription: at most 1024 characters.
MAX_DESCRIPTION = 1024
# Real-time inference of the built-in object-detection algorithm (its documented types).
CONTENT_TYPES = ("image/jpeg", "image/png", "application/x-image")
RESPONSE_TYPES = ("application/json",)


class ApprovalStatus(StrEnum):
    APPROVED = "Approved"
    REJECTED = "Rejected"
    PENDING = "PendingManualApproval"


class RegistryError(NeedsAttention):
    """The registry holds something the operator cannot use: a person must look."""

    def __init__(self, message: str) -> None:
        super().__init__("RegistryProblem", message)


@dataclass(frozen=True)
class Candidate:
    """One run's trained model as the registry records it."""

    run: CurrentRun
    training_job_name: str
    model_data_url: str
    image: str
    decision: GateDecision


def client_token(policy: PolicyRef, run_id: str) -> str:
    """CreateModelPackage's idempotency token: one per (policy, run), 32 hex digits."""
    return hashlib.sha256(f"{policy.uid}\x00{run_id}".encode()).hexdigest()[:32]


def initial_approval(registry: RegistrySpec, decision: GateDecision) -> ApprovalStatus:
    if not decision.passed:
        return ApprovalStatus.REJECTED
    if registry.approval is Approval.MANUAL:
        return ApprovalStatus.PENDING
    return ApprovalStatus.APPROVED


def metrics_s3_uri(spec: RetrainingPolicySpec, run_id: str) -> str:
    """Where the run's metrics JSON is written: under the dataset prefix, per run."""
    return f"{spec.dataset.output_s3_uri.rstrip('/')}/{METRICS_PREFIX}/{run_id}/{METRICS_FILE}"


def metrics_document(policy: PolicyRef, candidate: Candidate) -> dict[str, Any]:
    """The metrics JSON the package's `ModelMetrics` points at (and the full lineage,
    for values too long for `CustomerMetadataProperties`)."""
    decision = candidate.decision
    return {
        "schema": METRICS_SCHEMA,
        "metric": decision.metric,
        "higherIsBetter": True,
        "candidate": {"value": decision.value, "trainingJob": candidate.training_job_name},
        "serving": {"value": decision.serving_value},
        "gate": {"passed": decision.passed, "required": decision.required},
        "reason": decision.reason,
        "lineage": lineage(policy, candidate, full=True),
        # gate.evaluation: both models on the same held-out images (docs/gate.md).
        "heldOut": candidate.run.comparison.to_wire() if candidate.run.comparison else None,
    }


def metrics_body(policy: PolicyRef, candidate: Candidate) -> bytes:
    return json.dumps(metrics_document(policy, candidate), indent=2, sort_keys=True).encode()


def lineage(policy: PolicyRef, candidate: Candidate, *, full: bool = False) -> dict[str, str]:
    """Where the candidate comes from: run, policy, manifests and counts, base model, job.

    `full=False` shapes it for `CustomerMetadataProperties`: values cut to 256 characters
    (a cut value ends in `...`; the metrics JSON keeps the whole), others' characters
    replaced by `_`.
    """
    run = candidate.run
    samples = run.samples
    values: dict[str, str | int | None] = {
        "retraining.hitl.dev/run-id": run.id,
        "retraining.hitl.dev/policy": f"{policy.namespace}/{policy.name}",
        "retraining.hitl.dev/policy-uid": policy.uid,
        "retraining.hitl.dev/trigger": run.trigger,
        "retraining.hitl.dev/train-manifest": run.manifest_s3_uri,
        "retraining.hitl.dev/validation-manifest": run.validation_manifest_s3_uri,
        "retraining.hitl.dev/train-lines": samples.train if samples else None,
        "retraining.hitl.dev/validation-lines": samples.validation if samples else None,
        "retraining.hitl.dev/new-samples": samples.new if samples else None,
        "retraining.hitl.dev/replay-samples": samples.replay if samples else None,
        "retraining.hitl.dev/base-model": run.base_model_data_url,
        "retraining.hitl.dev/training-job": candidate.training_job_name,
        "retraining.hitl.dev/tuning-job": run.tuning_job_name,
        "retraining.hitl.dev/model-data": candidate.model_data_url,
        "retraining.hitl.dev/gate-metric": candidate.decision.metric,
        "retraining.hitl.dev/gate-value": _number(candidate.decision.value),
        "retraining.hitl.dev/serving-value": _number(candidate.decision.serving_value),
    }
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None or value == "":
            continue
        text = str(value)
        if not full:
            text = _METADATA_DISALLOWED.sub("_", text)
            if len(text) > MAX_METADATA_VALUE:
                text = text[: MAX_METADATA_VALUE - 3] + "..."
        out[key] = text
    return out


def consolidation(spec: RetrainingPolicySpec) -> dict[str, str]:
    """How the run's dataset was put together (the policy's consolidation settings)."""
    dataset = spec.dataset
    out = {
        "retraining.hitl.dev/min-new-samples": str(dataset.min_new_samples),
        "retraining.hitl.dev/holdout-percent": str(dataset.validation.holdout_percent),
        "retraining.hitl.dev/worker-answer": str(spec.labels.worker_answer),
        "retraining.hitl.dev/unknown-label": str(spec.labels.unknown_label),
    }
    if dataset.replay is not None:
        out["retraining.hitl.dev/replay-per-new-sample"] = str(
            dataset.replay.samples_per_new_sample
        )
    return out


def _number(value: float | None) -> str | None:
    return None if value is None else f"{value:.6g}"


def group_request(policy: PolicyRef, registry: RegistrySpec) -> CreateModelPackageGroupInputTypeDef:
    return {
        "ModelPackageGroupName": registry.model_package_group_name,
        "ModelPackageGroupDescription": (
            f"Candidates of RetrainingPolicy {policy.namespace}/{policy.name} "
            "(a2i-retraining-operator)"
        ),
        # The ownership tags without a run id: the group spans the policy's runs.
        "Tags": cast("Any", [t for t in policy.tags("") if t["Key"] != TAG_RUN_ID]),
    }


def foreign_group(policy: PolicyRef, group_tags: Mapping[str, str]) -> bool:
    """Whether the group was made by this operator for another policy (never register
    into it: it holds another team's candidates)."""
    owner = group_tags.get(TAG_POLICY_UID)
    return owner is not None and owner != policy.uid


def model_package_request(
    policy: PolicyRef, spec: RetrainingPolicySpec, candidate: Candidate
) -> CreateModelPackageInputTypeDef:
    """CreateModelPackage for the candidate (see the module docstring)."""
    registry = spec.registry
    if registry is None:
        raise RegistryError("spec.registry is not set: nothing to register")
    run, decision = candidate.run, candidate.decision
    if not candidate.model_data_url.startswith("s3://"):
        raise RegistryError(
            f"run {run.id}: model artifacts must be an s3:// URL, got {candidate.model_data_url!r}"
        )
    status = initial_approval(registry, decision)
    metadata = {**lineage(policy, candidate), **consolidation(spec)}
    request: dict[str, Any] = {
        "ModelPackageGroupName": registry.model_package_group_name,
        "ModelPackageDescription": _cut(
            f"run {run.id} of {policy.namespace}/{policy.name}: {decision.reason}"
        ),
        "InferenceSpecification": {
            "Containers": [{"Image": candidate.image, "ModelDataUrl": candidate.model_data_url}],
            "SupportedContentTypes": list(CONTENT_TYPES),
            "SupportedResponseMIMETypes": list(RESPONSE_TYPES),
            "SupportedRealtimeInferenceInstanceTypes": [spec.deployment.instance_type],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": metrics_s3_uri(spec, run.id),
                }
            }
        },
        "CustomerMetadataProperties": metadata,
        "ModelApprovalStatus": str(status),
        "ClientToken": client_token(policy, run.id),
        "Tags": policy.tags(run.id),
    }
    return cast("CreateModelPackageInputTypeDef", request)


def approval_description(registry: RegistrySpec, decision: GateDecision) -> str | None:
    """Why the operator registered the candidate Approved or Rejected (None: pending).

    CreateModelPackage takes no `ApprovalDescription`: the operator sends it with an
    UpdateModelPackage right after, so the registry shows the gate's reason."""
    status = initial_approval(registry, decision)
    if status is ApprovalStatus.REJECTED:
        return _cut(f"gate failed: {decision.reason}")
    if status is ApprovalStatus.APPROVED:
        return _cut(f"approved automatically (registry.approval Automatic): {decision.reason}")
    return None


def update_approval_request(
    arn: str, status: ApprovalStatus, description: str
) -> UpdateModelPackageInputTypeDef:
    return {
        "ModelPackageArn": arn,
        "ModelApprovalStatus": status.value,
        "ApprovalDescription": _cut(description),
    }


def _cut(text: str) -> str:
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 3] + "..."


# ---------------------------------------------------------------------------------------
# Reading a package back


def approval_of(package: Mapping[str, Any]) -> ApprovalStatus:
    """A DescribeModelPackage answer's approval status (anything unknown counts as pending)."""
    try:
        return ApprovalStatus(str(package.get("ModelApprovalStatus", "")))
    except ValueError:
        return ApprovalStatus.PENDING


def package_container(package: Mapping[str, Any]) -> tuple[str, str]:
    """(image, model data URL) of the package's first inference container: what the
    rollout's CreateModel serves, so the Model and the registry tell the same story."""
    arn = package.get("ModelPackageArn", "the model package")
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or []
    if not containers:
        raise RegistryError(f"{arn} has no inference container to deploy")
    first = containers[0]
    image, data = first.get("Image"), first.get("ModelDataUrl")
    if not image or not isinstance(data, str) or not data.startswith("s3://"):
        raise RegistryError(f"{arn}: its inference container has no image or s3:// model data")
    return str(image), data


def package_version(arn: str | None) -> int | None:
    """The version of a versioned package ARN (`...:model-package/<group>/<version>`)."""
    if not arn:
        return None
    tail = arn.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


def names_package(arn: str | None, target: str) -> bool:
    """Whether a rollback target (an ARN, `<group>/<version>` or a version) names `arn`."""
    if not arn or not target:
        return False
    if target == arn:
        return True
    if target.isdigit():
        return package_version(arn) == int(target)
    return "/" in target and arn.lower().endswith("/" + target.lower())


def shadow_metadata_request(arn: str, test: ShadowTest) -> UpdateModelPackageInputTypeDef:
    """The shadow test's verdict and numbers on the candidate's Model Package (registered
    before the shadow test ran): UpdateModelPackage merges these CustomerMetadataProperties."""
    values = {
        "shadow": "passed" if test.passed else "failed",
        "shadow-experiment": test.experiment_name,
        "shadow-invocations": _number(test.invocations),
        "shadow-latency-ratio": _number(test.latency_ratio),
        "shadow-p99-ms": _number(test.shadow_p99_ms),
        "production-p99-ms": _number(test.production_p99_ms),
        "shadow-5xx-rate": _number(test.error_5xx_rate),
        "shadow-4xx-rate": _number(test.error_4xx_rate),
    }
    return {
        "ModelPackageArn": arn,
        "CustomerMetadataProperties": {
            f"{API_GROUP}/{key}": value[:256] for key, value in values.items() if value
        },
    }
