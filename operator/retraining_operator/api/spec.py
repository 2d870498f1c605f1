"""The RetrainingPolicy spec: what a user asks for (camelCase on the wire, immutable).

The API server applies the CRD's defaults, bounds and CEL rules; these models repeat the
rules a policy read from a file (the `plan` CLI, tests) must also obey, and add the few
checks CEL cannot express here (e.g. ascending variant-shift steps).
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from retraining_operator.api.scalars import (
    ATTRIBUTE_NAME_PATTERN,
    CANARY_SIZE_PATTERN,
    FLOW_DEFINITION_ARN_PATTERN,
    MODEL_PACKAGE_GROUP_PATTERN,
    REGION_PATTERN,
    SQS_QUEUE_URL_PATTERN,
    STEP_SIZE_PATTERN,
    Duration,
    RoleArn,
    S3Uri,
    SageMakerName,
    duration_between,
    parse_duration,
)

# SageMaker takes at most 100 hyperparameters; the operator adds these to the policy's
# (num_classes unless the policy sets it; the other two always).
MAX_HYPERPARAMETERS = 100
OPERATOR_ADDED_HYPERPARAMETERS = ("num_classes", "use_pretrained_model", "num_training_samples")


class _Model(BaseModel):
    """Spec models: camelCase on the wire, strict about unknown fields, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class AwsSpec(_Model):
    region: Annotated[str, Field(pattern=REGION_PATTERN, max_length=32)]
    role_arn: RoleArn | None = None


class EventsSpec(_Model):
    """Event-driven ingest: A2I status-change events arrive on this SQS queue (docs/events.md)."""

    sqs_queue_url: Annotated[str, Field(pattern=SQS_QUEUE_URL_PATTERN, max_length=1024)]
    backstop_interval: Annotated[Duration, duration_between(low="1m")] = "1h"


class HumanLoopsSpec(_Model):
    flow_definition_arn: Annotated[str, Field(pattern=FLOW_DEFINITION_ARN_PATTERN, max_length=1024)]
    poll_interval: Annotated[Duration, duration_between(low="10s")] = "5m"
    lookback: Duration = "24h"
    events: EventsSpec | None = None

    @property
    def flow_definition_name(self) -> str:
        return self.flow_definition_arn.rsplit("/", 1)[-1]


class UnknownLabel(StrEnum):
    QUARANTINE = "Quarantine"
    DROP = "Drop"


class WorkerAnswer(StrEnum):
    """Which worker's answer becomes the label when several workers answered one loop."""

    FIRST = "First"  # as the seed notebook: humanAnswers[0]
    LATEST = "Latest"  # the answer with the newest submissionTime


class ConsolidationMode(StrEnum):
    """How the answers of several workers become one label (`labels.consolidation.mode`)."""

    FIRST = "First"  # as the seed notebook: humanAnswers[0]
    LATEST = "Latest"  # the answer with the newest submissionTime
    CONSENSUS = "Consensus"  # Ground Truth style: IoU matching, majority label, mean box


class ConsolidationSpec(_Model):
    mode: ConsolidationMode = ConsolidationMode.FIRST
    iou_threshold: Annotated[float, Field(ge=0.05, le=1)] = 0.5
    min_agreement: Annotated[float, Field(ge=0.01, le=1)] = 0.5


class LabelsSpec(_Model):
    classes: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=128)]],
        Field(min_length=1, max_length=1000),
    ]
    attribute_name: Annotated[
        str, Field(pattern=ATTRIBUTE_NAME_PATTERN, min_length=1, max_length=100)
    ] = "a2i-retraining"
    unknown_label: UnknownLabel = UnknownLabel.QUARANTINE
    worker_answer: WorkerAnswer = WorkerAnswer.FIRST
    consolidation: ConsolidationSpec | None = None
    image_s3_prefixes: (
        Annotated[list[S3Uri], Field(max_length=20, json_schema_extra={"uniqueItems": True})] | None
    ) = Field(default=None, alias="imageS3Prefixes")

    @property
    def consolidation_mode(self) -> ConsolidationMode:
        """`consolidation.mode` when set, else the older `workerAnswer`."""
        if self.consolidation is not None:
            return self.consolidation.mode
        return ConsolidationMode(self.worker_answer.value)

    @property
    def effective_consolidation(self) -> ConsolidationSpec:
        return self.consolidation or ConsolidationSpec(mode=self.consolidation_mode)

    @model_validator(mode="after")
    def _unique_classes(self) -> Self:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("labels.classes must not repeat a class name (index = class id)")
        if self.attribute_name == "source-ref" or self.attribute_name.endswith("-metadata"):
            raise ValueError("labels.attributeName must not be 'source-ref' or end in '-metadata'")
        return self


