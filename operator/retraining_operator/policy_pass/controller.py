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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pydantic

from retraining_operator import metrics
from retraining_operator.api import (
    RetrainingPolicySpec,
    RetrainingPolicyStatus,
)
from retraining_operator.aws.errors import AwsError, aws_detail
from retraining_operator.aws.session import AwsSession
from retraining_operator.config import OperatorConfig
from retraining_operator.errors import NeedsAttention, RetryLater
from retraining_operator.policy_pass import finalize
from retraining_operator.policy_pass.context import (
    Checkpoint,
    Clock,
    Event,
    PassResult,
    PolicyMemo,
    PolicyPass,
    PolicyView,
)
from retraining_operator.policy_pass.finalize import Finalized
from retraining_operator.policy_pass.poll_demand import PollDemand
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
    shadow,
    start,
    suspend,
    train,
)
from retraining_operator.policy_pass.tenancy import StaticTenants, TenantDirectory
from retraining_operator.reconcile import schedule, tenancy
from retraining_operator.reconcile import status as st
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.tenancy import Refusal
from retraining_operator.tenancy_api import Tenant

__all__ = ["Controller", "Event", "PassResult", "PolicyMemo", "PolicyView"]

log = logging.getLogger(__name__)

# In order; a run may go through several stages in one pass (Preparing -> Training).
STAGES = (
    events,
    poll,
    suspend,
    start,
    prepare,
    train,
    evaluate,
    approve,
    shadow,
    rollback,
    deploy,
    drift,
)


@dataclass(frozen=True)
class Tenancy:
    """What Scoped mode adds to a controller: the RetrainingTenants, how a session as a
    tenant's role is made, and the runs that count against tenant quotas (kopf's index in
    the operator; None: what this controller's own passes saw)."""

    tenants: TenantDirectory = field(default_factory=StaticTenants)
    sessions: TenantSessionFactory = tenant_session
    usage: UsageSource | None = None


SYSTEM_CLOCK = Clock()


class Controller:
    """Reconciles policies; one instance per operator process (thread-safe per policy)."""

    def __init__(
        self,
        config: OperatorConfig,
        sessions: SessionFactory,
        *,
        clock: Clock | Callable[[], datetime] = SYSTEM_CLOCK,
        started_at: datetime | None = None,
        tenancy: Tenancy | None = None,
    ) -> None:
        self.config = config
        self.sessions = sessions
        tenancy = tenancy or Tenancy()
        self.tenants = tenancy.tenants
        self._pass_usage = PassUsage() if tenancy.usage is None else None
        self.quota = QuotaBook(
            tenancy.usage or self._pass_usage or PassUsage(), self.tenants.namespace_labels
        )
        self.tenant_sessions = tenancy.sessions
        self.poll_demand = PollDemand(config.aws_calls_per_second)
        self.clock = clock if isinstance(clock, Clock) else Clock(wall=clock)
        self.started_at = started_at or self.clock.wall()
        # Memos of callers that keep none (tests, benches); the operator passes kopf's.
        self._memos: dict[str, PolicyMemo] = {}

    def reconcile(
        self, view: PolicyView, checkpoint: Checkpoint, memo: PolicyMemo | None = None
    ) -> PassResult:
        memo = memo if memo is not None else self._memos.setdefault(view.ref.uid, PolicyMemo())
        now = self.clock.wall()
        result = PassResult(status=RetrainingPolicyStatus.model_validate(dict(view.status)))
        admitted = self._admit(view, result)
        if isinstance(admitted, Refusal):
            self._refuse(view, result, memo, admitted)
            checkpoint(result.status)
            return result
        spec, tenant = admitted
        p = PolicyPass(
            config=self.config, view=view, spec=spec,
            session=self._session(view.ref, spec, memo, tenant), memo=memo, clock=self.clock,
            now=now, started_at=self.started_at, result=result, write_status=checkpoint,
            tenant=tenant, quota=self.quota, demand=self.poll_demand,
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

    def finalize(self, view: PolicyView, memo: PolicyMemo | None = None) -> Finalized:
        """Deletion: stop the run's job, undo a variant shift in flight, release the
        endpoint (`policy_pass/finalize.py`); endpoints and models stay."""
        self._memos.pop(view.ref.uid, None)
        self.poll_demand.forget(view.ref.uid)
        status = RetrainingPolicyStatus.model_validate(dict(view.status))
        spec = finalize.cleanup_spec(view.spec)
        if spec is None:
            problem = "spec.aws or spec.deployment is invalid: fix it to let the clean-up act"
            return self._cleanup_skipped(status, problem)
        verdict = self._cleanup_tenancy(view, spec)
        if isinstance(verdict, tenancy.Refusal):
            return self._cleanup_skipped(status, verdict.message)
        session = self._session(view.ref, spec, memo or PolicyMemo(), verdict.tenant)
        return finalize.finish_or_undo(session, view.ref, spec, status, self.clock.wall())

    @staticmethod
    def _cleanup_skipped(status: RetrainingPolicyStatus, problem: str) -> Finalized:
        if status.current_run is None:
            return Finalized()  # no run: nothing in flight to stop or undo
        message = f"cannot stop or undo run {status.current_run.id}: {problem}"
        return Finalized(events=[Event("Warning", "CleanupSkipped", message)])

    def _cleanup_tenancy(
        self, view: PolicyView, spec: RetrainingPolicySpec
    ) -> tenancy.Admission | tenancy.Refusal:
        namespace = view.ref.namespace
        return tenancy.acting_identity(
            spec,
            mode=self.config.tenancy_mode,
            namespace=namespace,
            tenants=self.tenants.tenants(),
            namespace_labels=lambda: self.tenants.namespace_labels(namespace),
            allowed_role_patterns=self.config.allowed_role_patterns,
        )

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
        self, view: PolicyView, result: PassResult
    ) -> tuple[RetrainingPolicySpec, Tenant | None] | Refusal:
        """The first stage: the spec and its tenant (Scoped mode), or why the policy cannot
        work or may not act (then `_refuse`: no AWS call at all)."""
        try:
            spec = RetrainingPolicySpec.model_validate(dict(view.spec))
        except pydantic.ValidationError as error:
            result.spec_error = _spec_problem(error)
            return Refusal("InvalidSpec", result.spec_error)
        verdict = self._tenancy(view, spec)
        if isinstance(verdict, Refusal):
            return verdict
        return spec, verdict.tenant

    def _refuse(
        self, view: PolicyView, result: PassResult, memo: PolicyMemo, refusal: Refusal
    ) -> None:
        """A policy that may not act: Failed and Degraded (an Event when that changes), its
        phase and conditions on /metrics like any pass's, and no share of the operator's
        event hub."""
        status = result.status
        announce = st.degraded_changed(status.conditions, refusal.reason, refusal.message)
        status.phase = st.derive_phase(
            suspended=False, spec_error=True, current_run=None, serving=False
        )
        status.observed_generation = view.generation
        status.conditions = st.refresh_conditions(
            status,
            observed=st.Observation(self.clock.wall(), view.generation),
            degraded=(refusal.reason, refusal.message),
        )
        if announce:
            log.warning(
                "%s/%s %s: %s", view.ref.namespace, view.ref.name, refusal.reason, refusal.message
            )
            result.events.append(Event("Warning", refusal.reason, refusal.message[:1000]))
        memo.status_series = metrics.report_status(
            view.ref.namespace, view.ref.name, status, memo.status_series
        )
        if memo.event_hub is not None:
            memo.event_hub.unsubscribe(view.ref.uid)  # its messages go back to the queue
        memo.events_flowing = False

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
