"""What one reconcile pass reads and writes, in one place (Argo Rollouts' `rolloutContext`).

A `PolicyPass` holds the operator's config, the object as the handler saw it, the parsed
spec, the status being built, the policy's AWS session, its memo (what the operator
remembers of it between passes), the clock and `now`, and what the pass will report:
Events, annotations to clear, when something is next due. Each stage is a function of
the pass alone (`policy_pass/stages/`), so no parameter list repeats across them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from retraining_operator import metrics
from retraining_operator.api import (
    CurrentRun,
    HistoryEntry,
    IngestStatus,
    Outcome,
    RetrainingPolicySpec,
    RetrainingPolicyStatus,
)
from retraining_operator.aws.session import AwsSession
from retraining_operator.config import OperatorConfig
from retraining_operator.flows.ingest import FlowPathCache, IngestContext, LedgerMemory
from retraining_operator.flows.ledger_store import LedgerAccess
from retraining_operator.policy_pass.poll_demand import PollDemand
from retraining_operator.policy_pass.quota import QuotaBook
from retraining_operator.reconcile import status as st
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.tenancy import s3_readable
from retraining_operator.reconcile.training_status import TrainingObservation
from retraining_operator.runtime.event_hub import EventHub
from retraining_operator.tenancy_api import Tenant

log = logging.getLogger(__name__)

EVENT_MESSAGE_LIMIT = 1000
# Sustained AWS throttling is reported as an Event at most this often per policy.
THROTTLE_REPORT_SECONDS = 60.0

Checkpoint = Callable[[RetrainingPolicyStatus], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


_NEVER = datetime.min.replace(tzinfo=UTC)


def _ingest_order(ingest: IngestStatus) -> tuple[int, datetime]:
    """Which of two ingest blocks is newer: the ledger only moves forward (its revision),
    and of two blocks of one revision the later poll is newer."""
    revision = -1 if ingest.ledger_revision is None else ingest.ledger_revision
    return revision, ingest.last_poll_time or _NEVER


@dataclass(frozen=True)
class Clock:
    """The pass's one clock pair: wall time for status and AWS, monotonic for intervals."""

    wall: Callable[[], datetime] = _utc_now
    monotonic: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class PolicyView:
    """What the handler saw of the object."""

    ref: PolicyRef
    generation: int | None
    annotations: Mapping[str, str]
    spec: Mapping[str, Any]
    status: Mapping[str, Any]


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class PolicyMemo:
    """What the operator remembers of one policy between passes (memory only).

    The operator keeps it in kopf's per-object memo, which kopf forgets when the object is
    deleted; after a restart every field starts empty, which only makes the first pass
    look at things at once.
    """

    # When A2I was last polled. Status holds it too, but a pass may see a stale status (the
    # watch lags, or the last status write was refused): memory keeps one poll per interval.
    last_polled: datetime | None = None
    # On-time polls in a row since the last late one (PollsStarved clears after a few).
    on_time_polls: int = 0
    # The last poll stopped at its fetch cap: the next pass polls again at once.
    ingest_backlog: bool = False
    # The last ingest block any ingest made (poll, events settle, run claim): a pass after a
    # refused status write sees the old status and would otherwise lose it until the next
    # poll (a whole pollInterval or backstop later). One block, ordered by the ledger's
    # revision, so the two ingest paths never restore different blocks.
    last_ingest: IngestStatus | None = None
    # The flow definition's S3OutputPath, as A2I last described it.
    flow_paths: FlowPathCache = field(default_factory=FlowPathCache)
    # The ingest ledger as this process last read or wrote it (an idle poll lists only).
    ledger_memory: LedgerMemory = field(default_factory=LedgerMemory)
    # Reviewers (worker hashes) with metric series now.
    reviewer_series: frozenset[str] = frozenset()
    # When the in-flight job or rollout was last described (monotonic seconds).
    last_observed: float | None = None
    # When the serving endpoint was last compared with status.serving (monotonic seconds).
    last_drift_check: float | None = None
    # When sustained AWS throttling was last reported (monotonic seconds).
    throttle_reported: float | None = None
    # The last AWS error message logged (tenants see only the operation and code).
    aws_error_logged: str | None = None
    # The last unexpected error (type and text): logged with its traceback once, not per pass.
    internal_error: str | None = None
    # The policy's AWS session, and what it was made for (region, role; in Scoped mode also
    # the tenant's uid, ExternalId and expected bucket owner).
    session: AwsSession | None = None
    session_key: tuple[str | None, ...] | None = None
    # Event-driven ingest: the operator's consumer of SQS queues (None: no events here),
    # how to wake this policy's daemon from another thread, and whether events flow.
    event_hub: EventHub | None = None
    wake: Callable[[], object] | None = None
    events_flowing: bool = False
    # What rtp_phase (the phase reported as 1, set to 0 when the policy leaves it) and
    # rtp_condition (one series per current condition) last reported.
    status_series: metrics.StatusSeries = field(default_factory=metrics.StatusSeries)

    def drop_session(self) -> None:
        """Give the session's clients back (shared per identity; the last user frees them)."""
        if self.session is not None:
            self.session.close()
        self.session, self.session_key = None, None