class ValidationSpec(_Model):
    manifest_s3_uri: S3Uri | None = Field(default=None, alias="manifestS3Uri")
    holdout_percent: Annotated[int, Field(ge=0, le=50)] = 10
    min_samples: Annotated[int, Field(ge=1, le=100_000)] = 10
    allow_train_as_validation: bool = False


class ReplaySpec(_Model):
    manifest_s3_uri: S3Uri = Field(alias="manifestS3Uri")
    samples_per_new_sample: Annotated[int, Field(ge=0, le=100)] = 3


class DatasetSpec(_Model):
    output_s3_uri: S3Uri = Field(alias="outputS3Uri")
    min_new_samples: Annotated[int, Field(ge=1, le=1_000_000)] = 100
    max_wait: Duration = "24h"
    validation: ValidationSpec = ValidationSpec()
    replay: ReplaySpec | None = None


class BaseModelSpec(_Model):
    from_endpoint: bool | None = None
    s3_uri: S3Uri | None = Field(default=None, alias="s3Uri")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.from_endpoint is True) == (self.s3_uri is not None):
            raise ValueError("training.baseModel needs exactly one of fromEndpoint: true or s3Uri")
        return self


class ResourcesSpec(_Model):
    instance_type: Annotated[str, Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$", max_length=64)] = (
        "ml.p3.2xlarge"
    )
    instance_count: Annotated[int, Field(ge=1, le=100)] = 1
    volume_size_in_gb: Annotated[int, Field(ge=1, le=16384)] = Field(
        default=50, alias="volumeSizeInGB"
    )


_VPC_ID = Annotated[str, Field(pattern=r"^[-0-9a-zA-Z]+$", max_length=32)]
KmsKeyId = Annotated[str, Field(pattern=r"^[a-zA-Z0-9:/_-]+$", min_length=1, max_length=2048)]


class VpcConfigSpec(_Model):
    """SageMaker's VpcConfig: the training job (and the new Model) runs in these subnets."""

    security_group_ids: Annotated[list[_VPC_ID], Field(min_length=1, max_length=5)]
    subnets: Annotated[list[_VPC_ID], Field(min_length=1, max_length=16)]


class SpotSpec(_Model):
    enabled: bool = False
    max_wait: Duration | None = None
    checkpoint_s3_uri: S3Uri | None = Field(default=None, alias="checkpointS3Uri")

    @model_validator(mode="after")
    def _needs_wait(self) -> Self:
        if self.enabled and self.max_wait is None:
            raise ValueError("training.spot.maxWait is required when spot is enabled")
        return self


class ParameterType(StrEnum):
    CONTINUOUS = "Continuous"
    INTEGER = "Integer"
    CATEGORICAL = "Categorical"


class Scaling(StrEnum):
    AUTO = "Auto"
    LINEAR = "Linear"
    LOGARITHMIC = "Logarithmic"
    REVERSE_LOGARITHMIC = "ReverseLogarithmic"


class ParameterRange(_Model):
    type: ParameterType = ParameterType.CONTINUOUS
    min: float | None = None
    max: float | None = None
    scaling: Scaling = Scaling.AUTO
    values: Annotated[list[Annotated[str, Field(max_length=256)]], Field(max_length=30)] | None = (
        None
    )

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.type is ParameterType.CATEGORICAL:
            if not self.values:
                raise ValueError("a Categorical range needs values")
        elif self.min is None or self.max is None or self.min >= self.max:
            raise ValueError("a Continuous/Integer range needs min < max")
        elif self.type is ParameterType.INTEGER and not (
            self.min.is_integer() and self.max.is_integer()
        ):
            raise ValueError("an Integer range needs whole-number min and max")
        return self


class EarlyStopping(StrEnum):
    AUTO = "Auto"
    OFF = "Off"


