"""Policies for the ingest/dataset tests: a minimal valid spec with the parts ingest reads."""

from __future__ import annotations

from typing import Any

from retraining_operator.api import RetrainingPolicySpec

VOC = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]  # fmt: skip
ACCOUNT = "123456789012"


def flow_arn(name: str = "fd-test", account: str = ACCOUNT) -> str:
    return f"arn:aws:sagemaker:us-east-1:{account}:flow-definition/{name}"


def ingest_spec(
    *,
    output: str = "s3://rtp-test-bucket/out",
    flow: str | None = None,
    labels: dict[str, Any] | None = None,
    dataset: dict[str, Any] | None = None,
    lookback: str = "24h",
) -> RetrainingPolicySpec:
    return RetrainingPolicySpec.model_validate(
        {
            "aws": {"region": "us-east-1"},
            "humanLoops": {"flowDefinitionArn": flow or flow_arn(), "lookback": lookback},
            "labels": {"classes": VOC, **(labels or {})},
            "dataset": {"outputS3Uri": output, **(dataset or {})},
            "training": {
                "roleArn": f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecution",
                "algorithm": "object-detection",
                "baseModel": {"s3Uri": "s3://rtp-test-bucket/model/model.tar.gz"},
                "outputS3Uri": "s3://rtp-test-bucket/training",
            },
            "deployment": {"strategy": "None"},
        }
    )
