"""The pure request builder: the seed's training cell, spot, tuning, names, errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pydantic
import pytest

from retraining_operator.api import CurrentRun, RunSamples, RunStage
from retraining_operator.flows.training import planned_job, training_image_uri
from retraining_operator.reconcile.naming import SAGEMAKER_NAME, PolicyRef
from retraining_operator.reconcile.training_request import (
    TrainingData,
    TrainingSpecError,
    checkpoint_s3_uri,
    merged_hyperparameters,
    overridden_hyperparameters,
    parameter_ranges,
    training_job_request,
    tuning_job_request,
)
from unit.training_policies import (
    DATA,
    IMAGE,
    POLICY,
    RUN_ID,
    SEED_HYPERPARAMETERS,
    SEED_MAX_RUN,
    TUNING,
    spec,
)


def test_seed_training_cell_reproduced() -> None:
    request = training_job_request(spec(), POLICY, RUN_ID, DATA, image_uri=IMAGE)

    assert request["HyperParameters"] == {**SEED_HYPERPARAMETERS, "num_training_samples": "400"}
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": IMAGE,
        "TrainingInputMode": "Pipe",
    }
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.p3.2xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 50,
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": SEED_MAX_RUN}
    assert request["OutputDataConfig"] == {
        "S3OutputPath": "s3://my-bucket/a2i-results/incremental-training"
    }
    assert request["RoleArn"] == "arn:aws:iam::111122223333:role/SageMakerExecution"
    assert "EnableManagedSpotTraining" not in request
    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    assert list(channels) == ["train", "validation", "model"]
    for name, uri in (
        ("train", DATA.train_manifest_s3_uri),
        ("validation", DATA.validation_manifest_s3_uri),
    ):
        assert channels[name] == {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "AugmentedManifestFile",
                    "S3Uri": uri,
                    "S3DataDistributionType": "FullyReplicated",
                    "AttributeNames": ["source-ref", "a2i-retraining"],
                }
            },
            "ContentType": "application/x-recordio",
            "RecordWrapperType": "RecordIO",
        }
    assert channels["model"] == {
        "ChannelName": "model",
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": "s3://my-bucket/model/model.tar.gz",
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "ContentType": "application/x-sagemaker-model",
        "InputMode": "File",
    }


def test_name_and_tags_link_job_to_policy_and_run() -> None:
    request = training_job_request(spec(), POLICY, RUN_ID, DATA, image_uri=IMAGE)

    assert request["TrainingJobName"] == POLICY.training_job_name(RUN_ID)
    assert request["TrainingJobName"].startswith("pascal-detector-r20261124-220500-tj-")
    tags = {t["Key"]: t["Value"] for t in request["Tags"]}
    assert tags == {
        "retraining.hitl.dev/managed-by": "a2i-retraining-operator",
        "retraining.hitl.dev/namespace": "vision",
        "retraining.hitl.dev/policy": "pascal-detector",
        "retraining.hitl.dev/policy-uid": POLICY.uid,
        "retraining.hitl.dev/run-id": RUN_ID,
    }
    # Deterministic: the same inputs give the same request.
    assert training_job_request(spec(), POLICY, RUN_ID, DATA, image_uri=IMAGE) == request


def test_operator_hyperparameters_always_win() -> None:
    policy_spec = spec(
        hyperParameters={
            "use_pretrained_model": "1",
            "num_training_samples": "99999",
            "num_classes": "7",
            "epochs": "30",
        }
    )
    merged = merged_hyperparameters(policy_spec, 123)

    assert merged["use_pretrained_model"] == "0"
    assert merged["num_training_samples"] == "123"
    assert merged["num_classes"] == "7"  # the policy's value wins over the default
    assert merged["epochs"] == "30"
    assert overridden_hyperparameters(policy_spec) == [
        "num_training_samples",
        "use_pretrained_model",
    ]


def test_num_classes_defaults_to_label_classes() -> None:
    merged = merged_hyperparameters(spec(hyperParameters={"epochs": "2"}), 10)
    assert merged == {
        "num_classes": "20",
        "epochs": "2",
        "use_pretrained_model": "0",
        "num_training_samples": "10",
    }


def test_no_training_samples_is_an_error() -> None:
    with pytest.raises(TrainingSpecError, match="0 samples"):
        training_job_request(
            spec(),
            POLICY,
            RUN_ID,
            TrainingData("s3://b/t.manifest", "s3://b/v.manifest", 0, "s3://b/m.tar.gz"),
            image_uri=IMAGE,
        )


def test_too_many_hyperparameters_after_operator_additions() -> None:
    # 98 of the policy's own + num_classes, use_pretrained_model, num_training_samples = 101:
    # refused with the spec, before any run (the CRD says the same in CEL).
    many = {f"p{i}": "1" for i in range(98)}
    with pytest.raises(pydantic.ValidationError, match="SageMaker allows 100"):
        spec(hyperParameters=many)
    fits = {f"p{i}": "1" for i in range(97)}
    assert len(merged_hyperparameters(spec(hyperParameters=fits), 5)) == 100


def test_missing_base_model_is_an_error() -> None:
    data = TrainingData("s3://b/t.manifest", "s3://b/v.manifest", 5)
    with pytest.raises(TrainingSpecError, match="no base model"):
        training_job_request(spec(), POLICY, RUN_ID, data, image_uri=IMAGE)


def test_spot_training() -> None:
    policy_spec = spec(
        maxRuntime="2h",
        spot={"enabled": True, "maxWait": "3h", "checkpointS3Uri": "s3://my-bucket/ckpt/"},
    )
    request = training_job_request(policy_spec, POLICY, RUN_ID, DATA, image_uri=IMAGE)

    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 7200,
        "MaxWaitTimeInSeconds": 10800,
    }
    assert request["CheckpointConfig"] == {
        "S3Uri": f"s3://my-bucket/ckpt/{request['TrainingJobName']}"
    }


def test_spot_without_checkpoint_uri_checkpoints_under_output() -> None:
    policy_spec = spec(maxRuntime="2h", spot={"enabled": True, "maxWait": "2h"})
    request = training_job_request(policy_spec, POLICY, RUN_ID, DATA, image_uri=IMAGE)

    stopping = request["StoppingCondition"]
    assert stopping.get("MaxWaitTimeInSeconds", 0) >= stopping.get("MaxRuntimeInSeconds", 1)
    assert request["CheckpointConfig"]["S3Uri"] == (
        "s3://my-bucket/a2i-results/incremental-training/checkpoints/" + request["TrainingJobName"]
    )
    assert checkpoint_s3_uri(policy_spec.training, "job") == (
        "s3://my-bucket/a2i-results/incremental-training/checkpoints/job"
    )


def test_explicit_image_wins_over_algorithm() -> None:
    raw = spec().model_dump(by_alias=True, exclude_none=True)
    raw["training"].pop("algorithm")
    raw["training"]["image"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-od:2"
    from retraining_operator.api import RetrainingPolicySpec

    explicit = RetrainingPolicySpec.model_validate(raw)

    assert training_image_uri(explicit) == "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-od:2"
    assert training_image_uri(spec()) == IMAGE


def test_image_follows_policy_region() -> None:
    tuning_spec = spec(TUNING)  # eu-west-1
    assert training_image_uri(tuning_spec) == (
        "685385470294.dkr.ecr.eu-west-1.amazonaws.com/object-detection:1"
    )


def test_long_policy_names_stay_valid_and_unique() -> None:
    long_name = "a" * 200 + ".detector." + "b" * 40
    first = PolicyRef(namespace="n" * 63, name=long_name, uid="uid-1")
    second = PolicyRef(namespace="n" * 63, name=long_name, uid="uid-2")

    names = {
        first.training_job_name(RUN_ID),
        second.training_job_name(RUN_ID),
        first.training_job_name("r20261124-220501"),
    }
    assert len(names) == 3
    for name in names:
        assert len(name) <= 63
        assert SAGEMAKER_NAME.fullmatch(name)
    for tuning_name in (first.tuning_job_name(RUN_ID), second.tuning_job_name(RUN_ID)):
        assert len(tuning_name) <= 32
        assert SAGEMAKER_NAME.fullmatch(tuning_name)
    assert first.tuning_job_name(RUN_ID) != second.tuning_job_name(RUN_ID)


def test_plan_uid_is_stable_and_tag_safe() -> None:
    a = PolicyRef.without_uid("vision", "x" * 253)
    assert a == PolicyRef.without_uid("vision", "x" * 253)
    assert a.uid != PolicyRef.without_uid("other", "x" * 253).uid
    assert len(a.uid) <= 256
    assert all(len(tag["Value"]) <= 256 for tag in a.tags(RUN_ID))


def test_tuning_request() -> None:
    tuning_spec = spec(TUNING)
    request = tuning_job_request(tuning_spec, POLICY, RUN_ID, DATA, image_uri=IMAGE)

    assert request["HyperParameterTuningJobName"] == POLICY.tuning_job_name(RUN_ID)
    assert len(request["HyperParameterTuningJobName"]) <= 32
    config = request["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize",
        "MetricName": "validation:mAP",
    }
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2}
    assert config.get("TrainingJobEarlyStoppingType") == "Auto"
    assert config.get("ParameterRanges") == {
        "ContinuousParameterRanges": [
            {
                "Name": "learning_rate",
                "MinValue": "1e-05",
                "MaxValue": "0.001",
                "ScalingType": "Logarithmic",
            },
            {
                "Name": "lr_scheduler_factor",
                "MinValue": "0.05",
                "MaxValue": "0.5",
                "ScalingType": "Auto",
            },
        ],
        "IntegerParameterRanges": [
            {"Name": "mini_batch_size", "MinValue": "8", "MaxValue": "32", "ScalingType": "Auto"}
        ],
    }
    definition = request["TrainingJobDefinition"]
    static = definition.get("StaticHyperParameters", {})
    assert "learning_rate" not in static
    assert "mini_batch_size" not in static
    assert "lr_scheduler_factor" not in static
    assert static["use_pretrained_model"] == "0"
    assert static["num_training_samples"] == "400"
    assert static["num_classes"] == "5"
    assert static["image_shape"] == "512"
    # Same channels as a single job; spot settings carried over.
    single = training_job_request(tuning_spec, POLICY, RUN_ID, DATA, image_uri=IMAGE)
    assert definition.get("InputDataConfig") == single["InputDataConfig"]
    assert definition.get("EnableManagedSpotTraining") is True
    assert definition["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 12 * 3600,
        "MaxWaitTimeInSeconds": 24 * 3600,
    }
    assert request["Tags"] == single["Tags"]


def test_tuning_gate_metric_is_the_objective() -> None:
    raw = spec(TUNING).model_dump(by_alias=True, exclude_none=True)
    raw["gate"]["metric"] = "validation:custom"
    from retraining_operator.api import RetrainingPolicySpec

    request = tuning_job_request(
        RetrainingPolicySpec.model_validate(raw), POLICY, RUN_ID, DATA, image_uri=IMAGE
    )
    objective = request["HyperParameterTuningJobConfig"].get("HyperParameterTuningJobObjective")
    assert objective == {"Type": "Maximize", "MetricName": "validation:custom"}


def test_categorical_range_for_scheduler_steps() -> None:
    from retraining_operator.api import ParameterRange

    ranges = parameter_ranges(
        {"lr_scheduler_step": ParameterRange(type="Categorical", values=["3,6", "5,10"])}
    )
    assert ranges == {
        "CategoricalParameterRanges": [{"Name": "lr_scheduler_step", "Values": ["3,6", "5,10"]}]
    }


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ({"use_pretrained_model": {"type": "Integer", "min": 0, "max": 1}}, "set by the operator"),
        ({"learning_rate": {"min": 0, "max": 0.1, "scaling": "Logarithmic"}}, "min > 0"),
        (
            {"momentum": {"min": 0.1, "max": 1.0, "scaling": "ReverseLogarithmic"}},
            "max < 1",
        ),
    ],
)
def test_bad_tuning_ranges_are_spec_errors(ranges: dict[str, object], message: str) -> None:
    tuning_spec = spec(TUNING, tuning={"maxJobs": 2, "maxParallelJobs": 1, "ranges": ranges})
    with pytest.raises(TrainingSpecError, match=message):
        tuning_job_request(tuning_spec, POLICY, RUN_ID, DATA, image_uri=IMAGE)


def test_a_fractional_integer_range_is_refused_with_the_spec() -> None:
    ranges = {"mini_batch_size": {"type": "Integer", "min": 1.5, "max": 8}}
    with pytest.raises(pydantic.ValidationError, match="whole-number min and max"):
        spec(TUNING, tuning={"maxJobs": 2, "maxParallelJobs": 1, "ranges": ranges})


def test_planned_job_kind_follows_tuning() -> None:
    assert planned_job(spec(), POLICY, RUN_ID).name == POLICY.training_job_name(RUN_ID)
    tuned = planned_job(spec(TUNING), POLICY, RUN_ID)
    assert tuned.kind.value == "HyperParameterTuningJob"
    assert tuned.name == POLICY.tuning_job_name(RUN_ID)


def test_training_data_from_run() -> None:
    run = CurrentRun(
        id=RUN_ID,
        stage=RunStage.TRAINING,
        started_at=datetime(2026, 11, 24, 22, 5, tzinfo=UTC),
        manifest_s3_uri="s3://b/train.manifest",
        validation_manifest_s3_uri="s3://b/validation.manifest",
        base_model_data_url="s3://b/model.tar.gz",
        samples=RunSamples(new=100, replay=300, validation=12, train=400),
    )
    data = TrainingData.from_run(run)
    assert data == TrainingData(
        "s3://b/train.manifest", "s3://b/validation.manifest", 400, "s3://b/model.tar.gz"
    )
    with pytest.raises(TrainingSpecError, match="no train/validation manifest"):
        TrainingData.from_run(run.model_copy(update={"manifest_s3_uri": None}))


HARDENED = {
    "vpcConfig": {"securityGroupIds": ["sg-0123456789abcdef0"], "subnets": ["subnet-0a1b2c3d"]},
    "enableNetworkIsolation": True,
    "outputKmsKeyId": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef",
    "volumeKmsKeyId": "alias/training-volumes",
}


def test_hardened_training_job_and_tuning_definition() -> None:
    policy_spec = spec(**HARDENED)
    job = training_job_request(policy_spec, POLICY, RUN_ID, DATA, image_uri=IMAGE)
    vpc = {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0a1b2c3d"]}
    assert job["VpcConfig"] == vpc
    assert job["EnableNetworkIsolation"] is True
    assert job["OutputDataConfig"]["KmsKeyId"] == HARDENED["outputKmsKeyId"]
    assert job["ResourceConfig"]["VolumeKmsKeyId"] == "alias/training-volumes"
    tuning = tuning_job_request(spec(TUNING, **HARDENED), POLICY, RUN_ID, DATA,
                                image_uri=IMAGE)  # fmt: skip
    definition = tuning["TrainingJobDefinition"]
    assert definition["VpcConfig"] == vpc
    assert definition["OutputDataConfig"]["KmsKeyId"] == HARDENED["outputKmsKeyId"]
    plain = training_job_request(spec(), POLICY, RUN_ID, DATA, image_uri=IMAGE)
    assert "VpcConfig" not in plain
    assert "EnableNetworkIsolation" not in plain
    assert "KmsKeyId" not in plain["OutputDataConfig"]


@pytest.mark.parametrize(
    "hostile",
    [
        {"vpcConfig": {"securityGroupIds": [], "subnets": ["subnet-1"]}},
        {"vpcConfig": {"securityGroupIds": ["sg-1"] * 6, "subnets": ["subnet-1"]}},
        {"vpcConfig": {"securityGroupIds": ["sg 1; drop"], "subnets": ["subnet-1"]}},
        {"vpcConfig": {"securityGroupIds": ["sg-1"]}},
        {"outputKmsKeyId": "k" * 2049},
        {"volumeKmsKeyId": "key with spaces"},
        {"enableNetworkIsolation": "yes please"},
    ],
)
def test_hostile_hardening_fields_are_refused(hostile: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        spec(**hostile)
