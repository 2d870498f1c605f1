"""api.py and the CRD describe the same API: fields, nesting, defaults, enums, bounds.

The walk goes both ways (every CRD field has a model field and every model field a
CRD field), and every example/invalid example gets the same verdict from both.
"""

from __future__ import annotations

import copy
import enum
import re
import types
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from pydantic import BaseModel

from retraining_operator import api
from support import crdschema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
INVALID = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))
SCHEMA = crdschema.version_schema(crdschema.load_crd())


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and Optional."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            assert len(args) == 1, annotation
            annotation = args[0]
        else:
            return annotation


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    return {(f.alias or n): f for n, f in model.model_fields.items()}


def _agree(schema: dict[str, Any], annotation: Any, path: str, problems: list[str]) -> None:
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if schema.get("type") != "object" or "properties" not in schema:
            problems.append(
                f"{path}: model {annotation.__name__} but CRD type {schema.get('type')}"
            )
            return
        fields = _fields(annotation)
        crd_props = schema["properties"]
        for name in sorted(set(crd_props) - set(fields)):
            problems.append(f"{path}.{name}: in the CRD, not in {annotation.__name__}")
        for name in sorted(set(fields) - set(crd_props)):
            problems.append(f"{path}.{name}: in {annotation.__name__}, not in the CRD")
        for name in sorted(set(fields) & set(crd_props)):
            _agree(crd_props[name], fields[name].annotation, f"{path}.{name}", problems)
        required = {n for n, f in fields.items() if f.is_required()}
        if set(schema.get("required", [])) != required:
            problems.append(
                f"{path}: required {schema.get('required', [])} vs model {sorted(required)}"
            )
    elif origin is list:
        if schema.get("type") != "array":
            problems.append(f"{path}: list but CRD type {schema.get('type')}")
            return
        _agree(schema["items"], typing.get_args(annotation)[0], f"{path}[*]", problems)
    elif origin is dict:
        if schema.get("type") != "object" or "additionalProperties" not in schema:
            problems.append(f"{path}: dict but CRD has no additionalProperties")
            return
        _agree(
            schema["additionalProperties"], typing.get_args(annotation)[1], f"{path}{{*}}", problems
        )
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        if sorted(schema.get("enum", [])) != sorted(m.value for m in annotation):
            problems.append(f"{path}: enum {schema.get('enum')} vs {[m.value for m in annotation]}")
    elif origin is typing.Literal:
        literal = list(typing.get_args(annotation))
        if schema.get("type") == "string" and schema.get("enum", literal) != literal:
            problems.append(f"{path}: enum {schema.get('enum')} vs Literal {literal}")
    else:
        expected = {str: "string", bool: "boolean", int: "integer", float: "number"}
        if annotation in expected and schema.get("type") != expected[annotation]:
            problems.append(f"{path}: {annotation.__name__} but CRD type {schema.get('type')}")
        elif annotation.__name__ == "datetime" and schema.get("format") != "date-time":
            problems.append(f"{path}: datetime but CRD format {schema.get('format')}")


def test_spec_models_match_the_crd() -> None:
    problems: list[str] = []
    _agree(SCHEMA["properties"]["spec"], api.RetrainingPolicySpec, "spec", problems)
    assert problems == []


def test_status_models_match_the_crd() -> None:
    problems: list[str] = []
    _agree(SCHEMA["properties"]["status"], api.RetrainingPolicyStatus, "status", problems)
    assert problems == []


def test_the_agreement_walk_can_fail() -> None:
    class Drifted(BaseModel):
        region: int
        extra_field: str

    problems: list[str] = []
    _agree(SCHEMA["properties"]["spec"]["properties"]["aws"], Drifted, "spec.aws", problems)
    assert "spec.aws.region: int but CRD type string" in problems
    assert "spec.aws.extra_field: in Drifted, not in the CRD" in problems
    assert "spec.aws.roleArn: in the CRD, not in Drifted" in problems


