"""The entries of the ingest ledger (reconcile/ledger.py): its pending segments, run claims,
totals and a poll's loop outcomes, each with its JSON form, and the errors reading it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from retraining_operator.reconcile.provenance import Sealer

SEGMENT_ID_LENGTH = 16

# A settled loop's outcome code when it has no segment.
QUARANTINED = "Q"
FAILED = "F"
STOPPED = "S"
SETTLED_CODES = {QUARANTINED, FAILED, STOPPED}


class LedgerCorrupt(ValueError):
    """The ledger document cannot be read (not JSON, wrong version, wrong shape)."""


class LedgerTampered(ValueError):
    """The ledger is not as this operator sealed it for this policy. `reason` is
    `PendingSegmentTampered` when a pending (or claimed) segment entry carries no valid seal
    (a segment someone else listed), else `LedgerTampered`."""

    def __init__(self, reason: str, message: str, claimed_owner: object = None) -> None:
        super().__init__(message)
        self.reason = reason
        # The owner the (unverified) document names: another policy's ledger does not verify
        # with this policy's key, and is better reported as someone else's.
        self.claimed_owner = claimed_owner


def iso_time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def read_time(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise LedgerCorrupt(f"ledger field {what} must be a timestamp string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise LedgerCorrupt(f"ledger field {what} is not a timestamp: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@dataclass(frozen=True)
class PendingSegment:
    """One immutable JSON Lines object of converted samples (`pending/<sha256>.jsonl`)."""

    sha256: str
    samples: int
    loops: int
    added_at: datetime
    mac: str | None = field(default=None, compare=False)  # the operator's seal of this entry

    @property
    def id(self) -> str:
        return self.sha256[:SEGMENT_ID_LENGTH]

    def sealed(self, sealer: Sealer) -> PendingSegment:
        return replace(self, mac=sealer.seal_segment(self.sha256, self.samples, self.loops))

    def verified(self, sealer: Sealer) -> bool:
        return sealer.verify_segment(self.sha256, self.samples, self.loops, self.mac)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "sha256": self.sha256,
            "samples": self.samples,
            "loops": self.loops,
            "addedAt": iso_time(self.added_at),
        }
        if self.mac is not None:
            document["mac"] = self.mac
        return document

    @classmethod
    def from_json(cls, raw: Any) -> PendingSegment:
        try:
            added = read_time(raw["addedAt"], "addedAt")
            assert added is not None
            mac = raw.get("mac")
            return cls(
                str(raw["sha256"]),
                int(raw["samples"]),
                int(raw["loops"]),
                added,
                mac=mac if isinstance(mac, str) else None,
            )
        except (KeyError, TypeError, ValueError, AssertionError, AttributeError) as error:
            raise LedgerCorrupt(f"bad pending segment entry: {error}") from None


@dataclass
class RunClaim:
    """The segments one run consumed, and its assembled dataset once written."""

    run_id: str
    claimed_at: datetime
    segments: list[PendingSegment]
    result: dict[str, Any] | None = None

    @property
    def samples(self) -> int:
        return sum(segment.samples for segment in self.segments)

    def to_json(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "claimedAt": iso_time(self.claimed_at),
            "segments": [segment.to_json() for segment in self.segments],
            "result": self.result,
        }

    @classmethod
    def from_json(cls, raw: Any) -> RunClaim:
        try:
            claimed = read_time(raw["claimedAt"], "claimedAt")
            assert claimed is not None
            result = raw.get("result")
            return cls(
                run_id=str(raw["runId"]),
                claimed_at=claimed,
                segments=[PendingSegment.from_json(item) for item in raw["segments"]],
                result=dict(result) if isinstance(result, Mapping) else None,
            )
        except (KeyError, TypeError, AssertionError) as error:
            raise LedgerCorrupt(f"bad run claim entry: {error}") from None


@dataclass
class Totals:
    """Monotonic counters since the ledger was created (shown in the status)."""

    ingested_loops: int = 0
    samples: int = 0
    quarantined: int = 0
    failed_loops: int = 0
    dropped_boxes: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "ingestedLoops": self.ingested_loops,
            "samples": self.samples,
            "quarantined": self.quarantined,
            "failedLoops": self.failed_loops,
            "droppedBoxes": self.dropped_boxes,
        }

    @classmethod
    def from_json(cls, raw: Any) -> Totals:
        raw = raw if isinstance(raw, Mapping) else {}
        return cls(
            ingested_loops=int(raw.get("ingestedLoops", 0)),
            samples=int(raw.get("samples", 0)),
            quarantined=int(raw.get("quarantined", 0)),
            failed_loops=int(raw.get("failedLoops", 0)),
            dropped_boxes=int(raw.get("droppedBoxes", 0)),
        )


@dataclass(frozen=True)
class LoopOutcome:
    """What a poll decided for one settled loop."""

    name: str
    created: datetime
    outcome: str  # a segment id, QUARANTINED, FAILED or STOPPED
