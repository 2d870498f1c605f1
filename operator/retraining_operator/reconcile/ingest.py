"""Pure ingest decisions: what to list, what to fetch, how far the watermark moves, when to train.

The watermark rule (docs/dataset.md has the proof sketch):

- Each poll lists loops with `CreationTimeAfter = max(watermark - lookback, horizon)`
  (everything on the first poll).
- After the poll the watermark becomes `min(listing start time, creation time of every
  listed loop that is not settled)`, and never moves back. A loop is *settled* when the
  ledger has it (Completed -> converted or quarantined; Failed/Stopped -> counted).
  InProgress/Stopping loops, and Completed loops whose output could not be read this
  time, are not settled: they hold the watermark at their creation time, so they stay
  inside every later listing until they settle, however long the humans take.
- `lookback` therefore only has to cover what a listing cannot see yet: loops created
  shortly before a listing but not yet visible in it, and clock skew between the operator
  and A2I. Its 24h default is generous; it is not a bound on how long a review may take.
- The horizon is the start of the last committed listing. Ledger entries older than the
  horizon are pruned (no later listing reaches them), which keeps the ledger small.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from retraining_operator.api import (
    DatasetSpec,
    IngestStatus,
    ReviewerAgreement,
    ReviewerSummary,
    ValidationWait,
    parse_duration,
)
from retraining_operator.reconcile.ledger import Ledger

COMPLETED = "Completed"
FAILED_STATES = frozenset({"Failed", "Stopped"})
# InProgress, Stopping and anything unknown are unsettled: revisit them.

# An idle poll rewrites the ledger only when the watermark moved at least this much
# (bounded by lookback / 4), so a quiet policy costs two calls per poll, not three. A stored
# watermark that lags only widens the next listing by the lag (already settled loops, which
# a quiet flow has few of); with event-driven ingest (an hourly backstop listing) an hourly
# write would be a fifth of the idle policy's AWS calls.
WATERMARK_PERSIST_STEP = timedelta(hours=6)


class LoopLike(Protocol):
    """What ingest needs from a human loop summary (aws.a2i.HumanLoop has it)."""

    @property
    def name(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def created(self) -> datetime: ...


L = TypeVar("L", bound=LoopLike)


@dataclass
class Triage(Generic[L]):
    """One listing page sorted into what to do."""

    fetch: list[L] = field(default_factory=list)  # Completed, not yet in the ledger
    failed: list[L] = field(default_factory=list)  # Failed/Stopped, not yet in the ledger
    unsettled: list[L] = field(default_factory=list)  # InProgress/Stopping/unknown
    known: int = 0  # already in the ledger (consumed, quarantined or counted before)
    duplicates: int = 0  # listed twice in this poll (pagination overlap)


def triage(loops: Iterable[L], ledger: Container[str], seen: set[str]) -> Triage[L]:
    """Sort loops by what to do; `seen` (updated) dedupes names across pages of one poll."""
    result: Triage[L] = Triage()
    for loop in loops:
        if loop.name in seen:
            result.duplicates += 1
            continue
        seen.add(loop.name)
        if loop.name in ledger:
            result.known += 1
        elif loop.status == COMPLETED:
            result.fetch.append(loop)
        elif loop.status in FAILED_STATES:
            result.failed.append(loop)
        else:
            result.unsettled.append(loop)
    return result


def listing_start(
    watermark: datetime | None, horizon: datetime | None, lookback: timedelta
) -> datetime | None:
    """`CreationTimeAfter` for the next listing; None lists everything (first poll)."""
    if watermark is None:
        return None
    start = watermark - lookback
    if horizon is not None and horizon > start:
        start = horizon
    return start


def next_watermark(
    previous: datetime | None, listed_at: datetime, unsettled_created: Iterable[datetime]
) -> datetime:
    """The watermark after a poll: not past any unsettled loop, never backwards."""
    candidate = min([listed_at, *unsettled_created])
    if previous is not None and previous > candidate:
        return previous
    return candidate


def should_persist_watermark(stored: datetime | None, new: datetime, lookback: timedelta) -> bool:
    """Whether an otherwise idle poll should write the ledger just to move the watermark."""
    if stored is None:
        return True
    step = min(WATERMARK_PERSIST_STEP, lookback / 4)
    return new - stored >= step


def ingest_status(
    ledger: Ledger,
    *,
    polled_at: datetime,
    in_progress: int,
    ledger_uri: str,
) -> IngestStatus:
    """The small status block: counters and pointers only, never loop names."""
    return IngestStatus(
        reviewers=reviewer_summary(ledger.reviewers),
        last_poll_time=polled_at,
        watermark=ledger.watermark,
        pending_samples=ledger.pending_samples,
        oldest_pending_time=ledger.oldest_pending,
        ingested_loops=ledger.totals.ingested_loops,
        quarantined_samples=ledger.totals.quarantined,
        in_progress_loops=in_progress,
        failed_loops=ledger.totals.failed_loops,
        ledger_s3_uri=ledger_uri,
        ledger_revision=ledger.revision,
    )


# Reviewers named in status (the least agreeing); the metric carries them all.
LOWEST_REVIEWERS = 5


def reviewer_summary(reviewers: Mapping[str, tuple[int, float]]) -> ReviewerSummary | None:
    """The bounded status view of reviewer agreement (None until a Consensus image)."""
    if not reviewers:
        return None
    images = sum(count for count, _ in reviewers.values())
    total = sum(score for _, score in reviewers.values())
    ranked = sorted(
        (
            ReviewerAgreement(worker=worker, images=count, agreement=round(score / count, 4))
            for worker, (count, score) in reviewers.items()
            if count > 0
        ),
        key=lambda reviewer: (reviewer.agreement, -reviewer.images, reviewer.worker),
    )
    return ReviewerSummary(
        workers=len(reviewers),
        mean_agreement=round(total / images, 4) if images else None,
        lowest=ranked[:LOWEST_REVIEWERS],
    )


class TriggerReason(StrEnum):
    MIN_NEW_SAMPLES = "MinNewSamples"
    MAX_WAIT = "MaxWait"
    RETRAIN_NOW = "RetrainNow"
    NOTHING_PENDING = "NothingPending"
    WAITING = "Waiting"
    WAITING_FOR_VALIDATION_DATA = "WaitingForValidationData"


@dataclass(frozen=True)
class TrainDecision:
    train: bool
    reason: TriggerReason
    message: str
    # When nothing changes, the decision flips to MaxWait after this long (None: never).
    due_in: timedelta | None = None


def should_train(
    pending: int,
    oldest_pending_time: datetime | None,
    now: datetime,
    spec: DatasetSpec,
    *,
    force: bool = False,
    validation_wait: ValidationWait | None = None,
) -> TrainDecision:
    """Train when `minNewSamples` are pending, or the oldest pending sample waited `maxWait`.

    `force` is the retrain-now annotation: train with whatever is pending (at least one).
    The age of a sample is counted from when a poll added it to the pending set.
    `validation_wait` is the last run attempt's finding that the pending samples' holdout
    is too small: nothing starts (not even forced) until the pending count or the
    validation settings change.
    """
    if pending <= 0:
        return TrainDecision(False, TriggerReason.NOTHING_PENDING, "no new samples are pending")
    validation = spec.validation
    if (
        validation_wait is not None
        and validation_wait.pending_samples == pending
        and validation_wait.min_samples == validation.min_samples
        and validation.manifest_s3_uri is None
        and not validation.allow_train_as_validation
    ):
        return TrainDecision(
            False,
            TriggerReason.WAITING_FOR_VALIDATION_DATA,
            f"the validation holdout of the {pending} pending samples has "
            f"{validation_wait.holdout_images} distinct image(s), fewer than "
            f"dataset.validation.minSamples {validation_wait.min_samples}",
        )
    if force:
        return TrainDecision(
            True, TriggerReason.RETRAIN_NOW, f"retrain requested with {pending} pending samples"
        )
    if pending >= spec.min_new_samples:
        return TrainDecision(
            True,
            TriggerReason.MIN_NEW_SAMPLES,
            f"{pending} new samples pending (minNewSamples {spec.min_new_samples})",
        )
    max_wait = parse_duration(spec.max_wait)
    if oldest_pending_time is None:
        return TrainDecision(
            False,
            TriggerReason.WAITING,
            f"{pending} of {spec.min_new_samples} samples pending",
        )
    age = now - oldest_pending_time
    if age >= max_wait:
        return TrainDecision(
            True,
            TriggerReason.MAX_WAIT,
            f"the oldest of {pending} pending samples waited {_human(age)} "
            f"(maxWait {spec.max_wait})",
        )
    return TrainDecision(
        False,
        TriggerReason.WAITING,
        f"{pending} of {spec.min_new_samples} samples pending; maxWait {spec.max_wait} "
        f"reached in {_human(max_wait - age)}",
        due_in=max_wait - age,
    )


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"
