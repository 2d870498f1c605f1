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

Two identities: `for_policy` is the role that makes the calls (spec.aws.roleArn when set,
else the operator's own); `for_operator` is the operator's own role (IRSA / Pod Identity),
which only needs sts:AssumeRole on spec.aws.roleArn when the policy sets one.
"""

from __future__ import annotations

from typing import Any

from retraining_operator.api import RetrainingPolicySpec, Strategy
from retraining_operator.reconcile.naming import resource_name

VERSION = "2012-10-17"
SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"
# A2I writes every loop's output under `<flow output path>/<flow name>/<date...>/<loop>/`.
A2I_OUTPUT_FILE = "output.json"
_PROBE_RUN = "r00000000-000000"


class IamPolicyError(ValueError):
    """The spec cannot be turned into a policy (e.g. a malformed ARN or S3 URI)."""


def _s3_parts(uri: str) -> tuple[str, str]:
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


class _Arns:
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


def _sqs_arn(partition: str, queue_url: str) -> str:
    host, _, path = queue_url.split("://", 1)[-1].partition("/")
    account, _, name = path.strip("/").partition("/")
    region = host.split(".")[1] if host.startswith("sqs.") else "*"
    return f"arn:{partition}:sqs:{region}:{account}:{name}"


def _statement(sid: str, actions: list[str], resources: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(set(actions)),
        "Resource": sorted(set(resources)) if len(set(resources)) > 1 else resources[0],
        **extra,
    }


def for_policy(
    policy_name: str, spec: RetrainingPolicySpec, *, a2i_output_s3_uri: str | None = None
) -> dict[str, Any]:
    """The policy document of the role that makes this policy's AWS calls."""
    arns = _Arns(spec)
    statements: list[dict[str, Any]] = []

    # Human loops: list by flow definition (no resource-level permission), describe any
    # loop (the application names them) when an output's key cannot be predicted.
    statements.append(_statement("ListHumanLoops", ["sagemaker:ListHumanLoops"], ["*"]))
    statements.append(
        _statement(
            "DescribeHumanLoops",
            ["sagemaker:DescribeHumanLoop"],
            [arns.sagemaker("human-loop/*")],
        )
    )

    # The flow definition's S3OutputPath: the ledger's outputPrefix must lie under it.
    statements.append(
        _statement(
            "ReadFlowDefinition",
            ["sagemaker:DescribeFlowDefinition"],
            [spec.human_loops.flow_definition_arn],
        )
    )

    # Event-driven ingest: the policy's own queue (URL https://sqs.<region>.amazonaws.com/
    # <account>/<name> -> arn:<partition>:sqs:<region>:<account>:<name>).
    if spec.human_loops.events is not None:
        queue = _sqs_arn(arns.partition, spec.human_loops.events.sqs_queue_url)
        statements.append(
            _statement(
                "ConsumeA2IEvents",
                [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                ],
                [queue],
            )
        )

    # S3: A2I outputs are read only; the dataset prefix is the operator's own.
    flow = spec.human_loops.flow_definition_name
    if a2i_output_s3_uri:
        bucket, key = _s3_parts(a2i_output_s3_uri)
        prefix = f"{bucket}/{key.strip('/')}/" if key.strip("/") else f"{bucket}/"
        outputs = arns.s3(f"{prefix}{flow}/*/{A2I_OUTPUT_FILE}")
    else:
        outputs = arns.s3(f"*/{flow}/*/{A2I_OUTPUT_FILE}")
    reads = [outputs]
    validation = spec.dataset.validation.manifest_s3_uri
    if validation:
        reads.append(arns.s3("/".join(_s3_parts(validation))))
    if spec.dataset.replay is not None:
        reads.append(arns.s3("/".join(_s3_parts(spec.dataset.replay.manifest_s3_uri))))
    statements.append(_statement("ReadReviewsAndManifests", ["s3:GetObject"], reads))
    bucket, key = _s3_parts(spec.dataset.output_s3_uri)
    dataset = arns.s3(f"{bucket}/{key.strip('/')}/*" if key.strip("/") else f"{bucket}/*")
    statements.append(
        _statement(
            "DatasetPrefix",
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            [dataset],
        )
    )

    # Training: jobs named by the operator; tags are set on create (sagemaker:AddTags).
    training = spec.training
    job_head = name_head(policy_name, "tj")
    jobs = [arns.sagemaker(f"training-job/{job_head}-*")]
    created = list(jobs)
    create_actions = ["CreateTrainingJob"]
    training_actions = [
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:StopTrainingJob",
    ]
    statements.append(_statement("TrainingJobs", training_actions, jobs))
    if training.tuning is not None:
        tuning_head = name_head(policy_name, "ht", max_len=32)
        tuning = arns.sagemaker(f"hyper-parameter-tuning-job/{tuning_head}-*")
        created.append(tuning)
        create_actions.append("CreateHyperParameterTuningJob")
        statements.append(
            _statement(
                "TuningJobs",
                [
                    "sagemaker:CreateHyperParameterTuningJob",
                    "sagemaker:DescribeHyperParameterTuningJob",
                    "sagemaker:StopHyperParameterTuningJob",
                ],
                [tuning],
            )
        )
        # SageMaker names a tuning job's training jobs `<tuning job>-<nnn>-<hash>`.
        statements.append(
            _statement(
                "TuningTrainingJobs",
                ["sagemaker:DescribeTrainingJob"],
                [arns.sagemaker(f"training-job/{tuning_head}-*")],
            )
        )
    statements.append(
        _statement(
            "PassTrainingRole",
            ["iam:PassRole"],
            [training.role_arn],
            Condition={"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}},
        )
    )

    deployment = spec.deployment
    endpoint_name = deployment.endpoint_name
    deploys = deployment.strategy is not Strategy.NONE
    reads_endpoint = deploys or bool(training.base_model.from_endpoint)
    if reads_endpoint and endpoint_name:
        # The endpoint's current config and model have names the operator did not choose:
        # it reads them (base model, the config it copies and may roll back to).
        statements.append(
            _statement(
                "ReadServingEndpoint",
                [
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:DescribeModel",
                ],
                [
                    arns.sagemaker(f"endpoint/{endpoint_name.lower()}"),
                    arns.sagemaker("endpoint-config/*"),
                    arns.sagemaker("model/*"),
                ],
            )
        )
    if deploys and endpoint_name:
        endpoint = arns.sagemaker(f"endpoint/{endpoint_name.lower()}")
        models = arns.sagemaker(f"model/{name_head(policy_name, 'm')}-*")
        configs = arns.sagemaker(f"endpoint-config/{name_head(policy_name, 'ec')}-*")
        created += [models, configs, endpoint]
        create_actions += ["CreateModel", "CreateEndpointConfig", "CreateEndpoint"]
        statements.append(
            _statement(
                "OwnModelsAndConfigs",
                [
                    "sagemaker:CreateModel",
                    "sagemaker:DeleteModel",
                    "sagemaker:CreateEndpointConfig",
                    "sagemaker:DeleteEndpointConfig",
                ],
                [models, configs],
            )
        )
        statements.append(
            _statement(
                "ListTagsOfModelsAndConfigs",
                ["sagemaker:ListTags"],
                [arns.sagemaker("model/*"), arns.sagemaker("endpoint-config/*")],
            )
        )
        # The endpoint's owner tag (the policy UID): read before every roll, set on the first.
        statements.append(
            _statement(
                "OwnTheEndpoint",
                ["sagemaker:ListTags", "sagemaker:AddTags"],
                [endpoint],
            )
        )
        statements.append(
            _statement(
                "FindOwnModelsAndConfigs",
                ["sagemaker:ListModels", "sagemaker:ListEndpointConfigs"],
                ["*"],
            )
        )
        endpoint_actions = ["sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint"]
        if deployment.strategy is Strategy.VARIANT_SHIFT:
            endpoint_actions.append("sagemaker:UpdateEndpointWeightsAndCapacities")
        # A rollback returns the endpoint to the config it had (named by whoever made it).
        statements.append(
            _statement(
                "RollTheEndpoint",
                endpoint_actions,
                [endpoint, arns.sagemaker("endpoint-config/*")],
            )
        )
        # Autoscaled endpoints keep their autoscaling through a rollout: the operator reads
        # the scalable targets (Application Auto Scaling has no resource-level permissions
        # for them) and, shifting variants, moves the registration to the new variant.
        reads = ["application-autoscaling:DescribeScalableTargets"]
        if deployment.strategy is Strategy.VARIANT_SHIFT:
            reads.append("application-autoscaling:DescribeScalingPolicies")
            statements.append(
                _statement(
                    "MoveEndpointAutoscaling",
                    [
                        "application-autoscaling:RegisterScalableTarget",
                        "application-autoscaling:PutScalingPolicy",
                        "application-autoscaling:DeregisterScalableTarget",
                    ],
                    [arns.scalable_target("*")],
                )
            )
        statements.append(_statement("ReadEndpointAutoscaling", reads, ["*"]))
        if deployment.auto_rollback_alarms:
            statements.append(
                _statement(
                    "ReadRollbackAlarms",
                    ["cloudwatch:DescribeAlarms"],
                    [arns.alarm(name) for name in deployment.auto_rollback_alarms],
                )
            )
        if deployment.strategy is Strategy.VARIANT_SHIFT:
            statements.append(_statement("ReadVariantMetrics", ["cloudwatch:GetMetricData"], ["*"]))
    if spec.registry is not None:
        # The policy's Model Package Group and its versions (the group's owner tag is read
        # before the group is used: another policy's group is refused).
        group_name = spec.registry.model_package_group_name
        group = arns.sagemaker(f"model-package-group/{group_name.lower()}")
        packages = arns.sagemaker(f"model-package/{group_name.lower()}/*")
        created += [group, packages]
        create_actions += ["CreateModelPackageGroup", "CreateModelPackage"]
        statements.append(
            _statement(
                "ModelPackageGroup",
                [
                    "sagemaker:CreateModelPackageGroup",
                    "sagemaker:DescribeModelPackageGroup",
                    "sagemaker:ListTags",
                ],
                [group],
            )
        )
        statements.append(
            _statement(
                "ModelPackages",
                [
                    "sagemaker:CreateModelPackage",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:UpdateModelPackage",
                ],
                [packages],
            )
        )
    statements.append(
        _statement(
            "TagOnCreate",
            ["sagemaker:AddTags"],
            created,
            Condition={"StringEquals": {"sagemaker:TaggingAction": sorted(create_actions)}},
        )
    )
    return {"Version": VERSION, "Statement": statements}


def for_operator(policy_name: str, spec: RetrainingPolicySpec, **kwargs: Any) -> dict[str, Any]:
    """The operator's own role: AssumeRole on spec.aws.roleArn, or every call itself."""
    if spec.aws.role_arn is None:
        return for_policy(policy_name, spec, **kwargs)
    return {
        "Version": VERSION,
        "Statement": [_statement("AssumeTenantRole", ["sts:AssumeRole"], [spec.aws.role_arn])],
    }


def for_scoped_operator(tenant_role_arns: list[str]) -> dict[str, Any]:
    """Scoped mode: the operator's own role only assumes the RetrainingTenants' roles, with
    the session tags (namespace, policy) their trust policies condition on."""
    return {
        "Version": VERSION,
        "Statement": [
            _statement(
                "AssumeTenantRoles",
                ["sts:AssumeRole", "sts:TagSession"],
                sorted(set(tenant_role_arns)),
            )
        ],
    }
