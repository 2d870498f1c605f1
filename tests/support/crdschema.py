"""The API server's CRD admission, reproduced for fast unit tests.

Structural checks, defaulting, OpenAPI validation (jsonschema) and the CEL rules
(`x-kubernetes-validations`, evaluated with cel-python) of a CRD schema. The real
API server tests (tests/kube/) prove the same files against kube-apiserver; this
module lets the schema be exercised in milliseconds, with error strings that carry
the same field paths and CEL messages the API server reports.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "retrainingpolicies.yaml"

Schema = dict[str, Any]


def load_crd(path: Path = CRD_PATH) -> dict[str, Any]:
    with path.open() as fh:
        crd: dict[str, Any] = yaml.safe_load(fh)
    return crd


def version_schema(crd: dict[str, Any], version: str = "v1alpha1") -> Schema:
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            schema: Schema = entry["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(version)


# ---------------------------------------------------------------------------------------
# Structural schema rules (apiextensions.k8s.io/v1, "Specifying a structural schema")


def walk(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every node of a schema with a dotted path (`[*]` for items, `{*}` for map values)."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[*]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{*}}")


def structural_problems(schema: Schema) -> list[str]:
    problems = []
    for path, node in walk(schema):
        untyped_allowed = node.get("x-kubernetes-int-or-string") or node.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        if "type" not in node and not untyped_allowed:
            problems.append(f"{path or '<root>'}: no type")
        if node.get("type") == "object" and path != "metadata":
            has_shape = "properties" in node or "additionalProperties" in node
            if not has_shape and not node.get("x-kubernetes-preserve-unknown-fields"):
                problems.append(f"{path}: object without properties (an unknown-field hole)")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: both properties and additionalProperties")
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "not", "nullable"):
            if banned in node and path:
                problems.append(f"{path}: uses {banned}")
    return problems


def undescribed_fields(schema: Schema) -> list[str]:
    skip = {"metadata"}
    return [
        path
        for path, node in walk(schema)
        if path and path not in skip and not path.endswith("[*]") and "description" not in node
    ]


# ---------------------------------------------------------------------------------------
# Defaulting: what the API server does before validation.


def apply_defaults(schema: Schema, value: Any) -> Any:
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                value[key] = apply_defaults(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


# ---------------------------------------------------------------------------------------
# Validation: OpenAPI (via jsonschema) and CEL.


def _as_jsonschema(schema: Schema) -> Schema:
    out: Schema = {}
    for key, val in schema.items():
        if key.startswith("x-kubernetes-") or key in ("format", "description", "default"):
            continue
        if key == "properties":
            out[key] = {name: _as_jsonschema(sub) for name, sub in val.items()}
        elif key in ("items", "additionalProperties") and isinstance(val, dict):
            out[key] = _as_jsonschema(val)
        else:
            out[key] = val
    if schema.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


def _dotted(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def openapi_errors(schema: Schema, obj: Any) -> list[str]:
    validator = jsonschema.Draft4Validator(_as_jsonschema(schema))
    errors = []
    for err in validator.iter_errors(obj):
        path = _dotted(err.absolute_path)
        if err.validator == "required":
            missing = err.message.split("'")[1]
            errors.append(f"{path + '.' if path else ''}{missing}: Required value")
        else:
            errors.append(f"{path}: {err.message}")
    return errors


_CEL_ENV = celpy.Environment()


def as_cel_value(schema: Schema, value: Any) -> Any:
    """The value as the API server types it for CEL: a `type: number` is always a double
    (JSON `8` included), which cel-python would otherwise keep as an int."""
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        return {
            key: as_cel_value(props.get(key, extra if isinstance(extra, dict) else {}), item)
            for key, item in value.items()
        }
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [as_cel_value(schema["items"], item) for item in value]
    return value


def cel_errors(schema: Schema, value: Any, path: str = "") -> list[str]:
    errors = []
    for rule in schema.get("x-kubernetes-validations", []):
        program = _CEL_ENV.program(_CEL_ENV.compile(rule["rule"]))
        try:
            typed = celpy.json_to_cel(as_cel_value(schema, value))
            ok = bool(program.evaluate({"self": typed}))
        except celpy.CELEvalError as exc:  # the API server reports evaluation errors too
            errors.append(f"{path}: rule {rule['rule']!r} failed to evaluate: {exc.args[0]}")
            continue
        if not ok:
            errors.append(f"{path}: Invalid value: {_message(rule, typed)}")
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                errors += cel_errors(sub, value[name], f"{path}.{name}" if path else name)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, item in value.items():
                errors += cel_errors(extra, item, f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            errors += cel_errors(schema["items"], item, f"{path}[{index}]")
    return errors


def _message(rule: dict[str, Any], typed: Any) -> str:
    """The rule's message; a messageExpression evaluated as the API server does (cel-python
    has no `join`: a list result is joined here, as CEL's strings extension would)."""
    expression = rule.get("messageExpression")
    if expression is None:
        return str(rule.get("message", rule["rule"]))
    joined = expression.replace(".join(', ')", "")
    if joined != expression:  # evaluate the list, then join it like the strings extension
        head, _, tail = expression.partition(".join(', ')")
        start = head.rindex(" + ") + 3
        listed = _CEL_ENV.program(_CEL_ENV.compile(head[start:])).evaluate({"self": typed})
        text = "'" + ", ".join(str(item) for item in listed) + "'"
        expression = head[:start] + text + tail
    return str(_CEL_ENV.program(_CEL_ENV.compile(expression)).evaluate({"self": typed}))


def admit(schema: Schema, obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Default, then validate like the API server: (defaulted object, error strings)."""
    defaulted = apply_defaults(schema, copy.deepcopy(obj))
    errors = openapi_errors(schema, defaulted)
    if not errors:  # CEL runs on schema-valid objects only (cel-python needs the types)
        errors = cel_errors(schema, defaulted)
    return defaulted, errors


def load_invalid(path: Path) -> tuple[str, dict[str, Any]]:
    """An invalid example: (expected error substring, object)."""
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# expect: "), f"{path} must start with '# expect: '"
    return first.removeprefix("# expect: ").strip(), yaml.safe_load(text)