def _model_schema_nodes() -> dict[str, dict[str, Any]]:
    """Flatten pydantic's JSON schema of the spec into dotted paths (resolving $ref/anyOf)."""
    root = api.RetrainingPolicySpec.model_json_schema(by_alias=True)
    defs = root.get("$defs", {})
    out: dict[str, dict[str, Any]] = {}

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in node:
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return {**resolve(defs[node["$ref"].split("/")[-1]]), **siblings}
        if "anyOf" in node:
            (inner,) = [n for n in node["anyOf"] if n.get("type") != "null"]
            merged = {**resolve(inner), **{k: v for k, v in node.items() if k != "anyOf"}}
            return merged
        return node

    def visit(node: dict[str, Any], path: str) -> None:
        node = resolve(node)
        out[path] = node
        for name, sub in node.get("properties", {}).items():
            visit(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            visit(node["items"], f"{path}[*]")
        if isinstance(node.get("additionalProperties"), dict):
            visit(node["additionalProperties"], f"{path}{{*}}")

    visit(root, "spec")
    return out


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


FORMAT_RULE = re.compile(r"^self\.matches\(r'(?P<pattern>.*)'\)$")
FLOOR_RULE = re.compile(r"^self >= (?P<floor>[0-9.]+)$")


def _as_written(node: dict[str, Any]) -> dict[str, Any]:
    """The CRD node with its CEL format and floor rules read back as `pattern` and `minimum`
    (the CRD states them as rules so the refusal names the field and the expected form)."""
    node = dict(node)
    for rule in node.get("x-kubernetes-validations", []):
        if match := FORMAT_RULE.match(rule["rule"]):
            node["pattern"] = match.group("pattern")
        elif match := FLOOR_RULE.match(rule["rule"]):
            node["minimum"] = float(match.group("floor"))
    return node


def test_patterns_bounds_and_defaults_match() -> None:
    model_nodes = _model_schema_nodes()
    crd_nodes = {path: _as_written(node) for path, node in crdschema.walk(SCHEMA)}
    pairs = {
        "pattern": "pattern",
        "minimum": "minimum",
        "maximum": "maximum",
        "minLength": "minLength",
        "maxLength": "maxLength",
        "minItems": "minItems",
        "maxItems": "maxItems",
        "minProperties": "minProperties",
        "maxProperties": "maxProperties",
    }
    problems = []
    checked = 0
    for path, crd_node in crd_nodes.items():
        if not path.startswith("spec") or path not in model_nodes:
            continue
        model_node = model_nodes[path]
        for crd_key, model_key in pairs.items():
            if crd_key in crd_node or model_key in model_node:
                checked += 1
                if crd_node.get(crd_key) != model_node.get(model_key):
                    problems.append(
                        f"{path}: {crd_key} CRD={crd_node.get(crd_key)!r} "
                        f"model={model_node.get(model_key)!r}"
                    )
        if "default" in crd_node and "default" in model_node:
            checked += 1
            crd_default = crdschema.apply_defaults(crd_node, copy.deepcopy(crd_node["default"]))
            if crd_default != _drop_none(model_node["default"]):
                problems.append(
                    f"{path}: default CRD={crd_default!r} model={model_node['default']!r}"
                )
        elif "default" in crd_node:
            problems.append(f"{path}: default only in the CRD")
    assert problems == [], "\n".join(problems)
    assert checked > 60


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_validate_in_the_models(path: Path) -> None:
    obj = yaml.safe_load(path.read_text())
    spec = api.RetrainingPolicySpec.model_validate(obj["spec"])
    # The wire form round-trips to the same model.
    assert api.RetrainingPolicySpec.model_validate(spec.to_wire()) == spec
    # And the models' defaults equal what the API server would store.
    defaulted, _ = crdschema.admit(SCHEMA, obj)
    assert spec.model_dump(mode="json", by_alias=True, exclude_none=True) == defaulted["spec"]


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_examples_are_refused_by_the_models(path: Path) -> None:
    _expected, obj = crdschema.load_invalid(path)
    with pytest.raises(pydantic.ValidationError):
        api.RetrainingPolicySpec.model_validate(obj["spec"])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h30m", 5400), ("100h", 360000), ("250ms", 0.25), ("1.5h", 5400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert api.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "m5", "5 m", "-5m", "5d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        api.parse_duration(text)


def test_variant_shift_steps_must_ascend_in_the_model() -> None:
    # CEL on this cluster version cannot compare neighbours; the model (and so the operator,
    # which reports Degraded) refuses it.
    with pytest.raises(pydantic.ValidationError, match="strictly ascending"):
        api.VariantShiftSpec(steps=[50, 10, 100])


def test_status_round_trip_and_history_bound() -> None:
    status = api.RetrainingPolicyStatus.model_validate(
        {
            "phase": "Serving",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Serving",
                    "lastTransitionTime": "2026-11-24T10:00:00Z",
                }
            ],
            "ingest": {"pendingSamples": 3, "watermark": "2026-11-24T09:00:00Z"},
            "history": [{"runId": "r1", "outcome": "Deployed"}],
            "kopf": {"ignored": True},
        }
    )
    wire = status.to_wire()
    assert wire["conditions"][0]["lastTransitionTime"] == "2026-11-24T10:00:00Z"
    assert wire["ingest"]["watermark"] == "2026-11-24T09:00:00Z"
    assert "kopf" not in wire
    with pytest.raises(pydantic.ValidationError):
        api.RetrainingPolicyStatus(
            history=[
                api.HistoryEntry(run_id=str(i), outcome=api.Outcome.TRAINED) for i in range(21)
            ]
        )
