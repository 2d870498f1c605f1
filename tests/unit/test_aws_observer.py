"""A call that gets no answer (connection refused) leaves a metered session as what it is,
a retryable `Unavailable`, counted on the observer under its operation.

Found in issue 29: botocore emits `after-call-error` without the operation model, and the
observer's hook required one, so with metrics on (always, in the operator) every transport
failure became a TypeError raised from the hook: the pass's last-resort `InternalError`
("please report") instead of "AWS busy, retrying".
"""

from __future__ import annotations

import socket

import pytest

from retraining_operator.aws import endpoints
from retraining_operator.aws.errors import Unavailable
from retraining_operator.aws.session import AwsSession, ClientSettings


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.failures: list[tuple[str, str, str]] = []

    def called(self, service: str, operation: str) -> None:
        self.calls.append((service, operation))

    def failed(self, service: str, operation: str, code: str) -> None:
        self.failures.append((service, operation, code))

    def throttled(self, service: str, operation: str) -> None:
        pass


@pytest.fixture
def closed_port(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    return port


def test_an_unanswered_call_is_unavailable_and_counted(closed_port: int) -> None:
    observer = Recorder()
    session = AwsSession("us-east-1", settings=ClientSettings(max_attempts=1, observer=observer))
    with pytest.raises(Unavailable) as raised:
        endpoints.find_endpoint(session.sagemaker(), "od-endpoint")
    assert raised.value.code == "ConnectionError"
    assert observer.calls == [("sagemaker", "DescribeEndpoint")]
    assert observer.failures == [("sagemaker", "DescribeEndpoint", "EndpointConnectionError")]