class TuningSpec(_Model):
    max_jobs: Annotated[int, Field(ge=1, le=500)] = 8
    max_parallel_jobs: Annotated[int, Field(ge=1, le=100)] = 2
    early_stopping: EarlyStopping = EarlyStopping.AUTO
    ranges: Annotated[dict[str, ParameterRange], Field(min_length=1, max_length=30)]

    @model_validator(mode="after")
    def _parallel_within_max(self) -> Self:
        if self.max_parallel_jobs > self.max_jobs:
            raise ValueError("training.tuning.maxParallelJobs must be <= maxJobs")
        return self


class TrainingSpec(_Model):
    role_arn: RoleArn
    algorithm: Literal["object-detection"] | None = None
    algorithm_version: Annotated[str, Field(max_length=16)] = "1"
    image: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    base_model: BaseModelSpec = BaseModelSpec(from_endpoint=True)
    resources: ResourcesSpec = ResourcesSpec()
    max_runtime: Annotated[Duration, duration_between(low="1s", high="672h")] = "24h"
    spot: SpotSpec = SpotSpec()
    tuning: TuningSpec | None = None
    output_s3_uri: S3Uri = Field(alias="outputS3Uri")
    hyper_parameters: Annotated[
        dict[str, Annotated[str, Field(max_length=2500)]], Field(max_length=100)
    ] = {}
    # Hardening: the training job's VpcConfig / network isolation (both also override what
    # the new Model inherits from the serving model) and its KMS keys.
    vpc_config: VpcConfigSpec | None = None
    enable_network_isolation: bool | None = None
    output_kms_key_id: KmsKeyId | None = None
    volume_kms_key_id: KmsKeyId | None = None

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if (self.algorithm is None) == (self.image is None):
            raise ValueError("training needs exactly one of algorithm or image")
        spot_wait = self.spot.max_wait if self.spot.enabled else None
        if spot_wait is not None and parse_duration(spot_wait) < parse_duration(self.max_runtime):
            raise ValueError("training.spot.maxWait must be >= training.maxRuntime")
        total = len(set(self.hyper_parameters) | set(OPERATOR_ADDED_HYPERPARAMETERS))
        if total > MAX_HYPERPARAMETERS:
            raise ValueError(
                f"training.hyperParameters: {total} after the operator adds "
                f"{', '.join(OPERATOR_ADDED_HYPERPARAMETERS)}; SageMaker allows "
                f"{MAX_HYPERPARAMETERS}"
            )
        return self


class GateEvaluationSpec(_Model):
    """Judge the candidate and the serving model on the same held-out images (docs/gate.md).

    The held-out set is every human-reviewed image the policy's runs held out of training
    so far (or `dataset.validation.manifestS3Uri`), versioned in `status.heldOut`. Both
    models predict it with SageMaker Batch Transform; the operator computes mAP at IoU 0.5,
    and a paired bootstrap over the images gives the interval of mAP(candidate) -
    mAP(serving)."""

    min_images: Annotated[int, Field(ge=1, le=100_000)] = 50
    max_images: Annotated[int, Field(ge=1, le=100_000)] = 10_000
    min_improvement: Annotated[float, Field(ge=-1, le=1)] = 0.0
    confidence: Annotated[float, Field(ge=0.5, le=0.999)] = 0.95
    bootstrap_samples: Annotated[int, Field(ge=100, le=10_000)] = 1000
    anchor_manifest_s3_uri: S3Uri | None = Field(default=None, alias="anchorManifestS3Uri")
    max_forgetting: Annotated[float, Field(ge=0, le=1)] = 0.02
    instance_type: Annotated[str, Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$", max_length=64)] = (
        "ml.m5.xlarge"
    )
    instance_count: Annotated[int, Field(ge=1, le=10)] = 1
    max_runtime: Annotated[Duration, duration_between(low="5m", high="48h")] = "2h"

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min_images > self.max_images:
            raise ValueError("gate.evaluation.minImages must not exceed maxImages")
        return self


class GateSpec(_Model):
    metric: Annotated[str, Field(min_length=1, max_length=255)] = "validation:mAP"
    minimum: Annotated[float, Field(ge=0)] | None = None
    max_regression: Annotated[float, Field(ge=0)] | None = 0.01
    evaluation: GateEvaluationSpec | None = None

    @model_validator(mode="after")
    def _fraction_for_map(self) -> Self:
        # mAP is a fraction: a floor of 50 (meant as 50 %) would refuse every model.
        if self.minimum is not None and self.metric.endswith("mAP") and self.minimum > 1:
            raise ValueError("gate.minimum must be at most 1 for a mAP metric (0.5 means 50 %)")
        return self


