"""Settle the loops that A2I status-change events name: an event is a hint to look, never a fact.

Anyone who can send to the queue can write an event, so an event decides nothing by itself.
For the loops the events name, A2I is asked (`confirm.py`: one listing page confirms up to
100 loops; DescribeHumanLoop only for the few a listing cannot place), and only what A2I
says enters the kernel, exactly as in the listing poll:

- A2I says Completed: the output is read where A2I's layout (or DescribeHumanLoop) puts it,
  under the flow definition's S3OutputPath — never where the event says.
- A2I says Failed/Stopped: counted as failed in the ledger.
- A2I says InProgress/Stopping: nothing; the message is not deleted (it comes back, and
  after maxReceiveCount the queue's redrive policy dead-letters it).
- A2I does not know the loop, or it belongs to another flow definition, or the event claims
  a creation time in the future: dropped (the message is deleted), counted by reason, logged;
  nothing enters the ledger.

The watermark is the poll's and does not move. `previous` keeps the poll-only fields of the
status (last poll time, loops in progress).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import timedelta

from retraining_operator.api import IngestStatus
from retraining_operator.aws import a2i
from retraining_operator.aws.errors import AwsError
from retraining_operator.flows.ingest.confirm import Confirmation, confirm
from retraining_operator.flows.ingest.kernel import Batch, IngestContext, Kernel, collect
from retraining_operator.flows.ingest.results import PollResult, SettleResult, ingest_error
from retraining_operator.flows.ledger_store import LedgerError
from retraining_operator.reconcile import ingest as rules
from retraining_operator.reconcile.events import LoopEvent
from retraining_operator.reconcile.ledger import Ledger

log = logging.getLogger(__name__)

# An event may claim a creation time this far ahead of the operator's clock (skew).
MAX_CLOCK_SKEW = timedelta(minutes=10)


def settle_events(
    ctx: IngestContext, events: Iterable[LoopEvent], *, previous: IngestStatus
) -> SettleResult:
    """Settle the loops events name through the kernel (see the module docstring)."""
    kernel = Kernel(ctx)
    ledger = kernel.open()
    claims = _claims(ctx, events)
    dropped: Counter[str] = Counter()
    now = ctx.clock()
    todo: dict[str, list[LoopEvent]] = {}
    settled: set[str] = set()
    for name, named in claims.items():
        if _already_settled(ledger, named):
            settled.add(name)
        elif all(event.created > now + MAX_CLOCK_SKEW for event in named):
            dropped["FutureCreation"] += 1
            settled.add(name)
        else:
            todo[name] = named
    try:
        answer = confirm(ctx.session, ctx.spec.human_loops.flow_definition_arn, todo)
    except AwsError as error:
        raise ingest_error("cannot ask A2I about the loops events named", error) from error
    for reason, names in answer.dropped.items():
        dropped[reason] += len(names)
        settled.update(names)
    unsettled = _ingest(kernel, ledger, answer)
    settled.update(name for name in todo if name not in unsettled and name not in answer.undecided)
    unsettled.update({name: "A2I's answer is not known yet" for name in answer.undecided})
    result = _result(kernel, previous, len(claims))
    _log(kernel, claims, dropped, unsettled, result)
    return SettleResult(
        result=result,
        settled=frozenset(settled),
        unsettled=unsettled,
        dropped=dict(dropped),
        confirmations=answer.calls,
    )


def _claims(ctx: IngestContext, events: Iterable[LoopEvent]) -> dict[str, list[LoopEvent]]:
    """The events of this policy's flow definition, by loop name (a name may be claimed by
    several messages, genuine or not: each claim's creation time is looked at)."""
    claims: dict[str, list[LoopEvent]] = {}
    for event in events:
        if event.flow_definition_arn == ctx.spec.human_loops.flow_definition_arn:
            claims.setdefault(event.name, []).append(event)
    return claims


def _already_settled(ledger: Ledger, named: list[LoopEvent]) -> bool:
    """In the ledger, or every claim older than its horizon (settled by an earlier listing,
    then pruned: nothing is recorded for it, so a false claim costs nothing)."""
    if named[0].name in ledger:
        return True
    horizon = ledger.horizon
    return horizon is not None and all(event.created < horizon for event in named)


def _ingest(kernel: Kernel, ledger: Ledger, answer: Confirmation) -> dict[str, str]:
    """Fetch and commit what A2I confirmed; returns the unsettled names (and why)."""
    loops = [loop for loop in answer.loops.values() if not _in_ledger(ledger, loop)]
    sorted_loops = rules.triage(loops, ledger, set())
    unsettled = {
        loop.name: f"A2I says the loop is {loop.status}" for loop in sorted_loops.unsettled
    }
    fetched = []
    if sorted_loops.fetch:
        if kernel.locator is not None:
            kernel.locator.described.update(answer.outputs)
        fetcher = kernel.fetcher()
        with kernel.pool("events") as pool:
            try:
                fetched = collect(pool.submit(fetcher, loop) for loop in sorted_loops.fetch)
            except (AwsError, LedgerError) as error:
                raise ingest_error("ingest of events failed", error) from error
    batch = Batch(fetched, list(sorted_loops.failed))
    if len(batch) > 0:
        kernel.commit(batch, final=None)
    unsettled.update({f.loop.name: f.error or "" for f in batch.fetched if f.error is not None})
    return unsettled


def _in_ledger(ledger: Ledger, loop: a2i.HumanLoop) -> bool:
    horizon = ledger.horizon
    return loop.name in ledger or (horizon is not None and loop.created < horizon)


def _result(kernel: Kernel, previous: IngestStatus, named: int) -> PollResult:
    tally = kernel.tally
    status = kernel.status(
        polled_at=previous.last_poll_time or kernel.ctx.clock(),
        in_progress=previous.in_progress_loops,
    ).model_copy(update={"last_poll_time": previous.last_poll_time})
    return PollResult(
        status=status,
        listed=named,
        new_samples=tally.new_samples,
        quarantined=tally.quarantined,
        dropped_boxes=tally.dropped_boxes,
        failed_loops=tally.failed_loops,
        fetch_errors=tally.fetch_errors,
        segments=tuple(tally.segments),
        quarantine=tuple(tally.notes),
        quarantined_by_reason=dict(tally.by_reason),
        errors=tuple(tally.errors),
        reviewers=kernel.reviewers(),
        recreated=kernel.store.recreated,
    )


def _log(
    kernel: Kernel,
    claims: Mapping[str, list[LoopEvent]],
    dropped: Mapping[str, int],
    unsettled: Mapping[str, str],
    result: PollResult,
) -> None:
    tally = kernel.tally
    if dropped:
        log.warning(
            "events for %s named %d loop(s) A2I does not confirm; dropped: %s",
            kernel.flow,
            sum(dropped.values()),
            ", ".join(f"{reason} {count}" for reason, count in sorted(dropped.items())),
        )
    log.info(
        "ingest of %d event(s) for %s: new samples %d, quarantined %d, failed %d, "
        "unsettled %d, pending %d",
        len(claims),
        kernel.flow,
        tally.new_samples,
        tally.quarantined,
        tally.failed_loops,
        len(unsettled),
        result.status.pending_samples,
    )
