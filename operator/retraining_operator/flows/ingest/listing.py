"""One listing poll: list A2I human loops, ingest new ended ones through the kernel.

    ledger = GET ledger/head.json                      (1 call; seal and owner checked)
    for each ListHumanLoops page since max(watermark - lookback, horizon):   (1 call per 100)
        triage against the ledger; submit new Completed loops to a bounded thread pool
            each: GET <predicted output key> (DescribeHumanLoop only when the key layout is
            unknown or the GET misses) -> convert -> quarantine record if rejected
            (DescribeFlowDefinition once a day, before the first read: the S3OutputPath)
    every `batch_size` loops, and at the end:
        PUT pending/<sha256>.jsonl   (the batch's lines, sorted by loop name; put-if-absent)
        PUT ledger/head.json If-Match   (loops -> segment, counters, watermark at the end)

A poll whose listing is empty costs one call: the listing starts from the ledger's
watermark as this process last read or wrote it (memory.py), and the ledger is read only
when there is a loop to triage or the watermark is due to be saved; without that memory
(the first poll, a stale revision) it costs two. The ledger write is the commit point: a
crash before it leaves at most an unreferenced segment, and the loops are fetched again by
the next poll; a crash after it cannot ingest them twice.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from retraining_operator.api import parse_duration
from retraining_operator.aws import a2i
from retraining_operator.aws.errors import AwsError
from retraining_operator.flows.ingest.fetch import Fetched, Fetcher
from retraining_operator.flows.ingest.kernel import Batch, IngestContext, Kernel, collect
from retraining_operator.flows.ingest.memory import LedgerView
from retraining_operator.flows.ingest.results import PollResult, ingest_error
from retraining_operator.flows.ledger_store import LedgerError
from retraining_operator.reconcile import ingest as rules
from retraining_operator.reconcile.ledger import Ledger

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5000
# (when the listing started, its CreationTimeAfter, lookback)
_When = tuple[datetime, datetime | None, timedelta]


@dataclass
class _Listing:
    """What the pages of one poll said, as they are read."""

    seen: set[str] = field(default_factory=set)
    unsettled_created: list[datetime] = field(default_factory=list)
    in_progress: int = 0
    futures: list[Future[Fetched]] = field(default_factory=list)
    failed: list[a2i.HumanLoop] = field(default_factory=list)
    submitted: int = 0
    deferred: int = 0


def poll(
    ctx: IngestContext, *, batch_size: int = DEFAULT_BATCH_SIZE, max_fetches: int | None = None
) -> PollResult:
    """Run one ingest poll for a policy and return its counters (see module docstring).

    `max_fetches`: read at most this many outputs; the other Completed loops stay unsettled
    (they hold the watermark) and are counted in `deferred`.

    Returns, or raises `IngestRetry` (a `RetryLater`: AWS busy, the ledger contended) or
    `IngestFailed` (a `NeedsAttention`: reason `IngestFailed` when AWS refused the
    listing or the ledger; `LedgerCorrupt`, `LedgerTampered`, `PendingSegmentTampered`,
    `LedgerRolledBack` or `LedgerOwnedElsewhere` for a ledger that cannot be trusted;
    `OutOfScope` when the tenant may not read the flow definition's output). Bad samples
    never raise: they are quarantined, counted and reported.
    """
    kernel = Kernel(ctx)
    lookback = parse_duration(ctx.spec.human_loops.lookback)
    flow_arn = ctx.spec.human_loops.flow_definition_arn
    key = (kernel.store.uri, flow_arn)
    view = ctx.ledger_memory.recall(key, ctx.access.known_revision)
    remembered: tuple[datetime | None, Iterator[list[a2i.HumanLoop]], datetime] | None = None
    if view is not None:
        listed_at = ctx.clock()  # before the listing: every loop created earlier is in it
        remembered_start = rules.listing_start(view.watermark, view.horizon, lookback)
        pages, empty = _peek(ctx, flow_arn, remembered_start)
        if empty and not rules.should_persist_watermark(
            view.watermark, rules.next_watermark(view.watermark, listed_at, []), lookback
        ):
            return _idle(view, listed_at)
        remembered = (remembered_start, pages, listed_at)
    ledger = kernel.open()
    start = rules.listing_start(ledger.watermark, ledger.horizon, lookback)
    if remembered is not None and remembered[0] == start:
        _, all_pages, listed_at = remembered  # the pages already listed are the right ones
    else:
        listed_at = ctx.clock()
        all_pages = a2i.list_human_loops(ctx.session.a2i(), flow_arn, created_after=start)
    listing = _Listing()
    fetcher: Fetcher | None = None
    with kernel.pool("ingest") as pool:
        try:
            for page in all_pages:
                kernel.tally.listed += len(page)
                fetchable = _triage(listing, page, ledger, max_fetches)
                if fetchable and fetcher is None:
                    fetcher = kernel.fetcher()
                listing.futures.extend(pool.submit(fetcher, loop) for loop in fetchable if fetcher)
                if len(listing.futures) + len(listing.failed) >= batch_size:
                    batch = Batch(collect(listing.futures), listing.failed)
                    listing.futures, listing.failed = [], []
                    kernel.commit(batch, final=None)
            batch = Batch(collect(listing.futures), listing.failed)
        except (AwsError, LedgerError) as error:
            raise ingest_error(f"ingest of {flow_arn} failed", error) from error
    _finish(kernel, batch, listing, (listed_at, start, lookback))
    result = _result(kernel, listing, listed_at)
    ctx.ledger_memory.remember(
        LedgerView(
            key=key,
            revision=kernel.ledger.revision,
            watermark=kernel.ledger.watermark,
            horizon=kernel.ledger.horizon,
            status=result.status,
            reviewers=result.reviewers,
        )
    )
    return result


def _peek(
    ctx: IngestContext, flow_arn: str, start: datetime | None
) -> tuple[Iterator[list[a2i.HumanLoop]], bool]:
    """The listing's pages from `start`, and whether it holds no loop at all (an empty
    listing is one page, so knowing it costs no call beyond the one that lists)."""
    pages = a2i.list_human_loops(ctx.session.a2i(), flow_arn, created_after=start)
    try:
        first = next(pages, None)
        if first:
            return itertools.chain([first], pages), False
        second = next(pages, None)
    except AwsError as error:
        raise ingest_error(f"ingest of {flow_arn} failed", error) from error
    if second is None:
        return iter(()), True
    return itertools.chain([second], pages), False


def _idle(view: LedgerView, listed_at: datetime) -> PollResult:
    """An empty listing: nothing to triage, the ledger unchanged since it was remembered."""
    log.debug(
        "ingest poll of %s: listed 0 (ledger revision %d not read)", view.key[1], view.revision
    )
    status = view.status.model_copy(update={"last_poll_time": listed_at, "in_progress_loops": 0})
    return PollResult(status=status, reviewers=view.reviewers)


def _triage(
    listing: _Listing, page: list[a2i.HumanLoop], ledger: Ledger, max_fetches: int | None
) -> list[a2i.HumanLoop]:
    """Sort one page into the listing; returns the loops to fetch now."""
    sorted_page = rules.triage(page, ledger, listing.seen)
    listing.in_progress += len(sorted_page.unsettled)
    listing.unsettled_created.extend(loop.created for loop in sorted_page.unsettled)
    listing.failed.extend(sorted_page.failed)
    fetchable = list(sorted_page.fetch)
    if max_fetches is not None and listing.submitted + len(fetchable) > max_fetches:
        room = max(0, max_fetches - listing.submitted)
        later = fetchable[room:]
        fetchable = fetchable[:room]
        listing.deferred += len(later)
        listing.unsettled_created.extend(loop.created for loop in later)
    listing.submitted += len(fetchable)
    return fetchable


def _finish(kernel: Kernel, batch: Batch, listing: _Listing, when: _When) -> None:
    """The last commit: the batch and the watermark (written only when something moved)."""
    listed_at, start, lookback = when
    # Loops whose output could not be read this time are unsettled: they hold the watermark.
    retry_created = [
        *kernel.tally.retry_created,
        *(f.loop.created for f in batch.fetched if f.error),
    ]
    watermark = rules.next_watermark(
        kernel.ledger.watermark, listed_at, [*listing.unsettled_created, *retry_created]
    )
    locator = kernel.locator
    needs_write = (
        len(batch) > 0
        or (locator is not None and locator.learned)
        or rules.should_persist_watermark(kernel.ledger.watermark, watermark, lookback)
        or kernel.store.recreated
    )
    if needs_write:
        kernel.commit(batch, final=(watermark, start))


def _result(kernel: Kernel, listing: _Listing, listed_at: datetime) -> PollResult:
    tally = kernel.tally
    unsettled = listing.in_progress + tally.fetch_errors + listing.deferred
    status = kernel.status(polled_at=listed_at, in_progress=unsettled)
    # A poll that found nothing new is not news: DEBUG, so 1,000 idle policies log nothing.
    moved = tally.new_samples or tally.quarantined or tally.failed_loops or tally.fetch_errors
    log.log(
        logging.INFO if moved else logging.DEBUG,
        "ingest poll of %s: listed %d, new samples %d, quarantined %d, failed %d, "
        "in progress %d, fetch errors %d, pending %d",
        kernel.flow,
        tally.listed,
        tally.new_samples,
        tally.quarantined,
        tally.failed_loops,
        listing.in_progress,
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
        in_progress=listing.in_progress,
        fetch_errors=tally.fetch_errors,
        segments=tuple(tally.segments),
        quarantine=tuple(tally.notes),
        quarantined_by_reason=dict(tally.by_reason),
        errors=tuple(tally.errors),
        reviewers=kernel.reviewers(),
        deferred=listing.deferred,
        recreated=kernel.store.recreated,
    )
