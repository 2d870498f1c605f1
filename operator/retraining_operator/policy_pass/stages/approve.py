"""AwaitingApproval: a Manual registry waits until a person approves the run's Model Package.

Approval comes from SageMaker (Studio, the CLI: the package's `ModelApprovalStatus`) or
from the annotation `retraining.hitl.dev/approve: <run id>`, which the operator turns into
an `UpdateModelPackage` and then clears. Approved -> Deploying; Rejected -> history,
nothing deployed, the serving model stays; `registry.approvalTimeout` passed -> the
package is marked Rejected and the run ends `ApprovalTimedOut`.
"""

from __future__ import annotations

from retraining_operator.api import (
    APPROVE_ANNOTATION,
    HistoryEntry,
    Outcome,
    RunStage,
    parse_duration,
)
from retraining_operator.flows import registry
from retraining_operator.policy_pass.context import PolicyPass
from retraining_operator.policy_pass.outcome import next_stage_after_gate
from retraining_operator.reconcile.registry import ApprovalStatus, approval_of

# An annotation value longer than this names no run (run ids are 16 characters).
MAX_SHOWN = 80


def step(p: PolicyPass) -> None:
    run = p.run
    wanted = p.view.annotations.get(APPROVE_ANNOTATION)
    awaiting = run is not None and run.stage is RunStage.AWAITING_APPROVAL
    if wanted is not None and not awaiting:
        # Kept while it names the run in flight (approved ahead of its wait); else cleared.
        if run is None or wanted.strip() != run.id:
            _ignore(p, wanted, "no run awaits approval")
        return
    if run is None or not awaiting:
        return
    arn = run.model_package_arn
    if arn is None:
        raise RuntimeError(f"run {run.id} awaits approval without a model package")
    if wanted is not None:
        if wanted.strip() != run.id:
            _ignore(p, wanted, f"run {run.id} awaits approval")
        else:
            registry.set_approval(
                p.session, arn, ApprovalStatus.APPROVED, f"approved by the {APPROVE_ANNOTATION} "
                f"annotation on {p.ref.namespace}/{p.ref.name}",
            )  # fmt: skip
            # Cleared only now: a failed UpdateModelPackage (a 503, a leadership change)
            # keeps the person's approval for the next pass.
            p.done_with_annotation(APPROVE_ANNOTATION, wanted)
            p.event("Normal", "ApprovalRequested", f"run {run.id}: set {arn} Approved")
    elif not p.observe_due():
        return
    package = registry.package(p.session, arn)
    status = approval_of(package)
    description = str(package.get("ApprovalDescription") or "")
    if status is ApprovalStatus.APPROVED:
        message = f"{arn} approved" + (f": {description}" if description else "")
        p.update_run(stage=next_stage_after_gate(p.spec), message=message)
        p.set_phase()
        p.checkpoint()
        p.event("Normal", "Approved", f"run {run.id}: {message}")
        return
    if status is ApprovalStatus.REJECTED:
        reason = f"{arn} rejected" + (f": {description}" if description else "")
        _end(p, Outcome.REJECTED, reason)
        p.event("Warning", "Rejected", f"run {run.id}: {reason}; nothing deployed")
        return
    timeout = p.spec.registry.approval_timeout if p.spec.registry is not None else None
    since = run.approval_requested_at or run.started_at
    if timeout is not None:
        left = (since + parse_duration(timeout) - p.now).total_seconds()
        if left <= 0:
            reason = f"{arn} was not approved within registry.approvalTimeout {timeout}"
            registry.set_approval(p.session, arn, ApprovalStatus.REJECTED, reason)
            _end(p, Outcome.APPROVAL_TIMED_OUT, reason)
            p.event("Warning", "ApprovalTimedOut", f"run {run.id}: {reason}; nothing deployed")
            return
        p.due_in(left)
    p.due_in(p.config.observe_seconds)


def _end(p: PolicyPass, outcome: Outcome, reason: str) -> None:
    run = p.run
    assert run is not None
    p.end_run(
        HistoryEntry(
            run_id=run.id,
            outcome=outcome,
            training_job_name=run.training_job_name,
            metric_value=run.metric_value,
            model_data_url=run.model_data_url,
            model_package_arn=run.model_package_arn,
            started_at=run.started_at,
            finished_at=p.now,
            reason=reason,
        )
    )
    p.checkpoint()


def _ignore(p: PolicyPass, wanted: str, why: str) -> None:
    p.done_with_annotation(APPROVE_ANNOTATION, wanted)
    shown = wanted if len(wanted) <= MAX_SHOWN else wanted[:MAX_SHOWN] + "..."
    p.event("Warning", "ApprovalIgnored", f"{APPROVE_ANNOTATION}={shown!r}: {why}")
