"""The ingest ledger: which human loops were consumed, what is pending, what each run took.

One small JSON document per policy, `<outputS3Uri>/ledger/head.json`, written with S3
conditional writes (If-Match on its ETag), so every change is atomic and a concurrent
writer is detected instead of overwritten. This module is the pure model: parse,
change, serialise (its entries: ledger_entries.py). See docs/dataset.md for the whole
state layout and the rules.

- `loops`: loop name -> (creation time, outcome) for every loop that was *settled* by a
  poll: a 16-hex segment id (its line is in that pending segment), `Q` (quarantined),
  `F` (Failed) or `S` (Stopped). A loop is in at most one segment, ever: exactly once.
  Entries older than `horizon` are pruned; no listing ever reaches back past it.
- `pending`: immutable, content-addressed segments (`pending/<sha256>.jsonl`) not yet
  claimed by a run, in commit order.
- `fetchFailures`: loop name -> (creation time, failed attempts) for Completed loops
  whose output could not be read for a reason waiting does not cure; a poll quarantines
  such a loop at its `MAX_FETCH_ATTEMPTS`th failure, so it cannot hold the watermark
  forever. An entry goes when its loop settles (or falls below the horizon).
- `reviewers`: worker hash -> (images answered, sum of agreement with the consensus, when
  last seen), for `labels.consolidation.mode: Consensus`; a reviewer not seen for
  `REVIEWER_INACTIVE` is forgotten, and at most `MAX_REVIEWERS` are kept (the least recently
  seen go first). Hashes only (consolidate.worker_hash), never worker ids.
- `runs`: the last `MAX_RUNS` claims: run id -> the segments it consumed (and, once
  written, its manifests). Claiming moves segments out of `pending` in the same write, so
  a segment belongs to one run only; re-claiming the same run id returns the same set.
- `revision`: +1 on every write. The policy's status records the revision it last saw, so a
  ledger rolled back to an older (validly sealed) version is noticed.
- `mac` (and each segment entry's `mac`): the operator's seal (reconcile/provenance.py).
  Version 1 ledgers, written before sealing, have none; `Ledger.from_json` marks them
  `sealed=False` and the store decides whether to adopt one (docs/tenancy.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from retraining_operator.reconcile.ledger_entries import (
    FAILED,
    QUARANTINED,
    SETTLED_CODES,
    STOPPED,
    LedgerCorrupt,
    LedgerTampered,
    LoopOutcome,
    PendingSegment,
    RunClaim,
    Totals,
    epoch_ms,
    iso_time,
    read_time,
)
from retraining_operator.reconcile.provenance import Sealer

# The entries (ledger_entries.py) are imported from here with the ledger itself.
__all__ = [
    "FAILED",
    "LEDGER_VERSION",
    "MAX_FETCH_ATTEMPTS",
    "MAX_REVIEWERS",
    "MAX_RUNS",
    "QUARANTINED",
    "REVIEWER_INACTIVE",
    "STOPPED",
    "UNSEALED_VERSION",
    "Ledger",
    "LedgerCorrupt",
    "LedgerTampered",
    "LoopOutcome",
    "PendingSegment",
    "RunClaim",
    "Totals",
]

LEDGER_VERSION = 2
# Written before the ledger was sealed: readable, adopted only where the store allows it.
UNSEALED_VERSION = 1
MAX_RUNS = 50
MAX_FETCH_ATTEMPTS = 3
MAX_REVIEWERS = 200
REVIEWER_INACTIVE = timedelta(days=30)
# Keep entries a little past the horizon: listing filters are compared at second precision.
_PRUNE_MARGIN = timedelta(seconds=2)


@dataclass
class Ledger:
    watermark: datetime | None = None
    horizon: datetime | None = None
    output_prefix: str | None = None  # A2I's output prefix, learned from one DescribeHumanLoop
    # Who writes this ledger: {"policyUid": ..., "flowDefinitionArn": ...}, set by the first
    # writer that knows itself; a policy refuses a ledger another policy (or flow) owns.
    owner: dict[str, str] | None = None
    totals: Totals = field(default_factory=Totals)
    pending: list[PendingSegment] = field(default_factory=list)
    runs: list[RunClaim] = field(default_factory=list)
    # Loop name -> (creation time in ms, failed fetch attempts) of unsettled loops.
    fetch_failures: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Worker hash -> (images, sum of agreement with the consensus).
    reviewers: dict[str, tuple[int, float]] = field(default_factory=dict)
    # Worker hash -> when the reviewer's last image was ingested (ms since the epoch).
    reviewer_seen: dict[str, int] = field(default_factory=dict)
    # +1 on every write (see the module docstring).
    revision: int = 0
    # False for a version 1 ledger read from S3 (written before sealing).
    sealed: bool = True
    # The loop index travels as one compact string (`name created code;...`) and is parsed
    # only when a poll needs it: a run claim with 100k loops in the window stays small.
    loops_text: str = field(default="", repr=False)
    _loops: dict[str, tuple[int, str]] | None = field(default=None, repr=False, compare=False)

    @property
    def loops(self) -> dict[str, tuple[int, str]]:
        """Loop name -> (creation time in ms since the epoch, outcome code)."""
        if self._loops is None:
            self._loops = _decode_loops(self.loops_text)
            self.loops_text = ""
        return self._loops

    @loops.setter
    def loops(self, value: dict[str, tuple[int, str]]) -> None:
        self._loops = value
        self.loops_text = ""

    def loops_encoded(self) -> str:
        return self.loops_text if self._loops is None else _encode_loops(self._loops)

    # -- queries -------------------------------------------------------------------------

    def __contains__(self, loop_name: object) -> bool:
        return loop_name in self.loops

    @property
    def pending_samples(self) -> int:
        return sum(segment.samples for segment in self.pending)

    @property
    def oldest_pending(self) -> datetime | None:
        return min((segment.added_at for segment in self.pending), default=None)

    def run(self, run_id: str) -> RunClaim | None:
        return next((claim for claim in self.runs if claim.run_id == run_id), None)

    def fetch_attempts(self, loop_name: str) -> int:
        """How many polls failed to read this loop's output (for a non-transient reason)."""
        entry = self.fetch_failures.get(loop_name)
        return 0 if entry is None else entry[1]

    def outcome(self, loop_name: str) -> str | None:
        entry = self.loops.get(loop_name)
        return None if entry is None else entry[1]

    # -- changes -------------------------------------------------------------------------

    def record(
        self,
        outcomes: Iterable[LoopOutcome],
        *,
        segment: PendingSegment | None = None,
        dropped_boxes: int = 0,
        reviewers: Iterable[tuple[str, float]] = (),
        seen_at: datetime | None = None,
    ) -> None:
        """Add one poll batch: the settled loops and (if any samples) their segment.

        The caller guarantees that no loop of the batch is already in the ledger
        (`overlap()`), which is what makes every loop enter exactly one segment.
        """
        outcomes = list(outcomes)
        clash = self.overlap(outcome.name for outcome in outcomes)
        if clash:
            raise ValueError(f"loops already in the ledger: {sorted(clash)[:5]}")
        samples = 0
        for item in outcomes:
            code = item.outcome
            if code not in SETTLED_CODES and (segment is None or code != segment.id):
                raise ValueError(f"unknown outcome {code!r} for loop {item.name}")
            self.loops[item.name] = (epoch_ms(item.created), code)
            self.fetch_failures.pop(item.name, None)
            if code == QUARANTINED:
                self.totals.quarantined += 1
            elif code in (FAILED, STOPPED):
                self.totals.failed_loops += 1
            else:
                samples += 1
        if segment is not None:
            if segment.samples != samples:
                raise ValueError("segment sample count does not match its loops")
            if all(existing.sha256 != segment.sha256 for existing in self.pending):
                self.pending.append(segment)
        self.totals.ingested_loops += samples + sum(
            1 for item in outcomes if item.outcome == QUARANTINED
        )
        self.totals.samples += samples
        self.totals.dropped_boxes += dropped_boxes
        self.record_agreement(reviewers, seen_at)

    def record_agreement(
        self, scores: Iterable[tuple[str, float]], seen_at: datetime | None = None
    ) -> None:
        """Add images' (worker hash, agreement) pairs seen at `seen_at`; forgets reviewers
        inactive for REVIEWER_INACTIVE and keeps the MAX_REVIEWERS most recently seen."""
        seen = epoch_ms(seen_at) if seen_at is not None else None
        for worker, agreement in scores:
            images, total = self.reviewers.get(worker, (0, 0.0))
            self.reviewers[worker] = (images + 1, round(total + agreement, 4))
            if seen is not None:
                self.reviewer_seen[worker] = max(seen, self.reviewer_seen.get(worker, 0))
        if seen is not None:
            cutoff = seen - int(REVIEWER_INACTIVE.total_seconds() * 1000)
            for worker in [w for w in self.reviewers if self.reviewer_seen.get(w, seen) < cutoff]:
                self.reviewers.pop(worker)
                self.reviewer_seen.pop(worker, None)
        if len(self.reviewers) > MAX_REVIEWERS:
            keep = self.active_reviewers(MAX_REVIEWERS)
            self.reviewers = {worker: self.reviewers[worker] for worker in keep}
            self.reviewer_seen = {
                w: t for w, t in self.reviewer_seen.items() if w in self.reviewers
            }

    def active_reviewers(self, limit: int) -> list[str]:
        """The `limit` most recently seen reviewers (then the busiest, then by hash)."""
        ranked = sorted(
            self.reviewers,
            key=lambda w: (-self.reviewer_seen.get(w, 0), -self.reviewers[w][0], w),
        )
        return ranked[:limit]

    def record_fetch_failure(self, loop_name: str, created: datetime) -> int:
        """Count one more failed attempt to read an unsettled loop's output; returns the count."""
        if loop_name in self.loops:
            return 0
        attempts = self.fetch_attempts(loop_name) + 1
        self.fetch_failures[loop_name] = (epoch_ms(created), attempts)
        return attempts

    def overlap(self, names: Iterable[str]) -> set[str]:
        return {name for name in names if name in self.loops}

    def advance(self, watermark: datetime, horizon: datetime | None) -> None:
        """Move the watermark/horizon forward (never back) and prune entries below the horizon."""
        if self.watermark is None or watermark > self.watermark:
            self.watermark = watermark
        if horizon is not None and (self.horizon is None or horizon > self.horizon):
            self.horizon = horizon
        if self.horizon is not None:
            cutoff = epoch_ms(self.horizon - _PRUNE_MARGIN)
            self.loops = {name: entry for name, entry in self.loops.items() if entry[0] >= cutoff}
            self.fetch_failures = {
                name: entry for name, entry in self.fetch_failures.items() if entry[0] >= cutoff
            }

    def claim(self, run_id: str, now: datetime) -> RunClaim:
        """All pending segments become `run_id`'s (idempotent: a second claim returns the first)."""
        existing = self.run(run_id)
        if existing is not None:
            return existing
        claim = RunClaim(run_id=run_id, claimed_at=now, segments=list(self.pending))
        self.pending = []
        self.runs.append(claim)
        if len(self.runs) > MAX_RUNS:
            self.runs = self.runs[-MAX_RUNS:]
        return claim

    def release(self, run_id: str) -> None:
        """Give a claimed run's segments back to `pending` (a run abandoned before training)."""
        claim = self.run(run_id)
        if claim is None:
            return
        self.runs = [item for item in self.runs if item.run_id != run_id]
        known = {segment.sha256 for segment in self.pending}
        self.pending = [s for s in claim.segments if s.sha256 not in known] + self.pending

    # -- wire ----------------------------------------------------------------------------

    def segments(self) -> Iterable[PendingSegment]:
        """Every segment entry: pending, and claimed by a run."""
        yield from self.pending
        for claim in self.runs:
            yield from claim.segments

    def seal_segments(self, sealer: Sealer) -> None:
        """Seal every segment entry with the current key (before a write)."""
        self.pending = [segment.sealed(sealer) for segment in self.pending]
        for claim in self.runs:
            claim.segments = [segment.sealed(sealer) for segment in claim.segments]

    def document(self) -> dict[str, Any]:
        """The ledger as a JSON document, without its seal."""
        document: dict[str, Any] = {
            "version": LEDGER_VERSION,
            "revision": self.revision,
            "watermark": iso_time(self.watermark),
            "horizon": iso_time(self.horizon),
            "outputPrefix": self.output_prefix,
            **({"owner": dict(self.owner)} if self.owner else {}),
            "totals": self.totals.to_json(),
            "pending": [segment.to_json() for segment in self.pending],
            "runs": [claim.to_json() for claim in self.runs],
            "loops": self.loops_encoded(),
        }
        if self.reviewers:
            document["reviewers"] = {
                worker: [images, total, *self._seen(worker)]
                for worker, (images, total) in sorted(self.reviewers.items())
            }
        if self.fetch_failures:
            document["fetchFailures"] = {
                name: [created, attempts]
                for name, (created, attempts) in sorted(self.fetch_failures.items())
            }
        return document

    def _seen(self, worker: str) -> list[int]:
        seen = self.reviewer_seen.get(worker)
        return [] if seen is None else [seen]

    def to_json(self, sealer: Sealer | None = None) -> bytes:
        """The ledger as stored: sealed when `sealer` is given (the store always gives one)."""
        if sealer is not None:
            self.seal_segments(sealer)
        document = self.document()
        if sealer is not None:
            document["mac"] = sealer.seal_document(document)
        return json.dumps(document, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, sealer: Sealer | None = None) -> Ledger:
        """Parse a stored ledger; with `sealer`, verify its seal first (`LedgerTampered`).

        A version 1 ledger has no seal: it parses with `sealed=False` and the caller
        decides. Without `sealer` nothing is verified (tools and tests that only read).
        """
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
            raise LedgerCorrupt(f"the ledger is not JSON: {str(error)[:200]}") from None
        if not isinstance(raw, dict):
            raise LedgerCorrupt("the ledger is not a JSON object")
        version = raw.get("version")
        if version not in (LEDGER_VERSION, UNSEALED_VERSION) or isinstance(version, bool):
            raise LedgerCorrupt(
                f"ledger version {version!r} is not {LEDGER_VERSION} (written by a newer operator?)"
            )
        mac = raw.pop("mac", None)
        if sealer is not None and version == LEDGER_VERSION:
            try:
                _verify(raw, mac, sealer)
            except LedgerTampered as error:
                error.claimed_owner = raw.get("owner")
                raise
        loops_text = raw.get("loops", "")
        if not isinstance(loops_text, str):
            raise LedgerCorrupt("ledger field loops must be a string")
        output_prefix = raw.get("outputPrefix")
        try:
            ledger = cls._from_document(raw, loops_text, output_prefix)
        except LedgerCorrupt:
            raise
        except (TypeError, ValueError, AttributeError) as error:
            raise LedgerCorrupt(f"the ledger has a field of the wrong type: {error}") from None
        ledger.sealed = version == LEDGER_VERSION
        return ledger

    @classmethod
    def _from_document(cls, raw: dict[str, Any], loops_text: str, output_prefix: Any) -> Ledger:
        revision = raw.get("revision", 0)
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
            raise LedgerCorrupt("ledger field revision must be a non-negative integer")
        reviewers, seen = _reviewers(raw.get("reviewers", {}))
        return cls(
            fetch_failures=_fetch_failures(raw.get("fetchFailures", {})),
            reviewers=reviewers,
            reviewer_seen=seen,
            watermark=read_time(raw.get("watermark"), "watermark"),
            horizon=read_time(raw.get("horizon"), "horizon"),
            output_prefix=output_prefix if isinstance(output_prefix, str) else None,
            owner=_owner(raw.get("owner")),
            totals=Totals.from_json(raw.get("totals")),
            loops_text=loops_text,
            pending=[PendingSegment.from_json(item) for item in raw.get("pending", [])],
            runs=[RunClaim.from_json(item) for item in raw.get("runs", [])],
            revision=revision,
        )


