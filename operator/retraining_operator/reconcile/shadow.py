"""The shadow test before the rollout (deployment.shadow): its requests and its verdict. Pure.

SageMaker's inference experiment (Type ShadowMode) copies `samplingPercentage` of the
production variant's requests to a shadow variant serving the candidate and throws the
shadow's answers away. The operator names the experiment by the run (a restarted operator
finds it, never starts a second), watches both variants' CloudWatch metrics over the same
minutes, and judges:

* the shadow's p99 ModelLatency against production's (`maxLatencyRatio`),
* its 5XX and 4XX error rates (`max5xxRate`, `max4xxRate`),

once it has answered `minInvocations` requests: a limit crossed fails the test early; at the
end of `duration` the test passes, or fails when the shadow saw too few requests to judge.
The experiment is then stopped with the shadow `Remove`d (or `Promote`d with `promote`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from retraining_operator.api import RetrainingPolicySpec, ShadowSpec, parse_duration
from retraining_operator.reconcile.naming import PolicyRef, resource_name
from retraining_operator.reconcile.rollout.endpoint import EndpointView, served_model
from retraining_operator.reconcile.shadow_agreement import Agreement

KIND = "sx"  # the experiment's tag in names (and in the IAM policy's resource pattern)
# The schedule ends a little after the test so the operator stops it itself (a stop keeps
# the choice of Remove or Promote); if the operator is gone, SageMaker removes the shadow.
SCHEDULE_SLACK = timedelta(minutes=30)
MAX_SCHEDULE = timedelta(days=30)

NAMESPACE = "AWS/SageMaker"
INVOCATIONS = "Invocations"
ERRORS_5XX = "Invocation5XXErrors"
ERRORS_4XX = "Invocation4XXErrors"
MODEL_LATENCY = "ModelLatency"
PERIOD_SECONDS = 60
# (series key, metric name, statistic): what each variant is read for.
METRIC_QUERIES = (
    ("invocations", INVOCATIONS, "Sum"),
    ("errors5xx", ERRORS_5XX, "Sum"),
    ("errors4xx", ERRORS_4XX, "Sum"),
    ("latencyP99", MODEL_LATENCY, "p99"),
)

# Experiment statuses (DescribeInferenceExperiment).
RUNNING = "Running"
ENDED = ("Completed", "Cancelled")
STARTING = ("Creating", "Created", "Starting", "Updating")


@dataclass(frozen=True)
class ShadowNames:
    experiment: str
    shadow_variant: str

    @classmethod
    def for_run(cls, policy: PolicyRef, run_id: str) -> ShadowNames:
        # 63 characters, like every name the operator makes (SageMaker allows 120 here):
        # the IAM policy's resource pattern is the same `<policy head>-*`.
        experiment = resource_name(
            KIND, policy_name=policy.name, policy_uid=policy.uid, run_id=run_id
        )
        return cls(experiment=experiment, shadow_variant=f"{run_id}-shadow"[:63])


@dataclass(frozen=True)
class ProductionVariant:
    """The live production variant the shadow copies requests from."""

    name: str
    model_name: str
    instance_type: str
    instance_count: int


class NoProductionVariant(ValueError):
    """The endpoint's config has no variant a shadow test can copy requests from."""


def production_variant(
    config: Mapping[str, Any], variant_name: str, endpoint: EndpointView | None = None
) -> ProductionVariant:
    """The production variant as it serves now (a DescribeEndpointConfig answer, and the
    endpoint as described for its live instance count): its model, type and count."""
    served = served_model(config, variant_name)
    variant = next(v for v in config["ProductionVariants"] if v["VariantName"] == served.name)
    live = endpoint.variant(served.name) if endpoint is not None else None
    count = (live.desired_instance_count if live else None) or variant.get("InitialInstanceCount")
    instance_type = variant.get("InstanceType")
    if not instance_type:
        raise NoProductionVariant(
            f"variant {served.name} is serverless: a shadow test needs instances to copy "
            "requests from"
        )
    return ProductionVariant(served.name, served.model_name, str(instance_type), int(count or 1))


