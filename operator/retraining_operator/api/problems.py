"""Validation problems in words a person can act on: one line per problem, naming the field
and the expected form, never a regex or a library's web link.

The forms are the CRD's own: each `self.matches(...)` rule there says "<field> must be
<form>" with the same text (tests/unit/test_validation_problems.py keeps them equal), so
`kubectl apply` and the CLI refuse a value with the same sentence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from retraining_operator.api.scalars import (
    ATTRIBUTE_NAME_PATTERN,
    CANARY_SIZE_PATTERN,
    DURATION_PATTERN,
    FLOW_DEFINITION_ARN_PATTERN,
    IAM_ROLE_ARN_PATTERN,
    REGION_PATTERN,
    S3_URI_PATTERN,
    SAGEMAKER_NAME_PATTERN,
    SQS_QUEUE_URL_PATTERN,
    STEP_SIZE_PATTERN,
)

FORMS: Mapping[str, str] = {
    DURATION_PATTERN: "a duration such as 30s, 5m or 1h30m (units ms, s, m, h)",
    CANARY_SIZE_PATTERN: (
        'a share of capacity from "1%" to "50%", or a number of instances such as "1"'
    ),
    STEP_SIZE_PATTERN: (
        'a share of capacity from "1%" to "100%", or a number of instances such as "2"'
    ),
    r"^[-0-9a-zA-Z]+$": "an id of letters, digits and hyphens (sg-..., subnet-...)",
    r"^[a-zA-Z0-9:/_-]+$": "a KMS key id, alias or ARN (letters, digits and : / _ -)",
    SAGEMAKER_NAME_PATTERN: (
        "a SageMaker name: 1-63 letters, digits and hyphens, starting and ending with a "
        "letter or digit"
    ),
    ATTRIBUTE_NAME_PATTERN: (
        "a label attribute name: letters, digits, hyphens and underscores, starting with a "
        "letter or digit"
    ),
    REGION_PATTERN: "an AWS region such as us-east-1",
    IAM_ROLE_ARN_PATTERN: "an IAM role ARN: arn:aws:iam::<12-digit account>:role/<name>",
    FLOW_DEFINITION_ARN_PATTERN: (
        "a flow definition ARN: arn:aws:sagemaker:<region>:<12-digit account>:"
        "flow-definition/<name>"
    ),
    SQS_QUEUE_URL_PATTERN: (
        "an SQS queue URL: https://sqs.<region>.amazonaws.com/<12-digit account>/<queue name>"
    ),
    r"^ml\.[a-z0-9]+\.[a-z0-9]+$": "a SageMaker instance type such as ml.m5.xlarge",
    S3_URI_PATTERN: (
        "an s3://bucket/key URI whose bucket name is 3-63 lowercase letters, digits, dots "
        "and hyphens"
    ),
}

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def s3_uri_problem(uri: str) -> str | None:
    """Why `uri` is not an S3 URI the operator accepts, or None when it is."""
    if re.fullmatch(S3_URI_PATTERN, uri):
        return None
    if not uri.startswith("s3://"):
        return "is not an s3:// URI (s3://bucket/key)"
    bucket = uri.removeprefix("s3://").partition("/")[0]
    if not bucket:
        return "names no bucket (s3://bucket/key)"
    if not _BUCKET.fullmatch(bucket):
        return (
            f"has bucket name {bucket!r}: a bucket name is 3-63 lowercase letters, digits, "
            "dots and hyphens, starting and ending with a letter or digit"
        )
    return f"must be {FORMS[S3_URI_PATTERN]}"


def field_path(location: Sequence[int | str], prefix: str = "") -> str:
    """`('humanLoops', 'pollInterval')` -> `spec.humanLoops.pollInterval` (prefix `spec`);
    list indexes as `[0]`."""
    text = prefix
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(the document)"


def problem_lines(error: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem: `<field>: <what is wrong>`, in the CRD's words where it has them."""
    lines = []
    for item in error.errors(include_url=False):
        # Model validators add no location of their own; a union adds its branch name.
        location = [part for part in item["loc"] if not _is_branch(part)]
        lines.append(f"{field_path(location, prefix)}: {_what(item)}")
    return list(dict.fromkeys(lines))


def _is_branch(part: int | str) -> bool:
    return isinstance(part, str) and (part.startswith("function-") or "[" in part)


def _what(item: Mapping[str, Any]) -> str:
    kind, context, value = item["type"], item.get("ctx") or {}, item.get("input")
    if kind == "string_pattern_mismatch":
        form = FORMS.get(str(context.get("pattern")))
        if form is not None:
            return f"must be {form}, not {_shown(value)}"
        return f"has the wrong form: {_shown(value)}"
    if kind == "extra_forbidden":
        return "is not a field of RetrainingPolicy (a typo, or a newer CRD version's field?)"
    if kind == "missing":
        return "is required"
    message = str(item["msg"])
    # pydantic prefixes a validator's own sentence with "Value error, ".
    return message.removeprefix("Value error, ")


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 80 else text[:77] + "..."
