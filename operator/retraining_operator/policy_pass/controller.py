"""One reconcile pass over one RetrainingPolicy: the table of contents.

The pass admits the spec, then runs the stages in order (`policy_pass/stages/`), each a
function of the pass that returns early when the pass is not its business. Every side
effect keyed by a run id happens only after that run id is durable in the resource's
status (`PolicyPass.checkpoint`), and every side effect is idempotent for its run id: a
crash anywhere, followed by a new pass, resumes instead of repeating.

Failures meet one seam: `RetryLater` stops the pass until the next one, `NeedsAttention`
ends it Degraded (an Event once per distinct problem), and anything else is a bug that
ends it Degraded `InternalError`, logged with its traceback once, retried after a tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pydantic

from retraining_operator.api import (
    ConditionType,
    RetrainingPolicySpec,
    RetrainingPolicyStatus,
)
from retraining_operator.aws.errors import AwsError, aws_detail
from retraining_operator.aws.session import AwsSession
from retraining_operator.config import OperatorConfig
from retraining_operator.errors import NeedsAttention, RetryLater
from retraining_operator.flows import training
from retraining_operator.policy_pass.context import (
    Checkpoint,
    Clock,
    Event,
    PassResult,
    PolicyMemo,
    PolicyPass,
    PolicyView,
)
from retraining_operator.policy_pass.quota import PassUsage, QuotaBook, UsageSource
from retraining_operator.policy_pass.sessions import (
    SessionFactory,
    TenantSessionFactory,
    policy_session,
    tenant_session,
)
from retraining_operator.policy_pass.stages import (
    approve,
    deploy,
    drift,
    evaluate,
    events,
    poll,
    prepare,
    rollback,
    start,
    suspend,
    train,
)
from retraining_operator.policy_pass.tenancy import StaticTenants, TenantDirectory
from retraining_operator.reconcile import schedule, tenancy
from retraining_operator.reconcile import status as st
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.training_status import JobRef
from retraining_operator.tenancy_api import Tenant

__all__ = ["Controller", "Event", "PassResult", "PolicyMemo", "PolicyView"]

log = logging.getLogger(__name__)

# In order; a run may go through several stages in one pass (Preparing -> Training).
STAGES = (events, poll, suspend, start, prepare, train, evaluate, approve, rollback, deploy, drift)


class Controller:
    """Reconciles policies; one instance per operator process (thread-safe per policy)."""

    def __init__(
        self,
        config: OperatorConfig,
        sessions: SessionFactory,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        started_at: datetime | None = None,
        tenants: TenantDirectory | None = None,
        tenant_sessions: TenantSessionFactory = tenant_session,
        usage: UsageSource | None = None,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.tenants = tenants if tenants is not None else StaticTenants()
        # Tenant quotas: the policies' runs from kopf's index in the operator, else from what
        # this controller's own passes saw.
        self._pass_usage = PassUsage() if usage is None else None
        self.quota = QuotaBook(
            usage or self._pass_usage or PassUsage(), self.tenants.namespace_labels
        )
        self.tenant_sessions = tenant_sessions
        self.clock = Clock(wall=clock, monotonic=monotonic)
        self.started_at = started_at or clock()
        # Memos of callers that keep none (tests, benches); the operator passes kopf's.
        self._memos: dict[str, PolicyMemo] = {}

    def reconcile(
        self, view: PolicyView, checkpoint: Checkpoint, memo: PolicyMemo | None = None
    ) -> PassResult:
        memo = memo if memo is not None else self._memos.setdefault(view.ref.uid, PolicyMemo())
        now = self.clock.wall()
        result = PassResult(status=RetrainingPolicyStatus.model_validate(dict(view.status)))
        admitted = self._admit(view, result, now)
        if admitted is None:
            if memo.event_hub is not None:
                memo.event_hub.unsubscribe(view.ref.uid)  # its messages go back to the queue
            memo.events_flowing = False
            checkpoint(result.status)
            return result
        spec, tenant = admitted
        p = PolicyPass(
            config=self.config, view=view, spec=spec,
            session=self._session(view.ref, spec, memo, tenant), memo=memo, clock=self.clock,
            now=now, started_at=self.started_at, result=result, write_status=checkpoint,
            tenant=tenant, quota=self.quota,
        )  # fmt: skip
        p.restore_ingest()
        try:
            for stage in STAGES:
                stage.step(p)
            memo.internal_error = None
        except RetryLater as error:
            p.event("Warning", error.reason, _public(p, error))
            p.due_in(error.after if error.after is not None else self.config.tick_seconds)
        except NeedsAttention as error:
            p.degrade(error.reason, _public(p, error))
        except Exception as error:
            if p.write_failed:
                raise  # the status cannot be written: nothing more this pass
            self._internal_error(p, error)
        p.report_throttling()
        p.finish()
        checkpoint(result.status)
        if self._pass_usage is not None:
            self._pass_usage.record(view.ref.namespace, view.ref.uid, result.status)
        if result.status.current_run is not None:
            result.due_in(self.config.observe_seconds)
        if p.degraded is not None:
            result.due_in(self.config.tick_seconds)  # a problem is looked at every tick
        longest = schedule.longest_sleep(spec, self.config.tick_seconds)
        result.requeue_after = max(min([*result.due, longest]), p.not_before or 0.0)
        return result

    def finalize(self, view: PolicyView, memo: PolicyMemo | None = None) -> list[Event]:
        """Deletion: stop the in-flight training job (idempotent); leave endpoints alone."""
        self._memos.pop(view.ref.uid, None)
        run = RetrainingPolicyStatus.model_validate(dict(view.status)).current_run
        job = JobRef.from_run(run) if run is not None else None
        if job is None:
            return []
        try:
            spec = RetrainingPolicySpec.model_validate(dict(view.spec))
        except pydantic.ValidationError:
            return [Event("Warning", "CleanupSkipped", f"cannot stop {job.name}: invalid spec")]
        verdict = self._tenancy(view, spec)
        if isinstance(verdict, tenancy.Refusal):
            return [Event("Warning", "CleanupSkipped", f"cannot stop {job.name}: {verdict.reason}")]
        session = self._session(view.ref, spec, memo or PolicyMemo(), verdict.tenant)
        if training.stop_training(session, job):
            return [Event("Normal", "TrainingStopped", f"stopped {job.kind} {job.name}")]
        return []

    def _session(
        self, ref: PolicyRef, spec: RetrainingPolicySpec, memo: PolicyMemo, tenant: Tenant | None
    ) -> AwsSession:
        return policy_session(
            ref, spec, memo, tenant, sessions=self.sessions, tenant_sessions=self.tenant_sessions
        )

    def _tenancy(
        self, view: PolicyView, spec: RetrainingPolicySpec
    ) -> tenancy.Admission | tenancy.Refusal:
        namespace = view.ref.namespace
        return tenancy.admit(
            spec,
            mode=self.config.tenancy_mode,
            namespace=namespace,
            tenants=self.tenants.tenants(),
            namespace_labels=lambda: self.tenants.namespace_labels(namespace),
            allowed_role_patterns=self.config.allowed_role_patterns,
        )

    def _admit(
        self, view: PolicyView, result: PassResult, now: datetime
    ) -> tuple[RetrainingPolicySpec, Tenant | None] | None:
        """The spec and its tenant (Scoped mode), or None when it cannot work or may not act
        (Degraded, Failed, an Event, and no AWS call)."""
        try:
            spec = RetrainingPolicySpec.model_validate(dict(view.spec))
        except pydantic.ValidationError as error:
            result.spec_error = _spec_problem(error)
            self._refuse(view, result, now, "InvalidSpec", result.spec_error)
            return None
        verdict = self._tenancy(view, spec)
        if isinstance(verdict, tenancy.Refusal):
            self._refuse(view, result, now, verdict.reason, verdict.message)
            return None
        return spec, verdict.tenant

    @staticmethod
    def _refuse(
        view: PolicyView, result: PassResult, now: datetime, reason: str, message: str
    ) -> None:
        status = result.status
        before = st.get_condition(status.conditions, ConditionType.DEGRADED)
        status.phase = st.derive_phase(
            suspended=False, spec_error=True, current_run=None, serving=False
        )
        status.observed_generation = view.generation
        status.conditions = st.refresh_conditions(
            status, observed=st.Observation(now, view.generation), degraded=(reason, message)
        )
        if before is None or before.reason != reason or before.message != message:
            log.warning("%s/%s %s: %s", view.ref.namespace, view.ref.name, reason, message)
            result.events.append(Event("Warning", reason, message[:1000]))

    def _internal_error(self, p: PolicyPass, error: Exception) -> None:
        """A bug: Degraded InternalError, the traceback logged once per distinct error,
        and no pass sooner than a tick (never a hot loop)."""
        signature = f"{type(error).__name__}: {error}"[:500]
        if p.memo.internal_error != signature:
            log.exception("%s/%s: unexpected error in a reconcile pass", *p.labels)
            p.memo.internal_error = signature
        p.degrade(
            "InternalError",
            f"the operator failed unexpectedly ({signature}); it retries every "
            f"{self.config.tick_seconds:g}s. Please report this with the operator's log.",
        )
        p.not_before = self.config.tick_seconds


def _public(p: PolicyPass, error: RetryLater | NeedsAttention) -> str:
    """What tenants read of an error: AWS's own message (which can name the operator's role,
    its account or other tenants' resources) is logged here, once per distinct message, and
    replaced by the operation and AWS error code."""
    detail = aws_detail(error)
    if detail is not None and p.memo.aws_error_logged != detail:
        p.memo.aws_error_logged = detail
        log.warning("%s/%s: %s: AWS said: %s", *p.labels, error.reason, detail)
    if isinstance(error, AwsError):
        return f"{error.public} (AWS's message is in the operator log)"
    return error.message


def _spec_problem(error: pydantic.ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(part) for part in item["loc"]) or "spec"
        parts.append(f"spec.{where}: {item['msg']}")
    return "; ".join(parts)