def experiment_request(
    policy: PolicyRef,
    spec: RetrainingPolicySpec,
    *,
    run_id: str,
    production: ProductionVariant,
    candidate_model: str,
    now: datetime,
) -> dict[str, Any]:
    """CreateInferenceExperiment, exactly as the operator sends it."""
    shadow = _shadow(spec)
    names = ShadowNames.for_run(policy, run_id)
    endpoint = spec.deployment.endpoint_name
    if endpoint is None:
        raise ValueError("deployment.shadow needs deployment.endpointName")
    role = shadow.role_arn or spec.training.role_arn
    # SageMaker runs an experiment at most 30 days: the slack gives way at the maximum.
    end = min(now + parse_duration(shadow.duration) + SCHEDULE_SLACK, now + MAX_SCHEDULE)
    return {
        "Name": names.experiment,
        "Type": "ShadowMode",
        "Schedule": {"StartTime": now, "EndTime": end},
        "Description": f"retraining run {run_id} of {policy.namespace}/{policy.name}: "
        f"shadow test of {candidate_model}"[:1024],
        "RoleArn": role,
        "EndpointName": endpoint,
        "ModelVariants": [
            _variant(
                production.model_name,
                production.name,
                production.instance_type,
                production.instance_count,
            ),
            _variant(
                candidate_model,
                names.shadow_variant,
                shadow.instance_type or production.instance_type,
                shadow.instance_count or production.instance_count,
            ),
        ],
        "ShadowModeConfig": {
            "SourceModelVariantName": production.name,
            "ShadowModelVariants": [
                {
                    "ShadowModelVariantName": names.shadow_variant,
                    "SamplingPercentage": shadow.sampling_percentage,
                }
            ],
        },
        "Tags": list(policy.tags(run_id)),
        **_capture(shadow),
    }


def _capture(shadow: ShadowSpec) -> dict[str, Any]:
    """DataStorageConfig: both variants' requests and answers, the answers as JSON."""
    if shadow.data_capture is None:
        return {}
    return {
        "DataStorageConfig": {
            "Destination": shadow.data_capture.destination_s3_uri,
            "ContentType": {"JsonContentTypes": ["application/json"]},
        }
    }


def capture_prefix(shadow: ShadowSpec, endpoint: str, variant: str) -> str:
    """Where SageMaker writes a variant's captured requests: <destination>/<endpoint>/<variant>/."""
    assert shadow.data_capture is not None
    return f"{shadow.data_capture.destination_s3_uri.rstrip('/')}/{endpoint}/{variant}/"


def stop_request(
    experiment: str, source_variant: str, shadow_variant: str, *, promote: bool, reason: str
) -> dict[str, Any]:
    """StopInferenceExperiment: production retained, the shadow removed or promoted."""
    request: dict[str, Any] = {
        "Name": experiment,
        "ModelVariantActions": {
            source_variant: "Retain",
            shadow_variant: "Promote" if promote else "Remove",
        },
        "DesiredState": "Completed",
        "Reason": reason[:1024],
    }
    return request


def _variant(model: str, variant: str, instance_type: str, count: int) -> dict[str, Any]:
    return {
        "ModelName": model,
        "VariantName": variant,
        "InfrastructureConfig": {
            "InfrastructureType": "RealTimeInference",
            "RealTimeInferenceConfig": {"InstanceType": instance_type, "InstanceCount": count},
        },
    }


def _shadow(spec: RetrainingPolicySpec) -> ShadowSpec:
    if spec.deployment.shadow is None:
        raise ValueError("the policy has no deployment.shadow")
    return spec.deployment.shadow


# -- the verdict ---------------------------------------------------------------------------

Points = Sequence[tuple[datetime, float]]


@dataclass(frozen=True)
class VariantNumbers:
    """A variant's totals over the experiment so far."""

    invocations: float = 0.0
    errors_5xx: float = 0.0
    errors_4xx: float = 0.0
    p99_us: float | None = None  # the largest per-minute p99 (microseconds, as AWS)

    @classmethod
    def of(cls, series: Mapping[str, Points], since: datetime) -> VariantNumbers:
        def total(key: str) -> float:
            return sum(value for at, value in series.get(key, ()) if at >= since)

        latencies = [value for at, value in series.get("latencyP99", ()) if at >= since]
        return cls(
            invocations=total("invocations"),
            errors_5xx=total("errors5xx"),
            errors_4xx=total("errors4xx"),
            p99_us=max(latencies) if latencies else None,
        )


