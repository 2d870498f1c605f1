"""Why a sample was quarantined: machine-readable reasons and the record kept in S3.

A sample that cannot become a manifest line is never dropped silently: it gets one
`QuarantineReason` (stable, CamelCase, safe to match on in alerts), a human detail
(which field, which box, which value), and is stored with its raw content under
`<outputS3Uri>/quarantine/<loop name>.json` by the ingest workflow.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from retraining_operator.manifest.consolidate import worker_hash

# A2I writes who the worker is (identity provider, issuer, subject) into every answer's
# workerMetadata.identityData: personal data that has no place in a quarantine record.
_IDENTITY_DATA = re.compile(r'"identityData"\s*:\s*\{[^{}]*\}')
_IDENTITY_DATA_BYTES = re.compile(_IDENTITY_DATA.pattern.encode())
REDACTED_IDENTITY = '"identityData": {"redacted": true}'
# The workerId is replaced by its stable hash (the name metrics and status use).
_WORKER_ID = re.compile(r'"workerId"\s*:\s*"((?:[^"\\]|\\.)*)"')


class QuarantineReason(StrEnum):
    INVALID_JSON = "InvalidJson"  # not JSON, or not a JSON object
    INVALID_ENCODING = "InvalidEncoding"  # not UTF-8 text (a UTF-8 BOM is accepted)
    TOO_DEEP = "TooDeep"  # JSON nested deeper than the parser's limit
    NUMBER_TOO_LARGE = "NumberTooLarge"  # an integer with more digits than Python converts
    MISSING_FIELD = "MissingField"  # a required field is absent
    INVALID_FIELD = "InvalidField"  # a field has the wrong type or shape
    NO_ANSWERS = "NoAnswers"  # humanAnswers is empty
    UNKNOWN_LABEL = "UnknownLabel"  # a box's label is not in spec.labels.classes
    BOX_OUTSIDE_IMAGE = "BoxOutsideImage"  # a box reaches outside inputImageProperties
    NON_POSITIVE_SIZE = "NonPositiveSize"  # a box or the image has width/height <= 0
    NON_NUMERIC = "NonNumeric"  # a coordinate/size is not a finite number
    INVALID_TIMESTAMP = "InvalidTimestamp"  # submissionTime is not ISO 8601
    LOOP_NAME_MISMATCH = "LoopNameMismatch"  # output.json names another human loop
    OUTPUT_TOO_LARGE = "OutputTooLarge"  # output.json is larger than the ingest limit
    OUTPUT_MISSING = "OutputMissing"  # the loop is Completed but its output.json is gone
    CONVERSION_FAILED = "ConversionFailed"  # the converter failed unexpectedly (a bug)
    FETCH_FAILED = "FetchFailed"  # the output could not be read in MAX_FETCH_ATTEMPTS polls
    DUPLICATE_LOOP = "DuplicateLoop"  # the same loop appears twice in one input (CLI)
    WORKERS_DISAGREE = "WorkersDisagree"  # Consensus: the workers' boxes do not agree
    FOREIGN_IMAGE = "ForeignImage"  # taskObject is outside spec.labels.imageS3Prefixes


@dataclass(frozen=True)
class Quarantined:
    """A sample that did not become a manifest line, and why."""

    reason: QuarantineReason
    detail: str
    loop_name: str | None = None
    source: str | None = None  # where the raw output came from (path or s3:// URI)
    size: int | None = None  # bytes, when known (an oversized output is never read)
    etag: str | None = None  # the S3 object's ETag, when it was an S3 object
    # WorkersDisagree: each worker's boxes ({"worker": <hash>, "boxes": [...]}).
    workers: tuple[Mapping[str, Any], ...] = field(default=())

    def describe(self) -> str:
        """One line for logs, stderr and Events: `<source> (<loop>): <Reason>: <detail>`."""
        where = self.source or "<input>"
        loop = f" (loop {self.loop_name})" if self.loop_name else ""
        return f"{where}{loop}: {self.reason}: {self.detail}"


def quarantine_record(item: Quarantined, raw: bytes | None, *, at: datetime) -> bytes:
    """The JSON document stored for a quarantined sample: reason, detail, source, raw bytes.

    The raw output is kept as text when it is UTF-8, else base64, so a person can fix
    and re-feed it (e.g. with `retraining-operator manifest`); the workers' identity data
    (`workerMetadata.identityData`) is replaced by `{"redacted": true}`. Callers pass no raw
    bytes for an output over the size limit (it was never read): the record then names
    its size and ETag instead.
    """
    record: dict[str, object] = {
        "reason": str(item.reason),
        "detail": item.detail,
        "humanLoopName": item.loop_name,
        "source": item.source,
        "quarantinedAt": at.isoformat(),
    }
    if item.size is not None:
        record["size"] = item.size
    if item.etag is not None:
        record["etag"] = item.etag
    if item.workers:
        record["workers"] = [dict(worker) for worker in item.workers]
    if raw is not None:
        try:
            record["raw"] = redact_identity(raw.decode("utf-8"))
        except UnicodeDecodeError:
            redacted = _IDENTITY_DATA_BYTES.sub(REDACTED_IDENTITY.encode(), raw)
            record["rawBase64"] = base64.b64encode(redacted).decode("ascii")
    return json.dumps(record, indent=1, sort_keys=True).encode("utf-8")


def redact_identity(text: str) -> str:
    """`text` with every `"identityData": {...}` object replaced by a redacted marker and
    every `"workerId"` by its hash."""
    text = _IDENTITY_DATA.sub(REDACTED_IDENTITY, text)
    return _WORKER_ID.sub(lambda m: f'"workerId": "{worker_hash(m.group(1))}"', text)
