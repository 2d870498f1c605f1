"""The least-privilege IAM policy for one RetrainingPolicy: exactly the AWS actions the
operator calls for it, each scoped to that policy's resources.

Pure: the spec in, an IAM policy document out (`retraining-operator iam-policy` prints it).
The account and partition come from `humanLoops.flowDefinitionArn`, the region from
`aws.region`. SageMaker resources the operator creates are matched by the readable head
of their deterministic names (reconcile/naming.py: `<policy>-<run>-<kind>-<hash>`); the
hash depends on the object's UID, which a file does not have, so the head is the narrowest
pattern that holds for the live object too.

Where AWS offers no resource-level permission (ListHumanLoops, ListModels,
ListEndpointConfigs, GetMetricData) the resource is `*`; where the operator must read a
resource it did not create and cannot name in advance (the human loops the application
starts, the endpoint's current config and model, which it copies and rolls back to) reads
cover the account and region for that resource type, and writes never do.

The actions come from `aws_calls.py`, where each AWS call the operator makes is declared
once with the IAM actions AWS authorizes it by and the feature of a policy that makes it
(`features` below); this module adds only the resources each statement is scoped to.

Two identities: `for_policy` is the role that makes the calls (spec.aws.roleArn when set,
else the operator's own); `for_operator` is the operator's own role (IRSA / Pod Identity),
which only needs sts:AssumeRole on spec.aws.roleArn when the policy sets one.
"""

from __future__ import annotations

from typing import Any

from retraining_operator.api import RetrainingPolicySpec, Strategy
from retraining_operator.aws_calls import (
    A2I,
    AUTOSCALING,
    CLOUDWATCH,
    PASS_ROLE,
    S3,
    SAGEMAKER,
    SQS,
    STS,
    Feature,
    actions_of,
    declared,
)
from retraining_operator.reconcile.evaluation.transform import EVALUATION_PREFIX
from retraining_operator.reconcile.events import parse_queue_url
from retraining_operator.reconcile.naming import resource_name
from retraining_operator.reconcile.rollout.strategies import rules_for
from retraining_operator.reconcile.rollout.strategy import StrategyIam

VERSION = "2012-10-17"
SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"
# A2I writes every loop's output under `<flow output path>/<flow name>/<date...>/<loop>/`.
A2I_OUTPUT_FILE = "output.json"
_PROBE_RUN = "r00000000-000000"


class IamPolicyError(ValueError):
    """The spec cannot be turned into a policy (e.g. a malformed ARN or S3 URI)."""


