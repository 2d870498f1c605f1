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

import contextlib
import functools
import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from retraining_operator.api import IngestStatus, RetrainingPolicySpec, parse_duration
from retraining_operator.aws import a2i
from retraining_operator.aws.errors import AccessDenied, AwsError, NotFound
from retraining_operator.aws.s3 import S3, S3Location, StoredObject
from retraining_operator.aws.session import AwsSession
from retraining_operator.errors import NeedsAttention, RetryLater
from retraining_operator.manifest.convert import MAX_OUTPUT_BYTES, Converted, Converter
from retraining_operator.manifest.quarantine import (
    Quarantined,
    QuarantineReason,
    quarantine_record,
)
from retraining_operator.reconcile import ingest as rules
from retraining_operator.reconcile.events import LoopEvent
from retraining_operator.reconcile.ledger import (
    FAILED,
    MAX_FETCH_ATTEMPTS,
    QUARANTINED,
    STOPPED,
    Ledger,
    LoopOutcome,
    PendingSegment,
)
from retraining_operator.reconcile.tenancy import s3_within
from retraining_operator.workflow.ledger_store import LedgerError, LedgerStore, LedgerUnreadable

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 16
# Output bodies held at once across the fetch threads (read, parsed, converted): two
# outputs of the maximum size, so `concurrency x MAX_OUTPUT_BYTES` (128 MiB) never is.
# Typical outputs are a few KB: sixteen of them fit many times over.
DEFAULT_BYTES_IN_FLIGHT = 2 * MAX_OUTPUT_BYTES
DEFAULT_BATCH_SIZE = 5000
MAX_NOTES = 20
PENDING_PREFIX = "pending"
QUARANTINE_PREFIX = "quarantine"


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


# -- fetching ------------------------------------------------------------------------------


@dataclass
class _Fetched:
    loop: a2i.HumanLoop
    converted: Converted | None = None
    quarantined: Quarantined | None = None
    record_uri: str | None = None
    error: str | None = None  # not settled, retried next poll
    # The error counts towards MAX_FETCH_ATTEMPTS (it is not AWS being busy).
    counted: bool = False


