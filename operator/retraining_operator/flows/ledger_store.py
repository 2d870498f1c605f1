"""Read and atomically update the ingest ledger (`<outputS3Uri>/ledger/head.json`).

Every update is read-modify-write with S3 conditional writes: `If-None-Match: *` to
create it, `If-Match: <ETag>` to replace it. A lost race (another poll or a run claim
wrote in between) re-reads the ledger and re-applies the change, so nothing written
concurrently is ever overwritten.

Every read verifies the operator's seal (reconcile/provenance.py) and that the ledger is not
older than the revision the policy's status last recorded; every write seals it again. A
version 1 ledger (written before sealing) is adopted only where `LedgerAccess.adopt_unsealed`
says so, and is sealed at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from retraining_operator.api import IngestStatus
from retraining_operator.aws.s3 import S3, ObjectTooLarge, S3Location, WriteConflict
from retraining_operator.errors import NeedsAttention, RetryLater
from retraining_operator.reconcile.ledger import Ledger, LedgerCorrupt, LedgerTampered
from retraining_operator.reconcile.provenance import Keyring, Sealer

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


class LedgerNotSealed(LedgerUnreadable):
    """The ledger is not as this operator sealed it (or older than the policy last saw):
    `PendingSegmentTampered`, `LedgerTampered` or `LedgerRolledBack`. Nothing is read from
    it, nothing is trained from it."""

    def __init__(self, reason: str, message: str) -> None:
        NeedsAttention.__init__(self, reason, message)


class LedgerBusy(LedgerError, RetryLater):
    """Every conditional write lost its race: another writer is busy; try again later."""

    def __init__(self, message: str) -> None:
        RetryLater.__init__(self, message)


def ledger_location(output_s3_uri: str) -> S3Location:
    return S3Location.parse(output_s3_uri).child(LEDGER_KEY)


@dataclass(frozen=True)
class LedgerAccess:
    """Who may read and write a policy's ledger, and what its status says about it.

    `owner` ({"policyUid", "flowDefinitionArn"}): the ledger must be this owner's (or
    nobody's yet: then it becomes this owner's with the next write). `keyring`: the
    operator's ledger keys; the policy's own key derives from it and `owner["policyUid"]`.
    `known_revision`: the revision the policy's status last recorded (None: none yet).
    `adopt_unsealed`: whether a version 1 (unsealed) ledger may be adopted: only for a
    policy whose status shows it ingested into this ledger before sealing existed.
    """

    keyring: Keyring
    owner: dict[str, str] | None = None
    known_revision: int | None = None
    adopt_unsealed: bool = False

    @property
    def sealer(self) -> Sealer:
        return self.keyring.for_policy((self.owner or {}).get("policyUid", ""))

    @classmethod
    def of_policy(
        cls,
        keyring: Keyring,
        owner: dict[str, str] | None,
        ingest: IngestStatus,
        output_s3_uri: str,
    ) -> LedgerAccess:
        """The access a policy's pass has, from what its status says of the ledger."""
        adopt = (
            ingest.ledger_revision is None
            and ingest.ledger_s3_uri == ledger_location(output_s3_uri).uri
            and bool(ingest.ingested_loops or ingest.failed_loops or ingest.watermark)
        )
        return cls(keyring, owner, ingest.ledger_revision, adopt)


class LedgerStore:
    """The ledger of one policy, with the ETag it was read at."""

    def __init__(self, s3: S3, output_s3_uri: str, access: LedgerAccess) -> None:
        self.s3 = s3
        self.access = access
        self.owner = access.owner
        self.sealer = access.sealer
        self.location = ledger_location(output_s3_uri)
        self.ledger = Ledger()
        self.etag: str | None = None
        self._stale = True
        # Set when the stored ledger was missing although the status knew one (recreated).
        self.recreated = False

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
        known = self.access.known_revision
        if found is None:
            # Numbering continues from the status, so a recreated ledger is never "older".
            self.ledger, self.etag, self._stale = Ledger(revision=known or 0), None, False
            self.recreated = bool(known)
            return self.ledger
        data, etag = found
        try:
            self.ledger = Ledger.from_json(data, self.sealer)
        except LedgerTampered as error:
            claimed = error.claimed_owner
            if isinstance(claimed, dict) and all(isinstance(v, str) for v in claimed.values()):
                self._check_owner(claimed)  # another policy's (well-formed) ledger: say so
            raise LedgerNotSealed(
                error.reason,
                f"the ingest ledger {self.uri}: {error}. Restore it from a previous S3 object "
                "version, or delete it to start over (the loops A2I still lists are ingested "
                "again); see docs/tenancy.md, threat model",
            ) from error
        except LedgerCorrupt as error:
            raise LedgerUnreadable(
                f"the ingest ledger {self.uri} is unreadable: {error}. Restore it from a "
                "previous S3 object version; deleting it re-ingests every loop A2I still lists"
            ) from error
        self._check_age_and_seal(known)
        self._check_owner(self.ledger.owner)
        self.etag = etag
        self._stale = False
        if not self.ledger.sealed:
            self.update(lambda ledger: None)  # adopted: sealed at once, never read unsealed again
        return self.ledger

    def _check_owner(self, owner: object) -> None:
        if self.owner is None or owner is None or owner == self.owner:
            return
        theirs = (
            ", ".join(f"{k}={str(v)[:200]}" for k, v in sorted(owner.items()))
            if isinstance(owner, dict)
            else "unreadable"
        )
        raise LedgerOwnedElsewhere(
            f"the ingest ledger {self.uri} belongs to another policy ({theirs}): two "
            "policies must not share dataset.outputS3Uri; give this policy its own prefix"
        )

    def _check_age_and_seal(self, known: int | None) -> None:
        if not self.ledger.sealed and not self.access.adopt_unsealed:
            raise LedgerNotSealed(
                "LedgerTampered",
                f"the ingest ledger {self.uri} is not sealed (version 1) and this policy has no "
                "record of ingesting into it before sealing: it was not written by this "
                "operator for this policy. Delete it to start over",
            )
        if known is not None and self.ledger.revision < known:
            raise LedgerNotSealed(
                "LedgerRolledBack",
                f"the ingest ledger {self.uri} is revision {self.ledger.revision}, older than "
                f"revision {known} this policy recorded: it was replaced by an older copy "
                "(samples already trained on would be trained on again). Restore the newest "
                "S3 object version, or delete it to start over",
            )

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
            self.ledger.revision += 1
            body = self.ledger.to_json(self.sealer)
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
            self.ledger.sealed = True
            return result
        raise LedgerBusy(
            f"the ingest ledger {self.uri} kept changing during {MAX_ATTEMPTS} attempts to "
            "update it (is a second operator writing to the same dataset.outputS3Uri?)"
        )
