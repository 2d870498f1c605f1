"""Request validation: botocore's own `ParamValidator`, plus the model constraints it skips.

botocore checks types, required members and minimums on the client side. The service checks
more: maximum lengths and values, regular-expression patterns and enums. Those are enforced
here with AWS's message format, e.g. ``1 validation error detected: Value '...' at
'trainingJobName' failed to satisfy constraint: Member must have length less than or equal to
63``. Patterns are matched in full (as AWS's Java validators do); Java's `\\p{...}` classes are
approximated, and the few patterns Python cannot compile are skipped.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape
from botocore.validate import ParamValidator

from retraining_standins.errors import validation

_JAVA_CLASSES = {
    r"\p{L}": r"\w",
    r"\p{N}": r"\d",
    r"\p{M}": r"\S",
    r"\p{S}": r"\S",
    r"\p{P}": r"\S",
    r"\p{Z}": r"\s",
    r"\p{Alnum}": r"a-zA-Z0-9",
}


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> re.Pattern[str] | None:
    # Some SageMaker patterns end in a quantified anchor, `...)${1,256}`, meaning "and at
    # most 256 long": Python refuses to quantify `$`, and min/max check the length anyway.
    translated = re.sub(r"\$\{\d+(,\d*)?\}$", "$", pattern)
    for java, python in _JAVA_CLASSES.items():
        translated = translated.replace(java, python)
    try:
        return re.compile(translated, re.DOTALL)
    except re.error:
        return None


def validate_params(params: Mapping[str, Any], shape: StructureShape | None) -> None:
    """Raise `ValidationException` if `params` would not be accepted by AWS."""
    if shape is None:
        if params:
            raise validation(f"Unexpected parameters: {sorted(params)}")
        return
    report = ParamValidator().validate(dict(params), shape)
    if report.has_errors():
        raise validation(report.generate_report())
    problems: list[str] = []
    _check(params, shape, "", problems)
    if problems:
        count = len(problems)
        noun = "error" if count == 1 else "errors"
        raise validation(f"{count} validation {noun} detected: " + "; ".join(problems))


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _show(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 100 else text[:97] + "..."


def _check(value: Any, shape: Shape, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    if isinstance(shape, StructureShape):
        if isinstance(value, Mapping):
            for key, item in value.items():
                member = shape.members.get(key)
                if member is not None and item is not None:
                    _check(item, member, _join(path, _camel(key)), problems)
        return
    if isinstance(shape, ListShape):
        if isinstance(value, list):
            if "max" in meta and len(value) > meta["max"]:
                problems.append(
                    f"Value '{_show(value)}' at '{path}' failed to satisfy constraint: "
                    f"Member must have length less than or equal to {meta['max']}"
                )
            for index, item in enumerate(value, start=1):
                _check(item, shape.member, f"{path}.{index}.member", problems)
        return
    if isinstance(shape, MapShape):
        if isinstance(value, Mapping):
            if "max" in meta and len(value) > meta["max"]:
                problems.append(
                    f"Value '{_show(value)}' at '{path}' failed to satisfy constraint: "
                    f"Member must have length less than or equal to {meta['max']}"
                )
            for key, item in value.items():
                _check(key, shape.key, f"{path}.key", problems)
                _check(item, shape.value, f"{path}.{key}", problems)
        return
    if shape.type_name == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(
                f"Value '{_show(value)}' at '{path}' failed to satisfy constraint: "
                f"Member must have length less than or equal to {meta['max']}"
            )
        enum = meta.get("enum")
        if enum and value not in enum:
            problems.append(
                f"Value '{_show(value)}' at '{path}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(enum)}]"
            )
        pattern = meta.get("pattern")
        if pattern:
            compiled = compile_pattern(pattern)
            if compiled is not None and compiled.fullmatch(value) is None:
                problems.append(
                    f"Value '{_show(value)}' at '{path}' failed to satisfy constraint: "
                    f"Member must satisfy regular expression pattern: {pattern}"
                )
        return
    if shape.type_name in ("integer", "long", "float", "double") and isinstance(value, int | float):
        if isinstance(value, bool):
            return
        if "max" in meta and value > meta["max"]:
            problems.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must have value less than or equal to {meta['max']}"
            )
        if "min" in meta and value < meta["min"]:
            problems.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must have value greater than or equal to {meta['min']}"
            )
