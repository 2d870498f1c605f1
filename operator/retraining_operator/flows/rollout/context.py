"""What the steps of one rollout pass share (Argo Rollouts' `rolloutContext`).

Built once per pass. Every SageMaker resource the pass looks at is described through it,
at most once per pass (ACK's `ReadOne`): the endpoint, each config, each model, each
tag list. A resource this pass creates is described again only if a later step asks for
it. The strategy (`strategy.py`) and the executor (`steps.py`) read the same answers, so
a pass's decision and its action never disagree about what the endpoint was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from retraining_operator.api import CurrentRun, RetrainingPolicySpec, ServingStatus
from retraining_operator.aws import endpoints, registry
from retraining_operator.aws.images import ImageLookupError
from retraining_operator.flows.training import training_image_uri
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.rollout.endpoint import EndpointView, served_model
from retraining_operator.reconcile.rollout.errors import RolloutError
from retraining_operator.reconcile.rollout.requests import (
    ConfigTarget,
    LiveConfig,
    RolloutNames,
    required_endpoint_name,
)

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

    from retraining_operator.aws.session import AwsSession

_UNREAD: Any = object()


@dataclass
class RolloutContext:
    """One reconcile pass over one deploying run: what its steps read and write."""

    session: AwsSession
    policy: PolicyRef
    spec: RetrainingPolicySpec
    run: CurrentRun
    names: RolloutNames
    now: datetime
    poll: timedelta
    image: str | None = None
    actions: list[str] = field(default_factory=list)
    # What the endpoint served when this pass took it (see `steps.claim_endpoint`).
    taken_from: ServingStatus | None = None
    _endpoint: Any = field(default=_UNREAD, repr=False)
    _configs: dict[str, Mapping[str, Any] | None] = field(default_factory=dict, repr=False)
    _models: dict[str, Mapping[str, Any] | None] = field(default_factory=dict, repr=False)
    _tags: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    _packages: dict[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def sm(self) -> SageMakerClient:
        return self.session.sagemaker()

    @property
    def endpoint_name(self) -> str:
        return required_endpoint_name(self.spec.deployment)

    # -- reads, each at most once per pass ------------------------------------------------

    def described_endpoint(self) -> Mapping[str, Any] | None:
        """The DescribeEndpoint answer, None when there is no endpoint (or none is named: a
        policy that only trains and evaluates)."""
        if self._endpoint is _UNREAD:
            name = self.spec.deployment.endpoint_name
            self._endpoint = endpoints.find_endpoint(self.sm, name) if name else None
        return self._endpoint  # type: ignore[no-any-return]

    @property
    def endpoint(self) -> EndpointView | None:
        described = self.described_endpoint()
        return EndpointView.from_describe(described) if described is not None else None

    def config(self, name: str) -> Mapping[str, Any] | None:
        """The DescribeEndpointConfig answer of `name`, None when it does not exist."""
        if name not in self._configs:
            self._configs[name] = endpoints.find_endpoint_config(self.sm, name)
        return self._configs[name]

    def model(self, name: str) -> Mapping[str, Any] | None:
        if name not in self._models:
            self._models[name] = endpoints.find_model(self.sm, name)
        return self._models[name]

    def package(self, arn: str) -> Mapping[str, Any]:
        """The DescribeModelPackage answer of a registered candidate."""
        if arn not in self._packages:
            self._packages[arn] = registry.describe_model_package(self.sm, arn)
        return self._packages[arn]

    def tags(self, arn: str) -> dict[str, str]:
        if arn not in self._tags:
            self._tags[arn] = endpoints.list_tags(self.sm, arn)
        return self._tags[arn]

    def created(self, config_name: str) -> None:
        """This pass created `config_name`: describe it again if a later step asks."""
        self._configs.pop(config_name, None)

    # -- what the steps derive from the reads -------------------------------------------

    def current_config(self) -> Mapping[str, Any] | None:
        """The config the endpoint serves now (None: no endpoint, or not describable)."""
        view = self.endpoint
        return self.config(view.config_name) if view is not None and view.config_name else None

    def live(self) -> LiveConfig:
        """What the run's config is derived from: the current config, its tags, the endpoint."""
        view = self.endpoint
        current = self.current_config()
        if view is None or current is None:
            name = view.config_name if view is not None else None
            raise RolloutError(
                f"endpoint {self.endpoint_name} has no describable config ({name!r})"
            )
        return LiveConfig(current, self.tags(str(current["EndpointConfigArn"])), view)

    def serving_model(self) -> Mapping[str, Any] | None:
        """The DescribeModel answer of the model the endpoint serves now (its hardening is
        inherited), None on a first deployment or when the link is gone."""
        current = self.current_config()
        if current is None:
            return None
        return self.model(served_model(current, self.spec.deployment.variant_name).model_name)

    def target(self, config_name: str) -> ConfigTarget:
        return ConfigTarget(self.policy, self.run.id, config_name, self.names.model)

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
