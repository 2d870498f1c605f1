"""IAM for tests: what each recorded AWS call needs, and whether a policy document allows it.

`needs(call, ...)` turns one call of the stand-ins' request log into the IAM requests AWS
would authorize for it (action, resource ARN, request context), following the Service
Authorization Reference: an S3 HeadObject is s3:GetObject on the object, a multipart part
is s3:PutObject, a SageMaker Create* with Tags also needs sagemaker:AddTags on the new
resource (with sagemaker:TaggingAction), a role in the request needs iam:PassRole with
iam:PassedToService.

`allows(document, request)` evaluates Allow statements as IAM does for one identity policy
(no Deny in the documents the operator prints): an action or resource matches a pattern
with `*` and `?` wildcards (actions case-insensitively), and every StringEquals /
StringLike condition must hold against the request context.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from retraining_standins.requestlog import Call

SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        extra = f" {dict(self.context)}" if self.context else ""
        return f"{self.action} on {self.resource}{extra}"


@functools.lru_cache(maxsize=4096)
def _pattern(pattern: str, case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(regex, (0 if case else re.IGNORECASE) | re.DOTALL)


def _glob(pattern: str, value: str, *, case: bool = True) -> bool:
    return _pattern(pattern, case).fullmatch(value) is not None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _condition_holds(
    condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]
) -> bool:
    for operator, pairs in condition.items():
        for key, expected in pairs.items():
            if key not in context:
                return False
            actual = context[key]
            if operator == "StringEquals":
                if actual not in _as_list(expected):
                    return False
            elif operator == "StringLike":
                if not any(_glob(p, actual) for p in _as_list(expected)):
                    return False
            else:
                raise AssertionError(f"condition operator {operator} is not evaluated here")
    return True


def allowing_statements(document: Mapping[str, Any], request: Request) -> list[dict[str, Any]]:
    found = []
    for statement in _as_list(document["Statement"]):
        if statement.get("Effect") != "Allow":
            continue
        if not any(_glob(a, request.action, case=False) for a in _as_list(statement["Action"])):
            continue
        if not any(_glob(r, request.resource) for r in _as_list(statement["Resource"])):
            continue
        if not _condition_holds(statement.get("Condition") or {}, request.context):
            continue
        found.append(statement)
    return found


def allows(documents: Iterable[Mapping[str, Any]], request: Request) -> bool:
    return any(allowing_statements(d, request) for d in documents)


# ---------------------------------------------------------------------------------------
# Log call -> IAM requests

_SAGEMAKER_NAMES = {
    "TrainingJobName": "training-job",
    "HyperParameterTuningJobName": "hyper-parameter-tuning-job",
    "ModelName": "model",
    "EndpointConfigName": "endpoint-config",
    "EndpointName": "endpoint",
    "HumanLoopName": "human-loop",
    "FlowDefinitionName": "flow-definition",
}
# Operations whose IAM resources are not the names in the request.
_NO_RESOURCE = {"ListHumanLoops", "ListModels", "ListEndpointConfigs", "GetMetricData"}
_S3_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CopyObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "UploadPartCopy": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "DeleteObject": "s3:DeleteObject",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
}
_ROLE_PARAMS = ("RoleArn", "ExecutionRoleArn")


def needs(call: Call, *, partition: str = "aws", region: str, account: str) -> list[Request]:
    """The IAM requests AWS authorizes for one recorded call."""
    params = call.params
    if call.service == "s3":
        action = _S3_ACTIONS.get(call.operation)
        if action is None:
            raise AssertionError(f"no IAM mapping for S3 {call.operation}")
        bucket, key = params.get("Bucket", ""), params.get("Key")
        path = f"{bucket}/{key}" if key and action != "s3:ListBucket" else bucket
        return [Request(action, f"arn:{partition}:s3:::{path}")]
    if call.service == "sts":
        return [Request(f"sts:{call.operation}", str(params.get("RoleArn", "")))]
    if call.service == "cloudwatch":
        action = f"cloudwatch:{call.operation}"
        if call.operation == "DescribeAlarms":
            names = [v for k, v in params.items() if k.startswith("AlarmNames.member.")]
            return [
                Request(action, f"arn:{partition}:cloudwatch:{region}:{account}:alarm:{name}")
                for name in names
            ] or [Request(action, "*")]
        return [Request(action, "*")]
    if call.service == "sqs":
        url = str(params.get("QueueUrl", ""))
        account, _, name = url.split("://", 1)[-1].partition("/")[2].partition("/")
        action = f"sqs:{call.operation.removesuffix('Batch')}"  # batches: the single action
        return [Request(action, f"arn:{partition}:sqs:{region}:{account}:{name}")]
    if call.service == "application-autoscaling":
        action = f"application-autoscaling:{call.operation}"
        if call.operation.startswith("Describe"):
            return [Request(action, "*")]
        # Targets are named by an id Application Auto Scaling chooses, not by the request.
        target = f"arn:{partition}:application-autoscaling:{region}:{account}:scalable-target/id"
        return [Request(action, target)]
    # SageMaker and its A2I runtime share the `sagemaker:` prefix.
    action = f"sagemaker:{call.operation}"
    if call.operation in _NO_RESOURCE:
        return [Request(action, "*")]

    def arn(kind: str, name: str) -> str:
        return f"arn:{partition}:sagemaker:{region}:{account}:{kind}/{name.lower()}"

    resources = [arn(kind, params[p]) for p, kind in _SAGEMAKER_NAMES.items() if p in params]
    group = params.get("ModelPackageGroupName")
    if group:
        # A new version is authorized on the package it makes (<group>/<version>); every
        # other call on the group, on the group.
        if call.operation == "CreateModelPackage":
            resources.append(arn("model-package", f"{group}/new"))
        else:
            resources.append(arn("model-package-group", str(group)))
    package = str(params.get("ModelPackageName") or params.get("ModelPackageArn") or "")
    if package.startswith("arn:"):
        resources.append(package)
    if "ResourceArn" in params:
        resources.append(str(params["ResourceArn"]))
    if not resources:
        raise AssertionError(f"no IAM resource for sagemaker {call.operation} {params}")
    out = [Request(action, r) for r in resources]
    if call.operation.startswith("Create") and params.get("Tags"):
        created = resources[0]
        out.append(
            Request("sagemaker:AddTags", created, {"sagemaker:TaggingAction": call.operation})
        )
    for role in _roles(params):
        out.append(Request("iam:PassRole", role, {"iam:PassedToService": SAGEMAKER_SERVICE}))
    return out


def _roles(params: Mapping[str, Any]) -> list[str]:
    """Role ARNs a request hands to SageMaker (top level, or in a tuning job's definition)."""
    roles = [str(params[k]) for k in _ROLE_PARAMS if k in params]
    for nested in ("TrainingJobDefinition",):
        inner = params.get(nested)
        if isinstance(inner, Mapping):
            roles += _roles(inner)
    for inner in params.get("TrainingJobDefinitions") or []:
        if isinstance(inner, Mapping):
            roles += _roles(inner)
    return roles
