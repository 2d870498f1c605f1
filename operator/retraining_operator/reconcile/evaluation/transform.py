"""The evaluation's Batch Transform jobs, pure: names, where inputs and predictions live, and
the CreateTransformJob request.

One job per model and run at most: the candidate's over every image to judge, the serving
model's over the images it has not predicted yet. Predictions are kept per model under
`<dataset.outputS3Uri>/evaluation/predictions/<model name>/`, one `.out` object per image
(SageMaker's own naming: the input's path relative to the manifest's prefix, plus `.out`),
so while a model serves, each image is inferred once: its later runs read the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

from retraining_operator.api import RetrainingPolicySpec, parse_duration
from retraining_operator.reconcile.naming import PolicyRef, resource_name

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateTransformJobRequestTypeDef

EVALUATION_PREFIX = "evaluation"
Role = Literal["candidate", "serving"]
_KINDS: dict[str, str] = {"candidate": "tc", "serving": "ts"}


class EvaluationInputError(ValueError):
    """The images to judge cannot be given to one transform job (message says why)."""


def transform_job_name(policy: PolicyRef, run_id: str, role: Role) -> str:
    return resource_name(
        _KINDS[role], policy_name=policy.name, policy_uid=policy.uid, run_id=run_id
    )


def evaluation_root(spec: RetrainingPolicySpec) -> str:
    return f"{spec.dataset.output_s3_uri.rstrip('/')}/{EVALUATION_PREFIX}"


def predictions_prefix(spec: RetrainingPolicySpec, model_name: str) -> str:
    """Where a model's predictions are kept (a trailing slash: a directory)."""
    return f"{evaluation_root(spec)}/predictions/{model_name}/"


def input_manifest_uri(spec: RetrainingPolicySpec, run_id: str, role: Role) -> str:
    return f"{evaluation_root(spec)}/inputs/{run_id}/{role}.manifest"


def common_prefix(images: Sequence[str]) -> str:
    """The `s3://bucket/` every image shares (a ManifestFile has one prefix)."""
    buckets = {ref.removeprefix("s3://").split("/", 1)[0] for ref in images}
    if not images or any(not ref.startswith("s3://") for ref in images):
        raise EvaluationInputError("every image to judge must be an s3:// object")
    if len(buckets) != 1:
        raise EvaluationInputError(
            f"the images to judge are in {len(buckets)} buckets ({', '.join(sorted(buckets)[:3])}"
            "...); one transform job reads one bucket: keep the reviewed images in one bucket"
        )
    return f"s3://{buckets.pop()}/"


def manifest_body(images: Sequence[str]) -> bytes:
    """A ManifestFile: `[{"prefix": "s3://bucket/"}, "key", ...]`, keys in the given order."""
    import json

    prefix = common_prefix(images)
    return json.dumps([{"prefix": prefix}, *(ref[len(prefix) :] for ref in images)]).encode()


def prediction_uri(predictions: str, image: str) -> str:
    """The `.out` object SageMaker writes for `image` (prefix `s3://bucket/`)."""
    key = image.removeprefix("s3://").split("/", 1)[1]
    return f"{predictions}{key}.out"


@dataclass(frozen=True)
class TransformTarget:
    """One transform job: its name, the model, its input manifest and output prefix."""

    job_name: str
    model_name: str
    input_manifest: str
    output_prefix: str


def transform_request(
    policy: PolicyRef, spec: RetrainingPolicySpec, run_id: str, target: TransformTarget
) -> CreateTransformJobRequestTypeDef:
    """CreateTransformJob for the built-in object-detection algorithm: one image per request
    (`image/jpeg`), its JSON answer per image, the policy's KMS keys and ownership tags."""
    evaluation = spec.gate.evaluation
    if evaluation is None:
        raise ValueError("gate.evaluation is not set")
    training = spec.training
    request: dict[str, object] = {
        "TransformJobName": target.job_name,
        "ModelName": target.model_name,
        "BatchStrategy": "SingleRecord",
        "MaxConcurrentTransforms": 1,
        "MaxPayloadInMB": 6,
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": 600, "InvocationsMaxRetries": 1},
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": target.input_manifest}
            },
            "ContentType": "image/jpeg",
            "SplitType": "None",
            "CompressionType": "None",
        },
        "TransformOutput": {
            "S3OutputPath": target.output_prefix.rstrip("/"),
            "Accept": "application/json",
            "AssembleWith": "None",
        },
        "TransformResources": {
            "InstanceType": evaluation.instance_type,
            "InstanceCount": evaluation.instance_count,
        },
        "Tags": policy.tags(run_id),
    }
    if training.output_kms_key_id:
        cast(dict[str, str], request["TransformOutput"])["KmsKeyId"] = training.output_kms_key_id
    if training.volume_kms_key_id:
        cast(dict[str, str], request["TransformResources"])["VolumeKmsKeyId"] = (
            training.volume_kms_key_id
        )
    return cast("CreateTransformJobRequestTypeDef", request)


def max_runtime_seconds(spec: RetrainingPolicySpec) -> float:
    evaluation = spec.gate.evaluation
    return parse_duration(evaluation.max_runtime).total_seconds() if evaluation else 0.0