def s3_parts(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise IamPolicyError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise IamPolicyError(f"{uri!r} names no bucket")
    return bucket, key


def name_head(policy_name: str, kind: str, *, max_len: int | None = None) -> str:
    """The readable head every `kind` name of this policy starts with (before `-<run>-`)."""
    kwargs = {"max_len": max_len} if max_len is not None else {}
    probe = resource_name(
        kind, policy_name=policy_name, policy_uid="probe", run_id=_PROBE_RUN, **kwargs
    )
    run = _PROBE_RUN if max_len is None else _PROBE_RUN.replace("r", "", 1)
    head, sep, _ = probe.partition(f"-{run}-")
    return head if sep else probe.partition(f"-{kind}-")[0]


class Arns:
    def __init__(self, spec: RetrainingPolicySpec) -> None:
        parts = spec.human_loops.flow_definition_arn.split(":")
        if len(parts) < 6:
            raise IamPolicyError("humanLoops.flowDefinitionArn is not an ARN")
        self.partition, self.account = parts[1], parts[4]
        self.region = spec.aws.region

    def sagemaker(self, resource: str) -> str:
        return f"arn:{self.partition}:sagemaker:{self.region}:{self.account}:{resource}"

    def scalable_target(self, target_id: str) -> str:
        # Application Auto Scaling names targets by an id it chooses: scoped to the account.
        service = f"arn:{self.partition}:application-autoscaling"
        return f"{service}:{self.region}:{self.account}:scalable-target/{target_id}"

    def alarm(self, name: str) -> str:
        return f"arn:{self.partition}:cloudwatch:{self.region}:{self.account}:alarm:{name}"

    def s3(self, path: str) -> str:
        return f"arn:{self.partition}:s3:::{path}"


def statement(sid: str, actions: list[str], resources: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(set(actions)),
        "Resource": sorted(set(resources)) if len(set(resources)) > 1 else resources[0],
        **extra,
    }


def features(spec: RetrainingPolicySpec) -> frozenset[Feature]:
    """What this policy makes the operator call AWS for (the rows of `aws_calls.CALLS`)."""
    used = {Feature.HUMAN_LOOPS, Feature.DATASET, Feature.TRAINING}
    if spec.human_loops.events is not None:
        used.add(Feature.EVENTS)
    if spec.training.tuning is not None:
        used.add(Feature.TUNING)
    deployment = spec.deployment
    deploys = bool(deployment.endpoint_name) and deployment.strategy is not Strategy.NONE
    if deployment.endpoint_name and (deploys or spec.training.base_model.from_endpoint):
        # The endpoint's model is read: the base model, or the config a rollout copies.
        used.add(Feature.SERVING_READ)
    if deploys:
        used.add(Feature.DEPLOY)
        if deployment.strategy is Strategy.VARIANT_SHIFT:
            used.add(Feature.VARIANT_SHIFT)
        if deployment.auto_rollback_alarms:
            used.add(Feature.ROLLBACK_ALARMS)
    if spec.registry is not None:
        used.add(Feature.REGISTRY)
    if deploys and deployment.shadow is not None:
        used.add(Feature.SHADOW)
        if deployment.shadow.data_capture is not None:
            used.add(Feature.SHADOW_CAPTURE)
    if spec.gate.evaluation is not None:
        used.add(Feature.EVALUATION)
        if deployment.endpoint_name:
            used.add(Feature.SERVING_READ)  # the serving model is evaluated too
    return frozenset(used)


class _Document:
    """One policy document being built: each step adds the statements of one feature,
    scoped to this policy's resources, and names what it creates (tagged on create)."""

    def __init__(
        self, policy_name: str, spec: RetrainingPolicySpec, a2i_output_s3_uri: str | None
    ) -> None:
        self.policy_name = policy_name
        self.spec = spec
        self.a2i_output_s3_uri = a2i_output_s3_uri
        self.arns = Arns(spec)
        self.used = features(spec)
        self.statements: list[dict[str, Any]] = []
        self.created: list[str] = []  # resources the operator creates, with tags
        self.creates: list[str] = []  # ... and the Create* operations that make them

    def allow(self, sid: str, actions: list[str], resources: list[str], **extra: Any) -> None:
        self.statements.append(statement(sid, actions, resources, **extra))

    def create(self, operation: str, *resources: str) -> None:
        self.created.extend(resources)
        self.creates.append(operation)

    @property
    def strategy(self) -> StrategyIam:
        """What the rollout strategy needs beyond every rollout's (its rules say)."""
        return rules_for(self.spec.deployment.strategy).iam

    def endpoint(self) -> str:
        name = self.spec.deployment.endpoint_name
        assert name, "the endpoint is used only when it is named (features)"
        return self.arns.sagemaker(f"endpoint/{name.lower()}")

    def build(self) -> dict[str, Any]:
        self.human_loops()
        if Feature.EVENTS in self.used:
            self.events()
        self.dataset()
        self.training()
        if Feature.SERVING_READ in self.used:
            self.serving_read()
        if Feature.DEPLOY in self.used:
            self.rollout()
            self.rollout_watch()
            self.shadow()
        if Feature.REGISTRY in self.used:
            self.registry()
        if Feature.EVALUATION in self.used:
            self.evaluation()
        self.tag_on_create()
        return {"Version": VERSION, "Statement": self.statements}

    def human_loops(self) -> None:
        # Listed by flow definition (no resource-level permission); any loop is described
        # (the application names them) when an output's key cannot be predicted.
        self.allow("ListHumanLoops", actions_of(A2I, "ListHumanLoops"), ["*"])
        loops = [self.arns.sagemaker("human-loop/*")]
        self.allow("DescribeHumanLoops", actions_of(A2I, "DescribeHumanLoop"), loops)
        # The flow definition's S3OutputPath: the ledger's outputPrefix must lie under it.
        flow = [self.spec.human_loops.flow_definition_arn]
        self.allow("ReadFlowDefinition", actions_of(SAGEMAKER, "DescribeFlowDefinition"), flow)

    def events(self) -> None:
        """Event-driven ingest: the policy's own queue."""
        events = self.spec.human_loops.events
        assert events is not None
        address = parse_queue_url(events.sqs_queue_url)
        if address is None:
            raise IamPolicyError(f"{events.sqs_queue_url!r} is not an SQS queue URL")
        queue = address.arn(self.arns.partition, self.arns.region)
        consume = actions_of(
            SQS,
            "ReceiveMessage",
            "DeleteMessageBatch",
            "ChangeMessageVisibility",
            "GetQueueAttributes",
        )
        self.allow("ConsumeA2IEvents", consume, [queue])

    def dataset(self) -> None:
        """S3: A2I outputs and the manifests are read only; the dataset prefix is the
        operator's own."""
        spec, arns = self.spec, self.arns
        flow = spec.human_loops.flow_definition_name
        if self.a2i_output_s3_uri:
            bucket, key = s3_parts(self.a2i_output_s3_uri)
            prefix = f"{bucket}/{key.strip('/')}/" if key.strip("/") else f"{bucket}/"
            outputs = arns.s3(f"{prefix}{flow}/*/{A2I_OUTPUT_FILE}")
        else:
            outputs = arns.s3(f"*/{flow}/*/{A2I_OUTPUT_FILE}")
        reads = [outputs]
        validation = spec.dataset.validation.manifest_s3_uri
        if validation:
            reads.append(arns.s3("/".join(s3_parts(validation))))
        anchor = spec.gate.evaluation.anchor_manifest_s3_uri if spec.gate.evaluation else None
        if anchor:
            reads.append(arns.s3("/".join(s3_parts(anchor))))
        if spec.dataset.replay is not None:
            reads.append(arns.s3("/".join(s3_parts(spec.dataset.replay.manifest_s3_uri))))
        self.allow("ReadReviewsAndManifests", actions_of(S3, "GetObject"), reads)
        bucket, key = s3_parts(spec.dataset.output_s3_uri)
        dataset = arns.s3(f"{bucket}/{key.strip('/')}/*" if key.strip("/") else f"{bucket}/*")
        writes = actions_of(
            S3,
            *("GetObject", "HeadObject", "PutObject", "CopyObject", "DeleteObject"),
            *("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"),
            *("UploadPartCopy", "AbortMultipartUpload"),
        )
        self.allow("DatasetPrefix", writes, [dataset])

    def training(self) -> None:
        """Training (and tuning) jobs named by the operator, and the role they run as."""
        training, arns = self.spec.training, self.arns
        jobs = [arns.sagemaker(f"training-job/{name_head(self.policy_name, 'tj')}-*")]
        self.create("CreateTrainingJob", *jobs)
        jobs_calls = ("CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob")
        self.allow("TrainingJobs", actions_of(SAGEMAKER, *jobs_calls), jobs)
        tuning_head = name_head(self.policy_name, "ht", max_len=32)
        tuning = arns.sagemaker(f"hyper-parameter-tuning-job/{tuning_head}-*")
        # Every policy: deleting one stops its run's jobs, a tuning job too, whatever the
        # spec says now (the run may have started with a tuning the spec no longer has).
        tuning_calls = ["DescribeHyperParameterTuningJob", "StopHyperParameterTuningJob"]
        if Feature.TUNING in self.used:
            self.create("CreateHyperParameterTuningJob", tuning)
            tuning_calls.append("CreateHyperParameterTuningJob")
        self.allow("TuningJobs", actions_of(SAGEMAKER, *tuning_calls), [tuning])
        # SageMaker names a tuning job's training jobs `<tuning job>-<nnn>-<hash>`.
        own = [arns.sagemaker(f"training-job/{tuning_head}-*")]
        self.allow("TuningTrainingJobs", actions_of(SAGEMAKER, "DescribeTrainingJob"), own)
        # The gate's evaluation: every policy may describe and stop its run's transform jobs
        # (deletion stops them whatever the spec says now); creating them needs the feature.
        transforms = [
            arns.sagemaker(f"transform-job/{name_head(self.policy_name, kind)}-*")
            for kind in ("tc", "ts")
        ]
        transform_calls = ["DescribeTransformJob", "StopTransformJob"]
        if Feature.EVALUATION in self.used:
            self.create("CreateTransformJob", *transforms)
            transform_calls.append("CreateTransformJob")
        self.allow("TransformJobs", actions_of(SAGEMAKER, *transform_calls), transforms)
        self.allow(
            "PassTrainingRole",
            [PASS_ROLE],
            [training.role_arn],
            Condition={"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}},
        )

    def serving_read(self) -> None:
        """The endpoint's current config and model have names the operator did not choose:
        it reads them (base model, the config it copies and may roll back to)."""
        arns = self.arns
        resources = [
            self.endpoint(),
            arns.sagemaker("endpoint-config/*"),
            arns.sagemaker("model/*"),
        ]
        calls = ("DescribeEndpoint", "DescribeEndpointConfig", "DescribeModel")
        self.allow("ReadServingEndpoint", actions_of(SAGEMAKER, *calls), resources)

    def rollout(self) -> None:
        """The operator's models and configs, and the endpoint it rolls."""
        arns, head = self.arns, self.policy_name
        endpoint = self.endpoint()
        models = arns.sagemaker(f"model/{name_head(head, 'm')}-*")
        configs = arns.sagemaker(f"endpoint-config/{name_head(head, 'ec')}-*")
        self.create("CreateModel", models)
        self.create("CreateEndpointConfig", configs)
        self.create("CreateEndpoint", endpoint)
        own = ("CreateModel", "DeleteModel", "CreateEndpointConfig", "DeleteEndpointConfig")
        self.allow("OwnModelsAndConfigs", actions_of(SAGEMAKER, *own), [models, configs])
        anyone = [arns.sagemaker("model/*"), arns.sagemaker("endpoint-config/*")]
        self.allow("ListTagsOfModelsAndConfigs", actions_of(SAGEMAKER, "ListTags"), anyone)
        # The endpoint's owner tag (the policy UID): read before every roll, set on the first,
        # removed when the policy is deleted (the endpoint is released).
        owner_tag = actions_of(SAGEMAKER, "ListTags", "AddTags", "DeleteTags")
        self.allow("OwnTheEndpoint", owner_tag, [endpoint])
        listings = actions_of(SAGEMAKER, "ListModels", "ListEndpointConfigs")
        self.allow("FindOwnModelsAndConfigs", listings, ["*"])
        rolls = [
            *actions_of(SAGEMAKER, "CreateEndpoint", "UpdateEndpoint"),
            *self.strategy.endpoint,
        ]
        # A rollback returns the endpoint to the config it had (named by whoever made it).
        configs_of_anyone = arns.sagemaker("endpoint-config/*")
        self.allow("RollTheEndpoint", rolls, [endpoint, configs_of_anyone])

    def rollout_watch(self) -> None:
        """Autoscaled endpoints keep their autoscaling through a rollout: the operator reads
        the scalable targets (Application Auto Scaling has no resource-level permissions
        for them) and, if its strategy moves variants, moves the registration to the new
        variant; it reads the rollback alarms and the metrics its strategy judges."""
        strategy = self.strategy
        if strategy.autoscaling_writes:
            target = [self.arns.scalable_target("*")]
            self.allow("MoveEndpointAutoscaling", list(strategy.autoscaling_writes), target)
        reads = [*actions_of(AUTOSCALING, "DescribeScalableTargets"), *strategy.autoscaling_reads]
        self.allow("ReadEndpointAutoscaling", reads, ["*"])
        if Feature.ROLLBACK_ALARMS in self.used:
            alarms = [self.arns.alarm(name) for name in self.spec.deployment.auto_rollback_alarms]
            self.allow("ReadRollbackAlarms", actions_of(CLOUDWATCH, "DescribeAlarms"), alarms)
        if strategy.metric_reads:
            self.allow("ReadVariantMetrics", list(strategy.metric_reads), ["*"])

    def shadow(self) -> None:
        """The run's inference experiment: every deploying policy may describe and stop it
        (deletion stops it); creating it, passing its role and reading both variants'
        metrics needs deployment.shadow."""
        experiments = [
            self.arns.sagemaker(f"inference-experiment/{name_head(self.policy_name, 'sx')}-*")
        ]
        calls = ["DescribeInferenceExperiment", "StopInferenceExperiment"]
        shadow = self.spec.deployment.shadow
        if Feature.SHADOW in self.used and shadow is not None:
            self.create("CreateInferenceExperiment", *experiments)
            self.allow(
                "CreateShadowTests",
                actions_of(SAGEMAKER, "CreateInferenceExperiment"),
                [*experiments, self.endpoint()],
            )
            role = shadow.role_arn or self.spec.training.role_arn
            if role != self.spec.training.role_arn:  # else PassTrainingRole allows it
                self.allow(
                    "PassExperimentRole",
                    [PASS_ROLE],
                    [role],
                    Condition={"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}},
                )
            self.allow("ReadShadowMetrics", actions_of(CLOUDWATCH, "GetMetricData"), ["*"])
            if shadow.data_capture is not None:  # both variants' answers, compared
                bucket, key = s3_parts(shadow.data_capture.destination_s3_uri)
                key = key.strip("/")
                under = f"{key}/" if key else ""
                self.allow(
                    "ReadShadowCapture", ["s3:GetObject"], [self.arns.s3(f"{bucket}/{under}*")]
                )
                self.allow(
                    "ListShadowCapture",
                    actions_of(S3, "ListObjectsV2"),
                    [self.arns.s3(bucket)],
                    Condition={"StringLike": {"s3:prefix": [f"{under}*"]}},
                )
        self.allow("ShadowTests", actions_of(SAGEMAKER, *calls), experiments)

    def registry(self) -> None:
        """The policy's Model Package Group and its versions (the group's owner tag is read
        before the group is used: another policy's group is refused)."""
        assert self.spec.registry is not None
        group_name = self.spec.registry.model_package_group_name.lower()
        group = self.arns.sagemaker(f"model-package-group/{group_name}")
        packages = self.arns.sagemaker(f"model-package/{group_name}/*")
        self.create("CreateModelPackageGroup", group)
        self.create("CreateModelPackage", packages)
        calls = ("CreateModelPackageGroup", "DescribeModelPackageGroup", "ListTags")
        self.allow("ModelPackageGroup", actions_of(SAGEMAKER, *calls), [group])
        calls = ("CreateModelPackage", "DescribeModelPackage", "UpdateModelPackage")
        self.allow("ModelPackages", actions_of(SAGEMAKER, *calls), [packages])

    def evaluation(self) -> None:
        """The candidate's Model (the rollout's own name; without a rollout the evaluation
        makes it), and the listing of the prediction cache under the dataset prefix."""
        if Feature.DEPLOY not in self.used:
            models = self.arns.sagemaker(f"model/{name_head(self.policy_name, 'm')}-*")
            self.create("CreateModel", models)
            self.allow(
                "EvaluationModels", actions_of(SAGEMAKER, "CreateModel", "DescribeModel"), [models]
            )
        bucket, key = s3_parts(self.spec.dataset.output_s3_uri)
        prefix = (
            f"{key.strip('/')}/{EVALUATION_PREFIX}/predictions/"
            if key.strip("/")
            else (f"{EVALUATION_PREFIX}/predictions/")
        )
        self.allow(
            "ListPredictionCache",
            actions_of(S3, "ListObjectsV2"),
            [self.arns.s3(bucket)],
            Condition={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
        )

    def tag_on_create(self) -> None:
        """What the operator creates it tags in the same call: AWS authorizes the tags on
        the new resource, for those Create* calls only."""
        tagging = [tags for op in self.creates if (tags := declared(SAGEMAKER, op).tags)]
        condition = {"StringEquals": {"sagemaker:TaggingAction": sorted(self.creates)}}
        self.allow("TagOnCreate", tagging, self.created, Condition=condition)


def for_policy(
    policy_name: str, spec: RetrainingPolicySpec, *, a2i_output_s3_uri: str | None = None
) -> dict[str, Any]:
    """The policy document of the role that makes this policy's AWS calls."""
    return _Document(policy_name, spec, a2i_output_s3_uri).build()


def for_operator(policy_name: str, spec: RetrainingPolicySpec, **kwargs: Any) -> dict[str, Any]:
    """The operator's own role: AssumeRole on spec.aws.roleArn, or every call itself."""
    if spec.aws.role_arn is None:
        return for_policy(policy_name, spec, **kwargs)
    return {
        "Version": VERSION,
        "Statement": [
            statement("AssumeTenantRole", actions_of(STS, "AssumeRole"), [spec.aws.role_arn])
        ],
    }


def for_scoped_operator(tenant_role_arns: list[str]) -> dict[str, Any]:
    """Scoped mode: the operator's own role only assumes the RetrainingTenants' roles, with
    the session tags (namespace, policy) their trust policies condition on."""
    return {
        "Version": VERSION,
        "Statement": [
            statement(
                "AssumeTenantRoles",
                list(declared(STS, "AssumeRole").needs(tagged=True)),
                sorted(set(tenant_role_arns)),
            )
        ],
    }
