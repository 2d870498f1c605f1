"""Typed models of the RetrainingPolicy API (spec and status), shared by every layer.

The CRD in `crds/retrainingpolicies.yaml` is the source of truth for the wire format;
these models mirror it field for field (a test walks both trees). The API server
already applies defaults, bounds and CEL rules; the models repeat the rules that a
policy read from a file (the `plan` CLI, tests) must also obey, and add the few checks
CEL cannot express here (e.g. ascending variant-shift steps).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

API_GROUP = "retraining.hitl.dev"
API_VERSION = "v1alpha1"
KIND = "RetrainingPolicy"
PLURAL = "retrainingpolicies"

# Annotations users set to drive the operator by hand.
RETRAIN_NOW_ANNOTATION = f"{API_GROUP}/retrain-now"
ROLLBACK_TO_ANNOTATION = f"{API_GROUP}/rollback-to"
# `<run id>`: approve that run's Model Package (spec.registry.approval Manual).
APPROVE_ANNOTATION = f"{API_GROUP}/approve"

HISTORY_LIMIT = 20

# ---------------------------------------------------------------------------------------
# Scalar types shared with the CRD's patterns (keep the regexes identical to the CRD).

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$"
IAM_ROLE_ARN_PATTERN = r"^arn:aws[a-z\-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/\-]{1,512}$"
FLOW_DEFINITION_ARN_PATTERN = (
    r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]+:[0-9]{12}:flow-definition/"
    r"[a-z0-9](-*[a-z0-9]){0,62}$"
)
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-[0-9]$"
SAGEMAKER_NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
# A Model Package Group name (SageMaker's EntityName pattern; at most 63 characters).
MODEL_PACKAGE_GROUP_PATTERN = SAGEMAKER_NAME_PATTERN
# "10%" (capacity percent, at most 50 for a canary) or "2" (instance count).
CANARY_SIZE_PATTERN = r"^(([1-9]|[1-4][0-9]|50)%|[1-9][0-9]{0,2})$"
STEP_SIZE_PATTERN = r"^(([1-9]|[1-9][0-9]|100)%|[1-9][0-9]{0,2})$"
ATTRIBUTE_NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9_])*$"
# An SQS queue URL: `https://sqs.<region>.amazonaws.com/<account>/<name>` on AWS; any host
# (an endpoint override, a VPC endpoint) with the account and name path is accepted here,
# and the operator checks account and region against the flow definition at run time.
SQS_QUEUE_URL_PATTERN = (
    r"^https?://[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?/[0-9]{12}/[A-Za-z0-9_\-]{1,80}(\.fifo)?$"
)

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


# SageMaker takes at most 100 hyperparameters; the operator adds these to the policy's
# (num_classes unless the policy sets it; the other two always).
MAX_HYPERPARAMETERS = 100
OPERATOR_ADDED_HYPERPARAMETERS = ("num_classes", "use_pretrained_model", "num_training_samples")

# Every duration in the spec is at most a year (the CRD says so in CEL too): longer values
# are typos, and unbounded ones overflow timedelta/datetime arithmetic in the pass.
MAX_DURATION = "8760h"


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration ("90s", "1h30m", "24h") as the CRD and CEL accept it."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use a number with a unit, e.g. 90s, 5m, 24h")
    seconds = sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _DURATION_PART.findall(text))
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"duration {text!r} is out of range (at most {MAX_DURATION})") from None


def _check_duration(text: str) -> str:
    if parse_duration(text) > parse_duration(MAX_DURATION):
        raise ValueError(f"must be at most {MAX_DURATION}")
    return text


def _duration_between(low: str | None = None, high: str | None = None) -> AfterValidator:
    """Bounds the CRD states as CEL rules (`duration(self) >= duration(low)`)."""

    def check(text: str) -> str:
        value = parse_duration(text)
        if low is not None and value < parse_duration(low):
            raise ValueError(f"must be at least {low}")
        if high is not None and value > parse_duration(high):
            raise ValueError(f"must be at most {high}")
        return text

    return AfterValidator(check)


Duration = Annotated[
    str, Field(pattern=DURATION_PATTERN, max_length=32), AfterValidator(_check_duration)
]
S3Uri = Annotated[str, Field(pattern=S3_URI_PATTERN, max_length=1024)]
RoleArn = Annotated[str, Field(pattern=IAM_ROLE_ARN_PATTERN, max_length=2048)]
SageMakerName = Annotated[str, Field(pattern=SAGEMAKER_NAME_PATTERN, max_length=63)]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _rfc3339(value: datetime) -> str:
    return _utc(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[
    datetime, AfterValidator(_utc), PlainSerializer(_rfc3339, return_type=str, when_used="json")
]


class _Model(BaseModel):
    """Spec models: camelCase on the wire, strict about unknown fields, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# ---------------------------------------------------------------------------------------
