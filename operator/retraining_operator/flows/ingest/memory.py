"""The ledger as this process last read or wrote it, so an idle poll costs one AWS call.

An idle poll used to make two calls: the ledger GET, then an empty ListHumanLoops page. The
ledger is the operator's own, and the listing only needs its watermark and horizon: with
those remembered from the last verified read or commit, a poll lists first, and reads the
ledger only when the listing holds a loop to triage (or the watermark is due to be saved).

The memory is trusted only while it describes the revision the policy's status records
(`LedgerAccess.known_revision`, which every ledger writer moves): a run that consumed the
pending samples, an events settle, or another replica's commit makes it stale, and the next
poll reads the ledger again. A stale watermark can only be older than the real one, so the
listing it starts would be wider, never narrower. What the memory delays is the seal and
owner check of a ledger changed behind the operator's back: until the next poll that has a
loop to triage, when nothing read from the ledger has been acted upon.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from retraining_operator.api import IngestStatus


@dataclass(frozen=True)
class LedgerView:
    """What a poll needs of the ledger without reading it."""

    key: tuple[str, str]  # (ledger URI, flow definition ARN): a spec change forgets it
    revision: int
    watermark: datetime | None
    horizon: datetime | None
    status: IngestStatus
    reviewers: Mapping[str, tuple[int, float]] = field(default_factory=dict)


class LedgerMemory:
    """One policy's remembered ledger view (kept in the policy's memo)."""

    def __init__(self) -> None:
        self._view: LedgerView | None = None
        self._lock = threading.Lock()

    def recall(self, key: tuple[str, str], known_revision: int | None) -> LedgerView | None:
        """The view, if it is of this ledger and flow at the revision status records."""
        with self._lock:
            view = self._view
        if view is None or view.key != key or known_revision is None:
            return None
        return view if view.revision == known_revision else None

    def remember(self, view: LedgerView) -> None:
        with self._lock:
            self._view = view

    def forget(self) -> None:
        with self._lock:
            self._view = None
