"""The permissions of the SageMaker execution role (spec.training.roleArn): what SageMaker
does in its name for a RetrainingPolicy (`retraining-operator iam-policy --execution-role`).

Not the operator's calls (reconcile/iam.py): the role SageMaker assumes when it runs the
policy's training and tuning jobs, the gate's transform jobs and the endpoint's model (whose
trust policy names `sagemaker.amazonaws.com`). It reads the run's manifests (under
`dataset.outputS3Uri/manifests/`), the images they name, the base model and every model
the operator trained (under `training.outputS3Uri`); it writes model artifacts, spot
checkpoints and the transform jobs' predictions; it pulls the image, writes CloudWatch Logs
and SageMaker's metrics, and uses the KMS keys and VPC subnets the spec names.

Pure, like reconcile/iam.py, whose ARN and statement helpers it shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.aws_calls import Feature
from retraining_operator.reconcile.evaluation.transform import EVALUATION_PREFIX
from retraining_operator.reconcile.iam import (
    VERSION,
    Arns,
    IamPolicyError,
    features,
    s3_parts,
    statement,
)

SAGEMAKER_LOG_GROUPS = "/aws/sagemaker"
# flows/dataset.py MANIFEST_PREFIX (a test keeps them equal: reconcile cannot import flows).
DATASET_MANIFESTS = "manifests"
# SageMaker puts instance metrics in namespaces under this one (/aws/sagemaker/TrainingJobs,
# /aws/sagemaker/TransformJobs, /aws/sagemaker/Endpoints).
SAGEMAKER_METRIC_NAMESPACES = "/aws/sagemaker/*"
ECR_PULL = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
KMS_USE = [
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
]
# What SageMaker does in the role's name to put a job's or an endpoint's instances in the VPC.
VPC_ENIS = [
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
]


def ecr_repository_arn(image_uri: str, partition: str = "aws") -> str | None:
    """`<account>.dkr.ecr.<region>.<suffix>/<repository>[:tag|@digest]` -> the repository's
    ARN; None for an image outside ECR."""
    host, _, path = image_uri.partition("/")
    labels = host.split(".")
    if len(labels) < 5 or labels[1:3] != ["dkr", "ecr"] or not path:
        return None
    repository = path.split("@", 1)[0].rsplit(":", 1)[0] if "@" in path or ":" in path else path
    return f"arn:{partition}:ecr:{labels[3]}:{labels[0]}:repository/{repository}"


class ExecutionRole:
    """The role SageMaker assumes for the policy's jobs and models (training.roleArn): what
    the training job, the gate's transform jobs and the endpoint's model read and write.

    S3 reads: the operator's manifests (under dataset.outputS3Uri), the images they name,
    the base model and every model the operator trained (under training.outputS3Uri).
    Writes: the model artifacts and checkpoints, and the transform outputs (under the
    dataset prefix). Plus the image pull, CloudWatch Logs and metrics, the KMS keys and
    the VPC's network interfaces when the spec sets them."""

    def __init__(
        self,
        policy_name: str,
        spec: RetrainingPolicySpec,
        image_uri: str | None,
        image_prefixes: list[str],
        model_data: list[str],
    ) -> None:
        self.policy_name = policy_name
        self.spec = spec
        self.image_uri = image_uri
        self.image_prefixes = image_prefixes
        self.model_data = model_data
        self.arns = Arns(spec)
        self.used = features(spec)
        self.statements: list[dict[str, Any]] = []
        self.listed: dict[str, set[str]] = {}  # bucket -> key prefixes SageMaker lists

    def allow(self, sid: str, actions: list[str], resources: list[str], **extra: Any) -> None:
        self.statements.append(statement(sid, actions, resources, **extra))

    def under(self, uri: str) -> str:
        """Every object below the folder `uri` names."""
        bucket, key = s3_parts(uri)
        key = key.strip("/")
        return self.arns.s3(f"{bucket}/{key}/*" if key else f"{bucket}/*")

    def prefix(self, uri: str) -> str:
        """An `S3Prefix` channel's objects: every key that starts with `uri`'s (it may name
        one object, or a folder), and the listing SageMaker makes of them."""
        bucket, key = s3_parts(uri)
        self.listed.setdefault(bucket, set()).add(f"{key}*")
        return self.arns.s3(f"{bucket}/{key}*")

    def build(self) -> dict[str, Any]:
        self.s3()
        self.image()
        self.logs()
        self.allow(
            "PutSageMakerMetrics",
            ["cloudwatch:PutMetricData"],
            ["*"],
            Condition={"StringLike": {"cloudwatch:namespace": SAGEMAKER_METRIC_NAMESPACES}},
        )
        self.kms()
        self.shadow()
        if self.spec.training.vpc_config is not None:
            # EC2 has no resource-level permissions for the Describe calls; SageMaker
            # creates the interfaces in the subnets and security groups the spec names.
            self.allow("VpcNetworkInterfaces", VPC_ENIS, ["*"])
        return {"Version": VERSION, "Statement": self.statements}

    def shadow(self) -> None:
        """deployment.shadow with this role (no shadow.roleArn of its own): SageMaker assumes
        it to deploy the shadow variant and take it away again. AWS documents the role as one
        that "manages SageMaker Inference endpoints for model deployment" without listing
        the calls; these are the ones that deployment makes, on this policy's endpoint."""
        shadow = self.spec.deployment.shadow
        if Feature.SHADOW not in self.used or shadow is None:
            return
        if shadow.role_arn not in (None, self.spec.training.role_arn):
            return  # the experiment runs as its own role (docs/rollout.md)
        endpoint = self.spec.deployment.endpoint_name or ""
        if shadow.data_capture is not None:  # SageMaker writes both variants' captures
            capture = self.under(shadow.data_capture.destination_s3_uri)
            self.allow("WriteShadowCapture", ["s3:PutObject"], [capture])
        self.allow(
            "RunShadowTests",
            [
                "sagemaker:CreateEndpointConfig",
                "sagemaker:DescribeEndpoint",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:DescribeModel",
                "sagemaker:UpdateEndpoint",
            ],
            [
                self.arns.sagemaker(f"endpoint/{endpoint.lower()}"),
                self.arns.sagemaker("endpoint-config/*"),
                self.arns.sagemaker("model/*"),
            ],
        )

    def s3(self) -> None:
        spec = self.spec
        training = spec.training
        dataset = spec.dataset.output_s3_uri.rstrip("/")
        # The run's train/validation manifests (flows/dataset.py), not the reviews or ledger.
        reads = [self.under(f"{dataset}/{DATASET_MANIFESTS}")]
        reads += [self.under(prefix) for prefix in self.image_prefixes]
        # Every model the operator trained: the next run's base model, the endpoint's model.
        reads.append(self.prefix(training.output_s3_uri.rstrip("/") + "/"))
        base = training.base_model.s3_uri
        reads += [self.prefix(uri) for uri in [*([base] if base else []), *self.model_data]]
        writes = [self.under(training.output_s3_uri)]
        if training.spot.enabled:
            checkpoints = training.spot.checkpoint_s3_uri
            if checkpoints:  # else under outputS3Uri, already there
                reads.append(self.prefix(checkpoints.rstrip("/") + "/"))
                writes.append(self.under(checkpoints))
        if Feature.EVALUATION in self.used:
            # The transform jobs' input manifests and their predictions (evaluation/transform.py).
            reads.append(self.under(f"{dataset}/{EVALUATION_PREFIX}/inputs"))
            writes.append(self.under(f"{dataset}/{EVALUATION_PREFIX}/predictions"))
        self.allow("ReadInputsAndModels", ["s3:GetObject"], reads)
        self.allow("WriteModelsAndPredictions", ["s3:PutObject"], writes)
        listed = sorted(self.listed.items())
        for number, (bucket, prefixes) in enumerate(listed, start=1):
            self.allow(
                "ListModelPrefixes" + (str(number) if len(listed) > 1 else ""),
                ["s3:ListBucket"],
                [self.arns.s3(bucket)],
                Condition={"StringLike": {"s3:prefix": sorted(prefixes)}},
            )

    def image(self) -> None:
        repository = (
            ecr_repository_arn(self.image_uri, self.arns.partition) if self.image_uri else None
        )
        if repository is None:
            return  # not in ECR (or not known): nothing to pull with the role
        self.allow("PullImage", ECR_PULL, [repository])
        self.allow("EcrLogin", ["ecr:GetAuthorizationToken"], ["*"])

    def logs(self) -> None:
        groups = ["TrainingJobs"]
        if Feature.EVALUATION in self.used:
            groups.append("TransformJobs")
        endpoint = self.spec.deployment.endpoint_name
        if Feature.DEPLOY in self.used and endpoint:
            groups.append(f"Endpoints/{endpoint}")
        arns = self.arns
        resources = [
            f"arn:{arns.partition}:logs:{arns.region}:{arns.account}:log-group:"
            f"{SAGEMAKER_LOG_GROUPS}/{group}:*"
            for group in groups
        ]
        actions = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
        self.allow("WriteLogs", [*actions, "logs:DescribeLogStreams"], resources)

    def kms(self) -> None:
        training, arns = self.spec.training, self.arns
        keys = [key for key in (training.output_kms_key_id, training.volume_kms_key_id) if key]
        if not keys:
            return
        resources = []
        for key in keys:
            if key.startswith("arn:"):
                resources.append(key)
            else:  # a key id or an alias/..., in the policy's account and region
                kind = key if key.startswith("alias/") else f"key/{key}"
                resources.append(f"arn:{arns.partition}:kms:{arns.region}:{arns.account}:{kind}")
        self.allow("UseKmsKeys", KMS_USE, resources)


def for_execution_role(
    policy_name: str,
    spec: RetrainingPolicySpec,
    *,
    image_uri: str | None,
    image_s3_prefixes: Sequence[str] = (),
    model_data_s3_uris: Sequence[str] = (),
) -> dict[str, Any]:
    """The permissions of training.roleArn, the role SageMaker assumes for the policy's
    training and transform jobs and its models (their trust policy is SageMaker's).

    `image_s3_prefixes`: where the images the manifests name live (labels.imageS3Prefixes
    when not given); `model_data_s3_uris`: model artifacts not under training.outputS3Uri
    (the endpoint's current model, before the operator's first run)."""
    prefixes = list(image_s3_prefixes) or list(spec.labels.image_s3_prefixes or [])
    if not prefixes:
        raise IamPolicyError(
            "the training job reads the images the manifests name: give their S3 prefixes "
            "(labels.imageS3Prefixes, or --images s3://bucket/folder, repeatable)"
        )
    return ExecutionRole(policy_name, spec, image_uri, prefixes, list(model_data_s3_uris)).build()