@dataclass(frozen=True)
class Verdict:
    """None for `passed`: keep watching."""

    passed: bool | None
    reason: str
    invocations: float
    production_p99_ms: float | None
    shadow_p99_ms: float | None
    latency_ratio: float | None
    error_5xx_rate: float | None
    error_4xx_rate: float | None
    agreement: float | None = None
    agreement_requests: int | None = None


def judge(
    shadow: ShadowSpec,
    production: VariantNumbers,
    candidate: VariantNumbers,
    *,
    ended: bool,
    agreement: Agreement | None = None,
) -> Verdict:
    """Judge the shadow against production (see the module docstring). `ended`: the
    experiment's duration is over; `agreement`: the answers compared (data capture)."""
    calls = candidate.invocations
    rate_5xx = candidate.errors_5xx / calls if calls else None
    rate_4xx = candidate.errors_4xx / calls if calls else None
    prod_ms = production.p99_us / 1000.0 if production.p99_us is not None else None
    shadow_ms = candidate.p99_us / 1000.0 if candidate.p99_us is not None else None
    ratio = shadow_ms / prod_ms if shadow_ms is not None and prod_ms else None

    capture = shadow.data_capture
    agreed = agreement.mean if agreement is not None else None
    pairs = agreement.pairs if agreement is not None else None

    def verdict(passed: bool | None, reason: str) -> Verdict:
        return Verdict(
            passed, reason, calls, prod_ms, shadow_ms, ratio, rate_5xx, rate_4xx, agreed, pairs
        )

    numbers = _numbers(calls, prod_ms, shadow_ms, ratio, rate_5xx, rate_4xx)
    if agreed is not None:
        numbers += f", answers agree {agreed:.1%} on {pairs} captured requests"
    if calls < shadow.min_invocations:
        if ended:
            return verdict(
                False,
                f"the shadow answered {calls:.0f} requests, fewer than "
                f"deployment.shadow.minInvocations {shadow.min_invocations}: not enough traffic "
                "to judge it (raise samplingPercentage or duration)",
            )
        return verdict(None, f"waiting for traffic: {numbers}")
    problems = []
    if ratio is not None and ratio > shadow.max_latency_ratio:
        problems.append(
            f"p99 latency {ratio:.2f}x production's (maxLatencyRatio {shadow.max_latency_ratio:g})"
        )
    if rate_5xx is not None and rate_5xx > shadow.max_5xx_rate:
        problems.append(f"5XX rate {rate_5xx:.2%} (max5xxRate {shadow.max_5xx_rate:.2%})")
    if rate_4xx is not None and rate_4xx > shadow.max_4xx_rate:
        problems.append(f"4XX rate {rate_4xx:.2%} (max4xxRate {shadow.max_4xx_rate:.2%})")
    enough = capture is not None and pairs is not None and pairs >= capture.min_requests
    if capture is not None and enough and agreed is not None and agreed < capture.min_agreement:
        problems.append(
            f"its answers agree with production's on {agreed:.1%} of {pairs} requests "
            f"(dataCapture.minAgreement {capture.min_agreement:.0%})"
        )
    if problems:
        return verdict(False, f"shadow refused: {'; '.join(problems)}; {numbers}")
    if not ended:
        return verdict(None, f"within limits so far: {numbers}")
    if shadow_ms is None or prod_ms is None:
        return verdict(False, f"no ModelLatency for both variants to compare: {numbers}")
    if capture is not None and not enough:
        return verdict(
            False,
            f"{pairs or 0} captured requests answered by both variants, fewer than "
            f"dataCapture.minRequests {capture.min_requests}: agreement not judged; {numbers}",
        )
    return verdict(True, f"shadow passed: {numbers}")


def _numbers(
    calls: float,
    prod_ms: float | None,
    shadow_ms: float | None,
    ratio: float | None,
    rate_5xx: float | None,
    rate_4xx: float | None,
) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    parts = [
        f"{calls:.0f} requests shadowed",
        f"p99 {ms(shadow_ms)} vs production {ms(prod_ms)}"
        + (f" ({ratio:.2f}x)" if ratio is not None else ""),
    ]
    if rate_5xx is not None:
        parts.append(f"5XX {rate_5xx:.2%}")
    if rate_4xx is not None:
        parts.append(f"4XX {rate_4xx:.2%}")
    return ", ".join(parts)


def ended_by_duration(shadow: ShadowSpec, started_at: datetime | None, now: datetime) -> bool:
    return started_at is not None and now - started_at >= parse_duration(shadow.duration)
