"""The /metrics and liveness listeners bind where they are told (chart: metrics.bindAddress,
health.bindAddress): a loopback bind is unreachable on the host's other addresses."""

from __future__ import annotations

import argparse
import socket
import urllib.request
from typing import Any

import pytest

from retraining_operator import metrics, runner
from retraining_operator.cli import build_parser


@pytest.fixture(autouse=True)
def _ledger_key(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` refuses to start without its ledger key; these tests have no cluster Secret."""
    key = tmp_path / "ledger-key"
    key.write_bytes(b"k" * 32)
    monkeypatch.setenv("RTP_LEDGER_KEY_FILE", str(key))
    # The default metrics port (9090) may be taken by another process on the machine.
    monkeypatch.setenv("RTP_METRICS_PORT", str(_free_port()))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _outward_ipv4() -> str:
    """An IPv4 address of this host other than loopback (the pod IP, in a pod)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: UDP connect only picks a route
        address: str = probe.getsockname()[0]
    if address.startswith("127."):
        pytest.fail("this host has no non-loopback IPv4 address to test against")
    return address


def _reachable(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=3) as rsp:
            return bool(rsp.status == 200 and b"rtp_" in rsp.read())
    except OSError:
        return False


@pytest.mark.parametrize(
    ("bind_address", "on_loopback", "on_pod_ip"),
    [("127.0.0.1", True, False), ("0.0.0.0", True, True)],
)
def test_metrics_listen_only_on_the_bind_address(
    bind_address: str, on_loopback: bool, on_pod_ip: bool
) -> None:
    port = _free_port()
    server = metrics.serve(port, bind_address)
    assert server is not None
    try:
        assert server.server_address[0] == bind_address
        assert _reachable("127.0.0.1", port) is on_loopback
        assert _reachable(_outward_ipv4(), port) is on_pod_ip
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_port_zero_serves_nothing() -> None:
    assert metrics.serve(0, "127.0.0.1") is None


def test_run_passes_the_bind_addresses_to_the_operator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`run` takes RTP_METRICS_BIND_ADDRESS into OperatorConfig, and the liveness URL (whose host
    is kopf's bind address) into kopf.run."""
    import kopf

    from retraining_operator import handlers

    monkeypatch.setenv("RTP_METRICS_BIND_ADDRESS", "127.0.0.1")
    monkeypatch.setenv("RTP_LIVENESS", "http://[::]:8181/healthz")
    seen: dict[str, Any] = {}
    monkeypatch.setattr(handlers, "configure", lambda config: seen.update(config=config))
    monkeypatch.setattr(kopf, "run", lambda **kwargs: seen.update(kopf=kwargs))
    monkeypatch.setattr(runner, "configure_logging", lambda *_: None)
    args: argparse.Namespace = build_parser().parse_args(["run"])
    assert runner.run_operator(args) == 0
    assert seen["config"].metrics_bind_address == "127.0.0.1"
    assert seen["kopf"]["liveness_endpoint"] == "http://[::]:8181/healthz"
    flag = build_parser().parse_args(["run", "--metrics-bind-address", "::"])
    assert flag.metrics_bind_address == "::"


def test_the_operator_serves_metrics_on_the_configured_bind_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import kopf

    from retraining_operator import handlers

    served: list[tuple[int, str]] = []
    monkeypatch.setattr(metrics, "serve", lambda port, address: served.append((port, address)))
    monkeypatch.setattr(handlers, "configure", lambda config: None)
    monkeypatch.setattr(kopf, "run", lambda **_: None)
    args = build_parser().parse_args(
        ["run", "--metrics-port=9999", "--metrics-bind-address=127.0.0.1", "--liveness="]
    )
    assert runner.run_operator(args) == 0
    assert served == [(9999, "127.0.0.1")]
