"""What an ingest reports, and its two failure words (`IngestRetry`, `IngestFailed`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from retraining_operator.api import IngestStatus
from retraining_operator.aws.errors import AwsError
from retraining_operator.errors import NeedsAttention, RetryLater
from retraining_operator.flows.ledger_store import LedgerError, LedgerUnreadable
from retraining_operator.manifest.quarantine import QuarantineReason
from retraining_operator.reconcile.ledger import MAX_FETCH_ATTEMPTS

MAX_NOTES = 20


class IngestError(Exception):
    """The poll as a whole failed (listing, ledger): always an `IngestRetry` or `IngestFailed`.

    Problems with single samples never raise: they are quarantined and reported.
    """


class IngestRetry(IngestError, RetryLater):
    """AWS was busy or another writer held the ledger: the next poll carries on."""

    def __init__(self, message: str, after: float | None = None) -> None:
        RetryLater.__init__(self, message, after)


class IngestFailed(IngestError, NeedsAttention):
    """A person must act: reason `IngestFailed` (AWS refused: IAM, flow definition, bucket)
    or `LedgerCorrupt` (the ledger object is not a ledger)."""

    def __init__(self, reason: str, message: str) -> None:
        NeedsAttention.__init__(self, reason, message)


@dataclass(frozen=True)
class QuarantineNote:
    loop_name: str | None
    reason: QuarantineReason
    detail: str
    record_uri: str | None


@dataclass(frozen=True)
class PollResult:
    """What one poll did. `status` is the whole new `status.ingest` block."""

    status: IngestStatus
    listed: int = 0
    new_samples: int = 0
    quarantined: int = 0
    dropped_boxes: int = 0
    failed_loops: int = 0
    in_progress: int = 0
    fetch_errors: int = 0
    segments: tuple[str, ...] = ()
    quarantine: tuple[QuarantineNote, ...] = ()  # the first MAX_NOTES of this poll
    # Every sample quarantined by this poll, counted per reason (for metrics; not capped).
    quarantined_by_reason: Mapping[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()  # the first MAX_NOTES fetch errors (retried next poll)
    # Worker hash -> (images, mean agreement with the consensus), over every poll so far.
    reviewers: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    # Completed loops not read because the poll reached `max_fetches` (read by the next).
    deferred: int = 0
    # The ledger was missing although the status knew one: it was started over.
    recreated: bool = False

    def event_message(self) -> str | None:
        """A Kubernetes Event message (Warning) for this poll's quarantined samples and
        dropped boxes. None when there is nothing to report.
        """
        parts: list[str] = []
        if self.quarantined:
            shown = "; ".join(
                f"{note.loop_name or '?'}: {note.reason} ({note.detail[:160]})"
                for note in self.quarantine[:5]
            )
            more = self.quarantined - min(len(self.quarantine), 5)
            tail = f"; and {more} more" if more > 0 else ""
            where = ""
            if self.quarantine and self.quarantine[0].record_uri:
                where = f". Records: {self.quarantine[0].record_uri.rsplit('/', 1)[0]}/"
            parts.append(f"Quarantined {self.quarantined} A2I output(s): {shown}{tail}{where}")
        if self.dropped_boxes:
            parts.append(
                f"Dropped {self.dropped_boxes} bounding box(es) whose label is not in "
                "spec.labels.classes (unknownLabel: Drop)"
            )
        return ". ".join(parts) or None

    def fetch_error_message(self) -> str | None:
        """A Warning Event message for outputs that could not be read this poll (retried
        next poll; quarantined as FetchFailed after MAX_FETCH_ATTEMPTS unless AWS is busy)."""
        if not self.fetch_errors:
            return None
        shown = "; ".join(error[:200] for error in self.errors[:3])
        more = self.fetch_errors - min(len(self.errors), 3)
        tail = f"; and {more} more" if more > 0 else ""
        return (
            f"Could not read {self.fetch_errors} A2I output(s), retried next poll "
            f"(quarantined as FetchFailed after {MAX_FETCH_ATTEMPTS} failed polls unless "
            f"AWS is only busy): {shown}{tail}"
        )


def ingest_error(what: str, error: AwsError | LedgerError) -> IngestError:
    """The ingest's failure in the operator's two words; transient or not is the error's class."""
    if isinstance(error, LedgerUnreadable):
        return IngestFailed(error.reason, str(error))
    if isinstance(error, RetryLater):
        return IngestRetry(f"{what}: {error}", after=error.after)
    return IngestFailed("IngestFailed", f"{what}: {error}")


@dataclass(frozen=True)
class SettleResult:
    """What settling the loops named by status-change events did.

    `settled` holds every loop name whose messages may be deleted: the loop is now durably
    in the ledger (ingested, quarantined, counted as failed, or there before, also by
    another writer), or A2I's word showed the event to be no loop of this policy's
    (`dropped`, by reason: `UnknownLoop`, `ForeignLoop`, `FutureCreation`). The other
    names stay unsettled (their messages are not deleted; the queue redelivers them, the
    redrive policy dead-letters them after maxReceiveCount, and the backstop poll lists
    the loops anyway).
    """

    result: PollResult
    settled: frozenset[str]
    unsettled: Mapping[str, str]  # loop name -> why (first MAX_NOTES in `result.errors`)
    dropped: Mapping[str, int] = field(default_factory=dict)
    # AWS calls spent asking A2I about the events (listing pages, DescribeHumanLoop).
    confirmations: int = 0
