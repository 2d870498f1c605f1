"""Policies, configs and endpoint answers for the rollout tests (unit, contract, integration)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from retraining_operator.api import CurrentRun, RetrainingPolicySpec, RunStage
from retraining_operator.reconcile.naming import PolicyRef

ROOT = Path(__file__).resolve().parents[2]
PASCAL = ROOT / "examples" / "pascal-voc-detector.yaml"
CURRENT_CONFIG_FILE = ROOT / "tests" / "data" / "rollout" / "current-endpoint-config.json"

POLICY = PolicyRef(namespace="vision", name="pascal-detector", uid="3f6c1e9a-0000-4000-8000-1234")
RUN_ID = "r20261124-220500"
MODEL_DATA = "s3://my-bucket/a2i-results/incremental-training/tj/output/model.tar.gz"
IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"
T0 = datetime(2026, 11, 24, 22, 5, tzinfo=UTC)


def document(path: Path = PASCAL) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def spec(**deployment: Any) -> RetrainingPolicySpec:
    """The PASCAL example's spec with `deployment` keys (camelCase) replaced.

    A strategy other than BlueGreen drops the example's `blueGreen` block (the API refuses
    a block of another strategy).
    """
    raw = copy.deepcopy(document()["spec"])
    if deployment.get("strategy", "BlueGreen") != "BlueGreen":
        raw["deployment"].pop("blueGreen", None)
    raw["deployment"].update(deployment)
    return RetrainingPolicySpec.model_validate(raw)


def current_config() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(CURRENT_CONFIG_FILE.read_text())
    return loaded


def single_variant_config(name: str = "od-config-1", model: str = "od-model-1") -> dict[str, Any]:
    return {
        "EndpointConfigName": name,
        "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:111122223333:endpoint-config/{name}",
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": model,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.xlarge",
                "InitialVariantWeight": 1.0,
            }
        ],
        "CreationTime": T0,
    }


def run(**fields: Any) -> CurrentRun:
    values: dict[str, Any] = {
        "id": RUN_ID,
        "stage": RunStage.DEPLOYING,
        "started_at": T0,
        "training_job_name": "pascal-detector-r20261124-220500-tj-0a1b2c3d",
        "model_data_url": MODEL_DATA,
        "metric_value": 0.61,
    }
    values.update(fields)
    return CurrentRun(**values)


def endpoint(
    status: str = "InService",
    config: str | None = "od-config-1",
    *,
    pending: str | None = None,
    failure: str | None = None,
    modified: datetime = T0,
    variants: dict[str, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """A DescribeEndpoint answer; `variants` maps name -> (current, desired) weight."""
    answer: dict[str, Any] = {
        "EndpointName": "od-endpoint",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:111122223333:endpoint/od-endpoint",
        "EndpointStatus": status,
        "CreationTime": T0,
        "LastModifiedTime": modified,
        "ProductionVariants": [
            {"VariantName": name, "CurrentWeight": cur, "DesiredWeight": des}
            for name, (cur, des) in (variants or {"AllTraffic": (1.0, 1.0)}).items()
        ],
    }
    if config is not None:
        answer["EndpointConfigName"] = config
    if pending is not None:
        answer["PendingDeploymentSummary"] = {"EndpointConfigName": pending}
    if failure is not None:
        answer["FailureReason"] = failure
    return answer
