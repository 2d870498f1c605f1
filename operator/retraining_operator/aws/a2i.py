"""Gateway to the Augmented AI runtime: list human loops (paginated), describe one.

Also the A2I output key layout,
`<S3OutputPath>/<flow-definition-name>/YYYY/MM/DD/hh/mm/ss/<human-loop-name>/output.json`
(the time is the loop's creation time, UTC), which lets ingest read an output with one
S3 GET instead of a DescribeHumanLoop plus a GET.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from retraining_operator.aws.errors import AWS_CALL_ERRORS, map_client_error

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_a2i_runtime import AugmentedAIRuntimeClient

PAGE_SIZE = 100  # the API's maximum MaxResults


@dataclass(frozen=True)
class HumanLoop:
    """One entry of ListHumanLoops."""

    name: str
    status: str  # InProgress | Failed | Completed | Stopped | Stopping
    created: datetime
    flow_definition_arn: str | None = None
    failure_reason: str | None = None


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def list_human_loops(
    client: AugmentedAIRuntimeClient,
    flow_definition_arn: str,
    *,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[list[HumanLoop]]:
    """Yield the loops of a flow definition page by page (all pages), oldest first; both
    bounds are exclusive, as A2I's.

    Raises an `aws.errors.AwsError` subclass when a page cannot be read.
    """
    kwargs: dict[str, Any] = {
        "FlowDefinitionArn": flow_definition_arn,
        "SortOrder": "Ascending",
        "PaginationConfig": {"PageSize": page_size},
    }
    if created_after is not None:
        kwargs["CreationTimeAfter"] = _utc(created_after)
    if created_before is not None:
        kwargs["CreationTimeBefore"] = _utc(created_before)
    paginator = client.get_paginator("list_human_loops")
    try:
        for page in paginator.paginate(**kwargs):
            yield [
                HumanLoop(
                    name=item["HumanLoopName"],
                    status=item["HumanLoopStatus"],
                    created=_utc(item["CreationTime"]),
                    flow_definition_arn=item.get("FlowDefinitionArn"),
                    failure_reason=item.get("FailureReason"),
                )
                for item in page.get("HumanLoopSummaries", [])
            ]
    except AWS_CALL_ERRORS as error:
        raise map_client_error(error, "ListHumanLoops") from error


@dataclass(frozen=True)
class DescribedLoop:
    """DescribeHumanLoop: A2I's own record of one loop."""

    loop: HumanLoop
    output_uri: str | None  # HumanLoopOutput.OutputS3Uri (None until A2I has written one)


def describe_human_loop(client: AugmentedAIRuntimeClient, human_loop_name: str) -> DescribedLoop:
    """A2I's record of one loop. Raises `aws.errors.NotFound` for an unknown loop, another
    `AwsError` otherwise."""
    try:
        response = client.describe_human_loop(HumanLoopName=human_loop_name)
    except AWS_CALL_ERRORS as error:
        raise map_client_error(error, "DescribeHumanLoop") from error
    output = response.get("HumanLoopOutput") or {}
    uri = output.get("OutputS3Uri")
    return DescribedLoop(
        loop=HumanLoop(
            name=response["HumanLoopName"],
            status=response["HumanLoopStatus"],
            created=_utc(response["CreationTime"]),
            flow_definition_arn=response.get("FlowDefinitionArn"),
            failure_reason=response.get("FailureReason"),
        ),
        output_uri=str(uri) if uri else None,
    )


def describe_output_uri(client: AugmentedAIRuntimeClient, human_loop_name: str) -> str | None:
    """The loop's `HumanLoopOutput.OutputS3Uri` (None until A2I has written one).

    Raises `aws.errors.NotFound` for an unknown loop, another `AwsError` otherwise.
    """
    return describe_human_loop(client, human_loop_name).output_uri


# -- output key layout ---------------------------------------------------------------------


def output_uri(prefix: str, flow_definition_name: str, created: datetime, loop_name: str) -> str:
    """Where A2I writes a loop's output, given its flow definition's output prefix."""
    stamp = _utc(created).astimezone(UTC).strftime("%Y/%m/%d/%H/%M/%S")
    return f"{prefix.rstrip('/')}/{flow_definition_name}/{stamp}/{loop_name}/output.json"


_LAYOUT = re.compile(
    r"^(?P<prefix>s3://.+?)/(?P<flow>[^/]+)/\d{4}/\d{2}/\d{2}/\d{2}/\d{2}/\d{2}/"
    r"(?P<loop>[^/]+)/output\.json$"
)


def output_prefix_of(uri: str, flow_definition_name: str, loop_name: str) -> str | None:
    """The output prefix, if `uri` follows the layout for this flow definition and loop."""
    match = _LAYOUT.match(uri)
    if not match or match["flow"] != flow_definition_name or match["loop"] != loop_name:
        return None
    return match["prefix"]


def flow_output_path(sm: SageMakerClient, flow_definition_name: str) -> str:
    """The flow definition's S3OutputPath (where A2I writes every loop's output)."""
    try:
        described = sm.describe_flow_definition(FlowDefinitionName=flow_definition_name)
    except AWS_CALL_ERRORS as error:
        raise map_client_error(error, "DescribeFlowDefinition") from error
    return str(described["OutputConfig"]["S3OutputPath"])