# Spec


class AwsSpec(_Model):
    region: Annotated[str, Field(pattern=REGION_PATTERN, max_length=32)]
    role_arn: RoleArn | None = None


class EventsSpec(_Model):
    """Event-driven ingest: A2I status-change events arrive on this SQS queue (docs/events.md)."""

    sqs_queue_url: Annotated[str, Field(pattern=SQS_QUEUE_URL_PATTERN, max_length=1024)]
    backstop_interval: Annotated[Duration, _duration_between(low="1m")] = "1h"


class HumanLoopsSpec(_Model):
    flow_definition_arn: Annotated[str, Field(pattern=FLOW_DEFINITION_ARN_PATTERN, max_length=1024)]
    poll_interval: Annotated[Duration, _duration_between(low="10s")] = "5m"
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
    max_runtime: Annotated[Duration, _duration_between(low="1s", high="672h")] = "24h"
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


class GateSpec(_Model):
    metric: Annotated[str, Field(min_length=1, max_length=255)] = "validation:mAP"
    minimum: float | None = None
    max_regression: Annotated[float, Field(ge=0)] | None = 0.01


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
    wait_interval: Annotated[Duration, _duration_between(high="1h")] = "10m"
    termination_wait: Annotated[Duration, _duration_between(high="1h")] = "10m"
    maximum_execution_timeout: Annotated[Duration, _duration_between(low="10m", high="8h")] = "1h"

    @model_validator(mode="after")
    def _linear_needs_step(self) -> Self:
        if self.traffic_routing is TrafficRouting.LINEAR and self.linear_step_size is None:
            raise ValueError("deployment.blueGreen.linearStepSize is required with Linear")
        return self


class RollingSpec(_Model):
    maximum_batch_size: Annotated[str, Field(pattern=STEP_SIZE_PATTERN)] = "50%"
    wait_interval: Annotated[Duration, _duration_between(high="1h")] = "5m"
    rollback_maximum_batch_size: Annotated[str, Field(pattern=STEP_SIZE_PATTERN)] | None = None
    maximum_execution_timeout: Annotated[Duration, _duration_between(high="8h")] = "1h"


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
    approval_timeout: Annotated[Duration, _duration_between(low="1m")] | None = None


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


# ---------------------------------------------------------------------------------------
# Status (read back from the API server: lenient about unknown fields, never frozen)


class _Status(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Phase(StrEnum):
    COLLECTING = "Collecting"
    TRAINING = "Training"
    EVALUATING = "Evaluating"
    DEPLOYING = "Deploying"
    SERVING = "Serving"
    SUSPENDED = "Suspended"
    FAILED = "Failed"


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    # The endpoint no longer serves what status.serving says (changed out of band).
    DRIFTED = "Drifted"
    # True while the policy's polls come later than pollInterval x 1.1 (the AWS call budget or
    # the worker threads are too small for the configured polls); absent until it first is.
    POLLS_STARVED = "PollsStarved"
    # Event-driven ingest (spec.humanLoops.events): True while the queue is consumed.
    EVENTS_FLOWING = "EventsFlowing"
    # Scoped mode: True while a run waits for its tenant's quota; absent until it first does.
    QUOTA_EXCEEDED = "QuotaExceeded"


class Condition(_Status):
    type: ConditionType
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, Field(max_length=1024)]
    message: Annotated[str, Field(max_length=32768)] = ""
    last_transition_time: Timestamp
    observed_generation: int | None = None