def _verify(raw: dict[str, Any], mac: object, sealer: Sealer) -> None:
    """The document's seal, or why it fails: a segment entry nobody sealed, or another change."""
    if sealer.verify_document(raw, mac):
        return
    for segment in _raw_segments(raw):
        tag = segment.get("mac")
        try:
            good = sealer.verify_segment(
                str(segment["sha256"]), int(segment["samples"]), int(segment["loops"]), tag
            )
        except (KeyError, TypeError, ValueError):
            good = False
        if not good:
            sha = str(segment.get("sha256", "?"))[:64]
            raise LedgerTampered(
                "PendingSegmentTampered",
                f"the ledger lists segment pending/{sha}.jsonl, which this operator did not "
                "write for this policy (no valid seal): nothing is trained from this ledger",
            )
    raise LedgerTampered(
        "LedgerTampered",
        "the ledger's seal does not verify: it was changed by someone other than this "
        "operator (or sealed for another policy, or with a key this operator does not have)",
    )


def _raw_segments(raw: dict[str, Any]) -> Iterable[dict[str, Any]]:
    pending = raw.get("pending")
    runs = raw.get("runs")
    entries: list[Any] = list(pending) if isinstance(pending, list) else []
    for claim in runs if isinstance(runs, list) else []:
        if isinstance(claim, dict) and isinstance(claim.get("segments"), list):
            entries.extend(claim["segments"])
    return [entry if isinstance(entry, dict) else {} for entry in entries]


