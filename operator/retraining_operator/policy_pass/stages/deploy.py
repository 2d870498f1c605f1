"""Deploying: one step of the rollout per pass (see docs/rollout.md), for every run in that
stage: a trained candidate's, or a rollback's (which runs to its end even if the rollback-to
annotation is removed or the policy suspended meanwhile: in-flight work finishes)."""

from __future__ import annotations

from retraining_operator.api import ROLLBACK_TO_ANNOTATION, RunStage
from retraining_operator.flows import rollout
from retraining_operator.policy_pass.context import PolicyPass
from retraining_operator.policy_pass.outcome import apply_rollout, observe_interval
from retraining_operator.reconcile.tenancy import adopt_requested

ROLLBACK_TRIGGER = "rollback-to:"


def step(p: PolicyPass) -> None:
    run = p.run
    if run is None or run.stage is not RunStage.DEPLOYING:
        return
    adopt = adopt_requested(
        p.view.annotations, p.tenant, single_mode_allows=p.config.allow_endpoint_adoption
    )
    subject = rollout.RolloutRun(p.ref, p.spec, run, history=p.status.history, adopt=adopt)
    progress = rollout.advance_rollout(p.session, subject, p.now, poll=observe_interval(p))
    apply_rollout(p, progress)
    trigger = run.trigger or ""
    if progress.done and trigger.startswith(ROLLBACK_TRIGGER):
        # The person's instruction is carried out: clear it, if it still names this target.
        p.done_with_annotation(ROLLBACK_TO_ANNOTATION, trigger.removeprefix(ROLLBACK_TRIGGER))
