"""Typed AWS errors: every gateway maps botocore's `ClientError` into one of these.

Callers above the gateways never look at error codes. Each typed error is one of the
operator's two words (`retraining_operator.errors`): `Throttled`/`Unavailable` are
`RetryLater` (botocore already retried with backoff; the next pass carries on), every
other AWS error is `NeedsAttention` with the AWS error code as its reason
(`AccessDenied`, `InvalidRequest`, `LimitExceeded`: fix IAM, the spec or a quota).
Failures with no AWS answer are classified here too, once for every gateway: the network
(`TRANSPORT_ERRORS`, also a body that breaks while it is read) is `Unavailable`, missing
credentials `AccessDenied`, anything botocore refuses locally `InvalidRequest`.
Callers that expect a kind (`NotFound` on a describe, `AlreadyExists` on a create) catch
it where they make the call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from retraining_operator.errors import NeedsAttention, RetryLater

# SageMaker reports a missing resource as ValidationException for most Describe* calls
# ("Requested resource not found.", "Could not find endpoint ...").
_NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFound",
        "ResourceNotFoundException",
        "NoSuchKey",
        "NoSuchBucket",
        "404",
        "ObjectNotFoundException",  # Application Auto Scaling
    }
)
_NOT_FOUND_TEXT = ("not found", "could not find", "does not exist")
_EXISTS_CODES = frozenset({"ResourceInUse", "ResourceInUseException", "ConflictException"})
_EXISTS_TEXT = ("already exists", "must be unique", "is already in use")
_THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "ProvisionedThroughputExceededException",
    }
)
_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "ExpiredToken"}
)
_LIMIT_CODES = frozenset({"ResourceLimitExceeded", "ServiceQuotaExceededException"})
_INVALID_CODES = frozenset({"ValidationException", "ValidationError", "InvalidParameterValue"})


def is_throttle_code(code: str) -> bool:
    """Whether an AWS error code means "slow down" (throttling, S3 SlowDown)."""
    return code in _THROTTLE_CODES


class AwsError(Exception):
    """An AWS call failed. `code` is the AWS error code, `operation` the API called.

    Never raised as such: every concrete kind below is also `RetryLater` or
    `NeedsAttention`, so `except AwsError` is for code that handles any AWS failure
    locally (best-effort cleanup), and the pass's seam sees one of the two words.
    """

    def __init__(self, message: str, *, code: str = "", operation: str = "") -> None:
        Exception.__init__(self, message)
        # AWS's full message: for the operator's own decisions and its log only. It can name
        # the operator's role, account and other tenants' resources, so what tenants read
        # (Events, conditions, str(error)) is `public`: the operation and the error code.
        self.message = message
        self.code = code
        self.operation = operation

    @property
    def public(self) -> str:
        head = f"{self.operation}: " if self.operation else ""
        return f"{head}{self.code or type(self).__name__}"

    def __str__(self) -> str:
        return self.public


def aws_detail(error: BaseException) -> str | None:
    """The full AWS message behind `error` (itself or a cause), for the operator's log."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, AwsError):
            return seen.message
        seen = seen.__cause__
    return None


class AwsRetryLater(AwsError, RetryLater):
    """AWS was busy; waiting may help."""

    def __init__(self, message: str, *, code: str = "", operation: str = "") -> None:
        super().__init__(message, code=code, operation=operation)
        self.reason = "AwsBusy"
        self.after = None


class AwsFailure(AwsError, NeedsAttention):
    """AWS refused the call for a reason a person has to look at (reason = the AWS code)."""

    def __init__(self, message: str, *, code: str = "", operation: str = "") -> None:
        super().__init__(message, code=code, operation=operation)
        self.reason = code or type(self).__name__


class NotFound(AwsFailure):
    """The named resource does not exist."""


class AlreadyExists(AwsFailure):
    """A create call found a resource with that name (adopt it)."""


class Throttled(AwsRetryLater):
    """AWS throttled the call even after the client's own retries: try again later."""


class Unavailable(AwsRetryLater):
    """AWS answered with a server error (5xx) even after retries: try again later."""


class AccessDenied(AwsFailure):
    """The credentials in use may not make this call (fix the IAM policy or role)."""


class LimitExceeded(AwsFailure):
    """An account quota was reached (e.g. instances of this type for training jobs)."""


class InvalidRequest(AwsFailure):
    """AWS refused the request as invalid: a spec problem a person has to fix."""


# What a gateway catches around a call (or a body read): AWS's answers (ClientError) and
# botocore's own failures with no answer (the network, no credentials, a refused request).
AWS_CALL_ERRORS = (ClientError, BotoCoreError)
# No answer, or half of one: botocore's own transient set (retries/standard.py retries
# these: every ConnectionError - refused, DNS, connect timeout, TLS, proxy - and every
# HTTPClientError - reset, read timeout, a stream that broke), plus a body that arrived
# shorter than its Content-Length. Waiting may help; the spec is not the problem.
TRANSPORT_ERRORS = (BotocoreConnectionError, HTTPClientError, IncompleteReadError)
_CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError)


def map_client_error(error: ClientError | BotoCoreError, operation: str = "") -> AwsError:
    """The typed error for a failed botocore call (raise it `from` the original)."""
    if isinstance(error, BotoCoreError):
        return _map_botocore_error(error, operation)
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    message = str(details.get("Message", "")) or str(error)
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    operation = operation or getattr(error, "operation_name", "") or ""
    lowered = message.lower()
    kind: type[AwsError]
    if code in _THROTTLE_CODES:
        kind = Throttled
    elif code in _NOT_FOUND_CODES or (
        # "Could not find ..." names the resource a Describe/Stop/Delete call was about; on
        # a Create it names an input (a role, a bucket), which is a request to fix.
        code in _INVALID_CODES
        and not operation.startswith("Create")
        and any(text in lowered for text in _NOT_FOUND_TEXT)
    ):
        kind = NotFound
    elif code in _EXISTS_CODES or (
        code in _INVALID_CODES and any(text in lowered for text in _EXISTS_TEXT)
    ):
        kind = AlreadyExists
    elif code in _DENIED_CODES:
        kind = AccessDenied
    elif code in _LIMIT_CODES:
        kind = LimitExceeded
    elif code in _INVALID_CODES:
        kind = InvalidRequest
    elif status >= 500 or code in {"InternalFailure", "ServiceUnavailable", "InternalError"}:
        kind = Unavailable
    else:
        kind = AwsFailure
    text = f"{operation}: {code}: {message}" if operation else f"{code}: {message}"
    return kind(text, code=code, operation=operation)


def _map_botocore_error(error: BotoCoreError, operation: str) -> AwsError:
    """No answer from AWS: the network (waiting may help), or no credentials (a person
    must act); anything else botocore refused locally (a parameter that fails the service
    model, a bad configuration) is a request to fix."""
    kind: type[AwsError]
    if isinstance(error, TRANSPORT_ERRORS):
        kind, code = Unavailable, "ConnectionError"
        detail = f"{type(error).__name__}: {error}"
    elif isinstance(error, _CREDENTIAL_ERRORS):
        kind, code, detail = AccessDenied, "NoCredentials", str(error)
    else:
        kind, code, detail = InvalidRequest, type(error).__name__, str(error)
    text = f"{operation}: {code}: {detail}" if operation else f"{code}: {detail}"
    return kind(text, code=code, operation=operation)


@contextmanager
def mapped(operation: str) -> Iterator[None]:
    """Around one AWS call: any failure leaves as its typed error (the original chained)."""
    try:
        yield
    except AWS_CALL_ERRORS as error:
        raise map_client_error(error, operation) from error
