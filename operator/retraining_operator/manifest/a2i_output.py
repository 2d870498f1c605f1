"""Reading one A2I `output.json` with bounds, and its fields with precise reasons.

Every problem raises `Rejected` with a `QuarantineReason` and a detail that names the JSON
path of the offending field (`humanAnswers[0].answerContent...`); the converter turns it
into a quarantine record (manifest/convert.py).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from retraining_operator.manifest.quarantine import QuarantineReason

# An A2I output for one image is a few KB; anything far larger is not one.
MAX_OUTPUT_BYTES = 8 * 1024 * 1024


class Rejected(Exception):
    """This output cannot become a manifest line: why, and where in the document."""

    def __init__(
        self,
        reason: QuarantineReason,
        detail: str,
        *,
        workers: tuple[Mapping[str, Any], ...] = (),
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.workers = workers


def parse_output(raw: bytes) -> Any:
    """The JSON document of one `output.json`, or `Rejected` with the reason it is unusable.

    Bounded: the size is checked first; nesting deeper than MAX_JSON_DEPTH levels (an A2I
    output has about 8) is `TooDeep`, found by a scan before the parser runs: the parser's
    own guard is the interpreter's recursion limit, which any library may raise (and a
    high one lets deep input overflow the C stack); an integer with more digits than
    Python converts (4,300 by default) is `NumberTooLarge` rather than a `ValueError`.
    A leading UTF-8 byte-order mark is accepted (editors on Windows write one; it carries
    no content).
    """
    if len(raw) > MAX_OUTPUT_BYTES:
        raise Rejected(
            QuarantineReason.OUTPUT_TOO_LARGE,
            f"{len(raw)} bytes, more than the {MAX_OUTPUT_BYTES} bytes an A2I output may have",
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Rejected(
            QuarantineReason.INVALID_ENCODING,
            f"not UTF-8 text ({error.reason} at byte {error.start})",
        ) from None
    depth = _nesting_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise Rejected(
            QuarantineReason.TOO_DEEP,
            f"JSON nested more than {MAX_JSON_DEPTH} levels deep (an A2I output has about 8)",
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise Rejected(
            QuarantineReason.INVALID_JSON,
            f"not JSON: {error.msg} at line {error.lineno} column {error.colno}",
        ) from None
    except RecursionError:
        raise Rejected(
            QuarantineReason.TOO_DEEP,
            f"JSON nested deeper than the parser's limit (about {sys.getrecursionlimit()} "
            "levels; an A2I output has about 8)",
        ) from None
    except ValueError as error:
        # The only other ValueError json raises: int() refusing a number with too many
        # digits (sys.get_int_max_str_digits, a guard against quadratic conversion).
        raise Rejected(QuarantineReason.NUMBER_TOO_LARGE, safe_text(error)) from None


MAX_JSON_DEPTH = 64
_JSON_STRUCTURE = re.compile(r'[\[\]{}"\\]')


def _nesting_depth(text: str) -> int:
    """How deep arrays/objects nest, ignoring brackets inside strings; stops counting once
    past MAX_JSON_DEPTH. Documents with few brackets (most) skip the scan."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return 0
    depth = deepest = 0
    in_string = False
    skip = -1  # the position of a character escaped by a backslash
    for match in _JSON_STRUCTURE.finditer(text):
        at, char = match.start(), match.group()
        if at == skip:
            continue
        if in_string:
            if char == "\\":
                skip = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                break
        elif char in "]}":
            depth -= 1
    return deepest


def safe_text(error: BaseException) -> str:
    """An exception's message, bounded (never the offending input in full)."""
    try:
        text = str(error)
    except Exception:  # str() of a pathological value may fail
        text = ""
    return text[:200] or type(error).__name__


# -- field access with precise reasons ---------------------------------------------------


def required(container: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in container:
        raise Rejected(QuarantineReason.MISSING_FIELD, f"{path} is missing")
    return container[key]


def object_field(container: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = required(container, key, path)
    if not isinstance(value, Mapping):
        raise Rejected(
            QuarantineReason.INVALID_FIELD,
            f"{path} must be an object, got a JSON {json_type(value)}",
        )
    return value


def string_field(container: Mapping[str, Any], key: str, path: str) -> str:
    value = required(container, key, path)
    if not isinstance(value, str) or not value:
        raise Rejected(
            QuarantineReason.INVALID_FIELD,
            f"{path} must be a non-empty string, got a JSON {json_type(value)}",
        )
    return value


def number_field(container: Mapping[str, Any], key: str, path: str) -> float:
    value = required(container, key, path)
    # bool is an int in Python but `true` is not a coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected(
            QuarantineReason.NON_NUMERIC,
            f"{path} must be a number, got a JSON {json_type(value)} ({str(value)[:64]!r})",
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise Rejected(
            QuarantineReason.NON_NUMERIC, f"{path} must be a finite number: {str(value)[:64]}"
        )
    return number


def parse_time(text: str, path: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise Rejected(
            QuarantineReason.INVALID_TIMESTAMP,
            f"{path} {text[:64]!r} is not an ISO 8601 timestamp",
        ) from None
    # A timestamp without an offset is taken as UTC (A2I writes "...Z").
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def is_s3_object_uri(text: str) -> bool:
    if not text.startswith("s3://"):
        return False
    bucket, _, key = text[5:].partition("/")
    return bool(bucket) and bool(key)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__
