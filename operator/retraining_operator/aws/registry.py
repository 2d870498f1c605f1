"""SageMaker Model Registry gateway: Model Package Groups and versioned Model Packages.

One boto3 call per function, `ClientError` mapped to the typed errors of `aws/errors.py`
(`NotFound` on a describe of something missing, `AlreadyExists` when a group is created
twice, `AccessDenied` without the IAM actions in the README, ...). The requests are built
in `reconcile/registry.py`; composition lives in `flows/registry.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retraining_operator.aws.errors import NotFound, mapped

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import (
        CreateModelPackageGroupInputTypeDef,
        CreateModelPackageInputTypeDef,
        DescribeModelPackageGroupOutputTypeDef,
        DescribeModelPackageOutputTypeDef,
        UpdateModelPackageInputTypeDef,
    )

PAGE_SIZE = 100


def find_model_package_group(
    sm: SageMakerClient, name: str
) -> DescribeModelPackageGroupOutputTypeDef | None:
    """The group, or None when it does not exist."""
    try:
        with mapped("DescribeModelPackageGroup"):
            return sm.describe_model_package_group(ModelPackageGroupName=name)
    except NotFound:
        return None


def create_model_package_group(
    sm: SageMakerClient, request: CreateModelPackageGroupInputTypeDef
) -> str:
    """Create the group; returns its ARN. `AlreadyExists` when the name is taken."""
    with mapped("CreateModelPackageGroup"):
        return sm.create_model_package_group(**request)["ModelPackageGroupArn"]


def create_model_package(sm: SageMakerClient, request: CreateModelPackageInputTypeDef) -> str:
    """Register a versioned package; returns its ARN (the same ARN for a repeated
    `ClientToken`)."""
    with mapped("CreateModelPackage"):
        return sm.create_model_package(**request)["ModelPackageArn"]


def describe_model_package(sm: SageMakerClient, arn: str) -> DescribeModelPackageOutputTypeDef:
    with mapped("DescribeModelPackage"):
        return sm.describe_model_package(ModelPackageName=arn)


def update_model_package(sm: SageMakerClient, request: UpdateModelPackageInputTypeDef) -> str:
    with mapped("UpdateModelPackage"):
        return sm.update_model_package(**request)["ModelPackageArn"]
