"""The rollback-to annotation: a deploy-only run back to a model from history."""

from __future__ import annotations

from retraining_operator.api import ROLLBACK_TO_ANNOTATION
from retraining_operator.reconcile.rollout import UnknownRollbackTarget
from retraining_operator.reconcile.tenancy import adopt_requested
from retraining_operator.workflow import rollout
from retraining_operator.workflow.context import PolicyPass
from retraining_operator.workflow.outcome import apply_rollout, observe_interval


def step(p: PolicyPass) -> None:
    target = p.view.annotations.get(ROLLBACK_TO_ANNOTATION)
    run = p.run
    if p.spec.suspend or not target or (run is not None and not p.is_rollback_run):
        return
    try:
        progress = rollout.rollback_to(
            p.session,
            p.ref,
            p.spec,
            target=target,
            history=p.status.history,
            run=run,
            now=p.now,
            poll=observe_interval(p),
            adopt=adopt_requested(
                p.view.annotations, p.tenant, single_mode_allows=p.config.allow_endpoint_adoption
            ),
        )
    except UnknownRollbackTarget as error:
        p.result.clear_annotations.append(ROLLBACK_TO_ANNOTATION)
        p.event("Warning", "RollbackRefused", str(error))
        return
    if run is None:
        p.status.current_run = progress.run
        p.checkpoint()
    apply_rollout(p, progress)
    if progress.done:
        p.result.clear_annotations.append(ROLLBACK_TO_ANNOTATION)
