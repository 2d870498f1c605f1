"""The ingest kernel: the one way a loop enters the ledger, whichever way it was found.

The listing poll (`listing.py`) and the events settle (`settle.py`) differ only in how they
learn that a loop may have changed. Both then go through this kernel:

1. **The ledger** is opened with the owner check and its seal verified (`LedgerAccess`).
2. **A2I's word**: only loops A2I reports (a listing page of the policy's flow definition,
   or DescribeHumanLoop naming it) are triaged — an event never is.
3. **Where to read**: an output URI is read only under the flow definition's S3OutputPath
   and inside the tenant's readable prefixes, checked before the first read (`guard.py`).
4. **The commit**: the batch's converted lines become one content-addressed segment (put if
   absent), then the ledger records the loops, sealed (`If-Match`): the commit point.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from retraining_operator.api import IngestStatus, RetrainingPolicySpec
from retraining_operator.aws import a2i
from retraining_operator.aws.errors import AwsError
from retraining_operator.aws.s3 import S3, S3Location
from retraining_operator.aws.session import AwsSession
from retraining_operator.flows.ingest.fetch import (
    ByteBudget,
    Fetched,
    Fetcher,
    OutputLocator,
)
from retraining_operator.flows.ingest.guard import FlowPathCache, OutputGuard
from retraining_operator.flows.ingest.memory import LedgerMemory
from retraining_operator.flows.ingest.results import (
    MAX_NOTES,
    QuarantineNote,
    ingest_error,
)
from retraining_operator.flows.ledger_store import LedgerAccess, LedgerError, LedgerStore
from retraining_operator.manifest.convert import MAX_OUTPUT_BYTES, Converter
from retraining_operator.reconcile import ingest as rules
from retraining_operator.reconcile.ledger import (
    FAILED,
    QUARANTINED,
    STOPPED,
    Ledger,
    LoopOutcome,
    PendingSegment,
)

DEFAULT_CONCURRENCY = 16
# Output bodies held at once across the fetch threads (read, parsed, converted): two
# outputs of the maximum size, so `concurrency x MAX_OUTPUT_BYTES` (128 MiB) never is.
# Typical outputs are a few KB: sixteen of them fit many times over.
DEFAULT_BYTES_IN_FLIGHT = 2 * MAX_OUTPUT_BYTES
PENDING_PREFIX = "pending"
QUARANTINE_PREFIX = "quarantine"
# Reviewers with metric series per policy: the most recently active ones.
REVIEWER_SERIES = 25


@dataclass(frozen=True)
class IngestContext:
    """What one ingest of one policy works with (a value object: the pass builds it)."""

    session: AwsSession
    spec: RetrainingPolicySpec
    access: LedgerAccess
    clock: Callable[[], datetime]
    # Scoped mode: whether the policy's tenant may read an S3 URI.
    may_read: Callable[[str], bool] | None = None
    # The flow definition's S3OutputPath as last described (the policy's memo keeps it).
    flow_paths: FlowPathCache = field(default_factory=FlowPathCache)
    concurrency: int = DEFAULT_CONCURRENCY
    bytes_in_flight: int = DEFAULT_BYTES_IN_FLIGHT
    # The ledger as last read or written (the policy's memo keeps it): see memory.py.
    ledger_memory: LedgerMemory = field(default_factory=LedgerMemory)


@dataclass
class Batch:
    fetched: list[Fetched] = field(default_factory=list)
    failed: list[a2i.HumanLoop] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.fetched) + len(self.failed)


@dataclass
class Tally:
    listed: int = 0
    new_samples: int = 0
    quarantined: int = 0
    dropped_boxes: int = 0
    failed_loops: int = 0
    fetch_errors: int = 0
    segments: list[str] = field(default_factory=list)
    notes: list[QuarantineNote] = field(default_factory=list)
    by_reason: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    retry_created: list[datetime] = field(default_factory=list)


@dataclass
class _Committed:
    kept: list[Fetched] = field(default_factory=list)
    quarantined: list[Fetched] = field(default_factory=list)
    failed: list[a2i.HumanLoop] = field(default_factory=list)
    segment: PendingSegment | None = None
    dropped: int = 0


class Kernel:
    """One ingest's ledger, guard, fetcher and commit (not thread-safe; fetches are)."""

    def __init__(self, ctx: IngestContext) -> None:
        self.ctx = ctx
        spec = ctx.spec
        self.s3 = S3(ctx.session.s3())
        self.output = S3Location.parse(spec.dataset.output_s3_uri)
        self.store = LedgerStore(self.s3, spec.dataset.output_s3_uri, ctx.access)
        self.flow = spec.human_loops.flow_definition_name
        self.guard = OutputGuard(ctx.session, self.flow, ctx.flow_paths, ctx.may_read)
        self.locator: OutputLocator | None = None
        self.tally = Tally()

    @property
    def ledger(self) -> Ledger:
        return self.store.ledger

    def open(self, described: dict[str, str] | None = None) -> Ledger:
        """Read the ledger (owner and seal checked); prepares the output locator."""
        try:
            ledger = self.store.load()
        except (AwsError, LedgerError) as error:
            raise ingest_error(f"cannot read the ingest ledger {self.store.uri}", error) from error
        self.locator = OutputLocator(self.ctx.session, self.flow, ledger.output_prefix, described)
        return ledger

    def fetcher(self) -> Fetcher:
        """The fetch function for this ingest; checks the output path first (before any
        read, also on a brand-new ledger)."""
        assert self.locator is not None, "open() first"
        self.guard.ready(self.ledger.output_prefix)
        return Fetcher(
            s3=self.s3,
            locator=self.locator,
            guard=self.guard,
            converter=Converter(self.ctx.spec.labels),
            quarantine_dir=self.output.child(QUARANTINE_PREFIX),
            clock=self.ctx.clock,
            budget=ByteBudget(max(self.ctx.bytes_in_flight, MAX_OUTPUT_BYTES + 1)),
            attempts={name: count for name, (_, count) in self.ledger.fetch_failures.items()},
        )

    def pool(self, prefix: str) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(
            max_workers=max(1, self.ctx.concurrency), thread_name_prefix=prefix
        )

    def reviewers(self) -> dict[str, tuple[int, float]]:
        """The most recently active reviewers (their metric series), with (images, mean
        agreement); the others' series are dropped (a bounded set per policy)."""
        ledger = self.ledger
        return {
            worker: (images, round(total / images, 4))
            for worker in ledger.active_reviewers(REVIEWER_SERIES)
            for images, total in [ledger.reviewers[worker]]
            if images
        }

    def status(self, *, polled_at: datetime, in_progress: int) -> IngestStatus:
        return rules.ingest_status(
            self.ledger, polled_at=polled_at, in_progress=in_progress, ledger_uri=self.store.uri
        )

    def commit(self, batch: Batch, *, final: tuple[datetime, datetime | None] | None) -> None:
        """Write the batch's segment, then record its loops in the ledger (the commit point)."""
        try:
            _commit(self, batch, final)
        except (AwsError, LedgerError) as error:
            raise ingest_error(
                f"cannot commit the ingest ledger {self.store.uri}", error
            ) from error


