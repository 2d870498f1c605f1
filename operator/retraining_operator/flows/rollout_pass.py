"""What the steps of one rollout pass share (Argo Rollouts' `rolloutContext`).

`flows/rollout.py` runs the pass; `flows/variant_shift.py` holds the variant
shift's own reads (the shift config, the numbers a step is judged on).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from retraining_operator.api import CurrentRun, RetrainingPolicySpec, Strategy
from retraining_operator.aws.images import ImageLookupError
from retraining_operator.flows.training import training_image_uri
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.rollout.endpoint import EndpointView
from retraining_operator.reconcile.rollout.errors import RolloutError
from retraining_operator.reconcile.rollout.requests import RolloutNames, required_endpoint_name

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

    from retraining_operator.aws.session import AwsSession


@dataclass
class RolloutPass:
    """One reconcile pass over one deploying run: what its steps read and write."""

    session: AwsSession
    policy: PolicyRef
    spec: RetrainingPolicySpec
    run: CurrentRun
    names: RolloutNames
    now: datetime
    poll: timedelta
    image: str | None
    actions: list[str] = field(default_factory=list)
    endpoint: EndpointView | None = None

    @property
    def sm(self) -> SageMakerClient:
        return self.session.sagemaker()

    @property
    def endpoint_name(self) -> str:
        return required_endpoint_name(self.spec.deployment)

    @property
    def shifting(self) -> bool:
        return self.spec.deployment.strategy is Strategy.VARIANT_SHIFT

    def image_uri(self) -> str:
        if self.image is not None:
            return self.image
        try:
            return training_image_uri(self.spec)
        except ImageLookupError as error:
            raise RolloutError(f"no image for the model: {error}") from error


def config_created(config: Mapping[str, Any] | None) -> datetime | None:
    """A DescribeEndpointConfig answer's CreationTime (UTC), None without one."""
    if config is None:
        return None
    created = config.get("CreationTime")
    if isinstance(created, datetime):
        return created if created.tzinfo else created.replace(tzinfo=UTC)
    return None
