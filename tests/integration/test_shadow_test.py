"""The shadow test (issue 31) in process, over the stand-ins' inference experiments: the
candidate answers a copy of live requests; its p99 latency and errors are judged against the
production variant's on the same minutes before any user sees its answers."""

from __future__ import annotations

from typing import Any

import pytest
from test_controller import Harness, policy_spec

from retraining_operator.api import RetrainingPolicyStatus, RunStage
from retraining_standins.demo import DemoWorld, seed_demo
from retraining_standins.serving import ModelServing
from retraining_standins.stack import AwsStandins

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def world(aws: AwsStandins) -> DemoWorld:
    return seed_demo(aws, 12)


def shadow_spec(world: DemoWorld, **shadow: Any) -> dict[str, Any]:
    spec = policy_spec(world)
    spec["deployment"]["shadow"] = {"duration": "30m", "minInvocations": 200, **shadow}
    return spec


class Serving:
    """The serving (seed) model serves as production does; every candidate as told."""

    def __init__(self, world: DemoWorld) -> None:
        self.production = world.model_data_url
        self.candidate = ModelServing()

    def __call__(self, model_name: str, model_data_url: str) -> ModelServing:
        return ModelServing() if model_data_url == self.production else self.candidate


def ended(count: int) -> Any:
    return lambda s: s.current_run is None and len(s.history) == count


def served_model(aws: AwsStandins, world: DemoWorld) -> str:
    sm = aws.client("sagemaker")
    config = sm.describe_endpoint(EndpointName=world.endpoint_name)["EndpointConfigName"]
    variants = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    return str(variants[0]["ModelName"])


def test_a_slow_candidate_is_stopped_before_any_production_traffic(
    aws: AwsStandins, world: DemoWorld
) -> None:
    serving = Serving(world)
    serving.candidate = ModelServing(p50_ms=60, p99_ms=180)  # 3x production's p99
    aws.sagemaker.set_model_serving(serving)
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.8})
    h = Harness(aws, shadow_spec(world))

    status = h.until(ended(1), seconds=120)
    entry = status.history[0]
    assert entry.outcome.value == "ShadowFailed", entry.reason
    assert entry.shadow is not None
    assert entry.shadow.passed is False
    assert entry.shadow.latency_ratio == pytest.approx(3.0)
    assert entry.shadow.stopping == "Remove"
    failed = [m for _, reason, m in h.events if reason == "ShadowFailed"]
    assert len(failed) == 1
    assert "p99 latency 3.00x production's" in failed[0]
    # The endpoint still serves the old model: no rollout, no promotion.
    assert served_model(aws, world) == world.model_name
    assert aws.log.calls("sagemaker", "UpdateEndpoint") == []
    stops = aws.log.calls("sagemaker", "StopInferenceExperiment")
    assert len(stops) == 1
    assert set(stops[0].params["ModelVariantActions"].values()) == {"Retain", "Remove"}
    [experiment] = aws.sagemaker.inference_experiments()
    assert experiment.status in ("Completed", "Cancelled")


def test_a_good_candidate_goes_shadow_then_canary_then_serving(
    aws: AwsStandins, world: DemoWorld
) -> None:
    aws.sagemaker.set_model_serving(Serving(world))  # the candidate serves like production
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.8})
    h = Harness(aws, shadow_spec(world))

    stages: list[RunStage] = []

    def record(s: RetrainingPolicyStatus) -> bool:
        if s.current_run is not None and (not stages or stages[-1] != s.current_run.stage):
            stages.append(s.current_run.stage)
        return ended(1)(s)

    status = h.until(record, seconds=120)
    entry = status.history[0]
    assert entry.outcome.value == "Deployed", entry.reason
    assert stages.index(RunStage.SHADOW_TESTING) < stages.index(RunStage.DEPLOYING)
    assert entry.shadow is not None
    assert entry.shadow.passed is True
    assert entry.shadow.invocations is not None
    assert entry.shadow.invocations >= 200
    assert "ShadowPassed" in h.reasons()
    # The experiment was created once, named by the run, and stopped with the shadow removed
    # before the blue/green canary (UpdateEndpoint) put the candidate in production.
    created = aws.log.calls("sagemaker", "CreateInferenceExperiment")
    assert len(created) == 1
    assert created[0].params["Name"] == entry.shadow.experiment_name
    stop = aws.log.calls("sagemaker", "StopInferenceExperiment")[0]
    update = aws.log.calls("sagemaker", "UpdateEndpoint")[0]
    assert stop.seq < update.seq
    assert status.serving is not None
    assert served_model(aws, world) == status.serving.model_name