@dataclass
class PassResult:
    status: RetrainingPolicyStatus
    events: list[Event] = field(default_factory=list)
    # (key, value) of annotations whose action is done: removed after the pass's status is
    # written, and only if they still have that value (kube.clear_annotations).
    clear_annotations: list[tuple[str, str]] = field(default_factory=list)
    spec_error: str | None = None
    # Seconds until something is due (a poll, an observation, maxWait): when to pass again.
    requeue_after: float | None = None
    due: list[float] = field(default_factory=list)

    def due_in(self, seconds: float) -> None:
        self.due.append(max(0.0, seconds))


@dataclass
class PolicyPass:
    """One pass over one policy: the state every stage reads and the few verbs it uses."""

    config: OperatorConfig
    view: PolicyView
    spec: RetrainingPolicySpec
    session: AwsSession
    memo: PolicyMemo
    clock: Clock
    now: datetime
    started_at: datetime  # when the operator started (first polls are spread after it)
    result: PassResult
    write_status: Checkpoint
    # The training job as the train stage just saw it finish (the gate judges it in the
    # same pass without describing it again).
    observed_job: TrainingObservation | None = None
    # Set by the seam: (reason, message) of the Degraded condition this pass ends with.
    degraded: tuple[str, str] | None = None
    # Set when a status write failed: the pass must stop without another write.
    write_failed: bool = False
    # When set, the next pass comes no sooner than this (backoff after an internal error).
    not_before: float | None = None
    # Scoped mode: the RetrainingTenant this policy acts for (its allow-lists apply to what
    # the pass finds at run time too, e.g. a flow definition's output path).
    tenant: Tenant | None = None
    # The operator's tenant quotas (Scoped mode; a run reserves its share when it starts).
    quota: QuotaBook | None = None
    # What all policies' polls ask of the AWS call budget (poll_demand.py).
    demand: PollDemand | None = None

    # -- what the pass works on ---------------------------------------------------------

    @property
    def ref(self) -> PolicyRef:
        return self.view.ref

    @property
    def ledger_owner(self) -> dict[str, str]:
        """Who the ingest ledger belongs to: this policy, reading this flow definition."""
        return {
            "policyUid": self.view.ref.uid,
            "flowDefinitionArn": self.spec.human_loops.flow_definition_arn,
        }

    @property
    def ledger_access(self) -> LedgerAccess:
        """How this pass may read and write the policy's ingest ledger (sealed, owned)."""
        return LedgerAccess.of_policy(
            self.config.keyring,
            self.ledger_owner,
            self.status.ingest,
            self.spec.dataset.output_s3_uri,
        )

    def ingest_context(self) -> IngestContext:
        tenant = self.tenant
        return IngestContext(
            session=self.session,
            spec=self.spec,
            access=self.ledger_access,
            clock=self.clock.wall,
            may_read=None if tenant is None else lambda uri: s3_readable(tenant, uri),
            flow_paths=self.memo.flow_paths,
            ledger_memory=self.memo.ledger_memory,
            concurrency=self.config.fetch_concurrency,
        )

    @property
    def status(self) -> RetrainingPolicyStatus:
        return self.result.status

    @property
    def run(self) -> CurrentRun | None:
        return self.result.status.current_run

    @property
    def is_rollback_run(self) -> bool:
        """A deploy-only run started by the rollback-to annotation (ids `rb...`)."""
        return self.run is not None and self.run.id.startswith("rb")

    @property
    def labels(self) -> tuple[str, str]:
        """The policy's metric labels (namespace, name)."""
        return self.ref.namespace, self.ref.name

    # -- verbs ------------------------------------------------------------------------

    def event(self, type: str, reason: str, message: str) -> None:
        log.log(
            logging.WARNING if type == "Warning" else logging.INFO,
            "%s/%s %s: %s",
            self.ref.namespace,
            self.ref.name,
            reason,
            message,
        )
        self.result.events.append(Event(type, reason, message[:EVENT_MESSAGE_LIMIT]))

    def checkpoint(self) -> None:
        """Make the status durable now (before a side effect that depends on it)."""
        try:
            self.write_status(self.status)
        except Exception:
            self.write_failed = True
            raise

    def due_in(self, seconds: float) -> None:
        self.result.due_in(seconds)

    def done_with_annotation(self, key: str, value: str | None = None) -> None:
        """The instruction in annotation `key` is carried out (or refused, with an Event):
        clear it after this pass's status is durable, if it still says what it said (`value`,
        by default what this pass read)."""
        seen = value if value is not None else self.view.annotations.get(key)
        if seen is not None and (key, seen) not in self.result.clear_annotations:
            self.result.clear_annotations.append((key, seen))

    def remember_ingest(self, ingest: IngestStatus) -> None:
        """The ingest block an ingest (or a run's claim) produced: into status and memo."""
        self.status.ingest = ingest
        self.memo.last_ingest = ingest

    def restore_ingest(self) -> None:
        """The last ingest block this process made, when the status this pass started from
        predates it (its write was refused, or the watch lags)."""
        remembered = self.memo.last_ingest
        if remembered is not None and _ingest_order(remembered) > _ingest_order(self.status.ingest):
            self.status.ingest = remembered

    def update_run(self, **fields: Any) -> CurrentRun:
        """The current run with `fields` changed (it must exist)."""
        run = self.run
        if run is None:  # a stage only updates the run it works on
            raise RuntimeError("update_run without a current run")
        updated = run.model_copy(update=fields)
        self.status.current_run = updated
        return updated

    def end_run(self, entry: HistoryEntry) -> None:
        """The run is over: into history, with its metrics; the next run starts fresh."""
        status = self.status
        run = status.current_run
        if (
            run is not None
            and run.manifest_s3_uri
            and (run.validation_manifest_s3_uri == run.manifest_s3_uri)
        ):
            # allowTrainAsValidation: the gate scored the model on its own training data.
            entry = entry.model_copy(update={"train_as_validation": True})
        if run is not None and entry.instance_hours is None:
            # What the run counts against its tenant's quota, for the rest of the window.
            update: dict[str, Any] = {"instance_hours": run.instance_hours}
            if entry.started_at is None:
                update["started_at"] = run.started_at
            entry = entry.model_copy(update=update)
        if run is not None and entry.comparison is None and run.comparison is not None:
            # gate.evaluation: what the run was judged on stays with it (docs/gate.md).
            entry = entry.model_copy(update={"comparison": run.comparison})
        if run is not None and entry.shadow is None and run.shadow is not None:
            entry = entry.model_copy(update={"shadow": run.shadow})  # deployment.shadow
        status.history = st.push_history(status.history, entry)
        status.current_run = None
        metrics.RUNS.labels(*self.labels, entry.outcome.value).inc()
        if entry.outcome in (Outcome.DEPLOYED, Outcome.TRAINED):
            metrics.LAST_SUCCESS.labels(*self.labels).set(self.now.timestamp())
        self.memo.last_observed = None

    def observe_due(self) -> bool:
        """Whether the in-flight job/rollout may be described again (at most every
        `observe_seconds`); records the look when it may."""
        now = self.clock.monotonic()
        last = self.memo.last_observed
        if last is not None and now - last < self.config.observe_seconds:
            return False
        self.memo.last_observed = now
        return True

    def set_phase(self) -> None:
        self.status.phase = st.derive_phase(
            suspended=self.spec.suspend,
            spec_error=False,
            current_run=self.status.current_run,
            serving=self.status.serving is not None,
        )
        self.status.observed_generation = self.view.generation

    def degrade(self, reason: str, message: str) -> None:
        """End this pass Degraded; the Event is posted only when the condition changes,
        so a problem that persists is announced once, not on every pass."""
        self.degraded = (reason, message)
        if st.degraded_changed(self.status.conditions, reason, message):
            self.event("Warning", reason, message)

    def finish(self) -> None:
        """Phase, conditions and observedGeneration from what the pass ended with."""
        status = self.status
        before = status.phase
        self.set_phase()
        status.conditions = st.refresh_conditions(
            status,
            observed=st.Observation(self.now, self.view.generation),
            degraded=self.degraded,
        )
        if before is not None and status.phase is not None and before is not status.phase:
            self.event("Normal", "PhaseChanged", f"{before.value} -> {status.phase.value}")
        self.memo.status_series = metrics.report_status(
            *self.labels, status, self.memo.status_series
        )

    def report_throttling(self) -> None:
        """A Warning Event when AWS throttled this policy's calls, at most one per
        THROTTLE_REPORT_SECONDS (the count accumulates in between). botocore retries
        throttled calls with backoff, so this is news about speed, not about failure."""
        last = self.memo.throttle_reported
        now = self.clock.monotonic()
        if last is not None and now - last < THROTTLE_REPORT_SECONDS:
            return
        count = self.session.take_throttled()
        if not count:
            return
        self.memo.throttle_reported = now
        budget = self.config.aws_calls_per_second
        self.event(
            "Warning",
            "AwsThrottled",
            f"AWS throttled {count} request(s) of this policy"
            + (" since the last report" if last is not None else "")
            + "; retrying with exponential backoff"
            + (f" within the operator's budget of {budget:g} calls/s" if budget else ""),
        )
