"""SageMaker training gateway: thin boto3 calls, `ClientError` mapped to typed errors.

Each function makes one API call with the request it is given and returns AWS's
answer; decisions live in `reconcile/`, composition in `flows/training.py`. What an
endpoint serves (the base model) is read through `aws/endpoints.py`, the one reader of
each hosting resource.
Errors: `NotFound`, `AlreadyExists`, `Throttled`, `Unavailable`, `AccessDenied`,
`LimitExceeded`, `InvalidRequest` (all `AwsError`, see `aws/errors.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from retraining_operator.aws.errors import AlreadyExists, InvalidRequest, NotFound, mapped

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import (
        CreateHyperParameterTuningJobRequestTypeDef,
        CreateTrainingJobRequestTypeDef,
        CreateTransformJobRequestTypeDef,
        DescribeHyperParameterTuningJobResponseTypeDef,
        DescribeTrainingJobResponseTypeDef,
        DescribeTransformJobResponseTypeDef,
    )

# A Stop* call on a job that already ended is a ValidationException with one of these.
_ALREADY_ENDED_TEXT = ("already", "not in progress", "status", "cannot be stopped", "completed")


# ---------------------------------------------------------------------------------------
# Training jobs


def describe_training_job(sm: SageMakerClient, name: str) -> DescribeTrainingJobResponseTypeDef:
    with mapped("DescribeTrainingJob"):
        return sm.describe_training_job(TrainingJobName=name)


def create_training_job(sm: SageMakerClient, request: CreateTrainingJobRequestTypeDef) -> str:
    """Submit; returns the job ARN. `AlreadyExists` when the name is taken (adopt it)."""
    with mapped("CreateTrainingJob"):
        return sm.create_training_job(**request)["TrainingJobArn"]


def _stop(operation: str, call: Callable[[], object]) -> bool:
    """Run a Stop* call; False when the job was already ending or is gone."""
    try:
        with mapped(operation):
            call()
    except NotFound:
        return False
    except InvalidRequest as error:
        if any(text in error.message.lower() for text in _ALREADY_ENDED_TEXT):
            return False
        raise
    return True


def stop_training_job(sm: SageMakerClient, name: str) -> bool:
    """Ask SageMaker to stop the job. False when it was already ending or gone."""
    return _stop("StopTrainingJob", lambda: sm.stop_training_job(TrainingJobName=name))


# ---------------------------------------------------------------------------------------
# Hyperparameter tuning jobs


def describe_tuning_job(
    sm: SageMakerClient, name: str
) -> DescribeHyperParameterTuningJobResponseTypeDef:
    with mapped("DescribeHyperParameterTuningJob"):
        return sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)


def create_tuning_job(
    sm: SageMakerClient, request: CreateHyperParameterTuningJobRequestTypeDef
) -> str:
    """Submit; returns the tuning job ARN. `AlreadyExists` when the name is taken."""
    with mapped("CreateHyperParameterTuningJob"):
        return sm.create_hyper_parameter_tuning_job(**request)["HyperParameterTuningJobArn"]


def stop_tuning_job(sm: SageMakerClient, name: str) -> bool:
    """Stop the tuning job (and its running training jobs). False if already ending/gone."""
    return _stop(
        "StopHyperParameterTuningJob",
        lambda: sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
    )


# ---------------------------------------------------------------------------------------
# Batch Transform jobs (the gate's evaluation)


def describe_transform_job(sm: SageMakerClient, name: str) -> DescribeTransformJobResponseTypeDef:
    with mapped("DescribeTransformJob"):
        return sm.describe_transform_job(TransformJobName=name)


def create_transform_job(sm: SageMakerClient, request: CreateTransformJobRequestTypeDef) -> str:
    """Submit; returns the job ARN. `AlreadyExists` when the name is taken (adopt it)."""
    with mapped("CreateTransformJob"):
        return sm.create_transform_job(**request)["TransformJobArn"]


def stop_transform_job(sm: SageMakerClient, name: str) -> bool:
    """Ask SageMaker to stop the job. False when it was already ending or gone."""
    return _stop("StopTransformJob", lambda: sm.stop_transform_job(TransformJobName=name))


__all__ = [
    "AlreadyExists",
    "NotFound",
    "create_training_job",
    "create_transform_job",
    "create_tuning_job",
    "describe_training_job",
    "describe_transform_job",
    "describe_tuning_job",
    "stop_training_job",
    "stop_transform_job",
    "stop_tuning_job",
]
