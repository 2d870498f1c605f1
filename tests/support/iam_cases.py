"""RetrainingPolicy specs that switch each feature of `iam-policy` on or off: every example,
and variations of them (for the IAM tests: the printed documents, the granted actions)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from retraining_operator.api import RetrainingPolicySpec

REPO = Path(__file__).resolve().parents[2]
QUEUE = "https://sqs.us-east-1.amazonaws.com/111122223333/a2i-events"


def example(name: str) -> tuple[str, dict[str, Any]]:
    """(metadata.name, spec) of examples/<name>.yaml."""
    doc = yaml.safe_load((REPO / "examples" / f"{name}.yaml").read_text())
    return str(doc["metadata"]["name"]), doc["spec"]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value

    return change


def _from(source: str, path: str) -> Callable[[dict[str, Any]], None]:
    """Take one part of another example's spec (e.g. its tuning)."""
    node = example(source)[1]
    for key in path.split("."):
        node = node[key]
    return _set(path, node)


# (case name, example, changes to its spec, policy name override)
VARIATIONS: list[tuple[str, str, list[Callable[[dict[str, Any]], None]], str | None]] = [
    (
        "rolling",
        "pascal-voc-detector",
        [_set("deployment.strategy", "Rolling"), _set("deployment.blueGreen", None)],
        None,
    ),
    ("no-alarms", "pascal-voc-detector", [_set("deployment.autoRollbackAlarms", None)], None),
    (
        "train-only-from-endpoint",
        "pascal-voc-detector",
        [_set("deployment.strategy", "None"), _set("deployment.blueGreen", None)],
        None,
    ),
    (
        "no-validation-no-replay",
        "pascal-voc-detector",
        [_set("dataset.validation", None), _set("dataset.replay", None)],
        None,
    ),
    (
        "bucket-only-dataset",
        "pascal-voc-detector",
        [_set("dataset.outputS3Uri", "s3://data-bucket")],
        None,
    ),
    (
        "events",
        "pascal-voc-detector",
        [_set("humanLoops.events", {"sqsQueueUrl": QUEUE})],
        None,
    ),
    (
        "upper-case-endpoint",
        "pascal-voc-detector",
        [_set("deployment.endpointName", "OD-Endpoint")],
        None,
    ),
    ("long-name", "pascal-voc-detector", [], "p" * 63),
    (
        "tuning-variant-shift-registry",
        "variant-shift",
        [
            _from("spot-canary-tuning", "training.tuning"),
            _from("registry-manual-approval", "registry"),
        ],
        None,
    ),
]


def examples() -> Iterator[tuple[str, str, RetrainingPolicySpec]]:
    for path in sorted((REPO / "examples").glob("*.yaml")):
        name, raw = example(path.stem)
        yield path.stem, name, RetrainingPolicySpec.model_validate(raw)


def variations() -> Iterator[tuple[str, str, RetrainingPolicySpec]]:
    for case, source, changes, policy_name in VARIATIONS:
        name, raw = example(source)
        raw = copy.deepcopy(raw)
        for change in changes:
            change(raw)
        yield case, policy_name or name, RetrainingPolicySpec.model_validate(raw)
