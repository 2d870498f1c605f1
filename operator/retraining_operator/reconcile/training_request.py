"""The complete CreateTrainingJob / CreateHyperParameterTuningJob requests of a run (pure).

Incremental training of the built-in object-detection algorithm, as the seed notebook's
training cell does it: augmented manifests streamed in Pipe mode (`train`, `validation`)
plus the serving model's artifacts as the `model` channel (File mode), and
`use_pretrained_model=0` so training continues from those weights. The requests are
plain dicts in boto3's shape (typed with boto3-stubs' TypedDicts); the gateway sends
them as they are and the `plan` CLI prints them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from retraining_operator.api import (
    MAX_HYPERPARAMETERS,
    CurrentRun,
    ParameterRange,
    ParameterType,
    RetrainingPolicySpec,
    Scaling,
    TrainingSpec,
    parse_duration,
)
from retraining_operator.errors import NeedsAttention
from retraining_operator.reconcile.naming import SAGEMAKER_NAME, PolicyRef

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.literals import (
        HyperParameterScalingTypeType,
        TrainingInstanceTypeType,
    )
    from mypy_boto3_sagemaker.type_defs import (
        AlgorithmSpecificationTypeDef,
        CategoricalParameterRangeTypeDef,
        ChannelTypeDef,
        CheckpointConfigTypeDef,
        ContinuousParameterRangeTypeDef,
        CreateHyperParameterTuningJobRequestTypeDef,
        CreateTrainingJobRequestTypeDef,
        HyperParameterAlgorithmSpecificationTypeDef,
        HyperParameterTrainingJobDefinitionTypeDef,
        HyperParameterTuningJobConfigTypeDef,
        IntegerParameterRangeTypeDef,
        OutputDataConfigTypeDef,
        ParameterRangesTypeDef,
        ResourceConfigTypeDef,
        StoppingConditionTypeDef,
        TagTypeDef,
    )

# Set by the operator whatever the policy says: continue from the base model's weights,
# and tell the algorithm the real number of lines in the train manifest.
USE_PRETRAINED_MODEL = "use_pretrained_model"
NUM_TRAINING_SAMPLES = "num_training_samples"
OPERATOR_HYPERPARAMETERS = (USE_PRETRAINED_MODEL, NUM_TRAINING_SAMPLES)

TRAINING_INPUT_MODE: Final = "Pipe"
MANIFEST_CONTENT_TYPE = "application/x-recordio"
MODEL_CONTENT_TYPE = "application/x-sagemaker-model"
SOURCE_REF = "source-ref"
CHECKPOINTS_FOLDER = "checkpoints"
TUNING_STRATEGY: Final = "Bayesian"


class TrainingSpecError(NeedsAttention, ValueError):
    """The policy (or the run's data) cannot make a valid training request.

    The message says what to change; the pass reports it as Degraded `InvalidTrainingSpec`
    (once) and the run waits, its samples kept, until the spec changes.
    """

    def __init__(self, message: str) -> None:
        super().__init__("InvalidTrainingSpec", message)


@dataclass(frozen=True)
class TrainingData:
    """What a run trains on: the two manifests the dataset step wrote, and the base model."""

    train_manifest_s3_uri: str
    validation_manifest_s3_uri: str
    train_samples: int  # the train manifest's real line count
    base_model_s3_uri: str | None = None  # None: resolve from the spec when submitting

    @classmethod
    def from_run(cls, run: CurrentRun) -> TrainingData:
        """From the run recorded in status (manifests, counts and base model)."""
        if not run.manifest_s3_uri or not run.validation_manifest_s3_uri:
            raise TrainingSpecError(
                f"run {run.id} has no train/validation manifest yet (dataset step not done)"
            )
        train = run.samples.train if run.samples is not None else 0
        return cls(
            train_manifest_s3_uri=run.manifest_s3_uri,
            validation_manifest_s3_uri=run.validation_manifest_s3_uri,
            train_samples=train,
            base_model_s3_uri=run.base_model_data_url,
        )

    def with_base_model(self, s3_uri: str) -> TrainingData:
        return TrainingData(
            train_manifest_s3_uri=self.train_manifest_s3_uri,
            validation_manifest_s3_uri=self.validation_manifest_s3_uri,
            train_samples=self.train_samples,
            base_model_s3_uri=s3_uri,
        )


# ---------------------------------------------------------------------------------------
# Hyperparameters


def incremental_defaults(spec: RetrainingPolicySpec) -> dict[str, str]:
    """Defaults the policy's hyperParameters are merged over.

    `num_classes` follows `labels.classes` (the manifest's class ids index that list).
    """
    return {"num_classes": str(len(spec.labels.classes))}


def merged_hyperparameters(spec: RetrainingPolicySpec, train_samples: int) -> dict[str, str]:
    """Defaults < policy's hyperParameters < the operator's two (which always win)."""
    if train_samples < 1:
        raise TrainingSpecError(
            f"the train manifest has {train_samples} samples; a training job needs at least 1"
        )
    merged = {**incremental_defaults(spec), **spec.training.hyper_parameters}
    merged[USE_PRETRAINED_MODEL] = "0"
    merged[NUM_TRAINING_SAMPLES] = str(train_samples)
    if len(merged) > MAX_HYPERPARAMETERS:
        raise TrainingSpecError(
            f"{len(merged)} hyperparameters after adding the operator's "
            f"{', '.join(OPERATOR_HYPERPARAMETERS)}; SageMaker allows {MAX_HYPERPARAMETERS}"
        )
    return merged


def overridden_hyperparameters(spec: RetrainingPolicySpec) -> list[str]:
    """Policy hyperParameters the operator replaces (worth a warning Event)."""
    return sorted(set(spec.training.hyper_parameters) & set(OPERATOR_HYPERPARAMETERS))


# ---------------------------------------------------------------------------------------
# Request parts


def _seconds(duration: str) -> int:
    return max(1, math.ceil(parse_duration(duration).total_seconds()))


def _manifest_channel(name: str, s3_uri: str, attribute_name: str) -> ChannelTypeDef:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "AugmentedManifestFile",
                "S3Uri": s3_uri,
                "S3DataDistributionType": "FullyReplicated",
                "AttributeNames": [SOURCE_REF, attribute_name],
            }
        },
        "ContentType": MANIFEST_CONTENT_TYPE,
        "RecordWrapperType": "RecordIO",
    }


def _model_channel(s3_uri: str) -> ChannelTypeDef:
    return {
        "ChannelName": "model",
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": s3_uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "ContentType": MODEL_CONTENT_TYPE,
        "InputMode": "File",
    }


def input_channels(spec: RetrainingPolicySpec, data: TrainingData) -> list[ChannelTypeDef]:
    """`train`, `validation` (augmented manifests, Pipe) and `model` (File)."""
    if not data.base_model_s3_uri:
        raise TrainingSpecError("no base model: resolve training.baseModel before submitting")
    attribute = spec.labels.attribute_name
    return [
        _manifest_channel("train", data.train_manifest_s3_uri, attribute),
        _manifest_channel("validation", data.validation_manifest_s3_uri, attribute),
        _model_channel(data.base_model_s3_uri),
    ]


def _resources(training: TrainingSpec) -> ResourceConfigTypeDef:
    resources: ResourceConfigTypeDef = {
        "InstanceType": cast("TrainingInstanceTypeType", training.resources.instance_type),
        "InstanceCount": training.resources.instance_count,
        "VolumeSizeInGB": training.resources.volume_size_in_gb,
    }
    if training.volume_kms_key_id:
        resources["VolumeKmsKeyId"] = training.volume_kms_key_id
    return resources


def _output(training: TrainingSpec) -> OutputDataConfigTypeDef:
    output: OutputDataConfigTypeDef = {"S3OutputPath": training.output_s3_uri}
    if training.output_kms_key_id:
        output["KmsKeyId"] = training.output_kms_key_id
    return output


def _hardening(training: TrainingSpec) -> dict[str, Any]:
    """VpcConfig and EnableNetworkIsolation, when the spec sets them."""
    extra: dict[str, Any] = {}
    if training.vpc_config is not None:
        extra["VpcConfig"] = {
            "SecurityGroupIds": list(training.vpc_config.security_group_ids),
            "Subnets": list(training.vpc_config.subnets),
        }
    if training.enable_network_isolation is not None:
        extra["EnableNetworkIsolation"] = training.enable_network_isolation
    return extra


def _stopping(training: TrainingSpec) -> StoppingConditionTypeDef:
    runtime = _seconds(training.max_runtime)
    condition: StoppingConditionTypeDef = {"MaxRuntimeInSeconds": runtime}
    if training.spot.enabled:
        wait = _seconds(training.spot.max_wait) if training.spot.max_wait else runtime
        condition["MaxWaitTimeInSeconds"] = max(wait, runtime)
    return condition


def checkpoint_s3_uri(training: TrainingSpec, job_name: str) -> str:
    """Per-job checkpoint prefix: `<spot.checkpointS3Uri | outputS3Uri/checkpoints>/<job>`."""
    base = training.spot.checkpoint_s3_uri or f"{training.output_s3_uri.rstrip('/')}/"
    if not training.spot.checkpoint_s3_uri:
        base += CHECKPOINTS_FOLDER
    return f"{base.rstrip('/')}/{job_name}"


def _checkpoint(training: TrainingSpec, job_name: str) -> CheckpointConfigTypeDef:
    return {"S3Uri": checkpoint_s3_uri(training, job_name)}


def _tags(policy: PolicyRef, run_id: str) -> list[TagTypeDef]:
    return [{"Key": tag["Key"], "Value": tag["Value"]} for tag in policy.tags(run_id)]


def _checked_name(name: str, limit: int) -> str:
    if not SAGEMAKER_NAME.fullmatch(name) or len(name) > limit:
        raise TrainingSpecError(f"generated name {name!r} is not a valid SageMaker name")
    return name


# ---------------------------------------------------------------------------------------
# CreateTrainingJob


def training_job_request(
    spec: RetrainingPolicySpec,
    policy: PolicyRef,
    run_id: str,
    data: TrainingData,
    *,
    image_uri: str,
) -> CreateTrainingJobRequestTypeDef:
    """The exact `CreateTrainingJob` request of one run (deterministic name, tags)."""
    training = spec.training
    name = _checked_name(policy.training_job_name(run_id), 63)
    algorithm: AlgorithmSpecificationTypeDef = {
        "TrainingImage": image_uri,
        "TrainingInputMode": TRAINING_INPUT_MODE,
    }
    request: CreateTrainingJobRequestTypeDef = {
        "TrainingJobName": name,
        "AlgorithmSpecification": algorithm,
        "RoleArn": training.role_arn,
        "HyperParameters": merged_hyperparameters(spec, data.train_samples),
        "InputDataConfig": input_channels(spec, data),
        "OutputDataConfig": _output(training),
        "ResourceConfig": _resources(training),
        "StoppingCondition": _stopping(training),
        "Tags": _tags(policy, run_id),
    }
    request.update(cast("CreateTrainingJobRequestTypeDef", _hardening(training)))
    if training.spot.enabled:
        request["EnableManagedSpotTraining"] = True
        request["CheckpointConfig"] = _checkpoint(training, name)
    return request


# ---------------------------------------------------------------------------------------
# CreateHyperParameterTuningJob


def _number(value: float | None, *, integer: bool, name: str, bound: str) -> str:
    if value is None:  # ParameterRange's own validator makes this unreachable
        raise TrainingSpecError(f"training.tuning.ranges.{name}.{bound} is required")
    if integer:
        if not float(value).is_integer():
            raise TrainingSpecError(
                f"training.tuning.ranges.{name}.{bound} must be a whole number for an Integer "
                f"range (got {value})"
            )
        return str(int(value))
    return repr(float(value))


_SCALING: dict[Scaling, HyperParameterScalingTypeType] = {
    Scaling.AUTO: "Auto",
    Scaling.LINEAR: "Linear",
    Scaling.LOGARITHMIC: "Logarithmic",
    Scaling.REVERSE_LOGARITHMIC: "ReverseLogarithmic",
}


def parameter_ranges(ranges: Mapping[str, ParameterRange]) -> ParameterRangesTypeDef:
    """The tuning job's ParameterRanges (Continuous, Integer, Categorical)."""
    continuous: list[ContinuousParameterRangeTypeDef] = []
    integer: list[IntegerParameterRangeTypeDef] = []
    categorical: list[CategoricalParameterRangeTypeDef] = []
    for name, item in sorted(ranges.items()):
        if name in OPERATOR_HYPERPARAMETERS:
            raise TrainingSpecError(
                f"training.tuning.ranges.{name}: {name} is set by the operator and cannot be tuned"
            )
        if item.type is ParameterType.CATEGORICAL:
            categorical.append({"Name": name, "Values": list(item.values or [])})
            continue
        is_int = item.type is ParameterType.INTEGER
        low = _number(item.min, integer=is_int, name=name, bound="min")
        high = _number(item.max, integer=is_int, name=name, bound="max")
        scaling = _SCALING[item.scaling]
        if scaling in ("Logarithmic", "ReverseLogarithmic") and (item.min or 0) <= 0:
            raise TrainingSpecError(
                f"training.tuning.ranges.{name}: {scaling} scaling needs min > 0"
            )
        if scaling == "ReverseLogarithmic" and (item.max or 0) >= 1:
            raise TrainingSpecError(
                f"training.tuning.ranges.{name}: ReverseLogarithmic scaling needs max < 1"
            )
        if is_int:
            integer.append(
                {"Name": name, "MinValue": low, "MaxValue": high, "ScalingType": scaling}
            )
        else:
            continuous.append(
                {"Name": name, "MinValue": low, "MaxValue": high, "ScalingType": scaling}
            )
    result: ParameterRangesTypeDef = {}
    if continuous:
        result["ContinuousParameterRanges"] = continuous
    if integer:
        result["IntegerParameterRanges"] = integer
    if categorical:
        result["CategoricalParameterRanges"] = categorical
    return result


def tuning_job_request(
    spec: RetrainingPolicySpec,
    policy: PolicyRef,
    run_id: str,
    data: TrainingData,
    *,
    image_uri: str,
) -> CreateHyperParameterTuningJobRequestTypeDef:
    """One `CreateHyperParameterTuningJob` over `training.tuning.ranges`, objective the gate's
    metric (maximized); its training jobs use the same channels, and the merged
    hyperparameters minus the tuned ones as static hyperparameters."""
    training = spec.training
    tuning = training.tuning
    if tuning is None:
        raise TrainingSpecError("training.tuning is not set")
    name = _checked_name(policy.tuning_job_name(run_id), 32)
    static = {
        key: value
        for key, value in merged_hyperparameters(spec, data.train_samples).items()
        if key not in tuning.ranges
    }
    algorithm: HyperParameterAlgorithmSpecificationTypeDef = {
        "TrainingImage": image_uri,
        "TrainingInputMode": TRAINING_INPUT_MODE,
    }
    definition: HyperParameterTrainingJobDefinitionTypeDef = {
        "StaticHyperParameters": static,
        "AlgorithmSpecification": algorithm,
        "RoleArn": training.role_arn,
        "InputDataConfig": input_channels(spec, data),
        "OutputDataConfig": _output(training),
        "ResourceConfig": _resources(training),
        "StoppingCondition": _stopping(training),
    }
    definition.update(cast("HyperParameterTrainingJobDefinitionTypeDef", _hardening(training)))
    if training.spot.enabled:
        definition["EnableManagedSpotTraining"] = True
        definition["CheckpointConfig"] = _checkpoint(training, name)
    config: HyperParameterTuningJobConfigTypeDef = {
        "Strategy": TUNING_STRATEGY,
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": spec.gate.metric},
        "ResourceLimits": {
            "MaxNumberOfTrainingJobs": tuning.max_jobs,
            "MaxParallelTrainingJobs": tuning.max_parallel_jobs,
        },
        "ParameterRanges": parameter_ranges(tuning.ranges),
        "TrainingJobEarlyStoppingType": tuning.early_stopping.value,
    }
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": definition,
        "Tags": _tags(policy, run_id),
    }
