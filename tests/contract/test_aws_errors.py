"""ClientError -> typed error mapping (shared by every gateway)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

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
    assert message in str(mapped)
