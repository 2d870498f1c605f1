"""What the policy's endpoint serves: the endpoint -> config -> variant -> model walk, once.

The base-model lookup (`training.baseModel.fromEndpoint`) and the manual rollback ("is
the target already serving?") both ask it; the variant is picked by `served_model`, the
rule the rollout uses for the variant it replaces, so all three agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.aws import endpoints
from retraining_operator.errors import NeedsAttention
from retraining_operator.reconcile.rollout.endpoint import EndpointView, ServedVariant, served_model

if TYPE_CHECKING:
    from retraining_operator.aws.session import AwsSession


class NotServing(NeedsAttention):
    """The walk stopped at a missing link; `reason` names it: EndpointNotFound,
    EndpointConfigNotFound, ModelNotFound or NoModelData. (A config without the policy's
    variant raises `VariantNotFound` from `served_model`.)"""


@dataclass(frozen=True)
class Serving:
    """The endpoint as described now, the config it serves and that config's served variant."""

    endpoint: EndpointView
    config: Mapping[str, Any]  # the DescribeEndpointConfig answer
    variant: ServedVariant

    @property
    def config_name(self) -> str:
        return str(self.config["EndpointConfigName"])


def serving(session: AwsSession, spec: RetrainingPolicySpec) -> Serving:
    """Walk `deployment.endpointName` -> its current config -> the served variant.

    Raises `NotServing` (EndpointNotFound, EndpointConfigNotFound) or `VariantNotFound`.
    """
    name = spec.deployment.endpoint_name
    if not name:
        raise NotServing("EndpointNotFound", "deployment.endpointName is not set")
    sm = session.sagemaker()
    described = endpoints.find_endpoint(sm, name)
    if described is None:
        raise NotServing("EndpointNotFound", f"endpoint {name} does not exist")
    endpoint = EndpointView.from_describe(described)
    if not endpoint.config_name:
        raise NotServing(
            "EndpointNotFound",
            f"endpoint {name} has no endpoint configuration yet (status {endpoint.status})",
        )
    config = endpoints.find_endpoint_config(sm, endpoint.config_name)
    if config is None:
        raise NotServing(
            "EndpointConfigNotFound",
            f"endpoint {name} points at endpoint config {endpoint.config_name}, which no "
            "longer exists",
        )
    return Serving(endpoint, config, served_model(config, spec.deployment.variant_name))


def served_model_data_url(session: AwsSession, found: Serving) -> str:
    """The last link: the served Model's artifacts (its first container with a ModelDataUrl).

    Raises `NotServing` (ModelNotFound, NoModelData).
    """
    model_name = found.variant.model_name
    where = f"model {model_name} served by endpoint {found.endpoint.name}"
    model = endpoints.find_model(session.sagemaker(), model_name)
    if model is None:
        raise NotServing(
            "ModelNotFound",
            f"{where} (variant {found.variant.name}) no longer exists in SageMaker, so its "
            "artifacts are unknown",
        )
    containers: list[Mapping[str, Any]] = []
    if "PrimaryContainer" in model:
        containers.append(model["PrimaryContainer"])
    containers.extend(model.get("Containers", []))
    url = next((c["ModelDataUrl"] for c in containers if c.get("ModelDataUrl")), None)
    if url is None:
        raise NotServing("NoModelData", f"{where} has no ModelDataUrl")
    return str(url)
