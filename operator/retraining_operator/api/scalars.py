"""The scalar types the CRD fixes: its patterns, durations and timestamps.

Keep every regex identical to the CRD's (tests/unit/test_api_models.py walks both).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, Field, PlainSerializer

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$"
IAM_ROLE_ARN_PATTERN = r"^arn:aws[a-z\-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/\-]{1,512}$"
FLOW_DEFINITION_ARN_PATTERN = (
    r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]+:[0-9]{12}:flow-definition/"
    r"[a-z0-9](-*[a-z0-9]){0,62}$"
)
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-[0-9]$"
SAGEMAKER_NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
# A Model Package Group name (SageMaker's EntityName pattern; at most 63 characters).
MODEL_PACKAGE_GROUP_PATTERN = SAGEMAKER_NAME_PATTERN
# "10%" (capacity percent, at most 50 for a canary) or "2" (instance count).
CANARY_SIZE_PATTERN = r"^(([1-9]|[1-4][0-9]|50)%|[1-9][0-9]{0,2})$"
STEP_SIZE_PATTERN = r"^(([1-9]|[1-9][0-9]|100)%|[1-9][0-9]{0,2})$"
ATTRIBUTE_NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9_])*$"
# An SQS queue URL: `https://sqs.<region>.amazonaws.com/<account>/<name>` on AWS; any host
# (an endpoint override, a VPC endpoint) with the account and name path is accepted here,
# and the operator checks account and region against the flow definition at run time.
SQS_QUEUE_URL_PATTERN = (
    r"^https?://[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?/[0-9]{12}/[A-Za-z0-9_\-]{1,80}(\.fifo)?$"
)

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

# Every duration in the spec is at most a year (the CRD says so in CEL too): longer values
# are typos, and unbounded ones overflow timedelta/datetime arithmetic in the pass.
MAX_DURATION = "8760h"


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration ("90s", "1h30m", "24h") as the CRD and CEL accept it."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use a number with a unit, e.g. 90s, 5m, 24h")
    seconds = sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _DURATION_PART.findall(text))
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"duration {text!r} is out of range (at most {MAX_DURATION})") from None


def _check_duration(text: str) -> str:
    if parse_duration(text) > parse_duration(MAX_DURATION):
        raise ValueError(f"must be at most {MAX_DURATION}")
    return text


def duration_between(low: str | None = None, high: str | None = None) -> AfterValidator:
    """Bounds the CRD states as CEL rules (`duration(self) >= duration(low)`)."""

    def check(text: str) -> str:
        value = parse_duration(text)
        if low is not None and value < parse_duration(low):
            raise ValueError(f"must be at least {low}")
        if high is not None and value > parse_duration(high):
            raise ValueError(f"must be at most {high}")
        return text

    return AfterValidator(check)


Duration = Annotated[
    str, Field(pattern=DURATION_PATTERN, max_length=32), AfterValidator(_check_duration)
]
S3Uri = Annotated[str, Field(pattern=S3_URI_PATTERN, max_length=1024)]
RoleArn = Annotated[str, Field(pattern=IAM_ROLE_ARN_PATTERN, max_length=2048)]
SageMakerName = Annotated[str, Field(pattern=SAGEMAKER_NAME_PATTERN, max_length=63)]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _rfc3339(value: datetime) -> str:
    return _utc(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[
    datetime, AfterValidator(_utc), PlainSerializer(_rfc3339, return_type=str, when_used="json")
]
