"""The shadow test of a run (deployment.shadow): one step per pass (`reconcile/shadow.py`).

    claim the endpoint (owner tag), the candidate's Model under the rollout's name
    CreateInferenceExperiment <policy>-<run>-sx-<hash>   (once: found again after a restart)
    ... Creating / Starting: wait
    Running: both variants' metrics over the experiment, judged; a verdict is recorded
        (`stopping`: Remove, or Promote) before the stop, so a restart stops it the same way
    StopInferenceExperiment (production Retain, shadow Remove/Promote) -> Completed
    ended and the endpoint InService: done (the stage hands over to the rollout, or records
    the promotion, or ends the run ShadowFailed)

An experiment that ends without the operator's stop (SageMaker cancelled it: the shadow
could not be deployed, or the schedule ran out while the operator was away) fails the test.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from retraining_operator.api import CurrentRun, RetrainingPolicySpec, ShadowTest, parse_duration
from retraining_operator.aws import cloudwatch, endpoints
from retraining_operator.aws import experiments as gateway
from retraining_operator.aws.errors import AlreadyExists
from retraining_operator.aws.s3 import S3, S3Location
from retraining_operator.flows.rollout import steps as rollout_steps
from retraining_operator.flows.rollout.context import RolloutContext
from retraining_operator.reconcile import shadow as rules
from retraining_operator.reconcile import shadow_agreement as agreement_rules
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.rollout.requests import RolloutNames
from retraining_operator.reconcile.shadow_agreement import Agreement

if TYPE_CHECKING:
    from retraining_operator.aws.session import AwsSession

# Metrics are read from a little before the experiment ran (CloudWatch's minute buckets).
METRICS_LEAD = timedelta(minutes=1)
# Data capture read per variant and judgement: the newest files, each bounded.
CAPTURE_FILES = 200
CAPTURE_FILE_BYTES = 16 * 1024 * 1024


class ShadowFailed(Exception):
    """The shadow test cannot go on; the message says why (the run ends ShadowFailed)."""


@dataclass(frozen=True)
class ShadowSubject:
    policy: PolicyRef
    spec: RetrainingPolicySpec
    run: CurrentRun
    now: datetime
    adopt: bool = False


@dataclass(frozen=True)
class ShadowStep:
    """What one pass did: the run's shadow record, and whether the test is over."""

    test: ShadowTest
    done: bool = False  # the experiment ended after the operator's stop
    retry_after: timedelta | None = None
    actions: tuple[str, ...] = ()
    endpoint_config_name: str | None = None  # what the endpoint serves once done


def advance_shadow(session: AwsSession, subject: ShadowSubject, *, poll: timedelta) -> ShadowStep:
    """One step of the run's shadow test (see the module docstring). Raises `ShadowFailed`."""
    spec, run = subject.spec, subject.run
    shadow = spec.deployment.shadow
    assert shadow is not None, "advance_shadow needs deployment.shadow"
    names = rules.ShadowNames.for_run(subject.policy, run.id)
    test = run.shadow or ShadowTest(
        experiment_name=names.experiment,
        shadow_variant=names.shadow_variant,
        source_variant=spec.deployment.variant_name,
    )
    sm = session.sagemaker()
    described = gateway.find_experiment(sm, test.experiment_name)
    if described is None:
        if test.stopping is not None:
            raise ShadowFailed(f"inference experiment {test.experiment_name} disappeared")
        return _create(session, subject, test, poll)
    status = str(described.get("Status", ""))
    test = test.model_copy(update={"status": status})
    if status in rules.ENDED:
        if test.stopping is None:
            why = described.get("StatusReason") or "no reason given"
            raise ShadowFailed(
                f"inference experiment {test.experiment_name} ended {status} before a verdict: "
                f"{why}"
            )
        endpoint = endpoints.find_endpoint(sm, spec.deployment.endpoint_name or "")
        if endpoint is None or endpoint.get("EndpointStatus") != "InService":
            return ShadowStep(test, retry_after=poll)  # the shadow is still being removed
        return ShadowStep(test, done=True, endpoint_config_name=endpoint.get("EndpointConfigName"))
    if test.stopping is not None:
        if status == rules.RUNNING:
            request = rules.stop_request(
                test.experiment_name,
                test.source_variant,
                test.shadow_variant,
                promote=test.stopping == "Promote",
                reason=test.reason or "verdict reached",
            )
            gateway.stop_experiment(sm, request)
            action = f"StopInferenceExperiment {test.experiment_name} ({test.stopping} the shadow)"
            return ShadowStep(test, retry_after=poll, actions=(action,))
        return ShadowStep(test, retry_after=poll)  # Stopping
    if status != rules.RUNNING:
        return ShadowStep(test, retry_after=poll)  # Creating, Created, Starting, Updating
    return _observe(session, subject, test, poll)


def _create(
    session: AwsSession, subject: ShadowSubject, test: ShadowTest, poll: timedelta
) -> ShadowStep:
    spec, run = subject.spec, subject.run
    ctx = RolloutContext(
        session,
        subject.policy,
        spec,
        run,
        RolloutNames.for_run(subject.policy, run.id, model=run.model_name),
        subject.now,
        timedelta(0),
    )
    rollout_steps.claim_endpoint(ctx, adopt=subject.adopt)  # never shadow a foreign endpoint
    rollout_steps.reconcile_model(ctx)
    production = _production(ctx)
    request = rules.experiment_request(
        subject.policy,
        spec,
        run_id=run.id,
        production=production,
        candidate_model=ctx.names.model,
        now=subject.now,
    )
    # AlreadyExists: made by this run's earlier pass (found by name next time).
    with contextlib.suppress(AlreadyExists):
        gateway.create_experiment(session.sagemaker(), request)
    shadow = spec.deployment.shadow
    assert shadow is not None
    actions = (
        *ctx.actions,
        f"CreateInferenceExperiment {test.experiment_name}: {ctx.names.model} shadows "
        f"{production.name} ({production.model_name}) on {shadow.sampling_percentage}% of its "
        f"requests for {shadow.duration}",
    )
    return ShadowStep(
        test.model_copy(update={"status": "Creating"}), retry_after=poll, actions=actions
    )