def collect(futures: Iterable[Future[Fetched]]) -> list[Fetched]:
    """The results, in order; on a failure of the whole ingest the rest are cancelled."""
    pending = list(futures)
    try:
        return [future.result() for future in pending]
    except BaseException:
        for future in pending:
            future.cancel()
        raise


def _note_errors(kernel: Kernel, errors: list[Fetched], final: object) -> None:
    tally = kernel.tally
    for item in errors:
        tally.fetch_errors += 1
        if final is None:
            tally.retry_created.append(item.loop.created)
        if len(tally.errors) < MAX_NOTES:
            tally.errors.append(item.error or "")


def _commit(kernel: Kernel, batch: Batch, final: tuple[datetime, datetime | None] | None) -> None:
    good = [f for f in batch.fetched if f.converted is not None]
    bad = [f for f in batch.fetched if f.quarantined is not None]
    errors = [f for f in batch.fetched if f.error is not None]
    _note_errors(kernel, errors, final)
    segment_for = functools.partial(_segment_for, kernel, kernel.ctx.clock(), {})
    committed = _Committed()
    locator = kernel.locator

    def change(ledger: Ledger) -> None:
        # Loops another writer recorded meanwhile are theirs: leave them out (exactly once).
        taken = ledger.overlap(f.loop.name for f in batch.fetched) | ledger.overlap(
            loop.name for loop in batch.failed
        )
        kept = [f for f in good if f.loop.name not in taken]
        segment = segment_for(kept)
        outcomes = [LoopOutcome(f.loop.name, f.loop.created, segment.id) for f in kept if segment]
        quarantined = [f for f in bad if f.loop.name not in taken]
        outcomes += [LoopOutcome(f.loop.name, f.loop.created, QUARANTINED) for f in quarantined]
        failed = [loop for loop in batch.failed if loop.name not in taken]
        outcomes += [
            LoopOutcome(loop.name, loop.created, STOPPED if loop.status == "Stopped" else FAILED)
            for loop in failed
        ]
        dropped = sum(len(f.converted.dropped) for f in kept if f.converted)
        agreement = [
            (score.worker, score.agreement)
            for f in kept
            if f.converted
            for score in f.converted.workers
        ]
        ledger.record(
            outcomes,
            segment=segment,
            dropped_boxes=dropped,
            reviewers=agreement,
            seen_at=kernel.ctx.clock(),
        )
        # Failed attempts survive in the ledger: the third one quarantines (see fetch.py).
        for f in errors:
            if f.counted and f.loop.name not in taken:
                ledger.record_fetch_failure(f.loop.name, f.loop.created)
        if locator is not None and locator.prefix is not None:
            ledger.output_prefix = locator.prefix
        if final is not None:
            ledger.advance(*final)
        committed.kept, committed.quarantined, committed.failed = kept, quarantined, failed
        committed.segment, committed.dropped = segment, dropped

    kernel.store.update(change)
    _count(kernel, committed)
    if locator is not None:
        locator.learned = False


