"""AWS contract of the rollout: every request validates against botocore's real service models.

Two layers:

* the pure request builders (`reconcile/rollout/`) — CreateModel, CreateEndpointConfig,
  CreateEndpoint, UpdateEndpoint (ALL_AT_ONCE, CANARY by percent and by count, LINEAR,
  rolling), UpdateEndpointWeightsAndCapacities, the variant-shift configs — checked with
  `botocore.validate.ParamValidator` against `get_service_model("sagemaker")`;
* the gateways (`aws/endpoints.py`, `aws/cloudwatch.py`) and one whole workflow pass —
  botocore `Stubber` with `expected_params` (the Stubber validates every request against
  the model too, and fails on any call that was not expected).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from botocore.validate import ParamValidator

from retraining_operator.aws import cloudwatch
from retraining_operator.aws import endpoints as gateway
from retraining_operator.aws.errors import AlreadyExists, InvalidRequest, Throttled
from retraining_operator.flows.rollout import RolloutRun, advance_rollout
from retraining_operator.reconcile.rollout.decision import RolloutResult
from retraining_operator.reconcile.rollout.plan import plan_rollout
from retraining_operator.reconcile.rollout.requests import (
    ConfigTarget,
    LiveConfig,
    ModelSource,
    RolloutNames,
    update_endpoint_request,
)
from retraining_operator.reconcile.rollout.variant_shift.analysis import METRIC_QUERIES
from retraining_operator.reconcile.rollout.variant_shift.configs import (
    drop_variant_request,
    shift_config_request,
)
from unit.rollout_policies import (
    IMAGE,
    MODEL_DATA,
    POLICY,
    RUN_ID,
    T0,
    current_config,
    endpoint,
    run,
    single_variant_config,
    spec,
)

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
CLOUDWATCH = botocore.session.get_session().get_service_model("cloudwatch")
NAMES = RolloutNames.for_run(POLICY, RUN_ID)
ARN = "arn:aws:sagemaker:us-east-1:111122223333"
M_ARN, C_ARN, E_ARN = f"{ARN}:model/m", f"{ARN}:endpoint-config/c", f"{ARN}:endpoint/od-endpoint"
ARN1, ARN2 = f"{ARN}:model/p-1", f"{ARN}:model/p-2"


def assert_valid(operation: str, params: Any, model: Any = SAGEMAKER) -> None:
    shape = model.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), f"{operation}: {report.generate_report()}"


DEPLOYMENTS = {
    "ALL_AT_ONCE": {"blueGreen": {"trafficRouting": "AllAtOnce", "waitInterval": "5m"}},
    "CANARY-percent": {"blueGreen": {"trafficRouting": "Canary", "canarySize": "10%"}},
    "CANARY-count": {"blueGreen": {"trafficRouting": "Canary", "canarySize": "2"}},
    "LINEAR": {
        "blueGreen": {"trafficRouting": "Linear", "linearStepSize": "20%", "waitInterval": "1m"}
    },
    "ROLLING": {
        "strategy": "Rolling",
        "rolling": {"maximumBatchSize": "1", "rollbackMaximumBatchSize": "50%"},
    },
    "ROLLING-no-alarms": {"strategy": "Rolling", "autoRollbackAlarms": []},
}


@pytest.mark.parametrize("kind", sorted(DEPLOYMENTS))
def test_planned_requests_validate_against_the_sagemaker_model(kind: str) -> None:
    policy_spec = spec(**DEPLOYMENTS[kind])
    plan = plan_rollout(
        POLICY,
        policy_spec,
        run_id=RUN_ID,
        source=ModelSource(MODEL_DATA, IMAGE),
        live=LiveConfig(current_config(), tags={"team": "vision"}),
    )
    assert_valid("CreateModel", plan.create_model)
    assert_valid("CreateEndpointConfig", plan.create_endpoint_config)
    assert plan.update_endpoint is not None
    assert_valid("UpdateEndpoint", plan.update_endpoint)
    config = plan.update_endpoint["DeploymentConfig"]
    if kind.startswith("ROLLING"):
        assert "RollingUpdatePolicy" in config
    else:
        routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
        assert routing["Type"] == kind.split("-")[0]


def test_first_deployment_requests_validate() -> None:
    plan = plan_rollout(POLICY, spec(), run_id=RUN_ID, source=ModelSource(MODEL_DATA, IMAGE))
    assert_valid("CreateEndpointConfig", plan.create_endpoint_config)
    assert_valid("CreateEndpoint", plan.create_endpoint)


def test_variant_shift_requests_validate() -> None:
    shift_spec = spec(strategy="VariantShift")
    shift = shift_config_request(
        ConfigTarget(POLICY, RUN_ID, NAMES.config, NAMES.model),
        shift_spec,
        LiveConfig(current_config()),
    )
    assert_valid("CreateEndpointConfig", shift)
    for config_name, drop, keep in (
        (NAMES.final_config, "AllTraffic", "AllTraffic-alt"),
        (NAMES.rollback_config, "AllTraffic-alt", "AllTraffic"),
    ):
        assert_valid(
            "CreateEndpointConfig",
            drop_variant_request(
                ConfigTarget(POLICY, RUN_ID, config_name, NAMES.model),
                LiveConfig(dict(shift)),
                drop=drop,
                keep=keep,
            ),
        )
    assert_valid(
        "UpdateEndpoint", update_endpoint_request(shift_spec, config_name="c", guarded=False)
    )
    assert_valid(
        "UpdateEndpointWeightsAndCapacities",
        {
            "EndpointName": "od-endpoint",
            "DesiredWeightsAndCapacities": [
                {"VariantName": "AllTraffic", "DesiredWeight": 1.0},
                {"VariantName": "AllTraffic-alt", "DesiredWeight": 0.0},
            ],
        },
    )


# ---------------------------------------------------------------------------------------
# Gateways with Stubber


@pytest.fixture
def sm() -> Any:
    return boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="y")  # fmt: skip


@pytest.fixture
def cw() -> Any:
    return boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="y")  # fmt: skip


def test_create_and_update_calls_send_exactly_the_planned_requests(sm: Any) -> None:
    plan = plan_rollout(
        POLICY,
        spec(),
        run_id=RUN_ID,
        source=ModelSource(MODEL_DATA, IMAGE),
        live=LiveConfig(current_config()),
    )
    assert plan.update_endpoint is not None
    with Stubber(sm) as stub:
        stub.add_response("create_model", {"ModelArn": M_ARN}, dict(plan.create_model))
        stub.add_response(
            "create_endpoint_config", {"EndpointConfigArn": C_ARN},
            dict(plan.create_endpoint_config),
        )  # fmt: skip
        stub.add_response("update_endpoint", {"EndpointArn": E_ARN}, dict(plan.update_endpoint))
        assert gateway.create_model(sm, plan.create_model) == M_ARN
        assert gateway.create_endpoint_config(sm, plan.create_endpoint_config) == C_ARN
        assert gateway.update_endpoint(sm, plan.update_endpoint) == E_ARN
        stub.assert_no_pending_responses()


def test_errors_are_typed(sm: Any) -> None:
    with Stubber(sm) as stub:
        stub.add_client_error(
            "describe_endpoint", "ValidationException",
            'Could not find endpoint "arn:aws:sagemaker:us-east-1:1:endpoint/x".',
            expected_params={"EndpointName": "x"},
        )  # fmt: skip
        assert gateway.find_endpoint(sm, "x") is None
        stub.add_client_error(
            "create_model", "ValidationException",
            'Cannot create already existing model "arn:aws:sagemaker:us-east-1:1:model/m".',
        )  # fmt: skip
        with pytest.raises(AlreadyExists):
            gateway.create_model(sm, {"ModelName": "m"})
        stub.add_client_error(
            "update_endpoint", "ValidationException",
            'Cannot update in-progress endpoint "arn:aws:sagemaker:us-east-1:1:endpoint/e".',
        )  # fmt: skip
        with pytest.raises(gateway.EndpointBusy):
            gateway.update_endpoint(sm, {"EndpointName": "e", "EndpointConfigName": "c"})
        stub.add_client_error(
            "update_endpoint", "ValidationException", "Alarm foo does not satisfy ..."
        )
        with pytest.raises(InvalidRequest) as refused:
            gateway.update_endpoint(sm, {"EndpointName": "e", "EndpointConfigName": "c"})
        assert not isinstance(refused.value, gateway.EndpointBusy)
        stub.add_client_error("delete_model", "ValidationException", "Could not find model m.")
        assert gateway.delete_model(sm, "m") is False
        stub.add_client_error("list_models", "ThrottlingException", "Rate exceeded", 400)
        with pytest.raises(Throttled):
            gateway.list_models(sm, name_contains="p")


def test_listing_is_paginated_and_tag_filtered(sm: Any) -> None:
    with Stubber(sm) as stub:
        stub.add_response(
            "list_models",
            {"Models": [{"ModelName": "p-1", "ModelArn": ARN1, "CreationTime": T0}],
             "NextToken": "t"},
            {"NameContains": "p", "MaxResults": 100},
        )  # fmt: skip
        stub.add_response(
            "list_models",
            {"Models": [{"ModelName": "p-2", "ModelArn": ARN2, "CreationTime": T0}]},
            {"NameContains": "p", "MaxResults": 100, "NextToken": "t"},
        )  # fmt: skip
        listed = gateway.list_models(sm, name_contains="p")
        assert [m.name for m in listed] == ["p-1", "p-2"]
        stub.add_response(
            "list_tags", {"Tags": [{"Key": "owner", "Value": "us"}]},
            {"ResourceArn": ARN1, "MaxResults": 100},
        )  # fmt: skip
        stub.add_response(
            "list_tags", {"Tags": [{"Key": "owner", "Value": "them"}]},
            {"ResourceArn": ARN2, "MaxResults": 100},
        )  # fmt: skip
        assert [m.name for m in gateway.list_tagged(sm, listed, {"owner": "us"})] == ["p-1"]
        stub.assert_no_pending_responses()


def test_metric_queries_and_alarm_states(cw: Any) -> None:
    queries = [cloudwatch.MetricQuery(k, m, s) for k, m, s in METRIC_QUERIES]
    start, end = T0, T0 + timedelta(minutes=10)
    expected_queries = [
        {
            "Id": f"v{vi}q{qi}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SageMaker",
                    "MetricName": metric,
                    "Dimensions": [
                        {"Name": "EndpointName", "Value": "od-endpoint"},
                        {"Name": "VariantName", "Value": variant},
                    ],
                },
                "Period": 60,
                "Stat": stat,
            },
            "ReturnData": True,
        }
        for vi, variant in enumerate(["AllTraffic", "AllTraffic-alt"])
        for qi, (_, metric, stat) in enumerate(METRIC_QUERIES)
    ]
    with Stubber(cw) as stub:
        stub.add_response(
            "get_metric_data",
            {
                "MetricDataResults": [
                    {"Id": "v1q0", "Timestamps": [T0], "Values": [100.0], "StatusCode": "Complete"},
                    {"Id": "v1q1", "Timestamps": [T0], "Values": [3.0], "StatusCode": "Complete"},
                ]
            },
            {"MetricDataQueries": expected_queries, "StartTime": start, "EndTime": end,
             "ScanBy": "TimestampAscending"},
        )  # fmt: skip
        series = cloudwatch.variant_series(cw, cloudwatch.SeriesRequest(
            namespace="AWS/SageMaker", endpoint_name="od-endpoint",
            variants=["AllTraffic", "AllTraffic-alt"], queries=queries, start=start, end=end,
        ))  # fmt: skip
        assert series["AllTraffic-alt"]["invocations"] == [(T0, 100.0)]
        assert series["AllTraffic-alt"]["errors5xx"] == [(T0, 3.0)]
        assert series["AllTraffic"]["invocations"] == []
        stub.add_response(
            "describe_alarms",
            {"MetricAlarms": [
                {"AlarmName": "a", "StateValue": "ALARM"},
                {"AlarmName": "b", "StateValue": "OK"},
            ]},
            {"AlarmNames": ["a", "b"], "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]},
        )  # fmt: skip
        assert cloudwatch.firing_alarms(cw, ["a", "b"]) == ["a"]
        stub.assert_no_pending_responses()
    for query in expected_queries:
        assert_valid(
            "GetMetricData",
            {"MetricDataQueries": [query], "StartTime": start, "EndTime": end},
            CLOUDWATCH,
        )


# ---------------------------------------------------------------------------------------
# One workflow pass, call by call


class StubSession:
    def __init__(self, sm: Any, cw: Any | None = None) -> None:
        self._sm, self._cw = sm, cw

    def sagemaker(self) -> Any:
        return self._sm

    def cloudwatch(self) -> Any:
        return self._cw


SERVING_MODEL: dict[str, Any] = {
    "ModelName": "od-model-1",
    "ModelArn": "arn:aws:sagemaker:us-east-1:111122223333:model/od-model-1",
    "CreationTime": T0,
    "ExecutionRoleArn": "arn:aws:iam::111122223333:role/SageMakerExecution",
    "PrimaryContainer": {
        "Image": IMAGE,
        "ModelDataUrl": "s3://my-bucket/base/model.tar.gz",
        "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
        "Mode": "SingleModel",
        "ImageConfig": {"RepositoryAccessMode": "Platform"},
    },
    "VpcConfig": {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0a1b2c3d"]},
    "EnableNetworkIsolation": True,
}


def test_one_canary_pass_describes_first_then_creates_and_updates_once(sm: Any) -> None:
    policy_spec = spec()
    current = single_variant_config()
    plan = plan_rollout(
        POLICY,
        policy_spec,
        run_id=RUN_ID,
        source=ModelSource(MODEL_DATA, IMAGE, serving_model=SERVING_MODEL),
        live=LiveConfig(current, tags={"team": "vision"}),
    )
    assert plan.create_model["EnableNetworkIsolation"] is True
    assert plan.update_endpoint is not None
    missing = "Could not find model."
    with Stubber(sm) as stub:
        stub.add_client_error("describe_model", "ValidationException", missing,
                              expected_params={"ModelName": NAMES.model})  # fmt: skip
        # The serving model (its hardening is inherited): endpoint -> config -> model.
        stub.add_response("describe_endpoint", endpoint(), {"EndpointName": "od-endpoint"})
        stub.add_response(
            "describe_endpoint_config", current, {"EndpointConfigName": "od-config-1"}
        )
        stub.add_response("describe_model", SERVING_MODEL, {"ModelName": "od-model-1"})
        stub.add_response("create_model", {"ModelArn": M_ARN}, dict(plan.create_model))
        # Each resource is described once per pass (the rollout context): the endpoint and
        # its current config above serve the decision and the new config too.
        endpoint_arn = endpoint()["EndpointArn"]
        stub.add_client_error(
            "describe_endpoint_config", "ValidationException",
            "Could not find endpoint configuration.",
            expected_params={"EndpointConfigName": NAMES.config},
        )  # fmt: skip
        # Before the first change: whose endpoint is it? Nobody's yet: claim it.
        stub.add_response("list_tags", {"Tags": []},
                          {"ResourceArn": endpoint_arn, "MaxResults": 100})  # fmt: skip
        owner = [{"Key": "retraining.hitl.dev/endpoint-owner", "Value": POLICY.uid}]
        stub.add_response("add_tags", {}, {"ResourceArn": endpoint_arn, "Tags": owner})
        stub.add_response(
            "list_tags", {"Tags": [{"Key": "team", "Value": "vision"}]},
            {"ResourceArn": current["EndpointConfigArn"], "MaxResults": 100},
        )  # fmt: skip
        stub.add_response(
            "create_endpoint_config", {"EndpointConfigArn": C_ARN},
            dict(plan.create_endpoint_config),
        )  # fmt: skip
        stub.add_response("update_endpoint", {"EndpointArn": E_ARN}, dict(plan.update_endpoint))
        progress = advance_rollout(
            StubSession(sm),
            RolloutRun(POLICY, policy_spec, run(), image=IMAGE),
            T0 + timedelta(hours=1),
        )
        stub.assert_no_pending_responses()
    assert not progress.done
    assert progress.actions == (
        f"CreateModel {NAMES.model}",
        f"AddTags od-endpoint retraining.hitl.dev/endpoint-owner={POLICY.uid}",
        f"CreateEndpointConfig {NAMES.config}",
        f"UpdateEndpoint od-endpoint -> {NAMES.config}",
    )
    assert progress.run.endpoint_config_name == NAMES.config
    assert progress.run.deploy_step_started_at == T0 + timedelta(hours=1)
    assert progress.retry_after == timedelta(seconds=30)

    # The next pass, endpoint still Updating: describe only, no changing call at all.
    with Stubber(sm) as stub:
        stub.add_response("describe_model", {
            "ModelName": NAMES.model, "ModelArn": M_ARN, "CreationTime": T0,
            "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": MODEL_DATA},
        }, {"ModelName": NAMES.model})  # fmt: skip
        stub.add_response(
            "describe_endpoint", endpoint("Updating", pending=NAMES.config),
            {"EndpointName": "od-endpoint"},
        )  # fmt: skip
        waiting = advance_rollout(
            StubSession(sm),
            RolloutRun(POLICY, policy_spec, progress.run),
            T0 + timedelta(hours=1, minutes=1),
        )
        stub.assert_no_pending_responses()
    assert waiting.actions == ()
    assert "Updating" in waiting.message
    assert waiting.result is None

    # InService on our config: Serving, with the history entry.
    with Stubber(sm) as stub:
        stub.add_response("describe_model", {
            "ModelName": NAMES.model, "ModelArn": M_ARN, "CreationTime": T0,
            "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": MODEL_DATA},
        }, {"ModelName": NAMES.model})  # fmt: skip
        stub.add_response(
            "describe_endpoint", endpoint(config=NAMES.config), {"EndpointName": "od-endpoint"}
        )
        done = advance_rollout(
            StubSession(sm), RolloutRun(POLICY, policy_spec, waiting.run), T0 + timedelta(hours=2)
        )
    assert done.result is RolloutResult.SERVING
    assert done.serving is not None
    assert done.serving.model_name == NAMES.model
    assert done.history_entry is not None
    assert done.history_entry.endpoint_config_name == NAMES.config
    assert done.history_entry.metric_value == 0.61


def test_an_existing_model_with_other_artifacts_is_refused(sm: Any) -> None:
    from retraining_operator.reconcile.rollout.errors import RolloutError

    with Stubber(sm) as stub:
        stub.add_response("describe_model", {
            "ModelName": NAMES.model, "ModelArn": M_ARN, "CreationTime": T0,
            "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": "s3://other/model.tar.gz"},
        }, {"ModelName": NAMES.model})  # fmt: skip
        with pytest.raises(RolloutError, match="exists with artifacts s3://other"):
            advance_rollout(StubSession(sm), RolloutRun(POLICY, spec(), run(), image=IMAGE), T0)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# `plan rollout --current-endpoint --current-model`: the live state, for every strategy

LIVE_STRATEGIES = {
    "BlueGreen-canary": {},
    "Rolling": {"strategy": "Rolling", "rolling": {"maximumBatchSize": "1"}},
    "VariantShift": {"strategy": "VariantShift"},
}


@pytest.mark.parametrize("kind", sorted(LIVE_STRATEGIES))
def test_plan_rollout_with_the_live_state_validates_for_every_strategy(
    kind: str, tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import yaml

    from retraining_operator.cli import main
    from unit.rollout_policies import CURRENT_CONFIG_FILE, document

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # no AWS call may happen
    raw = document()
    if kind != "BlueGreen-canary":
        raw["spec"]["deployment"].pop("blueGreen", None)
    raw["spec"]["deployment"].update(LIVE_STRATEGIES[kind])
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(raw))
    grown = endpoint()
    grown["ProductionVariants"][0].update(CurrentInstanceCount=6, DesiredInstanceCount=6)
    (tmp_path / "endpoint.json").write_text(json.dumps(grown, default=str))
    (tmp_path / "model.json").write_text(json.dumps(SERVING_MODEL, default=str))

    assert main([
        "plan", "rollout", "--policy", str(policy), "--model-data", MODEL_DATA,
        "--current-endpoint-config", str(CURRENT_CONFIG_FILE), "--run-id", RUN_ID,
        "--current-endpoint", str(tmp_path / "endpoint.json"),
        "--current-model", str(tmp_path / "model.json"),
    ]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    for operation, request in out.items():
        assert_valid(operation, request)
    model = out["CreateModel"]
    assert model["VpcConfig"] == SERVING_MODEL["VpcConfig"]
    assert model["EnableNetworkIsolation"] is True
    assert model["PrimaryContainer"]["Environment"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    assert model["PrimaryContainer"]["ModelDataUrl"] == MODEL_DATA
    update = out["UpdateEndpoint"]
    assert update["RetainAllVariantProperties"] is True
    variants = {v["VariantName"]: v for v in out["CreateEndpointConfig"]["ProductionVariants"]}
    if kind == "VariantShift":
        assert update["ExcludeRetainedVariantProperties"] == [
            {"VariantPropertyType": "DesiredWeight"}
        ]
        # The new variant starts at the old one's live (autoscaled) count, not the config's 2.
        assert variants["AllTraffic-alt"]["InitialInstanceCount"] == 6
    else:
        assert "ExcludeRetainedVariantProperties" not in update
        assert variants["AllTraffic"]["InitialInstanceCount"] == 2  # live count is retained


@pytest.mark.parametrize(
    ("flag", "body"),
    [
        ("--current-endpoint", "[1, 2]"),
        ("--current-endpoint", '{"EndpointName": "x"}'),
        ("--current-endpoint", '{"EndpointName": "x", "EndpointStatus": "InService", '
                               '"ProductionVariants": [{"CurrentWeight": 1}]}'),
        ("--current-model", '"a string"'),
        ("--current-model", '{"PrimaryContainer": [1]}'),
        ("--current-model", "{" * 5000),
    ],
)  # fmt: skip
def test_plan_rollout_refuses_a_malformed_live_state(
    flag: str, body: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from retraining_operator.cli import main
    from unit.rollout_policies import CURRENT_CONFIG_FILE, PASCAL

    hostile = tmp_path / "live.json"
    hostile.write_text(body)
    code = main([
        "plan", "rollout", "--policy", str(PASCAL), "--model-data", MODEL_DATA,
        "--current-endpoint-config", str(CURRENT_CONFIG_FILE), "--run-id", RUN_ID,
        "--image", IMAGE, flag, str(hostile),
    ])  # fmt: skip
    assert code == 2
    assert flag in capsys.readouterr().err
