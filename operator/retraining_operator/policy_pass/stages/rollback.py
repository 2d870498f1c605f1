"""The rollback-to annotation starts a deploy-only run back to a model from history (or to
the model that served before the operator's first rollout: `rollback-to: pre-operator`).

It only starts the run (not while suspended, not while another run is in flight); the deploy
stage advances it to the end, like any rollout, whatever the annotation says afterwards, and
clears the annotation then (if it still names that target).
"""

from __future__ import annotations

from retraining_operator.api import ROLLBACK_TO_ANNOTATION
from retraining_operator.flows import rollout
from retraining_operator.policy_pass.context import PolicyPass
from retraining_operator.policy_pass.outcome import apply_rollout
from retraining_operator.reconcile.rollout import UnknownRollbackTarget
from retraining_operator.reconcile.rollout.rollback import rollback_candidates


def step(p: PolicyPass) -> None:
    target = p.view.annotations.get(ROLLBACK_TO_ANNOTATION)
    if p.spec.suspend or not target or p.run is not None:
        return
    try:
        history = rollback_candidates(p.status.history, p.status.pre_operator)
        progress = rollout.start_rollback(
            p.session, p.spec, target=target, history=history, now=p.now
        )
    except UnknownRollbackTarget as error:
        p.done_with_annotation(ROLLBACK_TO_ANNOTATION, target)  # refused, with an Event
        p.event("Warning", "RollbackRefused", str(error))
        return
    p.status.current_run = progress.run
    p.set_phase()
    p.checkpoint()  # the run id is durable before anything is made under it
    p.event("Normal", "RollbackStarted", f"run {progress.run.id}: {progress.message}")
    if progress.done:
        apply_rollout(p, progress)
        p.done_with_annotation(ROLLBACK_TO_ANNOTATION, target)
