"""Wire format <-> Python params, driven by botocore's service model.

Requests are parsed back into exactly what the caller passed to boto3 (timestamps become
`datetime`, blobs `bytes`), so botocore's own `ParamValidator` can check them. Responses are
built as Python dicts and serialized against the output shape; serialization is strict (an
unknown member, a wrong type or an out-of-enum value raises `ShapeError`), which keeps the
emulator honest about the shapes it returns.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape
from botocore.utils import parse_timestamp

from retraining_standins.errors import validation


class ShapeError(Exception):
    """The emulator tried to return something its output shape does not allow (a bug)."""


# -- requests ------------------------------------------------------------------------------
def parse_json_body(body: bytes, shape: StructureShape | None) -> dict[str, Any]:
    """A JSON 1.1 / REST-JSON request body -> params (per `shape`)."""
    if not body.strip():
        return {}
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise validation(f"Request body is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise validation("Request body must be a JSON object")
    if shape is None:
        return raw
    value = from_wire(raw, shape)
    assert isinstance(value, dict)
    return value


def from_wire(value: Any, shape: Shape) -> Any:
    """Convert one decoded JSON value to its boto3-side Python form. Values of the wrong type
    are passed through unchanged, for the validator to report."""
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            return value
        members = shape.members
        return {k: (from_wire(v, members[k]) if k in members else v) for k, v in value.items()}
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            return value
        return [from_wire(v, shape.member) for v in value]
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            return value
        return {k: from_wire(v, shape.value) for k, v in value.items()}
    if shape.type_name == "timestamp":
        return _parse_timestamp(value)
    if shape.type_name == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return value
    return value


def _parse_timestamp(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return value
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            return parse_timestamp(value).astimezone(UTC)
        except (ValueError, TypeError, OverflowError):
            return value
    return value


def parse_rest_request(
    operation: OperationModel,
    path_params: Mapping[str, str],
    query: Mapping[str, list[str]],
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    """A REST-JSON request -> params: URI labels, query string, headers, then the body."""
    shape = operation.input_shape
    if shape is None:
        return {}
    params: dict[str, Any] = {}
    body_members = False
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "uri":
            if wire_name in path_params:
                params[name] = path_params[wire_name]
        elif location == "querystring":
            if isinstance(member, ListShape):
                if wire_name in query:
                    params[name] = [_from_text(v, member.member) for v in query[wire_name]]
            elif query.get(wire_name):
                params[name] = _from_text(query[wire_name][0], member)
        elif location == "header":
            if wire_name in headers:
                params[name] = _from_text(headers[wire_name], member)
        else:
            body_members = True
    if body_members:
        decoded = parse_json_body(body, shape)
        for key, value in decoded.items():
            if key in shape.members and shape.members[key].serialization.get("location"):
                continue  # a location-bound member smuggled into the body: not a body member
            params[key] = value
    return params


def _from_text(text: str, shape: Shape) -> Any:
    kind = shape.type_name
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            return text
    if kind in ("float", "double"):
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "boolean":
        return {"true": True, "false": False}.get(text.lower(), text)
    if kind == "timestamp":
        return _parse_timestamp(text)
    return text


# -- responses -----------------------------------------------------------------------------
def to_wire(value: Any, shape: Shape, timestamp_format: str, path: str = "") -> Any:
    """Python value -> JSON-ready value per `shape`; `timestamp_format` is the protocol default
    (`unixTimestamp` for JSON 1.1 and REST-JSON bodies) unless the member says otherwise."""
    where = path or shape.name
    if isinstance(shape, StructureShape):
        if not isinstance(value, Mapping):
            raise ShapeError(f"{where}: expected a structure, got {type(value).__name__}")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            member = shape.members.get(key)
            if member is None:
                raise ShapeError(f"{where}: {key!r} is not a member of {shape.name}")
            out[key] = to_wire(item, member, timestamp_format, f"{where}.{key}")
        return out
    if isinstance(shape, ListShape):
        if not isinstance(value, list | tuple):
            raise ShapeError(f"{where}: expected a list, got {type(value).__name__}")
        return [to_wire(v, shape.member, timestamp_format, f"{where}[]") for v in value]
    if isinstance(shape, MapShape):
        if not isinstance(value, Mapping):
            raise ShapeError(f"{where}: expected a map, got {type(value).__name__}")
        return {
            str(k): to_wire(v, shape.value, timestamp_format, f"{where}.{k}")
            for k, v in value.items()
        }
    kind = shape.type_name
    if kind == "timestamp":
        if not isinstance(value, datetime):
            raise ShapeError(f"{where}: expected a datetime, got {type(value).__name__}")
        fmt = shape.serialization.get("timestampFormat", timestamp_format)
        return format_timestamp(value, fmt)
    if kind == "string":
        if not isinstance(value, str):
            raise ShapeError(f"{where}: expected a string, got {type(value).__name__}")
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            raise ShapeError(f"{where}: {value!r} is not one of {enum}")
        return value
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ShapeError(f"{where}: expected an integer, got {type(value).__name__}")
        return value
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ShapeError(f"{where}: expected a number, got {type(value).__name__}")
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ShapeError(f"{where}: expected a boolean, got {type(value).__name__}")
        return value
    if kind == "blob":
        if not isinstance(value, bytes):
            raise ShapeError(f"{where}: expected bytes, got {type(value).__name__}")
        return base64.b64encode(value).decode("ascii")
    return value


def format_timestamp(value: datetime, fmt: str) -> Any:
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if fmt == "iso8601":
        utc = value.astimezone(UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if fmt == "rfc822":
        from email.utils import format_datetime

        return format_datetime(value.astimezone(UTC), usegmt=True)
    return round(value.timestamp(), 3)


def serialize_output(
    value: Mapping[str, Any] | None, shape: StructureShape | None, timestamp_format: str
) -> dict[str, Any]:
    if shape is None:
        if value:
            raise ShapeError("operation has no output, but the handler returned one")
        return {}
    result = to_wire(dict(value or {}), shape, timestamp_format)
    assert isinstance(result, dict)
    return result
