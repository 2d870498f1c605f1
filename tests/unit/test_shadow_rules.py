"""The shadow test's requests (valid for SageMaker, named by the run) and its verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import botocore.session
import pytest
import yaml
from botocore.validate import ParamValidator

from retraining_operator.api import RetrainingPolicySpec, ShadowSpec
from retraining_operator.reconcile import shadow
from retraining_operator.reconcile.naming import PolicyRef
from unit.rollout_policies import PASCAL

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
POLICY = PolicyRef(namespace="vision", name="pascal-detector", uid="3f6c1e9a-0000-4000-8000-1234")
NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
PRODUCTION = shadow.ProductionVariant("AllTraffic", "serving-model", "ml.m5.xlarge", 2)


def spec(**shadow_spec: object) -> RetrainingPolicySpec:
    document = yaml.safe_load(PASCAL.read_text())
    document["spec"]["deployment"]["shadow"] = shadow_spec
    return RetrainingPolicySpec.model_validate(document["spec"])


def valid(operation: str, request: dict[str, object]) -> None:
    report = ParamValidator().validate(request, SAGEMAKER.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def test_the_experiment_request_is_valid_and_named_by_the_run() -> None:
    policy = spec(samplingPercentage=40, duration="2h", instanceCount=1)
    request = shadow.experiment_request(
        POLICY, policy, run_id="r20261208-120000", production=PRODUCTION,
        candidate_model="candidate", now=NOW,
    )  # fmt: skip
    valid("CreateInferenceExperiment", request)
    names = shadow.ShadowNames.for_run(POLICY, "r20261208-120000")
    assert request["Name"] == names.experiment
    assert names == shadow.ShadowNames.for_run(POLICY, "r20261208-120000")  # deterministic
    assert len(names.experiment) <= 63
    assert request["Type"] == "ShadowMode"
    assert request["Schedule"] == {
        "StartTime": NOW,
        "EndTime": NOW + timedelta(hours=2) + shadow.SCHEDULE_SLACK,
    }
    production, candidate = request["ModelVariants"]  # type: ignore[misc]
    assert production["ModelName"] == "serving-model"
    assert production["InfrastructureConfig"]["RealTimeInferenceConfig"] == {
        "InstanceType": "ml.m5.xlarge",
        "InstanceCount": 2,
    }
    # The shadow takes the production variant's instance type unless told; its count is 1.
    assert candidate["InfrastructureConfig"]["RealTimeInferenceConfig"] == {
        "InstanceType": "ml.m5.xlarge",
        "InstanceCount": 1,
    }
    assert request["ShadowModeConfig"] == {
        "SourceModelVariantName": "AllTraffic",
        "ShadowModelVariants": [
            {"ShadowModelVariantName": names.shadow_variant, "SamplingPercentage": 40}
        ],
    }
    assert request["RoleArn"] == policy.training.role_arn  # default: the execution role


def test_the_longest_shadow_test_stays_within_sagemakers_30_days() -> None:
    request = shadow.experiment_request(
        POLICY, spec(duration="720h"), run_id="r1", production=PRODUCTION,
        candidate_model="candidate", now=NOW,
    )  # fmt: skip
    assert request["Schedule"]["EndTime"] - NOW == timedelta(days=30)  # type: ignore[index]


@pytest.mark.parametrize("promote", [False, True])
def test_the_stop_retains_production_and_removes_or_promotes_the_shadow(promote: bool) -> None:
    request = shadow.stop_request("exp", "AllTraffic", "r1-shadow", promote=promote, reason="x")
    valid("StopInferenceExperiment", request)
    assert request["ModelVariantActions"] == {
        "AllTraffic": "Retain",
        "r1-shadow": "Promote" if promote else "Remove",
    }


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"duration": "1m"}, "at least 2m"),
        ({"duration": "721h"}, "at most 720h"),
        ({"samplingPercentage": 0}, "greater than or equal to 1"),
        ({"maxLatencyRatio": 0.5}, "greater than or equal to 1"),
    ],
)
def test_the_spec_refuses_what_sagemaker_or_sense_would(
    changes: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        ShadowSpec.model_validate(changes)


def numbers(calls: float, p99_ms: float, e5: float = 0, e4: float = 0) -> shadow.VariantNumbers:
    return shadow.VariantNumbers(calls, e5, e4, p99_ms * 1000)


SHADOW = ShadowSpec.model_validate({"maxLatencyRatio": 1.5, "minInvocations": 100})


def test_three_times_production_latency_fails_early() -> None:
    verdict = shadow.judge(SHADOW, numbers(400, 60), numbers(200, 180), ended=False)
    assert verdict.passed is False
    assert verdict.latency_ratio == pytest.approx(3.0)
    assert "p99 latency 3.00x production's" in verdict.reason


def test_errors_fail_and_a_clean_shadow_passes_only_at_the_end() -> None:
    failing = shadow.judge(SHADOW, numbers(400, 60), numbers(200, 60, e5=10), ended=False)
    assert failing.passed is False
    assert "5XX rate 5.00%" in failing.reason
    clean = numbers(200, 70)
    assert shadow.judge(SHADOW, numbers(400, 60), clean, ended=False).passed is None
    passed = shadow.judge(SHADOW, numbers(400, 60), clean, ended=True)
    assert passed.passed is True
    assert "200 requests shadowed" in passed.reason


def test_too_little_traffic_waits_then_fails() -> None:
    quiet = numbers(20, 500)  # slow, but 20 requests prove nothing yet
    assert shadow.judge(SHADOW, numbers(40, 60), quiet, ended=False).passed is None
    ended = shadow.judge(SHADOW, numbers(40, 60), quiet, ended=True)
    assert ended.passed is False
    assert "not enough traffic" in ended.reason


def test_numbers_sum_the_minutes_since_the_start() -> None:
    t0, later = NOW, NOW + timedelta(minutes=1)
    series = {
        "invocations": [(t0 - timedelta(minutes=5), 999.0), (t0, 10.0), (later, 5.0)],
        "errors5xx": [(t0, 1.0)],
        "latencyP99": [(t0, 50_000.0), (later, 90_000.0)],
    }
    got = shadow.VariantNumbers.of(series, t0)
    assert (got.invocations, got.errors_5xx, got.errors_4xx, got.p99_us) == (
        15.0,
        1.0,
        0.0,
        90_000.0,
    )


def capture_line(image: bytes, answer: object, *, base64_answer: bool = False) -> str:
    import base64
    import json

    text = json.dumps(answer)
    output = (
        {"data": base64.b64encode(text.encode()).decode(), "encoding": "BASE64"}
        if base64_answer
        else {"data": text, "encoding": "JSON"}
    )
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {"data": base64.b64encode(image).decode(), "encoding": "BASE64"},
                "endpointOutput": output,
            },
            "eventMetadata": {"eventId": "e", "inferenceTime": "2026-12-08T12:00:00Z"},
        }
    )


def test_agreement_pairs_requests_by_their_input_and_matches_boxes_by_iou() -> None:
    from retraining_operator.reconcile import shadow_agreement as agreement

    box = [3, 0.9, 0.1, 0.1, 0.5, 0.5]
    near = [3, 0.8, 0.12, 0.1, 0.5, 0.52]  # IoU > 0.5 with box
    other_class = [4, 0.9, 0.1, 0.1, 0.5, 0.5]
    faint = [3, 0.2, 0.6, 0.6, 0.9, 0.9]  # below the score threshold: not compared
    production = agreement.captured(
        [
            capture_line(b"a", {"prediction": [box]}),
            capture_line(b"b", {"prediction": [box]}),
            capture_line(b"c", {"prediction": []}),
            capture_line(b"only-production", {"prediction": [box]}),
            "not json",
        ]
    )
    shadow = agreement.captured(
        [
            capture_line(b"a", {"prediction": [near, faint]}, base64_answer=True),
            capture_line(b"b", {"prediction": [other_class]}),
            capture_line(b"c", {"prediction": []}),
        ]
    )
    got = agreement.agreement(production, shadow, score_threshold=0.5)
    assert got.pairs == 3  # a, b, c: "only-production" has no partner, the bad line is skipped
    assert got.mean == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert agreement.agreement({}, shadow, score_threshold=0.5) == agreement.Agreement(0, None)


def test_hostile_captures_are_skipped_not_raised() -> None:
    from retraining_operator.reconcile import shadow_agreement as agreement

    deep = "[" * 100_000 + "]" * 100_000  # deeper than the JSON parser goes
    odd = {"prediction": [["inf", 0.9, 0.1, 0.1, 0.5, 0.5], ["nan", 0.9, 0, 0, 1, 1], "x", [1]]}
    production = agreement.captured(
        [deep, capture_line(b"a", odd), capture_line(b"b", {"prediction": "not a list"})]
    )
    shadow = agreement.captured([capture_line(b"a", {"prediction": []}), deep])
    got = agreement.agreement(production, shadow, score_threshold=0.5)
    assert got == agreement.Agreement(1, 1.0)  # request a: no valid box on either side


def test_disagreeing_answers_fail_the_shadow_and_too_few_captures_fail_it_at_the_end() -> None:
    from retraining_operator.reconcile.shadow_agreement import Agreement

    capture = ShadowSpec.model_validate(
        {"dataCapture": {"destinationS3Uri": "s3://cap/x", "minAgreement": 0.8, "minRequests": 10}}
    )
    fine = numbers(200, 60)
    low = shadow.judge(capture, fine, fine, ended=False, agreement=Agreement(50, 0.4))
    assert low.passed is False
    assert "agree with production's on 40.0% of 50 requests" in low.reason
    few = shadow.judge(capture, fine, fine, ended=True, agreement=Agreement(3, 1.0))
    assert few.passed is False
    assert "fewer than dataCapture.minRequests 10" in few.reason
    good = shadow.judge(capture, fine, fine, ended=True, agreement=Agreement(50, 0.95))
    assert good.passed is True
    assert good.agreement == 0.95


def test_data_capture_is_the_experiments_data_storage_config() -> None:
    policy = spec(dataCapture={"destinationS3Uri": "s3://depot-capture/shadow"})
    request = shadow.experiment_request(
        POLICY, policy, run_id="r1", production=PRODUCTION, candidate_model="c", now=NOW
    )
    valid("CreateInferenceExperiment", request)
    assert request["DataStorageConfig"] == {
        "Destination": "s3://depot-capture/shadow",
        "ContentType": {"JsonContentTypes": ["application/json"]},
    }
