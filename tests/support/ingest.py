"""The ingest entry points with the keyword arguments tests use, built into the operator's
`IngestContext` / `LedgerAccess`: every ledger these tests write is sealed with the process's
ledger key (the one `OperatorConfig().keyring` gives a Controller in the same process)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from retraining_operator.api import IngestStatus, RetrainingPolicySpec
from retraining_operator.aws.session import AwsSession
from retraining_operator.config import OperatorConfig
from retraining_operator.flows import dataset, ingest
from retraining_operator.flows.ledger_store import LedgerAccess
from retraining_operator.reconcile.events import LoopEvent
from retraining_operator.reconcile.provenance import Keyring

KEYRING: Keyring = OperatorConfig().keyring


def access(
    owner: dict[str, str] | None = None,
    known: IngestStatus | None = None,
    output_s3_uri: str | None = None,
) -> LedgerAccess:
    if known is None or output_s3_uri is None:
        return LedgerAccess(KEYRING, owner)
    return LedgerAccess.of_policy(KEYRING, owner, known, output_s3_uri)


def context(
    session: AwsSession,
    spec: RetrainingPolicySpec,
    *,
    clock: Callable[[], datetime] | None = None,
    owner: dict[str, str] | None = None,
    known: IngestStatus | None = None,
    **kw: Any,
) -> ingest.IngestContext:
    return ingest.IngestContext(
        session=session,
        spec=spec,
        access=access(owner, known, spec.dataset.output_s3_uri),
        clock=clock or (lambda: datetime.now(UTC)),
        **kw,
    )


def poll(
    session: AwsSession,
    spec: RetrainingPolicySpec,
    *,
    batch_size: int = ingest.DEFAULT_BATCH_SIZE,
    max_fetches: int | None = None,
    **kw: Any,
) -> ingest.PollResult:
    return ingest.poll(context(session, spec, **kw), batch_size=batch_size, max_fetches=max_fetches)


def settle_events(
    session: AwsSession,
    spec: RetrainingPolicySpec,
    events: Iterable[LoopEvent],
    *,
    previous: IngestStatus,
    **kw: Any,
) -> ingest.SettleResult:
    return ingest.settle_events(context(session, spec, **kw), events, previous=previous)


def assemble_run_dataset(
    session: AwsSession,
    spec: RetrainingPolicySpec,
    run_id: str,
    *,
    owner: dict[str, str] | None = None,
    **kw: Any,
) -> dataset.AssembledDataset:
    return dataset.assemble_run_dataset(session, spec, run_id, access=access(owner), **kw)