class ByteBudget:
    """A counting semaphore in bytes: output bodies held at once across fetch threads.

    A holder reserves an object's ContentLength before reading its body and releases it
    once the output is converted (or quarantined), so the bytes read, parsed and copied
    into a quarantine record at any moment stay proportional to `capacity`, not to the
    number of threads. A single reservation larger than `capacity` is clamped to it.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.used = 0
        self.peak = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        amount = min(max(amount, 1), self.capacity)
        with self._changed:
            while self.used + amount > self.capacity:
                self._changed.wait()
            self.used += amount
            self.peak = max(self.peak, self.used)
        try:
            yield
        finally:
            with self._changed:
                self.used -= amount
                self._changed.notify_all()


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
    budget: ByteBudget,
    attempts: Mapping[str, int],
) -> _Fetched:
    """Read, convert (or quarantine) one Completed loop's output; never raises but AccessDenied.

    A failure that waiting may cure (AWS throttling or 5xx: `RetryLater`) leaves the loop
    unsettled for the next poll. Any other failure to read it (A2I names no output, the
    object cannot be read, a bug) counts as a failed attempt in the ledger; at the
    `MAX_FETCH_ATTEMPTS`th the loop is quarantined (`FetchFailed`), so one loop can hold
    the watermark for a few polls, never forever.
    """
    try:
        return _fetch_once(
            loop,
            s3=s3,
            locator=locator,
            converter=converter,
            quarantine_dir=quarantine_dir,
            clock=clock,
            budget=budget,
        )
    except AccessDenied:
        raise  # the operator's identity may not read outputs: the whole poll fails
    except RetryLater as error:
        return _Fetched(loop, error=f"{loop.name}: {error}")
    except Exception as error:  # one loop must never stop the poll
        attempt = attempts.get(loop.name, 0) + 1
        text = f"{type(error).__name__}: {str(error)[:300]}"
        if not isinstance(error, AwsError):
            log.warning("reading the output of %s failed", loop.name, exc_info=True)
        if attempt < MAX_FETCH_ATTEMPTS:
            return _Fetched(
                loop,
                error=f"{loop.name}: {text} (attempt {attempt} of {MAX_FETCH_ATTEMPTS})",
                counted=True,
            )
        item = Quarantined(
            QuarantineReason.FETCH_FAILED,
            f"the output could not be read in {attempt} polls; last error: {text}",
            loop_name=loop.name,
        )
        try:
            return _store_quarantine(loop, item, None, s3, quarantine_dir, clock)
        except AwsError as store_error:
            return _Fetched(loop, error=f"{loop.name}: {text}; {store_error}", counted=True)


def _open(s3: S3, uri: str | None) -> StoredObject | None:
    if uri is None:
        return None
    try:
        return s3.open(S3Location.parse(uri))
    except NotFound:
        return None


def _fetch_once(
    loop: a2i.HumanLoop,
    *,
    s3: S3,
    locator: _OutputLocator,
    converter: Converter,
    quarantine_dir: S3Location,
    clock: Callable[[], datetime],
    budget: ByteBudget,
) -> _Fetched:
    uri, described = locator.locate(loop)
    stored = _open(s3, uri)
    if stored is None and not described:
        # The predicted key missed (layout changed?): ask A2I where the output is.
        actual = locator.describe(loop)
        if actual is not None and actual != uri:
            uri = actual
            stored = _open(s3, uri)
        elif actual is None:
            uri = None
    if uri is None:
        raise _NoOutputYet(f"{loop.name}: Completed but A2I names no OutputS3Uri yet")
    if stored is None:
        item = Quarantined(
            QuarantineReason.OUTPUT_MISSING,
            f"the loop is Completed but {uri} does not exist",
            loop_name=loop.name,
            source=uri,
        )
        return _store_quarantine(loop, item, None, s3, quarantine_dir, clock)
    return _convert_stored(
        loop,
        stored,
        uri,
        s3=s3,
        converter=converter,
        quarantine_dir=quarantine_dir,
        clock=clock,
        budget=budget,
    )


def _convert_stored(
    loop: a2i.HumanLoop,
    stored: StoredObject,
    uri: str,
    *,
    s3: S3,
    converter: Converter,
    quarantine_dir: S3Location,
    clock: Callable[[], datetime],
    budget: ByteBudget,
) -> _Fetched:
    """Read an opened output (bounded by size and the byte budget), convert or quarantine it."""
    with stored:
        if stored.size is not None and stored.size > MAX_OUTPUT_BYTES:
            return _too_large(loop, stored, stored.size, s3, quarantine_dir, clock)
        # Never more than ContentLength (+1) bytes: a body longer than announced is as
        # suspect as a large one, and the budget holds only what was announced.
        expected = MAX_OUTPUT_BYTES if stored.size is None else stored.size
        with budget.hold(expected + 1):
            raw = stored.read_at_most(expected)
            if raw is None:
                return _too_large(loop, stored, expected + 1, s3, quarantine_dir, clock)
            result = converter.convert_bytes(raw, source=uri, expected_loop_name=loop.name)
            if isinstance(result, Quarantined):
                return _store_quarantine(loop, result, raw, s3, quarantine_dir, clock)
            return _Fetched(loop, converted=result)


class _NoOutputYet(Exception):
    """A2I reports the loop Completed but no output location (counted as a failed attempt)."""


def _too_large(
    loop: a2i.HumanLoop,
    stored: StoredObject,
    size: int,
    s3: S3,
    quarantine_dir: S3Location,
    clock: Callable[[], datetime],
) -> _Fetched:
    """Quarantine an output over the size limit by its size and ETag; its body is never read."""
    more = ""
    if stored.size is not None and size > stored.size:
        more = f" (its body is longer than its ContentLength, {stored.size})"
    item = Quarantined(
        QuarantineReason.OUTPUT_TOO_LARGE,
        f"{stored.location.uri} has {'at least ' if more else ''}{size} bytes{more}, more "
        f"than the {MAX_OUTPUT_BYTES} bytes an A2I output may have (ETag {stored.etag}); "
        "it was not read",
        loop_name=loop.name,
        source=stored.location.uri,
        size=size,
        etag=stored.etag,
    )
    return _store_quarantine(loop, item, None, s3, quarantine_dir, clock)


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
    bytes_in_flight: int = DEFAULT_BYTES_IN_FLIGHT,
    owner: dict[str, str] | None = None,
    may_read: Callable[[str], bool] | None = None,
    max_fetches: int | None = None,
) -> PollResult:
    """Run one ingest poll for a policy and return its counters (see module docstring).
    `owner`: the ledger must be this policy's (`LedgerStore`). `max_fetches`: read at most
    this many outputs; the other Completed loops stay unsettled (they hold the watermark)
    and are counted in `deferred`. `may_read`: whether the
    policy's tenant may read an S3 URI (the flow definition's output, in Scoped mode).

    Returns, or raises `IngestRetry` (a `RetryLater`: AWS busy, the ledger contended) or
    `IngestFailed` (a `NeedsAttention`: reason `IngestFailed` when AWS refused the
    listing or the ledger, `LedgerCorrupt` when the ledger is not readable). Bad samples
    never raise: they are quarantined, counted and reported.
    """
    now = clock or (lambda: datetime.now(UTC))
    s3 = S3(session.s3())
    output = S3Location.parse(spec.dataset.output_s3_uri)
    store = LedgerStore(s3, spec.dataset.output_s3_uri, owner=owner)
    lookback = parse_duration(spec.human_loops.lookback)
    try:
        ledger = store.load()
    except (AwsError, LedgerError) as error:
        raise _poll_error(f"cannot read the ingest ledger {store.uri}", error) from error
    if ledger.output_prefix is not None:
        _check_output_prefix(session, spec, ledger.output_prefix, may_read)

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
        budget=ByteBudget(max(bytes_in_flight, MAX_OUTPUT_BYTES + 1)),
        attempts={name: count for name, (_, count) in ledger.fetch_failures.items()},
    )
    tally = _Tally()
    seen: set[str] = set()
    unsettled_created: list[datetime] = []
    in_progress = 0
    batch_futures: list[Future[_Fetched]] = []
    batch_failed: list[a2i.HumanLoop] = []
    submitted = deferred = 0

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
                fetchable = list(sorted_page.fetch)
                if max_fetches is not None and submitted + len(fetchable) > max_fetches:
                    room = max(0, max_fetches - submitted)
                    later = fetchable[room:]
                    fetchable = fetchable[:room]
                    deferred += len(later)
                    unsettled_created.extend(loop.created for loop in later)
                submitted += len(fetchable)
                batch_futures.extend(pool.submit(fetch, loop) for loop in fetchable)
                if len(batch_futures) + len(batch_failed) >= batch_size:
                    batch = _Batch([f.result() for f in batch_futures], batch_failed)
                    batch_futures, batch_failed = [], []
                    _commit(store, s3, output, batch, tally, locator, now, final=None)
            batch = _Batch([f.result() for f in batch_futures], batch_failed)
        except (AwsError, LedgerError) as error:
            for future in batch_futures:
                future.cancel()
            raise _poll_error(
                f"ingest of {spec.human_loops.flow_definition_arn} failed", error
            ) from error

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
    except (AwsError, LedgerError) as error:
        raise _poll_error(f"cannot commit the ingest ledger {store.uri}", error) from error

    unsettled = in_progress + tally.fetch_errors + deferred
    status = rules.ingest_status(
        store.ledger, polled_at=listed_at, in_progress=unsettled, ledger_uri=store.uri
    )
    # A poll that found nothing new is not news: DEBUG, so 1,000 idle policies log nothing.
    moved = tally.new_samples or tally.quarantined or tally.failed_loops or tally.fetch_errors
    log.log(
        logging.INFO if moved else logging.DEBUG,
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
        reviewers={
            worker: (images, round(total / images, 4))
            for worker, (images, total) in store.ledger.reviewers.items()
            if images
        },
        deferred=deferred,
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
        agreement = [
            (score.worker, score.agreement)
            for f in kept
            if f.converted
            for score in f.converted.workers
        ]
        ledger.record(outcomes, segment=segment, dropped_boxes=dropped, reviewers=agreement)
        # Failed attempts survive in the ledger: the third one quarantines (see _fetch).
        for f in errors:
            if f.counted and f.loop.name not in taken:
                ledger.record_fetch_failure(f.loop.name, f.loop.created)
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


def _check_output_prefix(
    session: AwsSession,
    spec: RetrainingPolicySpec,
    prefix: str,
    may_read: Callable[[str], bool] | None,
) -> None:
    """The ledger's remembered output prefix must lie under the flow definition's own
    S3OutputPath (anyone who can write the ledger could otherwise point ingest at another
    bucket), and, in Scoped mode, be readable by the policy's tenant."""
    try:
        path = a2i.flow_output_path(session.sagemaker(), spec.human_loops.flow_definition_name)
    except AwsError as error:
        raise _poll_error("cannot describe the flow definition", error) from error
    if not s3_within(prefix, path):
        raise IngestFailed(
            "LedgerOutputPrefixForeign",
            f"the ingest ledger's outputPrefix {prefix} is not under the flow definition's "
            f"S3OutputPath {path}: the ledger was changed by someone else. Nothing was read; "
            "remove outputPrefix from the ledger (it is learned again) or restore the ledger",
        )
    if may_read is not None and not may_read(path):
        raise IngestFailed(
            "OutOfScope",
            f"the flow definition's S3OutputPath {path} is not under allow.s3.read of this "
            "namespace's RetrainingTenant",
        )


