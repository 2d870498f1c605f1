"""ShadowTesting: the candidate answers a copy of live requests before any user sees its
answers (deployment.shadow; flows/shadow.py, one step per pass). A passed shadow hands over
to the rollout (stage Deploying), or, with `promote`, the experiment has put it in
production; a failed one ends the run ShadowFailed with the endpoint as it was."""

from __future__ import annotations

from retraining_operator.api import (
    CurrentRun,
    HistoryEntry,
    Outcome,
    RunStage,
    ServingStatus,
)
from retraining_operator.flows import registry, shadow
from retraining_operator.policy_pass.context import PolicyPass
from retraining_operator.policy_pass.outcome import after_deployed, observe_interval
from retraining_operator.reconcile.tenancy import adopt_requested


def step(p: PolicyPass) -> None:
    run = p.run
    if run is None or run.stage is not RunStage.SHADOW_TESTING:
        return
    adopt = adopt_requested(
        p.view.annotations, p.tenant, single_mode_allows=p.config.allow_endpoint_adoption
    )
    subject = shadow.ShadowSubject(p.ref, p.spec, run, p.now, adopt=adopt)
    try:
        progress = shadow.advance_shadow(p.session, subject, poll=observe_interval(p))
    except shadow.ShadowFailed as error:
        _end(p, run, str(error))
        return
    for action in progress.actions:
        p.event("Normal", "ShadowStep", action)
    was_judged = run.shadow is not None and run.shadow.passed is not None
    run = p.update_run(shadow=progress.test, message=progress.test.reason)
    test = progress.test
    if test.passed is not None and not was_judged:
        reason = "ShadowPassed" if test.passed else "ShadowFailed"
        p.event("Normal" if test.passed else "Warning", reason, f"run {run.id}: {test.reason}")
    if test.passed is not None and not was_judged and run.model_package_arn:
        # The registry shows what the shadow test measured beside the gate's metrics.
        registry.record_shadow(p.session, run.model_package_arn, test)
    if not progress.done:
        p.checkpoint()  # the experiment's name and a verdict are durable before its stop
        if progress.retry_after is not None:
            p.due_in(max(progress.retry_after.total_seconds(), 0.2))
        return
    if not test.passed:
        _end(p, run, test.reason or "the shadow test failed")
    elif test.stopping == "Promote":
        _promoted(p, run, progress.endpoint_config_name)
    else:
        p.update_run(stage=RunStage.DEPLOYING, message=f"shadow passed: {test.reason}")
        p.set_phase()
        p.checkpoint()


def _end(p: PolicyPass, run: CurrentRun, reason: str) -> None:
    p.end_run(
        HistoryEntry(
            run_id=run.id,
            outcome=Outcome.SHADOW_FAILED,
            training_job_name=run.training_job_name,
            metric_value=run.metric_value,
            model_data_url=run.model_data_url,
            model_package_arn=run.model_package_arn,
            started_at=run.started_at,
            finished_at=p.now,
            reason=reason,
            instance_hours=run.instance_hours,
            comparison=run.comparison,
            shadow=run.shadow,
        )
    )
    p.checkpoint()
    if run.shadow is None or run.shadow.passed is None:  # not announced as ShadowFailed yet
        p.event("Warning", "ShadowFailed", f"run {run.id}: {reason}; nothing deployed")


def _promoted(p: PolicyPass, run: CurrentRun, config_name: str | None) -> None:
    """The experiment promoted the shadow: the candidate serves under the production
    variant's name, on the endpoint config SageMaker made for it."""
    model = run.model_name or shadow.candidate_model_name(p.ref, run)
    serving = ServingStatus(
        model_name=model,
        endpoint_config_name=config_name,
        model_data_url=run.model_data_url,
        model_package_arn=run.model_package_arn,
        run_id=run.id,
        metric_value=run.metric_value,
        since=p.now,
    )
    entry = HistoryEntry(
        run_id=run.id,
        outcome=Outcome.DEPLOYED,
        training_job_name=run.training_job_name,
        metric_value=run.metric_value,
        model_name=model,
        model_data_url=run.model_data_url,
        model_package_arn=run.model_package_arn,
        endpoint_config_name=config_name,
        started_at=run.started_at,
        finished_at=p.now,
        reason="promoted by the shadow test",
        instance_hours=run.instance_hours,
        comparison=run.comparison,
        shadow=run.shadow,
    )
    after_deployed(p, run, serving, entry)
