"""Policies for the training/gate tests: the shipped examples, optionally modified."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.training_request import TrainingData

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PASCAL = EXAMPLES / "pascal-voc-detector.yaml"
TUNING = EXAMPLES / "spot-canary-tuning.yaml"

# The seed notebook's training cell, verbatim (set_hyperparameters + Estimator arguments).
SEED_HYPERPARAMETERS = {
    "base_network": "resnet-50",
    "use_pretrained_model": "0",
    "num_classes": "20",
    "learning_rate": "0.0001",
    "mini_batch_size": "1",
    "epochs": "1",
    "lr_scheduler_step": "3,6",
    "lr_scheduler_factor": "0.1",
    "optimizer": "sgd",
    "momentum": "0.9",
    "weight_decay": "0.0005",
    "overlap_threshold": "0.5",
    "nms_threshold": "0.45",
    "image_shape": "300",
    "label_width": "350",
}
SEED_MAX_RUN = 360000

POLICY = PolicyRef(namespace="vision", name="pascal-detector", uid="3f6c1e9a-0000-4000-8000-1234")
RUN_ID = "r20261124-220500"
DATA = TrainingData(
    train_manifest_s3_uri="s3://my-bucket/a2i-results/runs/r20261124-220500/train.manifest",
    validation_manifest_s3_uri="s3://my-bucket/voc/validation.manifest",
    train_samples=400,
    base_model_s3_uri="s3://my-bucket/model/model.tar.gz",
)
IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"


def document(path: Path = PASCAL) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def spec(path: Path = PASCAL, **training: Any) -> RetrainingPolicySpec:
    """The example's spec, with `training` keys (camelCase) replaced."""
    raw = copy.deepcopy(document(path)["spec"])
    raw["training"].update(training)
    return RetrainingPolicySpec.model_validate(raw)