def test_promote_puts_the_shadow_in_production_through_the_experiment(
    aws: AwsStandins, world: DemoWorld
) -> None:
    aws.sagemaker.set_model_serving(Serving(world))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.8})
    h = Harness(aws, shadow_spec(world, promote=True))

    status = h.until(ended(1), seconds=120)
    entry = status.history[0]
    assert entry.outcome.value == "Deployed", entry.reason
    assert entry.reason == "promoted by the shadow test"
    assert aws.log.calls("sagemaker", "UpdateEndpoint") == []  # no second rollout
    assert status.serving is not None
    assert served_model(aws, world) == status.serving.model_name
    described = aws.client("sagemaker").describe_endpoint(EndpointName=world.endpoint_name)
    assert status.serving.endpoint_config_name == described["EndpointConfigName"]


def test_suspend_stops_a_running_shadow_test(aws: AwsStandins, world: DemoWorld) -> None:
    aws.sagemaker.set_model_serving(Serving(world))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.8})
    h = Harness(aws, shadow_spec(world, duration="10h"))
    h.until(
        lambda s: (
            s.current_run is not None
            and s.current_run.shadow is not None
            and s.current_run.shadow.status == "Running"
        ),
        seconds=60,
    )
    h.spec["suspend"] = True
    status = h.until(ended(1), seconds=30)
    assert status.history[0].outcome.value == "Stopped"
    assert "ShadowStopped" in h.reasons()
    assert served_model(aws, world) == world.model_name


def test_plan_shadow_prints_exactly_what_the_operator_sent(
    aws: AwsStandins, world: DemoWorld, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    from datetime import UTC, datetime

    import yaml
    from test_controller import REF

    from retraining_operator.api import API_GROUP, API_VERSION, KIND
    from retraining_operator.cli import main

    sm = aws.client("sagemaker")
    config = sm.describe_endpoint_config(EndpointConfigName=world.endpoint_config_name)
    aws.sagemaker.set_model_serving(Serving(world))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.8})
    spec = shadow_spec(world, samplingPercentage=30, instanceCount=1)
    h = Harness(aws, spec)
    h.until(lambda s: bool(aws.log.calls("sagemaker", "CreateInferenceExperiment")), seconds=60)
    [sent] = aws.log.calls("sagemaker", "CreateInferenceExperiment")
    run = RetrainingPolicyStatus.model_validate(h.status).current_run
    assert run is not None

    policy = tmp_path / "policy.yaml"
    metadata = {"name": REF.name, "namespace": REF.namespace, "uid": REF.uid}
    document = {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "metadata": metadata}
    policy.write_text(yaml.safe_dump({**document, "spec": spec}))
    current = tmp_path / "config.json"
    current.write_text(json.dumps(config, default=str))

    def when(value: Any) -> datetime:  # the log keeps what the wire carried, parsed or not
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, UTC)
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))

    start = when(sent.params["Schedule"]["StartTime"])
    argv = [
        "plan", "shadow", "--policy", str(policy), "--run-id", run.id,
        "--candidate-model", sent.params["ModelVariants"][1]["ModelName"],
        "--current-endpoint-config", str(current), "--start", start.isoformat(),
    ]  # fmt: skip
    assert main(argv) == 0
    planned = json.loads(capsys.readouterr().out)["CreateInferenceExperiment"]

    for request in (planned, sent.params):
        request["Schedule"] = {k: when(v) for k, v in request["Schedule"].items()}
    assert planned == sent.params