def _production(ctx: RolloutContext) -> rules.ProductionVariant:
    """The production variant as it serves now: its model, instance type and live count."""
    config = ctx.current_config()
    if config is None:
        raise ShadowFailed(f"endpoint {ctx.endpoint_name} serves nothing to shadow")
    try:
        return rules.production_variant(config, ctx.spec.deployment.variant_name, ctx.endpoint)
    except rules.NoProductionVariant as error:
        raise ShadowFailed(f"endpoint {ctx.endpoint_name}: {error}") from error


def _observe(
    session: AwsSession, subject: ShadowSubject, test: ShadowTest, poll: timedelta
) -> ShadowStep:
    shadow = subject.spec.deployment.shadow
    assert shadow is not None
    started = test.started_at or subject.now
    endpoint = subject.spec.deployment.endpoint_name or ""
    series = cloudwatch.variant_series(
        session.cloudwatch(),
        cloudwatch.SeriesRequest(
            namespace=rules.NAMESPACE,
            endpoint_name=endpoint,
            variants=(test.source_variant, test.shadow_variant),
            queries=[cloudwatch.MetricQuery(k, m, s) for k, m, s in rules.METRIC_QUERIES],
            start=started - METRICS_LEAD,
            end=subject.now,
            period=rules.PERIOD_SECONDS,
        ),
    )
    since = started - METRICS_LEAD
    ended = rules.ended_by_duration(shadow, started, subject.now)
    verdict = rules.judge(
        shadow,
        rules.VariantNumbers.of(series[test.source_variant], since),
        rules.VariantNumbers.of(series[test.shadow_variant], since),
        ended=ended,
        agreement=_agreement(session, subject, test) if shadow.data_capture else None,
    )
    test = test.model_copy(
        update={
            "started_at": started,
            "reason": verdict.reason,
            "invocations": verdict.invocations,
            "production_p99_ms": verdict.production_p99_ms,
            "shadow_p99_ms": verdict.shadow_p99_ms,
            "latency_ratio": verdict.latency_ratio,
            "error_5xx_rate": verdict.error_5xx_rate,
            "error_4xx_rate": verdict.error_4xx_rate,
            "agreement": verdict.agreement,
            "agreement_requests": verdict.agreement_requests,
        }
    )
    if verdict.passed is None:
        remaining = parse_duration(shadow.duration) - (subject.now - started)
        wait = min(poll, max(remaining, timedelta(seconds=1)))
        return ShadowStep(test, retry_after=wait)
    stopping = "Promote" if verdict.passed and shadow.promote else "Remove"
    # Recorded first (the stage checkpoints it), stopped by the next pass: a restart in
    # between stops it the same way.
    return ShadowStep(
        test.model_copy(update={"passed": verdict.passed, "stopping": stopping}),
        retry_after=timedelta(0),
    )


def _agreement(session: AwsSession, subject: ShadowSubject, test: ShadowTest) -> Agreement:
    """Both variants' captured answers compared request by request (bounded reads: the
    newest CAPTURE_FILES files of each, at most CAPTURE_FILE_BYTES each)."""
    shadow = subject.spec.deployment.shadow
    assert shadow is not None
    assert shadow.data_capture is not None
    s3 = S3(session.s3())
    endpoint = subject.spec.deployment.endpoint_name or ""
    answers = []
    for variant in (test.source_variant, test.shadow_variant):
        prefix = S3Location.parse(rules.capture_prefix(shadow, endpoint, variant))
        files = sorted(s3.list(prefix), key=lambda location: location.key)[-CAPTURE_FILES:]
        lines: list[bytes] = []
        for location in files:
            with s3.open(location) as stored:
                body = stored.read_at_most(CAPTURE_FILE_BYTES)
            if body is not None:
                lines.extend(body.splitlines())
        answers.append(agreement_rules.captured(lines))
    return agreement_rules.agreement(
        answers[0], answers[1], score_threshold=shadow.data_capture.score_threshold
    )


def candidate_model_name(policy: PolicyRef, run: CurrentRun) -> str:
    """The candidate's Model: the name the rollout uses (the shadow test made it)."""
    return RolloutNames.for_run(policy, run.id, model=run.model_name).model


def stop_shadow(session: AwsSession, policy: PolicyRef, run: CurrentRun, reason: str) -> str | None:
    """Suspend and deletion: stop the run's experiment with the shadow removed (production
    untouched). The experiment's name, if one was running; None otherwise."""
    test = run.shadow
    names = rules.ShadowNames.for_run(policy, run.id)
    name = test.experiment_name if test else names.experiment
    sm = session.sagemaker()
    described = gateway.find_experiment(sm, name)
    if described is None or described.get("Status") != rules.RUNNING:
        return None
    source = test.source_variant if test else None
    if source is None:
        variants = [v.get("VariantName") for v in described.get("ModelVariants") or []]
        source = next((str(v) for v in variants if v != names.shadow_variant), "AllTraffic")
    gateway.stop_experiment(
        sm,
        rules.stop_request(name, source, names.shadow_variant, promote=False, reason=reason),
    )
    return name