class Strategy(StrEnum):
    BLUE_GREEN = "BlueGreen"
    ROLLING = "Rolling"
    VARIANT_SHIFT = "VariantShift"
    NONE = "None"


class TrafficRouting(StrEnum):
    ALL_AT_ONCE = "AllAtOnce"
    CANARY = "Canary"
    LINEAR = "Linear"


class BlueGreenSpec(_Model):
    traffic_routing: TrafficRouting = TrafficRouting.CANARY
    canary_size: Annotated[str, Field(pattern=CANARY_SIZE_PATTERN)] | None = "10%"
    linear_step_size: Annotated[str, Field(pattern=STEP_SIZE_PATTERN)] | None = None
    wait_interval: Annotated[Duration, duration_between(high="1h")] = "10m"
    termination_wait: Annotated[Duration, duration_between(high="1h")] = "10m"
    maximum_execution_timeout: Annotated[Duration, duration_between(low="10m", high="8h")] = "1h"

    @model_validator(mode="after")
    def _linear_needs_step(self) -> Self:
        if self.traffic_routing is TrafficRouting.LINEAR and self.linear_step_size is None:
            raise ValueError("deployment.blueGreen.linearStepSize is required with Linear")
        return self


class RollingSpec(_Model):
    maximum_batch_size: Annotated[str, Field(pattern=STEP_SIZE_PATTERN)] = "50%"
    wait_interval: Annotated[Duration, duration_between(high="1h")] = "5m"
    rollback_maximum_batch_size: Annotated[str, Field(pattern=STEP_SIZE_PATTERN)] | None = None
    maximum_execution_timeout: Annotated[Duration, duration_between(high="8h")] = "1h"


class VariantShiftSpec(_Model):
    steps: Annotated[
        list[Annotated[int, Field(ge=1, le=100)]], Field(min_length=1, max_length=10)
    ] = [10, 50, 100]
    interval: Duration = "10m"
    max_5xx_rate: Annotated[float, Field(ge=0, le=1)] = Field(default=0.01, alias="max5xxRate")
    max_latency_increase: Annotated[float, Field(ge=0)] = 0.2

    @model_validator(mode="after")
    def _ascending_to_100(self) -> Self:
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError("deployment.variantShift.steps must be strictly ascending")
        if self.steps[-1] != 100:
            raise ValueError("deployment.variantShift.steps must end at 100")
        return self


class ShadowCaptureSpec(_Model):
    """Data capture of the shadow test: both variants' requests and answers under
    `destinationS3Uri`, compared request by request (reconcile/shadow_agreement.py)."""

    destination_s3_uri: S3Uri = Field(alias="destinationS3Uri")
    min_agreement: Annotated[float, Field(ge=0, le=1)] = 0.8
    score_threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    min_requests: Annotated[int, Field(ge=1, le=100_000)] = 20