def test_the_registry_shows_the_shadow_verdict_beside_the_gate(
    aws: AwsStandins, world: DemoWorld
) -> None:
    serving = Serving(world)
    serving.candidate = ModelServing(p50_ms=60, p99_ms=180)
    aws.sagemaker.set_model_serving(serving)
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.8})
    spec = shadow_spec(world)
    spec["registry"] = {"modelPackageGroupName": "pascal-detectors", "approval": "Automatic"}
    h = Harness(aws, spec)
    status = h.until(ended(1), seconds=120)
    entry = status.history[0]
    assert entry.outcome.value == "ShadowFailed"
    assert entry.model_package_arn
    package = aws.client("sagemaker").describe_model_package(
        ModelPackageName=entry.model_package_arn
    )
    metadata = package["CustomerMetadataProperties"]
    assert metadata["retraining.hitl.dev/shadow"] == "failed"
    assert metadata["retraining.hitl.dev/shadow-latency-ratio"] == "3"
    assert metadata["retraining.hitl.dev/run-id"] == entry.run_id  # the gate's are kept


def test_deletion_stops_a_running_shadow_test_and_releases_the_endpoint(
    aws: AwsStandins, world: DemoWorld
) -> None:
    import copy

    from test_controller import REF

    from retraining_operator.policy_pass.controller import PolicyView

    aws.sagemaker.set_model_serving(Serving(world))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.8})
    h = Harness(aws, shadow_spec(world, duration="10h"))
    h.until(
        lambda s: (
            s.current_run is not None
            and s.current_run.shadow is not None
            and s.current_run.shadow.status == "Running"
        ),
        seconds=60,
    )
    view = PolicyView(REF, 1, {}, copy.deepcopy(h.spec), copy.deepcopy(h.status))
    finalized = h.controller.finalize(view)
    reasons = [e.reason for e in finalized.events]
    assert "ShadowStopped" in reasons
    assert "EndpointReleased" in reasons  # the shadow test had claimed it
    [stop] = aws.log.calls("sagemaker", "StopInferenceExperiment")
    assert set(stop.params["ModelVariantActions"].values()) == {"Retain", "Remove"}


def traffic_images(aws: AwsStandins, world: DemoWorld) -> list[str]:
    """What users send the endpoint: the demo's validation images (they carry their truth)."""
    import json

    text = aws.get_object(world.validation_manifest).decode()
    return [json.loads(line)["source-ref"] for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(("candidate", "passed"), [(0.95, True), (0.15, False)])
def test_data_capture_judges_whether_the_answers_agree(
    aws: AwsStandins, world: DemoWorld, candidate: float, passed: bool
) -> None:
    from retraining_standins.detector import ModelQuality, quality_table

    aws.sagemaker.set_model_serving(Serving(world))
    aws.sagemaker.set_model_quality(
        quality_table({world.model_data_url: ModelQuality(0.95)}, ModelQuality(candidate))
    )
    aws.sagemaker.set_traffic(world.endpoint_name, 100, traffic_images(aws, world))
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.8})
    capture = {"destinationS3Uri": f"s3://{world.bucket}/shadow-capture", "minAgreement": 0.6}
    h = Harness(aws, shadow_spec(world, dataCapture=capture, duration="20m"))
    status = h.until(ended(1), seconds=120)
    entry = status.history[0]
    assert entry.shadow is not None
    assert entry.shadow.agreement_requests is not None
    assert entry.shadow.agreement_requests >= 20
    assert entry.shadow.agreement is not None
    if passed:
        assert entry.outcome.value == "Deployed", entry.reason
        assert entry.shadow.agreement >= 0.6
    else:
        assert entry.outcome.value == "ShadowFailed", entry.reason
        assert "agree with production's" in (entry.reason or "")
        assert entry.shadow.agreement < 0.6
    [created] = aws.log.calls("sagemaker", "CreateInferenceExperiment")
    assert created.params["DataStorageConfig"]["Destination"] == capture["destinationS3Uri"]