def _segment_for(
    kernel: Kernel,
    added_at: datetime,
    cache: dict[frozenset[str], PendingSegment],
    kept: list[Fetched],
) -> PendingSegment | None:
    """Write (put-if-absent) the segment of exactly these samples (once per distinct set)."""
    if not kept:
        return None
    key = frozenset(f.loop.name for f in kept)
    if key not in cache:
        ordered = sorted(kept, key=lambda f: f.loop.name)
        body = "".join(f"{f.converted.line}\n" for f in ordered if f.converted).encode()
        digest = hashlib.sha256(body).hexdigest()
        kernel.s3.put_if_absent(
            kernel.output.child(PENDING_PREFIX, f"{digest}.jsonl"),
            body,
            content_type="application/jsonl",
        )
        cache[key] = PendingSegment(
            sha256=digest, samples=len(kept), loops=len(kept), added_at=added_at
        )
    return cache[key]


def _count(kernel: Kernel, committed: _Committed) -> None:
    tally = kernel.tally
    tally.new_samples += len(committed.kept)
    tally.quarantined += len(committed.quarantined)
    tally.by_reason.update(
        str(f.quarantined.reason) for f in committed.quarantined if f.quarantined
    )
    for f in committed.quarantined:
        if len(tally.notes) < MAX_NOTES and f.quarantined is not None:
            tally.notes.append(
                QuarantineNote(
                    f.loop.name, f.quarantined.reason, f.quarantined.detail, f.record_uri
                )
            )
    tally.failed_loops += len(committed.failed)
    tally.dropped_boxes += committed.dropped
    if committed.segment is not None:
        tally.segments.append(
            kernel.output.child(PENDING_PREFIX, f"{committed.segment.sha256}.jsonl").uri
        )


def segment_uris(output_s3_uri: str, segments: Iterable[PendingSegment]) -> list[str]:
    """The S3 URIs of pending segments (for reading them back)."""
    output = S3Location.parse(output_s3_uri)
    return [output.child(PENDING_PREFIX, f"{segment.sha256}.jsonl").uri for segment in segments]
