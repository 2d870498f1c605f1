"""The client pool takes its guard from whoever builds it: every request of its clients
passes the guard first (a raising guard stops it before a byte is sent), and the gateways
import nothing of leadership. The operator builds its pool with the leadership fence.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from retraining_operator import fencing
from retraining_operator.aws.session import AwsSession, ClientPool, ClientSettings

AWS = Path(__file__).resolve().parents[2] / "operator" / "retraining_operator" / "aws"


class Refused(Exception):
    pass


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    yield
    fencing.reset()


def _sent_through(session: AwsSession) -> list[str]:
    sent: list[str] = []
    session.sagemaker().meta.events.register(
        "before-send", lambda request, **_: sent.append(request.url)
    )
    return sent


def test_a_raising_guard_stops_every_request_before_it_is_sent() -> None:
    asked: list[str] = []

    def guard(what: str) -> None:
        asked.append(what)
        raise Refused(what)

    session = AwsSession(
        "us-east-1", clients=ClientPool(before_send=guard), settings=ClientSettings(max_attempts=1)
    )
    sent = _sent_through(session)
    with pytest.raises(Refused):
        session.sagemaker().list_endpoints()
    assert asked == ["AWS call"]
    assert sent == []


class _Sent(Exception):
    """Raised by a hook registered after the guard: the request got past it."""


def _raise_sent(**_: object) -> None:
    raise _Sent


def test_a_guard_that_allows_lets_the_request_go() -> None:
    asked: list[str] = []
    session = AwsSession(
        "us-east-1",
        clients=ClientPool(before_send=asked.append),
        settings=ClientSettings(max_attempts=1),
    )
    session.sagemaker().meta.events.register("before-send", _raise_sent)
    with pytest.raises(_Sent):
        session.sagemaker().list_endpoints()
    assert asked == ["AWS call"]


def test_the_pool_without_a_guard_and_private_clients_send_unguarded() -> None:
    fencing.install(lambda: False)  # not consulted: nothing gave these clients the fence
    for session in (
        AwsSession("us-east-1", clients=ClientPool(), settings=ClientSettings(max_attempts=1)),
        AwsSession("us-east-1", settings=ClientSettings(max_attempts=1)),
    ):
        session.sagemaker().meta.events.register("before-send", _raise_sent)
        with pytest.raises(_Sent):
            session.sagemaker().list_endpoints()


def test_the_operator_builds_its_pool_with_the_leadership_fence() -> None:
    from retraining_operator.handlers import OperatorState

    session = AwsSession(
        "us-east-1", clients=OperatorState().clients, settings=ClientSettings(max_attempts=1)
    )
    sent = _sent_through(session)
    fencing.install(lambda: False)
    with pytest.raises(fencing.NotLeader, match="does not hold the leader lease"):
        session.sagemaker().list_endpoints()
    assert sent == []


def test_no_gateway_imports_leadership() -> None:
    for path in AWS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not [n for n in names if "fencing" in n or ".leader" in n], path.name