def _reviewers(raw: Any) -> tuple[dict[str, tuple[int, float]], dict[str, int]]:
    if not isinstance(raw, dict):
        raise LedgerCorrupt("ledger field reviewers must be an object")
    out: dict[str, tuple[int, float]] = {}
    seen: dict[str, int] = {}
    for worker, value in raw.items():
        if not (isinstance(value, list) and len(value) in (2, 3)):
            raise LedgerCorrupt(
                "ledger field reviewers must map a worker to [images, sum, last seen]"
            )
        out[str(worker)] = (int(value[0]), float(value[1]))
        if len(value) == 3:
            seen[str(worker)] = int(value[2])
    return out, seen


def _owner(raw: Any) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) <= 2048 for k, v in raw.items()
    ):
        raise LedgerCorrupt("ledger field owner must be an object of strings")
    return dict(raw)


def _fetch_failures(raw: Any) -> dict[str, tuple[int, int]]:
    if not isinstance(raw, Mapping):
        raise LedgerCorrupt("ledger field fetchFailures must be an object")
    failures: dict[str, tuple[int, int]] = {}
    for name, entry in raw.items():
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not all(isinstance(value, int) and not isinstance(value, bool) for value in entry)
        ):
            raise LedgerCorrupt(f"bad fetchFailures entry for {str(name)[:80]!r}")
        failures[str(name)] = (entry[0], entry[1])
    return failures


def _encode_loops(loops: Mapping[str, tuple[int, str]]) -> str:
    # Loop names are [a-z0-9-] (A2I's pattern), so spaces and semicolons never clash.
    return ";".join(f"{name} {created} {code}" for name, (created, code) in loops.items())


def _decode_loops(text: str) -> dict[str, tuple[int, str]]:
    loops: dict[str, tuple[int, str]] = {}
    if not text:
        return loops
    for record in text.split(";"):
        parts = record.split(" ")
        if len(parts) != 3 or not parts[1].lstrip("-").isdigit():
            raise LedgerCorrupt(f"bad ledger entry {record[:80]!r}")
        loops[parts[0]] = (int(parts[1]), parts[2])
    return loops
