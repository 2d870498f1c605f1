"""Model Registry workflow: register a run's candidate, read and set its approval.

`register` writes the metrics JSON under the dataset prefix, makes sure the Model Package
Group exists (`registry.createGroup`), and registers the candidate (idempotent per run:
see `reconcile/registry.py`). `package` reads the package (its approval status) and
`set_approval` changes it (the approve annotation, an approval timeout).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from retraining_operator.api import RetrainingPolicySpec, ShadowTest
from retraining_operator.aws import endpoints, registry
from retraining_operator.aws.errors import AlreadyExists
from retraining_operator.aws.s3 import S3, S3Location
from retraining_operator.aws.session import AwsSession
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.registry import (
    ApprovalStatus,
    Candidate,
    RegistryError,
    approval_description,
    foreign_group,
    group_request,
    initial_approval,
    metrics_body,
    metrics_s3_uri,
    model_package_request,
    shadow_metadata_request,
    update_approval_request,
)


def register(
    session: AwsSession, policy: PolicyRef, spec: RetrainingPolicySpec, candidate: Candidate
) -> str:
    """Register the candidate; returns its Model Package ARN (the same on a repeat)."""
    settings = spec.registry
    if settings is None:
        raise RegistryError("spec.registry is not set: nothing to register")
    sm = session.sagemaker()
    S3(session.s3()).put(
        S3Location.parse(metrics_s3_uri(spec, candidate.run.id)),
        metrics_body(policy, candidate),
    )
    group = registry.find_model_package_group(sm, settings.model_package_group_name)
    if group is None:
        if not settings.create_group:
            raise RegistryError(
                f"Model Package Group {settings.model_package_group_name} does not exist and "
                "registry.createGroup is false: create it, or let the operator create it"
            )
        # AlreadyExists: made meanwhile (another pass, or a person): use it.
        with suppress(AlreadyExists):
            registry.create_model_package_group(sm, group_request(policy, settings))
    elif foreign_group(policy, endpoints.list_tags(sm, group["ModelPackageGroupArn"])):
        raise RegistryError(
            f"Model Package Group {settings.model_package_group_name} was made by the operator "
            f"for another RetrainingPolicy; choose a group of this policy's own"
        )
    arn = registry.create_model_package(sm, model_package_request(policy, spec, candidate))
    description = approval_description(settings, candidate.decision)
    if description is not None:
        status = initial_approval(settings, candidate.decision)
        registry.update_model_package(sm, update_approval_request(arn, status, description))
    return arn


def package(session: AwsSession, arn: str) -> Mapping[str, Any]:
    """The package as DescribeModelPackage answers."""
    return registry.describe_model_package(session.sagemaker(), arn)


def set_approval(session: AwsSession, arn: str, status: ApprovalStatus, description: str) -> None:
    registry.update_model_package(
        session.sagemaker(), update_approval_request(arn, status, description)
    )


def record_shadow(session: AwsSession, arn: str, test: ShadowTest) -> None:
    """The shadow test's verdict on the candidate's Model Package (deployment.shadow)."""
    registry.update_model_package(session.sagemaker(), shadow_metadata_request(arn, test))
