"""One ingest poll: list A2I human loops, convert new Completed ones, commit them exactly once.

    ledger = GET ledger/head.json                      (1 call)
    for each ListHumanLoops page since max(watermark - lookback, horizon):   (1 call per 100)
        triage against the ledger; submit new Completed loops to a bounded thread pool
            each: GET <predicted output key> (DescribeHumanLoop only when the key layout is
            unknown or the GET misses) -> convert -> quarantine record if rejected
    every `batch_size` loops, and at the end:
        PUT pending/<sha256>.jsonl   (the batch's lines, sorted by loop name; put-if-absent)
        PUT ledger/head.json If-Match   (loops -> segment, counters, watermark at the end)

A poll with nothing new costs two calls (list + ledger read). The ledger write is the
commit point: a crash before it leaves at most an unreferenced segment, and the loops are
fetched again by the next poll; a crash after it cannot ingest them twice.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from retraining_operator.api import IngestStatus, RetrainingPolicySpec, parse_duration
from retraining_operator.aws import a2i
from retraining_operator.aws.errors import AccessDenied, AwsError, NotFound
from retraining_operator.aws.s3 import S3, S3Location
from retraining_operator.aws.session import AwsSession
from retraining_operator.manifest.convert import Converted, Converter
from retraining_operator.manifest.quarantine import (
    Quarantined,
    QuarantineReason,
    quarantine_record,
)
from retraining_operator.reconcile import ingest as rules
from retraining_operator.reconcile.ledger import (
    FAILED,
    QUARANTINED,
    STOPPED,
    Ledger,
    LoopOutcome,
    PendingSegment,
)
from retraining_operator.workflow.ledger_store import LedgerError, LedgerStore

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 16
DEFAULT_BATCH_SIZE = 5000
MAX_NOTES = 20
PENDING_PREFIX = "pending"
QUARANTINE_PREFIX = "quarantine"


class IngestError(Exception):
    """The poll as a whole failed (listing, ledger); `retryable` says whether to retry later.

    Problems with single samples never raise: they are quarantined and reported.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


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

    def event_message(self) -> str | None:
        """A Kubernetes Event message for this poll's quarantined samples and dropped boxes.

        None when there is nothing to report.
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


# -- fetching ------------------------------------------------------------------------------


@dataclass
class _Fetched:
    loop: a2i.HumanLoop
    converted: Converted | None = None
    quarantined: Quarantined | None = None
    record_uri: str | None = None
    error: str | None = None  # transient: not settled, retried next poll


class _OutputLocator:
    """Finds a loop's output.json: predicted from the key layout, else DescribeHumanLoop.

    The layout's prefix (the flow definition's S3OutputPath) is known from the ledger or
    learned from the first DescribeHumanLoop of a poll; only one thread describes while the
    others wait, so learning costs one call, not one per worker.
    """

    def __init__(self, session: AwsSession, flow_definition_name: str, prefix: str | None):
        self.session = session
        self.flow = flow_definition_name
        self.prefix = prefix
        self.learned = False
        self._layout_unknown = False
        self._lock = threading.Lock()

    def locate(self, loop: a2i.HumanLoop) -> tuple[str | None, bool]:
        """(output URI or None, whether it came from DescribeHumanLoop)."""
        if self.prefix is None and not self._layout_unknown:
            with self._lock:
                if self.prefix is None and not self._layout_unknown:
                    uri = self.describe(loop)
                    if self.prefix is None and uri is not None:
                        self._layout_unknown = True  # keep describing, without the lock
                    return uri, True
        if self.prefix is None:
            return self.describe(loop), True
        return a2i.output_uri(self.prefix, self.flow, loop.created, loop.name), False

    def describe(self, loop: a2i.HumanLoop) -> str | None:
        uri = a2i.describe_output_uri(self.session.a2i(), loop.name)
        if uri is None:
            return None
        prefix = a2i.output_prefix_of(uri, self.flow, loop.name)
        # Trust the layout only if it also reproduces the creation-time part of the key.
        fits = prefix is not None and (
            a2i.output_uri(prefix, self.flow, loop.created, loop.name) == uri
        )
        if fits and self.prefix != prefix:
            self.prefix, self.learned = prefix, True
        return uri


def _fetch(
    loop: a2i.HumanLoop,
    *,
    s3: S3,
    locator: _OutputLocator,
    converter: Converter,
    quarantine_dir: S3Location,
    clock: Callable[[], datetime],
) -> _Fetched:
    try:
        uri, described = locator.locate(loop)
        raw: bytes | None = None
        if uri is not None:
            try:
                raw = s3.get(S3Location.parse(uri))
            except NotFound:
                raw = None
        if raw is None and not described:
            # The predicted key missed (layout changed?): ask A2I where the output is.
            actual = locator.describe(loop)
            if actual is not None and actual != uri:
                uri = actual
                try:
                    raw = s3.get(S3Location.parse(uri))
                except NotFound:
                    raw = None
            elif actual is None:
                uri = None
        if uri is None:
            return _Fetched(loop, error=f"{loop.name}: Completed but no OutputS3Uri yet")
        if raw is None:
            item = Quarantined(
                QuarantineReason.OUTPUT_MISSING,
                f"the loop is Completed but {uri} does not exist",
                loop_name=loop.name,
                source=uri,
            )
            return _store_quarantine(loop, item, None, s3, quarantine_dir, clock)
        result = converter.convert_bytes(raw, source=uri, expected_loop_name=loop.name)
        if isinstance(result, Quarantined):
            return _store_quarantine(loop, result, raw, s3, quarantine_dir, clock)
        return _Fetched(loop, converted=result)
    except AccessDenied:
        raise
    except (AwsError, ValueError) as error:
        return _Fetched(loop, error=f"{loop.name}: {error}")


def _store_quarantine(
    loop: a2i.HumanLoop,
    item: Quarantined,
    raw: bytes | None,
    s3: S3,
    quarantine_dir: S3Location,
    clock: Callable[[], datetime],
) -> _Fetched:
    target = quarantine_dir.child(f"{loop.name}.json")
    s3.put(target, quarantine_record(item, raw, at=clock()))
    log.warning("quarantined %s", item.describe())
    return _Fetched(loop, quarantined=item, record_uri=target.uri)


# -- the poll ------------------------------------------------------------------------------


@dataclass
class _Batch:
    fetched: list[_Fetched] = field(default_factory=list)
    failed: list[a2i.HumanLoop] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.fetched) + len(self.failed)


@dataclass
class _Tally:
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


def poll(
    session: AwsSession,
    spec: RetrainingPolicySpec,
    *,
    clock: Callable[[], datetime] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> PollResult:
    """Run one ingest poll for a policy and return its counters (see module docstring).

    Raises `IngestError` when the poll cannot run at all (listing or ledger failed;
    `retryable` tells a throttle/outage from a permission or configuration problem).
    Bad samples never raise: they are quarantined, counted and reported.
    """
    now = clock or (lambda: datetime.now(UTC))
    s3 = S3(session.s3())
    output = S3Location.parse(spec.dataset.output_s3_uri)
    store = LedgerStore(s3, spec.dataset.output_s3_uri)
    lookback = parse_duration(spec.human_loops.lookback)
    try:
        ledger = store.load()
    except AwsError as error:
        raise _ingest_error(f"cannot read the ingest ledger {store.uri}", error) from error
    except LedgerError as error:
        raise IngestError(str(error), retryable=error.retryable) from error

    start = rules.listing_start(ledger.watermark, ledger.horizon, lookback)
    listed_at = now()
    converter = Converter(spec.labels)
    locator = _OutputLocator(session, spec.human_loops.flow_definition_name, ledger.output_prefix)
    fetch = functools.partial(
        _fetch,
        s3=s3,
        locator=locator,
        converter=converter,
        quarantine_dir=output.child(QUARANTINE_PREFIX),
        clock=now,
    )
    tally = _Tally()
    seen: set[str] = set()
    unsettled_created: list[datetime] = []
    in_progress = 0
    batch_futures: list[Future[_Fetched]] = []
    batch_failed: list[a2i.HumanLoop] = []

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="ingest") as pool:
        try:
            for page in a2i.list_human_loops(
                session.a2i(), spec.human_loops.flow_definition_arn, created_after=start
            ):
                tally.listed += len(page)
                sorted_page = rules.triage(page, ledger, seen)
                in_progress += len(sorted_page.unsettled)
                unsettled_created.extend(loop.created for loop in sorted_page.unsettled)
                batch_failed.extend(sorted_page.failed)
                batch_futures.extend(pool.submit(fetch, loop) for loop in sorted_page.fetch)
                if len(batch_futures) + len(batch_failed) >= batch_size:
                    batch = _Batch([f.result() for f in batch_futures], batch_failed)
                    batch_futures, batch_failed = [], []
                    _commit(store, s3, output, batch, tally, locator, now, final=None)
            batch = _Batch([f.result() for f in batch_futures], batch_failed)
        except AwsError as error:
            for future in batch_futures:
                future.cancel()
            raise _ingest_error(
                f"ingest of {spec.human_loops.flow_definition_arn} failed", error
            ) from error
        except LedgerError as error:
            raise IngestError(str(error), retryable=error.retryable) from error

    # Loops whose output could not be read this time are unsettled: they hold the watermark.
    retry_created = [*tally.retry_created, *(f.loop.created for f in batch.fetched if f.error)]
    try:
        watermark = rules.next_watermark(
            store.ledger.watermark, listed_at, [*unsettled_created, *retry_created]
        )
        needs_write = (
            len(batch) > 0
            or locator.learned
            or rules.should_persist_watermark(store.ledger.watermark, watermark, lookback)
        )
        if needs_write:
            _commit(store, s3, output, batch, tally, locator, now, final=(watermark, start))
    except AwsError as error:
        raise _ingest_error(f"cannot commit the ingest ledger {store.uri}", error) from error
    except LedgerError as error:
        raise IngestError(str(error), retryable=error.retryable) from error

    unsettled = in_progress + tally.fetch_errors
    status = rules.ingest_status(
        store.ledger, polled_at=listed_at, in_progress=unsettled, ledger_uri=store.uri
    )
    log.info(
        "ingest poll of %s: listed %d, new samples %d, quarantined %d, failed %d, "
        "in progress %d, fetch errors %d, pending %d",
        spec.human_loops.flow_definition_name,
        tally.listed,
        tally.new_samples,
        tally.quarantined,
        tally.failed_loops,
        in_progress,
        tally.fetch_errors,
        status.pending_samples,
    )
    return PollResult(
        status=status,
        listed=tally.listed,
        new_samples=tally.new_samples,
        quarantined=tally.quarantined,
        dropped_boxes=tally.dropped_boxes,
        failed_loops=tally.failed_loops,
        in_progress=in_progress,
        fetch_errors=tally.fetch_errors,
        segments=tuple(tally.segments),
        quarantine=tuple(tally.notes),
        quarantined_by_reason=dict(tally.by_reason),
        errors=tuple(tally.errors),
    )


def _commit(
    store: LedgerStore,
    s3: S3,
    output: S3Location,
    batch: _Batch,
    tally: _Tally,
    locator: _OutputLocator,
    clock: Callable[[], datetime],
    *,
    final: tuple[datetime, datetime | None] | None,
) -> None:
    """Write the batch's segment, then record its loops in the ledger (the commit point)."""
    good = [f for f in batch.fetched if f.converted is not None]
    bad = [f for f in batch.fetched if f.quarantined is not None]
    errors = [f for f in batch.fetched if f.error is not None]
    for item in errors:
        tally.fetch_errors += 1
        if final is None:
            tally.retry_created.append(item.loop.created)
        if len(tally.errors) < MAX_NOTES:
            tally.errors.append(item.error or "")
    added_at = clock()
    segment_cache: dict[frozenset[str], PendingSegment] = {}

    def segment_for(kept: list[_Fetched]) -> PendingSegment | None:
        """Write (put-if-absent) the segment of exactly these samples."""
        if not kept:
            return None
        key = frozenset(f.loop.name for f in kept)
        if key not in segment_cache:
            ordered = sorted(kept, key=lambda f: f.loop.name)
            body = "".join(f"{f.converted.line}\n" for f in ordered if f.converted).encode()
            digest = _sha256(body)
            s3.put_if_absent(
                output.child(PENDING_PREFIX, f"{digest}.jsonl"),
                body,
                content_type="application/jsonl",
            )
            segment_cache[key] = PendingSegment(
                sha256=digest, samples=len(kept), loops=len(kept), added_at=added_at
            )
        return segment_cache[key]

    committed = _Committed()

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
        ledger.record(outcomes, segment=segment, dropped_boxes=dropped)
        if locator.prefix is not None:
            ledger.output_prefix = locator.prefix
        if final is not None:
            watermark, horizon = final
            ledger.advance(watermark, horizon)
        committed.kept, committed.quarantined, committed.failed = kept, quarantined, failed
        committed.segment, committed.dropped = segment, dropped

    store.update(change)
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
        tally.segments.append(output.child(PENDING_PREFIX, f"{committed.segment.sha256}.jsonl").uri)
    locator.learned = False


@dataclass
class _Committed:
    kept: list[_Fetched] = field(default_factory=list)
    quarantined: list[_Fetched] = field(default_factory=list)
    failed: list[a2i.HumanLoop] = field(default_factory=list)
    segment: PendingSegment | None = None
    dropped: int = 0


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ingest_error(what: str, error: AwsError) -> IngestError:
    retryable = not isinstance(error, AccessDenied | NotFound) and error.code not in {
        "ValidationException",
        "InvalidParameterValue",
    }
    return IngestError(f"{what}: {error}", retryable=retryable)


def segment_uris(output_s3_uri: str, segments: Iterable[PendingSegment]) -> list[str]:
    """The S3 URIs of pending segments (for reading them back)."""
    output = S3Location.parse(output_s3_uri)
    return [output.child(PENDING_PREFIX, f"{segment.sha256}.jsonl").uri for segment in segments]