class ShadowSpec(_Model):
    """A SageMaker shadow test before the rollout (docs/rollout.md, "Shadow test"): live
    requests are copied to the candidate, its answers thrown away, and it is judged against
    the production variant on the same requests."""

    sampling_percentage: Annotated[int, Field(ge=1, le=100)] = 100
    duration: Duration = "1h"
    instance_type: (
        Annotated[str, Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$", max_length=64)] | None
    ) = None
    instance_count: Annotated[int, Field(ge=1, le=100)] | None = None
    role_arn: RoleArn | None = None
    max_latency_ratio: Annotated[float, Field(ge=1)] = 1.5
    max_5xx_rate: Annotated[float, Field(ge=0, le=1)] = Field(default=0.01, alias="max5xxRate")
    max_4xx_rate: Annotated[float, Field(ge=0, le=1)] = Field(default=0.05, alias="max4xxRate")
    min_invocations: Annotated[int, Field(ge=1, le=1_000_000)] = 100
    promote: bool = False
    data_capture: ShadowCaptureSpec | None = None

    @model_validator(mode="after")
    def _within_sagemaker_limits(self) -> Self:
        span = parse_duration(self.duration)
        if span < timedelta(minutes=2):  # CloudWatch's metrics come per minute
            raise ValueError("deployment.shadow.duration must be at least 2m")
        if span > SHADOW_MAX_DURATION:
            raise ValueError("deployment.shadow.duration must be at most 720h (SageMaker: 30 days)")
        return self


# SageMaker runs an inference experiment for at most 30 days.
SHADOW_MAX_DURATION = timedelta(days=30)


class RetainedVariantProperty(StrEnum):
    """UpdateEndpoint's VariantPropertyType: a live property the new config may override."""

    DESIRED_INSTANCE_COUNT = "DesiredInstanceCount"
    DESIRED_WEIGHT = "DesiredWeight"
    DATA_CAPTURE_CONFIG = "DataCaptureConfig"


class DeploymentSpec(_Model):
    endpoint_name: SageMakerName | None = None
    variant_name: SageMakerName = "AllTraffic"
    instance_type: Annotated[str, Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$", max_length=64)] = (
        "ml.m5.xlarge"
    )
    initial_instance_count: Annotated[int, Field(ge=1, le=100)] = 1
    strategy: Strategy = Strategy.BLUE_GREEN
    blue_green: BlueGreenSpec | None = None
    rolling: RollingSpec | None = None
    variant_shift: VariantShiftSpec | None = None
    auto_rollback_alarms: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=255)]], Field(max_length=10)
    ] = []
    retain_previous_models: Annotated[int, Field(ge=0, le=50)] = 3
    # UpdateEndpoint keeps same-named variants' live instance count and weight (an
    # autoscaled fleet is not scaled in by a rollout); opt out, or exclude properties.
    retain_variant_properties: bool = True
    exclude_retained_variant_properties: Annotated[
        list[RetainedVariantProperty], Field(max_length=3)
    ] = []
    shadow: ShadowSpec | None = None

    @model_validator(mode="after")
    def _strategy_blocks(self) -> Self:
        blocks = {
            "blueGreen": (self.blue_green, Strategy.BLUE_GREEN),
            "rolling": (self.rolling, Strategy.ROLLING),
            "variantShift": (self.variant_shift, Strategy.VARIANT_SHIFT),
        }
        for field, (value, strategy) in blocks.items():
            if value is not None and self.strategy is not strategy:
                raise ValueError(f"deployment.{field} is only allowed with strategy {strategy}")
        if self.strategy is not Strategy.NONE and self.endpoint_name is None:
            raise ValueError("deployment.endpointName is required unless strategy is None")
        if self.shadow is not None and self.strategy is Strategy.NONE:
            raise ValueError("deployment.shadow needs an endpoint to shadow (strategy is None)")
        if self.exclude_retained_variant_properties and not self.retain_variant_properties:
            raise ValueError(
                "deployment.excludeRetainedVariantProperties needs retainVariantProperties"
            )
        return self

    @property
    def effective_blue_green(self) -> BlueGreenSpec:
        return self.blue_green or BlueGreenSpec()

    @property
    def effective_rolling(self) -> RollingSpec:
        return self.rolling or RollingSpec()

    @property
    def effective_variant_shift(self) -> VariantShiftSpec:
        return self.variant_shift or VariantShiftSpec()


class Approval(StrEnum):
    """Who approves a registered candidate that passed the gate."""

    AUTOMATIC = "Automatic"  # registered Approved: the rollout follows at once
    MANUAL = "Manual"  # registered PendingManualApproval: the run waits for a person


class RegistrySpec(_Model):
    model_package_group_name: Annotated[
        str, Field(pattern=MODEL_PACKAGE_GROUP_PATTERN, max_length=63)
    ]
    approval: Approval = Approval.AUTOMATIC
    create_group: bool = True
    approval_timeout: Annotated[Duration, duration_between(low="1m")] | None = None


class RetrainingPolicySpec(_Model):
    suspend: bool = False
    aws: AwsSpec
    human_loops: HumanLoopsSpec
    labels: LabelsSpec
    dataset: DatasetSpec
    training: TrainingSpec
    gate: GateSpec = GateSpec()
    deployment: DeploymentSpec
    registry: RegistrySpec | None = None

    @model_validator(mode="after")
    def _cross_rules(self) -> Self:
        if self.training.base_model.from_endpoint and self.deployment.endpoint_name is None:
            raise ValueError(
                "training.baseModel.fromEndpoint needs deployment.endpointName "
                "(the endpoint whose serving model is the base)"
            )
        arn_region = self.human_loops.flow_definition_arn.split(":")[3]
        if arn_region != self.aws.region:
            raise ValueError(
                f"humanLoops.flowDefinitionArn is in {arn_region}, but aws.region is "
                f"{self.aws.region}"
            )
        return self