class ReviewerAgreement(_Status):
    worker: str  # a stable hash of the workerId, never the id
    images: int = 0
    agreement: float = 0.0


class ReviewerSummary(_Status):
    workers: int = 0
    mean_agreement: float | None = None
    lowest: Annotated[list[ReviewerAgreement], Field(max_length=5)] = Field(default_factory=list)


class ValidationWait(_Status):
    pending_samples: int = 0
    holdout_images: int = 0
    min_samples: int = 0


class IngestStatus(_Status):
    last_poll_time: Timestamp | None = None
    watermark: Timestamp | None = None
    pending_samples: int = 0
    oldest_pending_time: Timestamp | None = None
    ingested_loops: int = 0
    quarantined_samples: int = 0
    in_progress_loops: int = 0
    failed_loops: int = 0
    ledger_s3_uri: str | None = Field(default=None, alias="ledgerS3Uri")
    # The ledger's revision when this block was made: a ledger older than it was rolled back.
    ledger_revision: int | None = None
    reviewers: ReviewerSummary | None = None


class RunStage(StrEnum):
    PREPARING = "Preparing"
    TRAINING = "Training"
    EVALUATING = "Evaluating"
    AWAITING_APPROVAL = "AwaitingApproval"
    DEPLOYING = "Deploying"
    DONE = "Done"


class RunSamples(_Status):
    new: int = 0
    replay: int = 0
    validation: int = 0
    train: int = 0
    superseded: int = 0
    overlap_dropped: int = 0


class CurrentRun(_Status):
    id: str
    stage: RunStage
    trigger: str | None = None
    started_at: Timestamp
    # Instance-hours counted against the tenant's quota (reconcile/quota.py).
    instance_hours: float | None = None
    manifest_s3_uri: str | None = Field(default=None, alias="manifestS3Uri")
    validation_manifest_s3_uri: str | None = Field(default=None, alias="validationManifestS3Uri")
    base_model_data_url: str | None = None
    samples: RunSamples | None = None
    training_job_name: str | None = None
    tuning_job_name: str | None = None
    training_job_status: str | None = None
    secondary_status: str | None = None
    model_data_url: str | None = None
    metric_value: float | None = None
    model_package_arn: str | None = None
    approval_requested_at: Timestamp | None = None
    model_name: str | None = None
    endpoint_config_name: str | None = None
    deploy_step: int | None = None
    deploy_step_started_at: Timestamp | None = None
    message: str | None = None


class Outcome(StrEnum):
    DEPLOYED = "Deployed"
    TRAINED = "Trained"  # strategy None: gated, not deployed
    GATE_REJECTED = "GateRejected"
    TRAINING_FAILED = "TrainingFailed"
    ROLLED_BACK = "RolledBack"
    STOPPED = "Stopped"
    FAILED = "Failed"
    REJECTED = "Rejected"  # a person rejected the registered Model Package
    APPROVAL_TIMED_OUT = "ApprovalTimedOut"  # registry.approvalTimeout passed unapproved


class HistoryEntry(_Status):
    run_id: str
    outcome: Outcome
    training_job_name: str | None = None
    metric_value: float | None = None
    model_name: str | None = None
    model_data_url: str | None = None
    model_package_arn: str | None = None
    endpoint_config_name: str | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    reason: str | None = None
    train_as_validation: bool | None = None
    instance_hours: float | None = None


class ServingStatus(_Status):
    model_name: str | None = None
    endpoint_config_name: str | None = None
    model_data_url: str | None = None
    model_package_arn: str | None = None
    run_id: str | None = None
    metric_value: float | None = None
    since: Timestamp | None = None


class RetrainingPolicyStatus(_Status):
    observed_generation: int | None = None
    phase: Phase | None = None
    conditions: list[Condition] = Field(default_factory=list)
    ingest: IngestStatus = Field(default_factory=IngestStatus)
    current_run: CurrentRun | None = None
    history: Annotated[list[HistoryEntry], Field(max_length=HISTORY_LIMIT)] = Field(
        default_factory=list
    )
    serving: ServingStatus | None = None
    validation_wait: ValidationWait | None = None
    last_training_job_name: str | None = None