def _poll_error(what: str, error: AwsError | LedgerError) -> IngestError:
    """The poll's failure in the operator's two words; transient or not is the error's class."""
    if isinstance(error, LedgerUnreadable):
        return IngestFailed(error.reason, str(error))
    if isinstance(error, RetryLater):
        return IngestRetry(f"{what}: {error}", after=error.after)
    return IngestFailed("IngestFailed", f"{what}: {error}")


def segment_uris(output_s3_uri: str, segments: Iterable[PendingSegment]) -> list[str]:
    """The S3 URIs of pending segments (for reading them back)."""
    output = S3Location.parse(output_s3_uri)
    return [output.child(PENDING_PREFIX, f"{segment.sha256}.jsonl").uri for segment in segments]


# -- event-driven ingest -------------------------------------------------------------------


@dataclass(frozen=True)
class SettleResult:
    """What settling the loops named by status-change events did.

    `settled` holds every loop name that is now durably in the ledger (ingested,
    quarantined, counted as failed, or there before, also by another writer): their
    messages may be deleted. The other names stay unsettled (their messages are not
    deleted; the queue redelivers them and the backstop poll lists the loops anyway).
    """

    result: PollResult
    settled: frozenset[str]
    unsettled: Mapping[str, str]  # loop name -> why (first MAX_NOTES in `result.errors`)


