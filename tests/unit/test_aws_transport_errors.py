"""No answer from AWS is one thing for every gateway: the network failed, waiting may help.

Every botocore error of the transport (botocore's ConnectionError and HTTPClientError
families: refused, DNS, connect or read timeout, TLS, proxy, reset, a broken stream, and a
body shorter than its Content-Length) maps to `Unavailable` (RetryLater) through
`aws/errors.py`, and the S3 gateway, which adds only its conditional-write conflicts, maps
them the same way, for a request and for a body read alike. Missing credentials stay
`AccessDenied`; a request botocore refuses locally stays `InvalidRequest`.
"""

from __future__ import annotations

import inspect
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    ParamValidationError,
)

from retraining_operator.aws import s3 as s3_gateway
from retraining_operator.aws.errors import (
    AccessDenied,
    AwsError,
    InvalidRequest,
    Unavailable,
    map_client_error,
)
from retraining_operator.aws.s3 import S3, S3Location, WriteConflict
from retraining_operator.errors import NeedsAttention, RetryLater

# Enough keyword arguments for every botocore message format below.
_FIELDS = {
    "endpoint_url": "https://api.example",
    "proxy_url": "http://proxy.example:3128",
    "error": "connection reset by peer",
    "actual_bytes": 10,
    "expected_bytes": 20,
}


def _transport_classes() -> list[type[BotoCoreError]]:
    families = (botocore.exceptions.ConnectionError, HTTPClientError)
    found = [
        cls
        for _, cls in inspect.getmembers(botocore.exceptions, inspect.isclass)
        if issubclass(cls, families)
    ]
    return [*sorted(found, key=lambda cls: cls.__name__), IncompleteReadError]


TRANSPORT = _transport_classes()


def test_the_families_hold_the_errors_the_issue_names() -> None:
    names = {cls.__name__ for cls in TRANSPORT}
    assert {"SSLError", "HTTPClientError", "ProxyConnectionError", "ConnectionClosedError"} <= names
    assert {"EndpointConnectionError", "ReadTimeoutError", "ResponseStreamingError"} <= names


def _check_retry(mapped: AwsError) -> None:
    assert type(mapped) is Unavailable
    assert isinstance(mapped, RetryLater)
    assert not isinstance(mapped, NeedsAttention)
    assert not isinstance(mapped, InvalidRequest)


@pytest.mark.parametrize("kind", TRANSPORT, ids=lambda cls: cls.__name__)
def test_a_transport_error_is_retry_later(kind: type[BotoCoreError]) -> None:
    mapped = map_client_error(kind(**_FIELDS), "DescribeTrainingJob")
    _check_retry(mapped)
    assert str(mapped) == "DescribeTrainingJob: ConnectionError"  # what tenants read
    assert kind.__name__ in mapped.message  # what the operator's log says


class _Body:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def read(self, *_: Any) -> bytes:
        raise self.error

    def iter_chunks(self, *_: Any) -> Iterator[bytes]:
        yield b'{"a": 1}\n'
        raise self.error

    def close(self) -> None:
        pass


class _Client:
    """Every S3 call raises `error`; GetObject answers with a body whose read raises it."""

    def __init__(self, error: BaseException, *, in_body: bool = False) -> None:
        self.error = error
        self.in_body = in_body

    def get_object(self, **_: Any) -> Any:
        if self.in_body:
            return {"Body": _Body(self.error), "ContentLength": 100, "ETag": '"e"'}
        raise self.error

    def get_paginator(self, _: str) -> Any:
        return self  # its `paginate` raises

    def __getattr__(self, name: str) -> Any:
        def call(*_: Any, **__: Any) -> Any:
            raise self.error

        return call


HERE = S3Location("bucket", "prefix/object.json")


def _s3_calls(s3: S3) -> dict[str, Any]:
    return {
        "GetObject": lambda: s3.get(HERE),
        "GetObject (lines)": lambda: list(s3.iter_lines(HERE)),
        "PutObject": lambda: s3.put(HERE, b"{}"),
        "PutObject (if absent)": lambda: s3.put_if_absent(HERE, b"{}"),
        "HeadObject": lambda: s3.exists(HERE),
        "ListObjectsV2": lambda: list(s3.list(HERE)),
        "CopyObject": lambda: s3.copy(HERE, HERE.child("copy"), size=1),
        "DeleteObject": lambda: s3.delete(HERE),
    }


