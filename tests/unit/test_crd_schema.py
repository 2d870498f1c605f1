"""The RetrainingPolicy CRD: structural, described, and admitting exactly what it should.

These run the CRD's OpenAPI schema and CEL rules in-process (see support/crdschema.py);
tests/kube/ proves the same examples against a real kube-apiserver.
"""

from __future__ import annotations

from pathlib import Path

import celpy
import pytest
import yaml

from support import crdschema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
INVALID = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))

CRD = crdschema.load_crd()
SCHEMA = crdschema.version_schema(CRD)


def test_crd_names_scope_and_subresources() -> None:
    spec = CRD["spec"]
    assert CRD["metadata"]["name"] == "retrainingpolicies.retraining.hitl.dev"
    assert spec["group"] == "retraining.hitl.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "RetrainingPolicy"
    assert spec["names"]["shortNames"] == ["rtp"]
    assert spec["names"]["categories"] == ["hitl"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns_cover_phase_pending_job_model_ready_age() -> None:
    columns = {
        c["name"]: c["jsonPath"] for c in CRD["spec"]["versions"][0]["additionalPrinterColumns"]
    }
    assert columns == {
        "Phase": ".status.phase",
        "Pending": ".status.ingest.pendingSamples",
        "Last-Job": ".status.lastTrainingJobName",
        "Serving-Model": ".status.serving.modelName",
        "Stage": ".status.currentRun.stage",  # AwaitingApproval shows here
        # Degraded shows here, with its reason (IngestFailed, ...), not only as a phase.
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Reason": '.status.conditions[?(@.type=="Ready")].reason',
        "Age": ".metadata.creationTimestamp",
    }
    for path in columns.values():
        if path.startswith(".status") and "[" not in path:
            node = SCHEMA
            for part in path.strip(".").split("."):
                node = node["properties"][part]
            assert node["type"] in ("string", "integer")


def test_schema_is_structural() -> None:
    assert crdschema.structural_problems(SCHEMA) == []


def test_structural_check_catches_a_hole() -> None:
    # The checker itself must be able to fail.
    broken = {"type": "object", "properties": {"spec": {"type": "object"}, "x": {}}}
    problems = crdschema.structural_problems(broken)
    assert "spec: object without properties (an unknown-field hole)" in problems
    assert "x: no type" in problems


def test_every_field_has_a_description() -> None:
    assert crdschema.undescribed_fields(SCHEMA) == []


def test_every_cel_rule_compiles_and_has_a_message() -> None:
    env = celpy.Environment()
    rules = [
        (path, rule)
        for path, node in crdschema.walk(SCHEMA)
        for rule in node.get("x-kubernetes-validations", [])
    ]
    assert len(rules) >= 15
    for path, rule in rules:
        env.compile(rule["rule"])
        assert rule.get("message") or rule.get("messageExpression"), f"{path}: no message"
        if "messageExpression" in rule:  # cel-python lacks the strings extension's join
            env.compile(rule["messageExpression"].replace(".join(', ')", ""))
            assert rule["messageExpression"].startswith("'"), "it names the field first"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_are_admitted(path: Path) -> None:
    obj = yaml.safe_load(path.read_text())
    _, errors = crdschema.admit(SCHEMA, obj)
    assert errors == []


def test_there_are_enough_examples_and_invalid_cases() -> None:
    assert len(EXAMPLES) >= 3
    assert len(INVALID) >= 8


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_examples_are_refused_with_the_expected_message(path: Path) -> None:
    expected, obj = crdschema.load_invalid(path)
    _, errors = crdschema.admit(SCHEMA, obj)
    assert errors, f"{path.name} was admitted"
    assert any(expected in error for error in errors), errors


def test_defaults_fill_a_minimal_policy() -> None:
    minimal = yaml.safe_load((ROOT / "examples" / "train-only.yaml").read_text())
    defaulted, errors = crdschema.admit(SCHEMA, minimal)
    assert errors == []
    spec = defaulted["spec"]
    assert spec["humanLoops"]["pollInterval"] == "5m"
    assert spec["humanLoops"]["lookback"] == "24h"
    assert spec["labels"]["attributeName"] == "a2i-retraining"
    assert spec["labels"]["unknownLabel"] == "Quarantine"
    assert spec["dataset"]["validation"] == {
        "holdoutPercent": 10,
        "minSamples": 10,
        "allowTrainAsValidation": False,
    }
    assert spec["training"]["spot"] == {"enabled": False}
    assert spec["gate"] == {"metric": "validation:mAP", "maxRegression": 0.01, "minimum": 0.4}
    assert spec["deployment"]["retainPreviousModels"] == 3


def test_base_model_defaults_to_the_endpoint_and_then_needs_one() -> None:
    obj = yaml.safe_load((ROOT / "examples" / "train-only.yaml").read_text())
    del obj["spec"]["training"]["baseModel"]  # default {fromEndpoint: true} applies ...
    _, errors = crdschema.admit(SCHEMA, obj)
    # ... and with strategy None there is no endpoint to take the model from.
    assert any("needs deployment.endpointName" in e for e in errors), errors


def test_every_default_passes_its_own_schema_and_rules() -> None:
    # kube-apiserver refuses a CRD whose defaults fail their node's validation, CEL included
    # (the raw default is checked before nested defaults are applied).
    problems = []
    for path, node in crdschema.walk(SCHEMA):
        if "default" not in node:
            continue
        default = node["default"]
        problems += [f"{path}: {e}" for e in crdschema.openapi_errors(node, default)]
        problems += [f"{path}: {e}" for e in crdschema.cel_errors(node, default, path)]
    assert problems == []


def test_default_check_catches_a_rule_on_a_missing_key() -> None:
    node = {
        "type": "object",
        "default": {},
        "x-kubernetes-validations": [{"rule": "!self.enabled", "message": "m"}],
        "properties": {"enabled": {"type": "boolean", "default": False, "description": "d"}},
    }
    assert crdschema.cel_errors(node, node["default"], "spot")
