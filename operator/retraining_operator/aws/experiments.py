"""SageMaker inference experiments (shadow tests) gateway. Thin boto3 calls.

The requests are built in `reconcile/shadow.py`; the composition is `flows/shadow.py`.
`find_experiment` answers None for an experiment that does not exist (a run that has not
created its experiment yet). Errors are mapped like every gateway's (`aws/errors.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from retraining_operator.aws.errors import NotFound, mapped

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient


def find_experiment(sm: SageMakerClient, name: str) -> Mapping[str, Any] | None:
    try:
        with mapped("DescribeInferenceExperiment"):
            return sm.describe_inference_experiment(Name=name)
    except NotFound:
        return None


def create_experiment(sm: SageMakerClient, request: Mapping[str, Any]) -> str:
    with mapped("CreateInferenceExperiment"):
        answer = sm.create_inference_experiment(**request)
    return str(answer["InferenceExperimentArn"])


def stop_experiment(sm: SageMakerClient, request: Mapping[str, Any]) -> None:
    with mapped("StopInferenceExperiment"):
        sm.stop_inference_experiment(**request)
