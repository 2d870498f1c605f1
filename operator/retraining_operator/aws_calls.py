"""Every AWS call the operator makes, and the IAM actions AWS authorizes it by: one row each.

A gateway in `aws/` calls boto3; the row of that (service, operation) says which IAM
actions the call needs (the Service Authorization Reference: an S3 HeadObject is
s3:GetObject, a multipart part is s3:PutObject, an SQS DeleteMessageBatch is
sqs:DeleteMessage), which actions AWS adds when the request carries tags or hands over a
role, whether AWS can scope the call to a resource at all, and which feature of a
RetrainingPolicy makes the operator call it. Two readers, no second list:

- `reconcile/iam.py` builds the least-privilege policy `retraining-operator iam-policy`
  prints from these rows (it adds only the resources each statement is scoped to);
- the tests' IAM audit (`tests/support/iamcheck.py`) turns each recorded call into the IAM
  requests AWS would authorize, from the same rows.

A unit test reads the gateways' syntax tree with botocore's service models and proves that
every operation they call has exactly one row here, and that `iam-policy` grants exactly
the actions of the rows a policy's features use.

Pure and dependency-free, so the pure layer (reconcile/) imports it without importing
the gateways.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

# botocore's service names.
A2I = "sagemaker-a2i-runtime"
SAGEMAKER = "sagemaker"
S3 = "s3"
SQS = "sqs"
CLOUDWATCH = "cloudwatch"
AUTOSCALING = "application-autoscaling"
STS = "sts"

PASS_ROLE = "iam:PassRole"  # noqa: S105 (an IAM action, not a password)
SAGEMAKER_TAGS = "sagemaker:AddTags"
STS_TAGS = "sts:TagSession"


class Feature(StrEnum):
    """What makes the operator call AWS (reconcile/iam.py `features` reads it off a spec)."""

    HUMAN_LOOPS = "HumanLoops"  # every policy: the flow's loops and their output path
    DATASET = "Dataset"  # every policy: reviews, manifests, the ledger and the dataset prefix
    TRAINING = "Training"  # every policy
    EVENTS = "Events"  # spec.humanLoops.events: the policy's SQS queue
    TUNING = "Tuning"  # spec.training.tuning
    SERVING_READ = "ServingRead"  # the endpoint's model is read (a rollout, or fromEndpoint)
    DEPLOY = "Deploy"  # deployment.strategy other than None
    VARIANT_SHIFT = "VariantShift"
    ROLLBACK_ALARMS = "RollbackAlarms"  # deployment.autoRollbackAlarms, on a rollout
    REGISTRY = "Registry"  # spec.registry
    EVALUATION = "Evaluation"  # spec.gate.evaluation: Batch Transform, the prediction cache
    SHADOW = "Shadow"  # deployment.shadow: the inference experiment and its metrics
    SHADOW_CAPTURE = "ShadowCapture"  # deployment.shadow.dataCapture: the captures' listing
    ASSUME_ROLE = "AssumeRole"  # the operator's own role assumes spec.aws.roleArn / tenants'
    TOOLS = "Tools"  # CLI commands only, with the user's own credentials (never a policy)


@dataclass(frozen=True)
class AwsCall:
    """One boto3 operation a gateway calls and what AWS authorizes it by."""

    service: str  # botocore's service name: s3, sagemaker, sagemaker-a2i-runtime, sqs, ...
    operation: str  # botocore's operation name: GetObject, CreateTrainingJob, ...
    actions: tuple[str, ...]  # the IAM actions every such call needs
    features: tuple[Feature, ...]  # any of these makes the operator call it (none: no pass does)
    tags: str | None = None  # with Tags in the request AWS also checks this action
    passes_role: bool = False  # a role ARN in the request: iam:PassRole (to SageMaker)
    unscoped: bool = False  # AWS has no resource-level permission for it: granted on `*`
    # Made by boto3's managed transfer (S3 `copy` above 5 GiB), not by a gateway's own call.
    by_boto3: bool = False

    def needs(self, *, tagged: bool = True) -> tuple[str, ...]:
        """Every action the call can need (`tagged`: with tags in the request)."""
        extra = (self.tags,) if tagged and self.tags else ()
        return (*self.actions, *extra, *((PASS_ROLE,) if self.passes_role else ()))


CALLS: tuple[AwsCall, ...] = (
    # Human loops: listed by flow definition (no resource-level permission); the flow
    # definition's S3OutputPath is where the reviews are.
    AwsCall(
        A2I, "ListHumanLoops", ("sagemaker:ListHumanLoops",), (Feature.HUMAN_LOOPS,), unscoped=True
    ),
    AwsCall(A2I, "DescribeHumanLoop", ("sagemaker:DescribeHumanLoop",), (Feature.HUMAN_LOOPS,)),
    AwsCall(
        SAGEMAKER,
        "DescribeFlowDefinition",
        ("sagemaker:DescribeFlowDefinition",),
        (Feature.HUMAN_LOOPS,),
    ),
    # S3: reviews and manifests are read; the dataset prefix is written.
    AwsCall(S3, "GetObject", ("s3:GetObject",), (Feature.DATASET,)),
    AwsCall(S3, "HeadObject", ("s3:GetObject",), (Feature.DATASET,)),
    AwsCall(S3, "PutObject", ("s3:PutObject",), (Feature.DATASET,)),
    # A copy reads its source and writes its target.
    AwsCall(S3, "CopyObject", ("s3:GetObject", "s3:PutObject"), (Feature.DATASET,)),
    AwsCall(S3, "CreateMultipartUpload", ("s3:PutObject",), (Feature.DATASET,)),
    AwsCall(S3, "UploadPart", ("s3:PutObject",), (Feature.DATASET,)),
    AwsCall(
        S3, "UploadPartCopy", ("s3:GetObject", "s3:PutObject"), (Feature.DATASET,), by_boto3=True
    ),
    AwsCall(S3, "CompleteMultipartUpload", ("s3:PutObject",), (Feature.DATASET,)),
    AwsCall(S3, "AbortMultipartUpload", ("s3:AbortMultipartUpload",), (Feature.DATASET,)),
    AwsCall(S3, "DeleteObject", ("s3:DeleteObject",), (Feature.DATASET,)),
    # `retraining-operator manifest` lists an S3 prefix; a pass lists only the evaluation's
    # prediction cache (the serving model's predictions it already has).
    AwsCall(
        S3,
        "ListObjectsV2",
        ("s3:ListBucket",),
        (Feature.TOOLS, Feature.EVALUATION, Feature.SHADOW_CAPTURE),
    ),
    # Event-driven ingest: the policy's own queue (a batch is authorized as one message).
    AwsCall(SQS, "ReceiveMessage", ("sqs:ReceiveMessage",), (Feature.EVENTS,)),
    AwsCall(SQS, "DeleteMessageBatch", ("sqs:DeleteMessage",), (Feature.EVENTS,)),
    AwsCall(SQS, "ChangeMessageVisibility", ("sqs:ChangeMessageVisibility",), (Feature.EVENTS,)),
    AwsCall(SQS, "GetQueueAttributes", ("sqs:GetQueueAttributes",), (Feature.EVENTS,)),
    # Training and tuning jobs (a tuning job's training jobs are described too).
    AwsCall(
        SAGEMAKER,
        "CreateTrainingJob",
        ("sagemaker:CreateTrainingJob",),
        (Feature.TRAINING,),
        tags=SAGEMAKER_TAGS,
        passes_role=True,
    ),
    AwsCall(
        SAGEMAKER,
        "DescribeTrainingJob",
        ("sagemaker:DescribeTrainingJob",),
        (Feature.TRAINING, Feature.TUNING),
    ),
    AwsCall(SAGEMAKER, "StopTrainingJob", ("sagemaker:StopTrainingJob",), (Feature.TRAINING,)),
    # The gate's evaluation (Batch Transform). Every policy may describe and stop its run's
    # transform jobs: deleting one stops them whatever the spec says now.
    AwsCall(
        SAGEMAKER,
        "CreateTransformJob",
        ("sagemaker:CreateTransformJob",),
        (Feature.EVALUATION,),
        tags=SAGEMAKER_TAGS,
    ),
    AwsCall(
        SAGEMAKER,
        "DescribeTransformJob",
        ("sagemaker:DescribeTransformJob",),
        (Feature.TRAINING, Feature.EVALUATION),
    ),
    AwsCall(
        SAGEMAKER,
        "StopTransformJob",
        ("sagemaker:StopTransformJob",),
        (Feature.TRAINING, Feature.EVALUATION),
    ),
    AwsCall(
        SAGEMAKER,
        "CreateHyperParameterTuningJob",
        ("sagemaker:CreateHyperParameterTuningJob",),
        (Feature.TUNING,),
        tags=SAGEMAKER_TAGS,
        passes_role=True,
    ),
    # Every policy: deleting one stops its run's jobs, a tuning job too, whatever the spec
    # says now (the run may have started with a tuning the spec no longer has).
    AwsCall(
        SAGEMAKER,
        "DescribeHyperParameterTuningJob",
        ("sagemaker:DescribeHyperParameterTuningJob",),
        (Feature.TRAINING, Feature.TUNING),
    ),
    AwsCall(
        SAGEMAKER,
        "StopHyperParameterTuningJob",
        ("sagemaker:StopHyperParameterTuningJob",),
        (Feature.TRAINING, Feature.TUNING),
    ),
    # The serving endpoint, its config and model: read for the base model and a rollout.
    AwsCall(
        SAGEMAKER, "DescribeEndpoint", ("sagemaker:DescribeEndpoint",), (Feature.SERVING_READ,)
    ),
    AwsCall(
        SAGEMAKER,
        "DescribeEndpointConfig",
        ("sagemaker:DescribeEndpointConfig",),
        (Feature.SERVING_READ,),
    ),
    AwsCall(
        SAGEMAKER,
        "DescribeModel",
        ("sagemaker:DescribeModel",),
        (Feature.SERVING_READ, Feature.EVALUATION),
    ),
    # A rollout: the operator's models and configs, the endpoint, their owner tags.
    AwsCall(
        SAGEMAKER,
        "CreateModel",
        ("sagemaker:CreateModel",),
        (Feature.DEPLOY, Feature.EVALUATION),
        tags=SAGEMAKER_TAGS,
        passes_role=True,
    ),
    AwsCall(SAGEMAKER, "DeleteModel", ("sagemaker:DeleteModel",), (Feature.DEPLOY,)),
    AwsCall(
        SAGEMAKER,
        "CreateEndpointConfig",
        ("sagemaker:CreateEndpointConfig",),
        (Feature.DEPLOY,),
        tags=SAGEMAKER_TAGS,
    ),
    AwsCall(
        SAGEMAKER, "DeleteEndpointConfig", ("sagemaker:DeleteEndpointConfig",), (Feature.DEPLOY,)
    ),
    AwsCall(
        SAGEMAKER,
        "CreateEndpoint",
        ("sagemaker:CreateEndpoint",),
        (Feature.DEPLOY,),
        tags=SAGEMAKER_TAGS,
    ),
    AwsCall(SAGEMAKER, "UpdateEndpoint", ("sagemaker:UpdateEndpoint",), (Feature.DEPLOY,)),
    # The operator never deletes an endpoint: no feature grants it.
    AwsCall(SAGEMAKER, "DeleteEndpoint", ("sagemaker:DeleteEndpoint",), ()),
    AwsCall(SAGEMAKER, "ListTags", ("sagemaker:ListTags",), (Feature.DEPLOY, Feature.REGISTRY)),
    AwsCall(SAGEMAKER, "AddTags", ("sagemaker:AddTags",), (Feature.DEPLOY,)),
    # A deleted policy releases its endpoint (its owner tag), so a policy re-created under
    # that name may take it.
    AwsCall(SAGEMAKER, "DeleteTags", ("sagemaker:DeleteTags",), (Feature.DEPLOY,)),
    AwsCall(SAGEMAKER, "ListModels", ("sagemaker:ListModels",), (Feature.DEPLOY,), unscoped=True),
    AwsCall(
        SAGEMAKER,
        "ListEndpointConfigs",
        ("sagemaker:ListEndpointConfigs",),
        (Feature.DEPLOY,),
        unscoped=True,
    ),
    AwsCall(
        AUTOSCALING,
        "DescribeScalableTargets",
        ("application-autoscaling:DescribeScalableTargets",),
        (Feature.DEPLOY,),
        unscoped=True,
    ),
    # Variant shift: weights, per-variant metrics, autoscaling moved to the new variant.
    AwsCall(
        SAGEMAKER,
        "UpdateEndpointWeightsAndCapacities",
        ("sagemaker:UpdateEndpointWeightsAndCapacities",),
        (Feature.VARIANT_SHIFT,),
    ),
    AwsCall(
        AUTOSCALING,
        "DescribeScalingPolicies",
        ("application-autoscaling:DescribeScalingPolicies",),
        (Feature.VARIANT_SHIFT,),
        unscoped=True,
    ),
    AwsCall(
        AUTOSCALING,
        "RegisterScalableTarget",
        ("application-autoscaling:RegisterScalableTarget",),
        (Feature.VARIANT_SHIFT,),
    ),
    AwsCall(
        AUTOSCALING,
        "PutScalingPolicy",
        ("application-autoscaling:PutScalingPolicy",),
        (Feature.VARIANT_SHIFT,),
    ),
    AwsCall(
        AUTOSCALING,
        "DeregisterScalableTarget",
        ("application-autoscaling:DeregisterScalableTarget",),
        (Feature.VARIANT_SHIFT,),
    ),
    AwsCall(
        CLOUDWATCH,
        "GetMetricData",
        ("cloudwatch:GetMetricData",),
        (Feature.VARIANT_SHIFT, Feature.SHADOW),
        unscoped=True,
    ),
    # The shadow test (deployment.shadow). Every deploying policy may describe and stop its
    # run's experiment: deleting one stops it whatever the spec says now.
    AwsCall(
        SAGEMAKER,
        "CreateInferenceExperiment",
        ("sagemaker:CreateInferenceExperiment",),
        (Feature.SHADOW,),
        tags=SAGEMAKER_TAGS,
        passes_role=True,
    ),
    AwsCall(
        SAGEMAKER,
        "DescribeInferenceExperiment",
        ("sagemaker:DescribeInferenceExperiment",),
        (Feature.DEPLOY, Feature.SHADOW),
    ),
    AwsCall(
        SAGEMAKER,
        "StopInferenceExperiment",
        ("sagemaker:StopInferenceExperiment",),
        (Feature.DEPLOY, Feature.SHADOW),
    ),
    AwsCall(
        CLOUDWATCH, "DescribeAlarms", ("cloudwatch:DescribeAlarms",), (Feature.ROLLBACK_ALARMS,)
    ),
    # Model registry: the policy's Model Package Group and its versions.
    AwsCall(
        SAGEMAKER,
        "CreateModelPackageGroup",
        ("sagemaker:CreateModelPackageGroup",),
        (Feature.REGISTRY,),
        tags=SAGEMAKER_TAGS,
    ),
    AwsCall(
        SAGEMAKER,
        "DescribeModelPackageGroup",
        ("sagemaker:DescribeModelPackageGroup",),
        (Feature.REGISTRY,),
    ),
    AwsCall(
        SAGEMAKER,
        "CreateModelPackage",
        ("sagemaker:CreateModelPackage",),
        (Feature.REGISTRY,),
        tags=SAGEMAKER_TAGS,
    ),
    AwsCall(
        SAGEMAKER, "DescribeModelPackage", ("sagemaker:DescribeModelPackage",), (Feature.REGISTRY,)
    ),
    AwsCall(
        SAGEMAKER, "UpdateModelPackage", ("sagemaker:UpdateModelPackage",), (Feature.REGISTRY,)
    ),
    # The operator's own role assumes the policy's or tenant's role (with session tags in
    # Scoped mode, which the trust policies condition on).
    AwsCall(STS, "AssumeRole", ("sts:AssumeRole",), (Feature.ASSUME_ROLE,), tags=STS_TAGS),
)

_BY_OPERATION: Mapping[tuple[str, str], AwsCall] = {(c.service, c.operation): c for c in CALLS}


class Undeclared(LookupError):
    """A call with no row: add one (the IAM policy would not grant it)."""


def declared(service: str, operation: str) -> AwsCall:
    """The row of one call; `Undeclared` when there is none."""
    try:
        return _BY_OPERATION[(service, operation)]
    except KeyError:
        raise Undeclared(f"no IAM declaration for {service} {operation}") from None


def actions_of(service: str, *operations: str) -> list[str]:
    """The IAM actions of these calls of one service (for a statement of a policy)."""
    return [action for operation in operations for action in declared(service, operation).actions]


def used_by(features: Iterable[Feature]) -> tuple[AwsCall, ...]:
    """The calls the operator makes for a policy with these features."""
    wanted = frozenset(features)
    return tuple(call for call in CALLS if wanted.intersection(call.features))