def settle_events(
    session: AwsSession,
    spec: RetrainingPolicySpec,
    events: Iterable[LoopEvent],
    *,
    previous: IngestStatus,
    clock: Callable[[], datetime] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    bytes_in_flight: int = DEFAULT_BYTES_IN_FLIGHT,
) -> SettleResult:
    """Settle the loops that events name through the poll's ledger, fetch and quarantine path.

    The output key is the event's `outputS3Uri`, cross-checked against A2I's key layout for
    the flow definition's output prefix (from the ledger; learned once by DescribeHumanLoop
    when the ledger has none): an event naming any other object is not read. A loop the
    ledger has, or created before the ledger's horizon (settled and pruned), changes
    nothing: duplicated and reordered events are harmless. The watermark is the poll's and
    does not move. `previous` keeps the poll-only fields of the status (last poll time,
    loops in progress).
    """
    now = clock or (lambda: datetime.now(UTC))
    s3 = S3(session.s3())
    output = S3Location.parse(spec.dataset.output_s3_uri)
    store = LedgerStore(s3, spec.dataset.output_s3_uri)
    flow = spec.human_loops.flow_definition_name
    try:
        ledger = store.load()
    except (AwsError, LedgerError) as error:
        raise _poll_error(f"cannot read the ingest ledger {store.uri}", error) from error

    named: dict[str, LoopEvent] = {}
    for event in events:
        if event.flow_definition_arn == spec.human_loops.flow_definition_arn:
            named.setdefault(event.name, event)
    known = {name for name, event in named.items() if _already_settled(ledger, event)}
    todo = [event for name, event in named.items() if name not in known]
    loops = {event.name: _event_loop(event) for event in todo}
    locator = _OutputLocator(session, flow, ledger.output_prefix)
    fetch = functools.partial(
        _fetch_event,
        s3=s3,
        locator=locator,
        flow=flow,
        converter=Converter(spec.labels),
        quarantine_dir=output.child(QUARANTINE_PREFIX),
        clock=now,
        budget=ByteBudget(max(bytes_in_flight, MAX_OUTPUT_BYTES + 1)),
    )
    completed = [event for event in todo if event.completed]
    failed = [loops[event.name] for event in todo if not event.completed]
    tally = _Tally()
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="events") as pool:
        futures = [pool.submit(fetch, loops[event.name], event) for event in completed]
        try:
            batch = _Batch([future.result() for future in futures], failed)
        except AwsError as error:
            for future in futures:
                future.cancel()
            raise _poll_error(f"ingest of events for {flow} failed", error) from error
    try:
        if len(batch) > 0:
            _commit(store, s3, output, batch, tally, locator, now, final=None)
    except (AwsError, LedgerError) as error:
        raise _poll_error(f"cannot commit the ingest ledger {store.uri}", error) from error

    unsettled = {f.loop.name: f.error or "" for f in batch.fetched if f.error is not None}
    settled = frozenset(named) - set(unsettled)
    status = rules.ingest_status(
        store.ledger,
        polled_at=previous.last_poll_time or now(),
        in_progress=previous.in_progress_loops,
        ledger_uri=store.uri,
    ).model_copy(update={"last_poll_time": previous.last_poll_time})
    log.info(
        "ingest of %d event(s) for %s: new samples %d, quarantined %d, failed %d, known %d, "
        "unsettled %d, pending %d",
        len(named),
        flow,
        tally.new_samples,
        tally.quarantined,
        tally.failed_loops,
        len(known),
        len(unsettled),
        status.pending_samples,
    )
    return SettleResult(
        result=PollResult(
            status=status,
            listed=len(named),
            new_samples=tally.new_samples,
            quarantined=tally.quarantined,
            dropped_boxes=tally.dropped_boxes,
            failed_loops=tally.failed_loops,
            fetch_errors=tally.fetch_errors,
            segments=tuple(tally.segments),
            quarantine=tuple(tally.notes),
            quarantined_by_reason=dict(tally.by_reason),
            errors=tuple(tally.errors),
        ),
        settled=settled,
        unsettled=unsettled,
    )


