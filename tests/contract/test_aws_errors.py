"""ClientError -> typed error mapping (shared by every gateway)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from retraining_operator.aws.errors import (
    AccessDenied,
    AlreadyExists,
    AwsError,
    AwsFailure,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    Throttled,
    Unavailable,
    map_client_error,
)
from retraining_operator.errors import NeedsAttention, RetryLater


def _error(code: str, message: str, operation: str, status: int = 400) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


@pytest.mark.parametrize(
    ("code", "message", "operation", "status", "kind"),
    [
        (
            "ValidationException",
            "Requested resource not found.",
            "DescribeTrainingJob",
            400,
            NotFound,
        ),
        ("ValidationException", 'Could not find endpoint "e".', "DescribeEndpoint", 400, NotFound),
        ("ResourceNotFound", "no tuning job", "DescribeHyperParameterTuningJob", 400, NotFound),
        ("ResourceInUse", "name in use", "CreateTrainingJob", 400, AlreadyExists),
        ("ValidationException", "Job x already exists", "CreateTrainingJob", 400, AlreadyExists),
        ("ValidationException", "Could not find role r", "CreateTrainingJob", 400, InvalidRequest),
        ("ThrottlingException", "Rate exceeded", "DescribeTrainingJob", 400, Throttled),
        ("AccessDeniedException", "not authorized", "CreateTrainingJob", 400, AccessDenied),
        (
            "ResourceLimitExceeded",
            "quota for ml.p3.2xlarge",
            "CreateTrainingJob",
            400,
            LimitExceeded,
        ),
        ("InternalFailure", "oops", "DescribeTrainingJob", 500, Unavailable),
        ("SomethingNew", "?", "DescribeTrainingJob", 400, AwsFailure),
    ],
)
def test_mapping(
    code: str, message: str, operation: str, status: int, kind: type[AwsError]
) -> None:
    mapped = map_client_error(_error(code, message, operation, status))
    assert type(mapped) is kind
    assert mapped.code == code
    assert mapped.operation == operation
    # AWS's words stay with the operator (its decisions, its log); what tenants read
    # (str: Events, conditions) is the operation and the code only.
    assert message in mapped.message
    assert str(mapped) == f"{operation}: {code}"


@pytest.mark.parametrize(
    ("error", "kind", "retry"),
    [
        (EndpointConnectionError(endpoint_url="https://api.sagemaker.x"), Unavailable, True),
        (ReadTimeoutError(endpoint_url="https://s3.x"), Unavailable, True),
        (NoCredentialsError(), AccessDenied, False),
        (ParamValidationError(report="Invalid length for parameter Name"), InvalidRequest, False),
    ],
)
def test_failures_without_an_aws_answer_are_one_of_the_two_words(
    error: Exception, kind: type[AwsError], retry: bool
) -> None:
    mapped = map_client_error(error, "ListHumanLoops")  # type: ignore[arg-type]
    assert type(mapped) is kind
    assert isinstance(mapped, RetryLater) is retry
    assert isinstance(mapped, NeedsAttention) is not retry
    assert mapped.message.startswith("ListHumanLoops: ")


def test_a2i_listing_against_a_dead_endpoint_is_unavailable() -> None:
    import socket

    import boto3
    from botocore.config import Config

    from retraining_operator.aws import a2i

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    client = boto3.client(
        "sagemaker-a2i-runtime",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    flow = "arn:aws:sagemaker:us-east-1:111122223333:flow-definition/fd"
    with pytest.raises(Unavailable, match="ConnectionError"):
        list(a2i.list_human_loops(client, flow))
