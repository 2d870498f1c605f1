"""IAM for tests: what each recorded AWS call needs, and whether a policy document allows it.

`needs(call, ...)` turns one call of the stand-ins' request log into the IAM requests AWS
would authorize for it (action, resource ARN, request context). Which actions a call
needs is the operator's own declaration (`retraining_operator/aws_calls.py`, the same rows
`iam-policy` is built from: an S3 HeadObject is s3:GetObject, a multipart part is
s3:PutObject, a SageMaker Create* with Tags also needs sagemaker:AddTags on the new
resource with sagemaker:TaggingAction, a role in the request iam:PassRole with
iam:PassedToService); what is checked here is the resource each request names.

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

from retraining_operator.aws_calls import PASS_ROLE, SAGEMAKER_TAGS, Undeclared, declared
from retraining_operator.reconcile.events import parse_queue_url
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
    "TransformJobName": "transform-job",
    "ModelName": "model",
    "EndpointConfigName": "endpoint-config",
    "EndpointName": "endpoint",
    "HumanLoopName": "human-loop",
    "FlowDefinitionName": "flow-definition",
}
_ROLE_PARAMS = ("RoleArn", "ExecutionRoleArn")


def needs(call: Call, *, partition: str = "aws", region: str, account: str) -> list[Request]:
    """The IAM requests AWS authorizes for one recorded call: the actions of its row in
    `aws_calls.py` (an undeclared call fails), each on the resource the request names."""
    try:
        row = declared(call.service, call.operation)
    except Undeclared as error:
        raise AssertionError(str(error)) from None
    if row.unscoped:
        return [Request(action, "*") for action in row.actions]
    where = _Where(partition, region, account)
    resources = _resources(call, where)
    if not resources:
        raise AssertionError(f"no IAM resource for {call.service} {call.operation} {call.params}")
    # A listing is authorized with the prefix it asks for (s3:prefix).
    listed = (
        {"s3:prefix": str(call.params.get("Prefix", ""))}
        if call.operation == "ListObjectsV2"
        else {}
    )
    out = [Request(action, resource, listed) for action in row.actions for resource in resources]
    if row.tags and _tagged(call.params):
        out.append(_tagging(row.tags, call, resources[0]))
    if row.passes_role:
        context = {"iam:PassedToService": SAGEMAKER_SERVICE}
        out += [Request(PASS_ROLE, role, context) for role in _roles(call.params)]
    return out


@dataclass(frozen=True)
class _Where:
    partition: str
    region: str
    account: str

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"


def _resources(call: Call, where: _Where) -> list[str]:
    """The ARNs a call is authorized on, read off its request."""
    params = call.params
    if call.service == "s3":
        bucket, key = params.get("Bucket", ""), params.get("Key")
        # A copy's source is not in the log (a header): both of its actions are checked on
        # the target, which for the operator's copies is the same prefix (staging -> final).
        return [
            f"arn:{where.partition}:s3:::{bucket}/{key}"
            if key
            else f"arn:{where.partition}:s3:::{bucket}"
        ]
    if call.service == "sts":
        return [str(params.get("RoleArn", ""))]
    if call.service == "cloudwatch":
        names = [v for k, v in params.items() if k.startswith("AlarmNames.member.")]
        return [where.arn("cloudwatch", f"alarm:{name}") for name in names] or ["*"]
    if call.service == "sqs":
        queue = parse_queue_url(str(params.get("QueueUrl", "")))
        return [queue.arn(where.partition, where.region)] if queue else []
    if call.service == "application-autoscaling":
        # Targets are named by an id Application Auto Scaling chooses, not by the request.
        return [where.arn("application-autoscaling", "scalable-target/id")]
    return _sagemaker_resources(call, where)


def _sagemaker_resources(call: Call, where: _Where) -> list[str]:
    """SageMaker and its A2I runtime (one `sagemaker:` prefix): ARNs are lower case."""
    params = call.params

    def arn(kind: str, name: str) -> str:
        return where.arn("sagemaker", f"{kind}/{name.lower()}")

    if call.operation.endswith("InferenceExperiment"):
        # An experiment is authorized on itself (and, created, on the endpoint it shadows).
        experiment = [arn("inference-experiment", str(params["Name"]))]
        if call.operation == "CreateInferenceExperiment":
            experiment.append(arn("endpoint", str(params["EndpointName"])))
        return experiment
    if "TransformJobName" in params:
        # A transform job is authorized on itself; the model it names is not a resource of
        # CreateTransformJob (the Service Authorization Reference lists transform-job only).
        return [arn("transform-job", params["TransformJobName"])]
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
    return resources


def _tagged(params: Mapping[str, Any]) -> bool:
    """Tags in the request (JSON `Tags`, or the query protocol's `Tags.member.N.Key`)."""
    return bool(params.get("Tags")) or any(k.startswith("Tags.member.") for k in params)


def _tagging(action: str, call: Call, created: str) -> Request:
    """Tags sent with a create are authorized on the new resource, for that action; session
    tags on the role assumed."""
    if action == SAGEMAKER_TAGS:
        return Request(action, created, {"sagemaker:TaggingAction": call.operation})
    return Request(action, created)


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
