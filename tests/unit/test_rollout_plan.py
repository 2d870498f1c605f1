"""Rollout planning (pure): requests, names, the blue/green step machine, manual rollback."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from retraining_operator.api import HistoryEntry, Outcome, RunStage
from retraining_operator.errors import NeedsAttention
from retraining_operator.reconcile.naming import (
    SAGEMAKER_NAME,
    TAG_MANAGED_BY,
    TAG_POLICY_UID,
    TAG_RUN_ID,
    PolicyRef,
)
from retraining_operator.reconcile.rollout.autoscaled import (
    InstanceTypeChange,
    instance_type_changes,
)
from retraining_operator.reconcile.rollout.blue_green import (
    UpdateFacts,
    decide_update,
    endpoint_config_request,
    failed_configs,
)
from retraining_operator.reconcile.rollout.decision import (
    CreateEndpoint,
    Finish,
    RolloutResult,
    UpdateEndpoint,
    Wait,
    history_entry,
    serving_status,
)
from retraining_operator.reconcile.rollout.endpoint import (
    BUSY_STATUSES,
    EndpointView,
    ServedVariant,
    served_model,
)
from retraining_operator.reconcile.rollout.errors import (
    RolloutError,
    UnknownRollbackTarget,
    VariantNotFound,
)
from retraining_operator.reconcile.rollout.guardrails import capacity_size, deployment_config
from retraining_operator.reconcile.rollout.plan import plan_rollout
from retraining_operator.reconcile.rollout.requests import (
    ConfigTarget,
    LiveConfig,
    ModelSource,
    RolloutNames,
    model_request,
    update_endpoint_request,
    user_tags,
)
from retraining_operator.reconcile.rollout.rollback import resolve_rollback_target, rollback_run
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
from unit.training_policies import spec as training_spec

NAMES = RolloutNames.for_run(POLICY, RUN_ID)


def tags_of(request: dict[str, object]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in request["Tags"]}  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------
# Names


def test_names_are_deterministic_valid_and_distinct() -> None:
    again = RolloutNames.for_run(POLICY, RUN_ID)
    assert again == NAMES
    every = [NAMES.model, *NAMES.configs]
    assert len(set(every)) == 4
    for name in every:
        assert SAGEMAKER_NAME.match(name), name
        assert len(name) <= 63, name
    other_policy = RolloutNames.for_run(PolicyRef("vision", "pascal-detector", "other-uid"), RUN_ID)
    assert other_policy.model != NAMES.model
    assert RolloutNames.for_run(POLICY, "r20261125-000000").config != NAMES.config


def test_explicit_model_name_is_kept() -> None:
    assert RolloutNames.for_run(POLICY, "rb20261201-000000", model="older-model").model == (
        "older-model"
    )


# ---------------------------------------------------------------------------------------
# Requests


def test_plan_copies_current_config_and_swaps_only_the_target_variant_model() -> None:
    plan = plan_rollout(
        POLICY,
        spec(),
        run_id=RUN_ID,
        source=ModelSource(MODEL_DATA, IMAGE),
        live=LiveConfig(
            current_config(),
            tags={"team": "vision", "aws:cloudformation:stack-name": "x", TAG_RUN_ID: "old"},
        ),
    )
    model = plan.create_model
    assert model["ModelName"] == NAMES.model
    assert model["PrimaryContainer"] == {"Image": IMAGE, "ModelDataUrl": MODEL_DATA}
    assert model["ExecutionRoleArn"] == spec().training.role_arn
    assert tags_of(model)[TAG_POLICY_UID] == POLICY.uid  # type: ignore[arg-type]

    config = plan.create_endpoint_config
    current = current_config()
    assert config["EndpointConfigName"] == NAMES.config
    assert "EndpointConfigArn" not in config
    assert "CreationTime" not in config
    assert config["DataCaptureConfig"] == current["DataCaptureConfig"]
    assert config["KmsKeyId"] == current["KmsKeyId"]
    target, other = config["ProductionVariants"]
    assert target == {**current["ProductionVariants"][0], "ModelName": NAMES.model}
    assert other == current["ProductionVariants"][1]  # a user's other variant is untouched
    tags = tags_of(config)  # type: ignore[arg-type]
    assert tags["team"] == "vision"
    assert not any(k.startswith("aws:") for k in tags)
    assert tags[TAG_RUN_ID] == RUN_ID  # our ownership tags replace the old config's

    update = plan.update_endpoint
    assert update is not None
    assert update["EndpointName"] == "od-endpoint"
    assert update["EndpointConfigName"] == NAMES.config
    assert plan.create_endpoint is None
    assert set(plan.to_json()) == {"CreateModel", "CreateEndpointConfig", "UpdateEndpoint"}


def test_plan_without_endpoint_is_a_first_deployment() -> None:
    plan = plan_rollout(POLICY, spec(), run_id=RUN_ID, source=ModelSource(MODEL_DATA, IMAGE))
    (variant,) = plan.create_endpoint_config["ProductionVariants"]
    assert variant == {
        "VariantName": "AllTraffic",
        "ModelName": NAMES.model,
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.xlarge",
        "InitialVariantWeight": 1.0,
    }
    assert plan.update_endpoint is None
    assert plan.create_endpoint == {
        "EndpointName": "od-endpoint",
        "EndpointConfigName": NAMES.config,
        "Tags": POLICY.tags(RUN_ID),
    }


def test_plan_refuses_strategy_none_and_bad_artifacts() -> None:
    with pytest.raises(RolloutError, match="strategy is None"):
        plan_rollout(
            POLICY, spec(strategy="None"), run_id=RUN_ID, source=ModelSource(MODEL_DATA, IMAGE)
        )
    with pytest.raises(RolloutError, match="s3://"):
        plan_rollout(POLICY, spec(), run_id=RUN_ID, source=ModelSource("/tmp/m.tgz", IMAGE))


# ---------------------------------------------------------------------------------------
# served_model: the one rule for which variant serves the policy's model


def test_served_model_prefers_the_named_variant() -> None:
    assert served_model(current_config(), "Experimental") == ServedVariant(
        "Experimental", "someone-elses-model"
    )
    assert served_model(current_config(), "AllTraffic") == ServedVariant(
        "AllTraffic", "od-model-2024"
    )


def test_served_model_takes_a_single_variant_whatever_its_name() -> None:
    config = single_variant_config(model="od-model-1")
    config["ProductionVariants"][0]["VariantName"] = "variant-1"
    assert served_model(config, "AllTraffic") == ServedVariant("variant-1", "od-model-1")


def test_served_model_refuses_ambiguity_naming_the_variants() -> None:
    with pytest.raises(
        VariantNotFound, match=r"no production variant 'Blue'.*AllTraffic, Experimental"
    ) as caught:
        served_model(current_config(), "Blue")
    # A person has to act: the policy goes Degraded with this reason.
    assert caught.value.reason == "VariantNotFound"
    assert isinstance(caught.value, NeedsAttention)
    assert isinstance(caught.value, RolloutError)


def test_served_model_of_a_config_without_variants_is_an_error() -> None:
    with pytest.raises(VariantNotFound, match=r"variants: none"):
        served_model({"EndpointConfigName": "empty", "ProductionVariants": []}, "AllTraffic")


def test_rollout_errors_are_needs_attention_with_their_reasons() -> None:
    assert RolloutError("x").reason == "RolloutBlocked"
    assert UnknownRollbackTarget("x").reason == "RollbackTargetUnknown"
    assert isinstance(UnknownRollbackTarget("x"), NeedsAttention)
    assert str(RolloutError("spec problem")) == "spec problem"


def test_blue_green_replaces_a_single_variant_of_another_name() -> None:
    current = single_variant_config()
    current["ProductionVariants"][0]["VariantName"] = "variant-1"
    request = endpoint_config_request(
        ConfigTarget(POLICY, RUN_ID, NAMES.config, NAMES.model), spec(), LiveConfig(current)
    )
    [variant] = request["ProductionVariants"]
    assert (variant["VariantName"], variant["ModelName"]) == ("variant-1", NAMES.model)


def test_user_tags_drop_reserved_and_ownership_keys() -> None:
    assert user_tags([{"Key": "a", "Value": "1"}, {"Key": TAG_MANAGED_BY, "Value": "x"}]) == [
        {"Key": "a", "Value": "1"}
    ]
    assert user_tags(None) == []


def test_endpoint_config_never_exceeds_the_tag_limit() -> None:
    many = {f"k{i}": str(i) for i in range(60)}
    request = endpoint_config_request(
        ConfigTarget(POLICY, RUN_ID, "c", "m"), spec(), LiveConfig(current_config(), tags=many)
    )
    assert len(request["Tags"]) == 50
    assert tags_of(request)[TAG_POLICY_UID] == POLICY.uid  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10%", {"Type": "CAPACITY_PERCENT", "Value": 10}),
        ("50%", {"Type": "CAPACITY_PERCENT", "Value": 50}),
        ("2", {"Type": "INSTANCE_COUNT", "Value": 2}),
    ],
)
def test_capacity_size(text: str, expected: dict[str, object]) -> None:
    assert capacity_size(text) == expected


def test_deployment_config_canary() -> None:
    config = deployment_config(spec().deployment)
    assert config == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 600,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
            },
            "TerminationWaitInSeconds": 600,
            "MaximumExecutionTimeoutInSeconds": 3600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "od-endpoint-5xx"}]},
    }


def test_deployment_config_all_at_once_and_linear() -> None:
    all_at_once = deployment_config(
        spec(blueGreen={"trafficRouting": "AllAtOnce", "waitInterval": "5m"}).deployment
    )
    assert all_at_once is not None
    routing = all_at_once["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300}

    linear = deployment_config(
        spec(
            blueGreen={"trafficRouting": "Linear", "linearStepSize": "1", "waitInterval": "90s"},
            autoRollbackAlarms=[],
        ).deployment
    )
    assert linear is not None
    assert linear["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "LINEAR",
        "WaitIntervalInSeconds": 90,
        "LinearStepSize": {"Type": "INSTANCE_COUNT", "Value": 1},
    }
    assert "AutoRollbackConfiguration" not in linear  # no alarms, no empty list


def test_deployment_config_rolling_and_its_bounds() -> None:
    rolling = deployment_config(
        spec(
            strategy="Rolling",
            rolling={"maximumBatchSize": "25%", "waitInterval": "2m",
                     "rollbackMaximumBatchSize": "1", "maximumExecutionTimeout": "2h"},
        ).deployment
    )  # fmt: skip
    assert rolling == {
        "RollingUpdatePolicy": {
            "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
            "WaitIntervalInSeconds": 120,
            "MaximumExecutionTimeoutInSeconds": 7200,
            "RollbackMaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "od-endpoint-5xx"}]},
    }
    with pytest.raises(RolloutError, match="maximumExecutionTimeout is 1m; SageMaker accepts 600s"):
        deployment_config(
            spec(strategy="Rolling", rolling={"maximumExecutionTimeout": "1m"}).deployment
        )


def test_variant_shift_and_none_send_no_deployment_config() -> None:
    assert deployment_config(spec(strategy="VariantShift").deployment) is None
    request = update_endpoint_request(spec(), config_name="c", guarded=False)
    assert request == {
        "EndpointName": "od-endpoint",
        "EndpointConfigName": "c",
        "RetainAllVariantProperties": True,
    }


def test_live_variant_properties_are_retained_unless_the_policy_opts_out() -> None:
    kept = update_endpoint_request(spec(), config_name="c")
    assert kept["RetainAllVariantProperties"] is True
    assert "ExcludeRetainedVariantProperties" not in kept
    shift = update_endpoint_request(
        spec(excludeRetainedVariantProperties=["DataCaptureConfig"]),
        config_name="c",
        config_weights=True,
    )
    assert shift["ExcludeRetainedVariantProperties"] == [
        {"VariantPropertyType": "DataCaptureConfig"},
        {"VariantPropertyType": "DesiredWeight"},
    ]
    repeated = spec(excludeRetainedVariantProperties=["DesiredWeight", "DesiredWeight"])
    assert update_endpoint_request(repeated, config_name="c", config_weights=True)[
        "ExcludeRetainedVariantProperties"
    ] == [{"VariantPropertyType": "DesiredWeight"}]
    opted_out = update_endpoint_request(spec(retainVariantProperties=False), config_name="c")
    assert "RetainAllVariantProperties" not in opted_out
    assert "ExcludeRetainedVariantProperties" not in opted_out
    with pytest.raises(ValueError, match="excludeRetainedVariantProperties needs"):
        spec(retainVariantProperties=False, excludeRetainedVariantProperties=["DesiredWeight"])


# ---------------------------------------------------------------------------------------
# Endpoint view


def test_endpoint_view_reads_pending_config_weights_and_failure() -> None:
    view = EndpointView.from_describe(
        endpoint(
            "Updating",
            pending="new-config",
            failure="boom",
            variants={"AllTraffic": (1.0, 0.9), "AllTraffic-alt": (0.0, 0.1)},
        )
    )
    assert view.busy
    assert view.pending_config_name == "new-config"
    assert view.failure_reason == "boom"
    alt = view.variant("AllTraffic-alt")
    assert alt is not None
    assert alt.weight == 0.1
    assert view.variant("nope") is None


# ---------------------------------------------------------------------------------------
# The blue/green step machine


def decide(answer: dict[str, object] | None, **kwargs: object):  # type: ignore[no-untyped-def]
    view = EndpointView.from_describe(answer) if answer is not None else None
    args: dict[str, object] = {"run": run(), "now": T0 + timedelta(hours=1)}
    args.update(kwargs)
    return decide_update(UpdateFacts(endpoint=view, config_name=NAMES.config, **args))  # type: ignore[arg-type]


def test_missing_endpoint_is_created_and_recorded() -> None:
    decision = decide(None)
    assert isinstance(decision, CreateEndpoint)
    assert decision.config_name == NAMES.config
    assert decision.run_updates["endpoint_config_name"] == NAMES.config
    assert decision.run_updates["deploy_step_started_at"] == T0 + timedelta(hours=1)


def test_in_service_on_another_config_is_updated_once() -> None:
    decision = decide(endpoint())
    assert isinstance(decision, UpdateEndpoint)
    assert decision.config_name == NAMES.config
    # The next pass, with the request recorded, on the old config again = rolled back.
    recorded = run(endpoint_config_name=NAMES.config, deploy_step_started_at=T0)
    again = decide(endpoint(failure="Alarm od-endpoint-5xx fired"), run=recorded)
    assert isinstance(again, Finish)
    assert again.result is RolloutResult.DEGRADED
    assert again.reason == "Alarm od-endpoint-5xx fired"


@pytest.mark.parametrize("status", sorted(BUSY_STATUSES))
def test_never_updates_a_busy_endpoint(status: str) -> None:
    decision = decide(endpoint(status, pending="someone-elses-config"))
    assert isinstance(decision, Wait)
    assert decision.delay == timedelta(seconds=30)
    assert not decision.run_updates


def test_busy_with_our_pending_config_adopts_the_request() -> None:
    decision = decide(endpoint("Updating", pending=NAMES.config))
    assert isinstance(decision, Wait)
    assert decision.run_updates["endpoint_config_name"] == NAMES.config


def test_in_service_on_our_config_is_serving() -> None:
    decision = decide(endpoint(config=NAMES.config))
    assert isinstance(decision, Finish)
    assert decision.result is RolloutResult.SERVING


def test_a_config_that_failed_in_history_is_never_retried() -> None:
    decision = decide(endpoint(), failed=frozenset({NAMES.config}))
    assert decision.result is RolloutResult.DEGRADED


def test_an_unrecorded_failed_update_is_detected_after_a_crash() -> None:
    # The config exists (created at T0+1m), the endpoint changed later and reports a failure.
    decision = decide(
        endpoint(failure="rolled back", modified=T0 + timedelta(minutes=30)),
        config_created=T0 + timedelta(minutes=1),
    )
    assert decision.result is RolloutResult.DEGRADED
    # An old failure from before our config existed does not block the update.
    old_failure = decide(
        endpoint(failure="old", modified=T0), config_created=T0 + timedelta(minutes=1)
    )
    assert isinstance(old_failure, UpdateEndpoint)


def test_failed_states() -> None:
    assert decide(endpoint("UpdateRollbackFailed")).result is RolloutResult.DEGRADED
    assert decide(endpoint("Failed", failure="bad")).result is RolloutResult.FAILED
    ours_failed = decide(endpoint("Failed", config=NAMES.config, failure="image pull"))
    assert ours_failed.result is RolloutResult.FAILED
    assert ours_failed.reason == "image pull"


def test_failed_configs_from_history() -> None:
    history = [
        HistoryEntry(run_id="a", outcome=Outcome.ROLLED_BACK, endpoint_config_name="c1"),
        HistoryEntry(run_id="b", outcome=Outcome.DEPLOYED, endpoint_config_name="c2"),
        HistoryEntry(run_id="c", outcome=Outcome.FAILED, endpoint_config_name="c3"),
    ]
    assert failed_configs(history) == {"c1", "c3"}


def test_records_of_a_finished_rollout() -> None:
    done = run(model_name=NAMES.model, endpoint_config_name=NAMES.config)
    now = T0 + timedelta(hours=2)
    entry = history_entry(done, result=RolloutResult.SERVING, now=now, reason=None)
    assert entry.outcome is Outcome.DEPLOYED
    assert (entry.model_name, entry.endpoint_config_name) == (NAMES.model, NAMES.config)
    assert entry.metric_value == 0.61
    assert entry.finished_at == now
    serving = serving_status(done, now=now)
    assert serving.model_name == NAMES.model
    assert serving.since == now
    assert RolloutResult.DEGRADED.outcome is Outcome.ROLLED_BACK
    assert RolloutResult.SKIPPED.outcome is Outcome.TRAINED


# ---------------------------------------------------------------------------------------
# Manual rollback


HISTORY = [
    HistoryEntry(run_id="r3", outcome=Outcome.GATE_REJECTED, metric_value=0.2),
    HistoryEntry(
        run_id="r2", outcome=Outcome.DEPLOYED, model_name="m2", model_data_url="s3://b/m2.tgz"
    ),
    HistoryEntry(
        run_id="r1",
        outcome=Outcome.DEPLOYED,
        model_name="m1",
        model_data_url="s3://b/m1.tgz",
        metric_value=0.55,
        training_job_name="tj1",
    ),
]


def test_rollback_target_by_run_id_or_model_name() -> None:
    assert resolve_rollback_target(HISTORY, "r1").model_name == "m1"
    assert resolve_rollback_target(HISTORY, " m2 ").run_id == "r2"


def test_rollback_target_unknown_or_without_model_is_a_clear_error() -> None:
    with pytest.raises(UnknownRollbackTarget, match=r"'r9' names no run id.*r2 \(m2\), r1 \(m1\)"):
        resolve_rollback_target(HISTORY, "r9")
    with pytest.raises(UnknownRollbackTarget, match="r3 ended GateRejected and has no model"):
        resolve_rollback_target(HISTORY, "r3")
    with pytest.raises(UnknownRollbackTarget, match="models in history: none"):
        resolve_rollback_target([], "r1")


def test_rollback_run_reuses_the_model_under_a_new_run_id() -> None:
    now = T0 + timedelta(days=3)
    rb = rollback_run(HISTORY[2], target="r1", now=now)
    assert rb.id == "rb20261127-220500"
    assert rb.stage is RunStage.DEPLOYING
    assert (rb.model_name, rb.model_data_url, rb.metric_value) == ("m1", "s3://b/m1.tgz", 0.55)
    assert rb.trigger == "rollback-to:r1"
    names = RolloutNames.for_run(POLICY, rb.id, model=rb.model_name)
    assert names.model == "m1"
    assert names.config != NAMES.config


# ---------------------------------------------------------------------------------------
# The new Model inherits the serving model's hardening


def hardened_model(**container: Any) -> dict[str, Any]:
    return {
        "ModelName": "od-model-1",
        "PrimaryContainer": {
            "Image": IMAGE,
            "ModelDataUrl": "s3://my-bucket/base/model.tar.gz",
            "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
            **container,
        },
        "VpcConfig": {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0a"]},
        "EnableNetworkIsolation": True,
    }


def new_model(policy_spec: Any, serving: Any, image: str = IMAGE) -> Any:
    return model_request(
        POLICY,
        policy_spec,
        run_id=RUN_ID,
        model_name="m",
        source=ModelSource(MODEL_DATA, image, serving_model=serving),
    )


def test_the_new_model_inherits_vpc_isolation_and_environment() -> None:
    request = new_model(spec(), hardened_model(Mode="SingleModel",
                        ImageConfig={"RepositoryAccessMode": "Platform"}))  # fmt: skip
    assert request["VpcConfig"] == {
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "Subnets": ["subnet-0a"],
    }
    assert request["EnableNetworkIsolation"] is True
    assert request["PrimaryContainer"] == {
        "Image": IMAGE,
        "ModelDataUrl": MODEL_DATA,
        "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
        "Mode": "SingleModel",
        "ImageConfig": {"RepositoryAccessMode": "Platform"},
    }
    plain = new_model(spec(), None)
    assert plain["PrimaryContainer"] == {"Image": IMAGE, "ModelDataUrl": MODEL_DATA}
    assert "VpcConfig" not in plain
    assert "EnableNetworkIsolation" not in plain


def test_inherited_container_settings_apply_only_where_they_fit() -> None:
    served = hardened_model(Mode="MultiModel", ImageConfig={"RepositoryAccessMode": "Vpc"})
    request = new_model(spec(), served, image="123456789012.dkr.ecr.us-east-1.amazonaws.com/x:2")
    assert "Mode" not in request["PrimaryContainer"]  # one model.tar.gz, not a prefix
    assert "ImageConfig" not in request["PrimaryContainer"]  # another image's registry
    assert request["PrimaryContainer"]["Environment"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}


def test_the_training_spec_overrides_the_inherited_vpc_and_isolation() -> None:
    overriding = training_spec(
        vpcConfig={"securityGroupIds": ["sg-1"], "subnets": ["subnet-1", "subnet-2"]},
        enableNetworkIsolation=False,
    )
    request = new_model(overriding, hardened_model())
    assert request["VpcConfig"] == {
        "SecurityGroupIds": ["sg-1"],
        "Subnets": ["subnet-1", "subnet-2"],
    }
    assert request["EnableNetworkIsolation"] is False


def test_an_instance_type_change_is_found_per_same_named_variant() -> None:
    current = single_variant_config()
    target = single_variant_config("c2", "m2")
    assert instance_type_changes(current, target) == []
    target["ProductionVariants"][0]["InstanceType"] = "ml.c5.2xlarge"
    target["ProductionVariants"].append({"VariantName": "Other", "InstanceType": "ml.g5.xlarge"})
    assert instance_type_changes(current, target) == [
        InstanceTypeChange("AllTraffic", "ml.m5.xlarge", "ml.c5.2xlarge")
    ]
