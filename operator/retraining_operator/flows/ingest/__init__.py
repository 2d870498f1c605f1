"""Ingest: A2I human loops -> pending manifest lines, exactly once, from verified input only.

kernel.py    the one way a loop enters the ledger (ledger seal and owner, A2I's word,
             where outputs may be read, the commit)
listing.py   the listing poll (ListHumanLoops since the watermark)
settle.py    the events settle (SQS status-change events, confirmed by A2I first)
confirm.py   how events are confirmed: listing pages, DescribeHumanLoop for a few
fetch.py     reading, converting and quarantining one output
guard.py     the flow definition's S3OutputPath and the tenant's read prefixes
memory.py    the ledger as last read or written: an empty listing needs no ledger read
results.py   what an ingest reports and how it fails
"""

from retraining_operator.flows.ingest.fetch import ByteBudget
from retraining_operator.flows.ingest.guard import FlowPathCache
from retraining_operator.flows.ingest.kernel import (
    DEFAULT_BYTES_IN_FLIGHT,
    DEFAULT_CONCURRENCY,
    PENDING_PREFIX,
    QUARANTINE_PREFIX,
    IngestContext,
    segment_uris,
)
from retraining_operator.flows.ingest.listing import DEFAULT_BATCH_SIZE, poll
from retraining_operator.flows.ingest.memory import LedgerMemory, LedgerView
from retraining_operator.flows.ingest.results import (
    MAX_NOTES,
    IngestError,
    IngestFailed,
    IngestRetry,
    PollResult,
    QuarantineNote,
    SettleResult,
)
from retraining_operator.flows.ingest.settle import settle_events

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_BYTES_IN_FLIGHT",
    "DEFAULT_CONCURRENCY",
    "MAX_NOTES",
    "PENDING_PREFIX",
    "QUARANTINE_PREFIX",
    "ByteBudget",
    "FlowPathCache",
    "IngestContext",
    "IngestError",
    "IngestFailed",
    "IngestRetry",
    "LedgerMemory",
    "LedgerView",
    "PollResult",
    "QuarantineNote",
    "SettleResult",
    "poll",
    "segment_uris",
    "settle_events",
]