def _already_settled(ledger: Ledger, event: LoopEvent) -> bool:
    """In the ledger, or older than its horizon (settled by an earlier listing, then pruned)."""
    if event.name in ledger:
        return True
    return ledger.horizon is not None and event.created < ledger.horizon


def _event_loop(event: LoopEvent) -> a2i.HumanLoop:
    return a2i.HumanLoop(
        name=event.name,
        status=event.status,
        created=event.created,
        flow_definition_arn=event.flow_definition_arn,
        failure_reason=event.failure_reason,
    )


def _fetch_event(
    loop: a2i.HumanLoop,
    event: LoopEvent,
    *,
    s3: S3,
    locator: _OutputLocator,
    flow: str,
    converter: Converter,
    quarantine_dir: S3Location,
    clock: Callable[[], datetime],
    budget: ByteBudget,
) -> _Fetched:
    """Read, convert (or quarantine) the output an event names; never raises but AccessDenied.

    Anything short of a readable output at the expected key leaves the loop unsettled and
    uncounted: the event may be early, forged or stale, and the backstop poll (which judges
    missing outputs by A2I's own word) settles the loop either way.
    """
    try:
        if locator.prefix is None:
            uri, _ = locator.locate(loop)  # one DescribeHumanLoop teaches the layout
        else:
            uri = a2i.output_uri(locator.prefix, flow, loop.created, loop.name)
        if uri is None or uri != event.output_s3_uri:
            return _Fetched(
                loop,
                error=f"{loop.name}: the event's outputS3Uri {str(event.output_s3_uri)[:200]} "
                f"is not where A2I writes this loop's output ({uri}); left to the poll",
            )
        stored = _open(s3, uri)
        if stored is None:
            return _Fetched(loop, error=f"{loop.name}: {uri} does not exist yet; left to the poll")
        return _convert_stored(
            loop,
            stored,
            uri,
            s3=s3,
            converter=converter,
            quarantine_dir=quarantine_dir,
            clock=clock,
            budget=budget,
        )
    except AccessDenied:
        raise
    except Exception as error:  # one loop must never stop the others
        if not isinstance(error, AwsError):
            log.warning("reading the output of %s failed", loop.name, exc_info=True)
        return _Fetched(loop, error=f"{loop.name}: {type(error).__name__}: {str(error)[:300]}")
