"""SageMaker hosting gateway: Models, EndpointConfigs, Endpoints, tags. Thin boto3 calls.

Each function makes one API call (or walks one paginator) with the request it is given;
decisions live in `reconcile/rollout/`, composition in `flows/rollout.py` and
`flows/serving.py`. Each hosting resource is read by one function here (ACK's
ReadOne), for the rollout and the base-model lookup alike.
`ClientError` becomes a typed error (`aws/errors.py`): `NotFound`, `AlreadyExists`,
`Throttled`, `Unavailable`, `AccessDenied`, `LimitExceeded`, `InvalidRequest`, plus
`EndpointBusy` here — SageMaker's refusal to update or delete an endpoint that is
being created/updated/rolled back ("Cannot update in-progress endpoint").
The readers (`find_endpoint`, `find_endpoint_config`, `find_model`) answer None for a
resource that does not exist instead of raising `NotFound`: every caller has a plan for
"not there" (create it, adopt, or say what is missing).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from retraining_operator.aws.errors import (
    AlreadyExists,
    AwsRetryLater,
    InvalidRequest,
    NotFound,
    mapped,
)

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import (
        CreateEndpointConfigInputTypeDef,
        CreateEndpointInputTypeDef,
        CreateModelInputTypeDef,
        DescribeEndpointConfigOutputTypeDef,
        DescribeEndpointOutputTypeDef,
        DescribeModelOutputTypeDef,
        UpdateEndpointInputTypeDef,
        UpdateEndpointWeightsAndCapacitiesInputTypeDef,
    )

PAGE_SIZE = 100
_BUSY_TEXT = ("in-progress", "in progress")


class EndpointBusy(AwsRetryLater):
    """The endpoint is Creating/Updating/RollingBack: SageMaker refused the call; try later."""


@contextmanager
def _mapped(operation: str, *, busy_possible: bool = False) -> Iterator[None]:
    """`errors.mapped`, plus what SageMaker hosting says in words rather than codes."""
    try:
        with mapped(operation):
            yield
    except InvalidRequest as error:
        lowered = error.message.lower()
        if "already existing" in lowered:
            # SageMaker's words for a taken name: 'Cannot create already existing model "..."'.
            raise AlreadyExists(error.message, code=error.code, operation=operation) from error
        if busy_possible and any(text in lowered for text in _BUSY_TEXT):
            raise EndpointBusy(error.message, code=error.code, operation=operation) from error
        raise


# ---------------------------------------------------------------------------------------
# Describe


def find_endpoint(sm: SageMakerClient, name: str) -> DescribeEndpointOutputTypeDef | None:
    try:
        with _mapped("DescribeEndpoint"):
            return sm.describe_endpoint(EndpointName=name)
    except NotFound:
        return None


def find_endpoint_config(
    sm: SageMakerClient, name: str
) -> DescribeEndpointConfigOutputTypeDef | None:
    try:
        with _mapped("DescribeEndpointConfig"):
            return sm.describe_endpoint_config(EndpointConfigName=name)
    except NotFound:
        return None


def find_model(sm: SageMakerClient, name: str) -> DescribeModelOutputTypeDef | None:
    try:
        with _mapped("DescribeModel"):
            return sm.describe_model(ModelName=name)
    except NotFound:
        return None


# ---------------------------------------------------------------------------------------
# Create (AlreadyExists: the name is taken; the caller adopts it)


def create_model(sm: SageMakerClient, request: CreateModelInputTypeDef) -> str:
    with _mapped("CreateModel"):
        return sm.create_model(**request)["ModelArn"]


def create_endpoint_config(sm: SageMakerClient, request: CreateEndpointConfigInputTypeDef) -> str:
    with _mapped("CreateEndpointConfig"):
        return sm.create_endpoint_config(**request)["EndpointConfigArn"]


def create_endpoint(sm: SageMakerClient, request: CreateEndpointInputTypeDef) -> str:
    with _mapped("CreateEndpoint"):
        return sm.create_endpoint(**request)["EndpointArn"]


# ---------------------------------------------------------------------------------------
# Update (EndpointBusy while the endpoint is changing)


def update_endpoint(sm: SageMakerClient, request: UpdateEndpointInputTypeDef) -> str:
    with _mapped("UpdateEndpoint", busy_possible=True):
        return sm.update_endpoint(**request)["EndpointArn"]


def update_weights(
    sm: SageMakerClient, request: UpdateEndpointWeightsAndCapacitiesInputTypeDef
) -> str:
    with _mapped("UpdateEndpointWeightsAndCapacities", busy_possible=True):
        return sm.update_endpoint_weights_and_capacities(**request)["EndpointArn"]


# ---------------------------------------------------------------------------------------
# Delete (True when deleted, False when it was already gone)


def delete_model(sm: SageMakerClient, name: str) -> bool:
    try:
        with _mapped("DeleteModel"):
            sm.delete_model(ModelName=name)
    except NotFound:
        return False
    return True


def delete_endpoint_config(sm: SageMakerClient, name: str) -> bool:
    try:
        with _mapped("DeleteEndpointConfig"):
            sm.delete_endpoint_config(EndpointConfigName=name)
    except NotFound:
        return False
    return True


def delete_endpoint(sm: SageMakerClient, name: str) -> bool:
    try:
        with _mapped("DeleteEndpoint", busy_possible=True):
            sm.delete_endpoint(EndpointName=name)
    except NotFound:
        return False
    return True


# ---------------------------------------------------------------------------------------
# Tags and listings


def list_tags(sm: SageMakerClient, arn: str) -> dict[str, str]:
    """All tags of a resource (paginated), as a dict."""
    tags: dict[str, str] = {}
    with _mapped("ListTags"):
        for page in sm.get_paginator("list_tags").paginate(
            ResourceArn=arn, PaginationConfig={"PageSize": PAGE_SIZE}
        ):
            for tag in page.get("Tags", []):
                tags[tag["Key"]] = tag.get("Value", "")
    return tags


def add_tags(sm: SageMakerClient, arn: str, tags: dict[str, str]) -> None:
    """Add (or overwrite) tags on a resource."""
    with _mapped("AddTags"):
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def delete_tags(sm: SageMakerClient, arn: str, keys: list[str]) -> None:
    """Remove tags from a resource (keys it does not have are ignored by SageMaker)."""
    with _mapped("DeleteTags"):
        sm.delete_tags(ResourceArn=arn, TagKeys=keys)


@dataclass(frozen=True)
class Listed:
    """One entry of ListModels / ListEndpointConfigs."""

    name: str
    arn: str
    created: datetime


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def list_models(sm: SageMakerClient, *, name_contains: str | None = None) -> list[Listed]:
    kwargs: dict[str, Any] = {"PaginationConfig": {"PageSize": PAGE_SIZE}}
    if name_contains:
        kwargs["NameContains"] = name_contains
    out: list[Listed] = []
    with _mapped("ListModels"):
        for page in sm.get_paginator("list_models").paginate(**kwargs):
            out.extend(
                Listed(m["ModelName"], m["ModelArn"], _utc(m["CreationTime"]))
                for m in page.get("Models", [])
            )
    return out


def list_endpoint_configs(sm: SageMakerClient, *, name_contains: str | None = None) -> list[Listed]:
    kwargs: dict[str, Any] = {"PaginationConfig": {"PageSize": PAGE_SIZE}}
    if name_contains:
        kwargs["NameContains"] = name_contains
    out: list[Listed] = []
    with _mapped("ListEndpointConfigs"):
        for page in sm.get_paginator("list_endpoint_configs").paginate(**kwargs):
            out.extend(
                Listed(c["EndpointConfigName"], c["EndpointConfigArn"], _utc(c["CreationTime"]))
                for c in page.get("EndpointConfigs", [])
            )
    return out


def list_tagged(
    sm: SageMakerClient, listed: list[Listed], required: dict[str, str]
) -> list[Listed]:
    """The listed resources whose tags include every `required` key=value (ListTags each)."""
    out: list[Listed] = []
    for item in listed:
        try:
            tags = list_tags(sm, item.arn)
        except NotFound:  # deleted since it was listed
            continue
        if all(tags.get(key) == value for key, value in required.items()):
            out.append(item)
    return out


__all__ = [
    "AlreadyExists",
    "EndpointBusy",
    "Listed",
    "NotFound",
    "create_endpoint",
    "create_endpoint_config",
    "create_model",
    "delete_endpoint",
    "delete_endpoint_config",
    "delete_model",
    "find_endpoint",
    "find_endpoint_config",
    "find_model",
    "list_endpoint_configs",
    "list_models",
    "list_tagged",
    "list_tags",
    "update_endpoint",
    "update_weights",
]
