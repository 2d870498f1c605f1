"""Deploying: one step of the rollout per pass (see docs/rollout.md)."""

from __future__ import annotations

from retraining_operator.api import RunStage
from retraining_operator.reconcile.tenancy import adopt_requested
from retraining_operator.workflow import rollout
from retraining_operator.workflow.context import PolicyPass
from retraining_operator.workflow.outcome import apply_rollout, observe_interval


def step(p: PolicyPass) -> None:
    run = p.run
    if run is None or p.is_rollback_run or run.stage is not RunStage.DEPLOYING:
        return
    progress = rollout.advance_rollout(
        p.session,
        p.ref,
        p.spec,
        run,
        p.now,
        history=p.status.history,
        poll=observe_interval(p),
        adopt=adopt_requested(
            p.view.annotations, p.tenant, single_mode_allows=p.config.allow_endpoint_adoption
        ),
    )
    apply_rollout(p, progress)
