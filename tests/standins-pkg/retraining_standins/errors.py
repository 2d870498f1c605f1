"""Errors the emulator answers with, in the codes and messages AWS uses.

SageMaker is not consistent about "not found": training jobs, models, endpoint configs and
endpoints answer `ValidationException` with a message prefix ("Requested resource not found",
"Could not find model ..."), while tuning jobs and flow definitions answer `ResourceNotFound`.
The emulator follows AWS here (the same prefixes the ACK SageMaker controller matches on).
"""

from __future__ import annotations


class ApiError(Exception):
    """An AWS error response: `code` becomes botocore's `Error.Code`."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def validation(message: str) -> ApiError:
    return ApiError("ValidationException", message, 400)


def resource_not_found(message: str, *, code: str = "ResourceNotFound") -> ApiError:
    # SageMaker's own ResourceNotFound is a 400; A2I's ResourceNotFoundException is a 404.
    return ApiError(code, message, 404 if code.endswith("Exception") else 400)


def resource_in_use(message: str) -> ApiError:
    return ApiError("ResourceInUse", message, 400)


def resource_limit_exceeded(message: str) -> ApiError:
    return ApiError("ResourceLimitExceeded", message, 400)


def conflict(message: str) -> ApiError:
    return ApiError("ConflictException", message, 409)