@pytest.mark.parametrize("kind", TRANSPORT, ids=lambda cls: cls.__name__)
def test_the_s3_gateway_maps_a_transport_error_to_retry_later(kind: type[BotoCoreError]) -> None:
    s3 = S3(_Client(kind(**_FIELDS)))  # type: ignore[arg-type]
    for operation, call in _s3_calls(s3).items():
        with pytest.raises(AwsError) as raised:
            call()
        _check_retry(raised.value)
        assert raised.value.operation.startswith(operation.split(" ")[0]), operation


@pytest.mark.parametrize("kind", TRANSPORT, ids=lambda cls: cls.__name__)
def test_a_body_that_breaks_while_it_is_read_is_retry_later(kind: type[BotoCoreError]) -> None:
    s3 = S3(_Client(kind(**_FIELDS), in_body=True))  # type: ignore[arg-type]
    with pytest.raises(AwsError) as raised, s3.open(HERE) as stored:
        stored.read_at_most(1000)
    _check_retry(raised.value)
    with pytest.raises(AwsError) as raised:
        list(s3.iter_lines(HERE))
    _check_retry(raised.value)


def test_a_multipart_upload_that_loses_the_network_leaves_with_retry_later() -> None:
    """Its abort fails on the same dead network: the original error leaves, mapped."""

    class Started(_Client):
        def create_multipart_upload(self, **_: Any) -> Any:
            return {"UploadId": "u1"}

    s3 = S3(Started(botocore.exceptions.EndpointConnectionError(**_FIELDS)))  # type: ignore[arg-type]
    with pytest.raises(AwsError) as raised, s3.multipart(HERE) as upload:
        upload.upload(b"part")
    _check_retry(raised.value)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (NoCredentialsError(), AccessDenied),
        (ParamValidationError(report="Invalid bucket name"), InvalidRequest),
    ],
    ids=["no-credentials", "param-validation"],
)
def test_what_is_not_the_network_stays_a_person_s_to_fix(
    error: BotoCoreError, kind: type[AwsError]
) -> None:
    assert type(map_client_error(error, "GetObject")) is kind
    s3 = S3(_Client(error))  # type: ignore[arg-type]
    for call in _s3_calls(s3).values():
        with pytest.raises(kind) as raised:
            call()
        assert isinstance(raised.value, NeedsAttention)


def test_s3_keeps_its_conditional_write_conflict() -> None:
    conflict = ClientError(
        {"Error": {"Code": "PreconditionFailed"}, "ResponseMetadata": {"HTTPStatusCode": 412}},
        "PutObject",
    )
    s3 = S3(_Client(conflict))  # type: ignore[arg-type]
    with pytest.raises(WriteConflict):
        s3.put(HERE, b"{}", if_match='"e"')
    assert s3.put_if_absent(HERE, b"{}") is False


def test_only_errors_py_classifies_botocore_exceptions() -> None:
    """One classification: no other gateway module names a botocore exception class except
    s3.py, for ClientError's 412 (a real S3 answer, not a transport failure)."""
    package = Path(s3_gateway.__file__).parent
    users = sorted(p.name for p in package.glob("*.py") if "botocore.exceptions" in p.read_text())
    assert users == ["errors.py", "s3.py"]


# -- through real clients: what botocore raises on a TLS mismatch and a dead proxy ----------


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    """A server that answers plain HTTP where the client expects TLS."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    server.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed once the block ends: nothing listens


def _client(**kwargs: Any) -> Any:
    config = Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=2)
    return boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=config.merge(Config(proxies=kwargs.pop("proxies", None))),
        **kwargs,
    )


def test_a_tls_failure_is_retry_later(plain_http_port: int) -> None:
    s3 = S3(_client(endpoint_url=f"https://127.0.0.1:{plain_http_port}"))
    with pytest.raises(AwsError) as raised:
        s3.get(HERE)
    _check_retry(raised.value)
    assert isinstance(raised.value.__cause__, botocore.exceptions.SSLError)


def test_a_dead_proxy_is_retry_later() -> None:
    s3 = S3(_client(proxies={"https": f"http://127.0.0.1:{_closed_port()}"}))
    with pytest.raises(AwsError) as raised:
        s3.get(HERE)
    _check_retry(raised.value)
    assert isinstance(raised.value.__cause__, botocore.exceptions.ProxyConnectionError)
