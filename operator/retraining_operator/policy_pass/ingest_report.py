"""What an ingest tells the world, the same for the listing poll and the events settle:
metrics (reviewer series bounded to the most recently active), and Events."""

from __future__ import annotations

from retraining_operator import metrics
from retraining_operator.flows.ingest import PollResult
from retraining_operator.policy_pass.context import PolicyPass


def report_ingest(p: PolicyPass, polled: PollResult, source: str) -> None:
    """Metrics and Events of one ingest; `source` names where the loops came from."""
    metrics.LOOPS_INGESTED.labels(*p.labels).inc(polled.new_samples)
    metrics.PENDING_SAMPLES.labels(*p.labels).set(polled.status.pending_samples)
    for reason, count in polled.quarantined_by_reason.items():
        metrics.LOOPS_QUARANTINED.labels(*p.labels, reason).inc(count)
    if polled.reviewers or p.memo.reviewer_series:
        p.memo.reviewer_series = metrics.set_reviewers(
            *p.labels, polled.reviewers, p.memo.reviewer_series
        )
    if polled.recreated:
        p.event(
            "Warning",
            "LedgerRecreated",
            f"the ingest ledger {polled.status.ledger_s3_uri} was missing although this policy "
            "had written it: started over (the loops A2I still lists are ingested again)",
        )
    if polled.new_samples:
        p.event(
            "Normal",
            "SamplesIngested",
            f"{polled.new_samples} new samples from {source} "
            f"({polled.status.pending_samples} pending)",
        )
    message = polled.event_message()
    if message:
        p.event("Warning", "SamplesQuarantined", message)
