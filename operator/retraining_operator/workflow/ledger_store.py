"""Read and atomically update the ingest ledger (`<outputS3Uri>/ledger/head.json`).

Every update is read-modify-write with S3 conditional writes: `If-None-Match: *` to
create it, `If-Match: <ETag>` to replace it. A lost race (another poll or a run claim
wrote in between) re-reads the ledger and re-applies the change, so nothing written
concurrently is ever overwritten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from retraining_operator.aws.s3 import S3, ObjectTooLarge, S3Location, WriteConflict
from retraining_operator.errors import NeedsAttention, RetryLater
from retraining_operator.reconcile.ledger import Ledger, LedgerCorrupt

log = logging.getLogger(__name__)

LEDGER_KEY = "ledger/head.json"
MAX_ATTEMPTS = 8
# The ledger holds about one lookback window of loop names (~40 bytes each): 64 MiB is
# over a million loops. A larger object is not a ledger this operator wrote.
MAX_LEDGER_BYTES = 64 * 1024 * 1024

T = TypeVar("T")


class LedgerError(Exception):
    """The ledger cannot be read or updated: always a `LedgerUnreadable` or a `LedgerBusy`."""


class LedgerUnreadable(LedgerError, NeedsAttention):
    """The ledger object is not a ledger (corrupt, too large, a newer version): restore it."""

    def __init__(self, message: str) -> None:
        NeedsAttention.__init__(self, "LedgerCorrupt", message)


class LedgerOwnedElsewhere(LedgerUnreadable):
    """The ledger records another owner (policy UID or flow definition): two policies must
    not share one dataset.outputS3Uri (their samples would be claimed by each other)."""

    def __init__(self, message: str) -> None:
        NeedsAttention.__init__(self, "LedgerOwnedElsewhere", message)


class LedgerBusy(LedgerError, RetryLater):
    """Every conditional write lost its race: another writer is busy; try again later."""

    def __init__(self, message: str) -> None:
        RetryLater.__init__(self, message)


def ledger_location(output_s3_uri: str) -> S3Location:
    return S3Location.parse(output_s3_uri).child(LEDGER_KEY)


class LedgerStore:
    """The ledger of one policy, with the ETag it was read at."""

    def __init__(self, s3: S3, output_s3_uri: str, *, owner: dict[str, str] | None = None) -> None:
        """`owner` ({"policyUid", "flowDefinitionArn"}): the ledger must be this owner's (or
        nobody's yet: then it becomes this owner's with the next write)."""
        self.s3 = s3
        self.owner = owner
        self.location = ledger_location(output_s3_uri)
        self.ledger = Ledger()
        self.etag: str | None = None
        self._stale = True

    @property
    def uri(self) -> str:
        return self.location.uri

    def load(self) -> Ledger:
        """Read the ledger (an empty one if it does not exist yet)."""
        try:
            found = self.s3.get_with_etag(self.location, limit=MAX_LEDGER_BYTES)
        except ObjectTooLarge as error:
            raise LedgerUnreadable(
                f"the ingest ledger {self.uri} has {error.size} bytes, more than "
                f"{MAX_LEDGER_BYTES}: it is not a ledger this operator wrote. Restore it "
                "from a previous S3 object version"
            ) from error
        if found is None:
            self.ledger, self.etag, self._stale = Ledger(), None, False
            return self.ledger
        data, etag = found
        try:
            self.ledger = Ledger.from_json(data)
        except LedgerCorrupt as error:
            raise LedgerUnreadable(
                f"the ingest ledger {self.uri} is unreadable: {error}. Restore it from a "
                "previous S3 object version; deleting it re-ingests every loop A2I still lists"
            ) from error
        if self.owner is not None and self.ledger.owner not in (None, self.owner):
            theirs = ", ".join(f"{k}={v}" for k, v in sorted(self.ledger.owner.items()))
            raise LedgerOwnedElsewhere(
                f"the ingest ledger {self.uri} belongs to another policy ({theirs}): two "
                "policies must not share dataset.outputS3Uri; give this policy its own prefix"
            )
        self.etag = etag
        self._stale = False
        return self.ledger

    def update(self, change: Callable[[Ledger], T]) -> T:
        """Apply `change` to the current ledger and write it; re-read and retry on a race.

        `change` may run more than once (on a fresh copy each time) and must decide from
        the ledger it is given. Its return value of the successful attempt is returned.
        """
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if self._stale:
                self.load()
            # Until the write succeeds, the in-memory ledger may hold an unwritten change.
            self._stale = True
            result = change(self.ledger)
            if self.owner is not None and self.ledger.owner is None:
                self.ledger.owner = dict(self.owner)
            body = self.ledger.to_json()
            try:
                if self.etag is None:
                    self.etag = self.s3.put(self.location, body, if_none_match=True)
                else:
                    self.etag = self.s3.put(self.location, body, if_match=self.etag)
            except WriteConflict:
                log.info(
                    "ledger %s changed concurrently; re-reading (attempt %d)", self.uri, attempt
                )
                continue
            self._stale = False
            return result
        raise LedgerBusy(
            f"the ingest ledger {self.uri} kept changing during {MAX_ATTEMPTS} attempts to "
            "update it (is a second operator writing to the same dataset.outputS3Uri?)"
        )
