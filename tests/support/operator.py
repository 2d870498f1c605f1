"""The real operator entry point as a subprocess, plus what e2e tests need around it.

`OperatorProcess` runs `python -m retraining_operator run` against the envtest API server
and the AWS stand-ins, logs to a file, exposes /metrics on a free port, and can be stopped
gracefully (SIGTERM) or killed (SIGKILL) to test crash recovery. `chart_rbac` renders the
Helm chart and applies exactly its ServiceAccount and RBAC, so the operator can run as the
identity the chart ships.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from retraining_standins.stack import AwsStandins, isolated_aws_env
from support import tools
from support.envtest import REPO_ROOT, free_port, tail
from support.kube import KubeCluster

CHART = REPO_ROOT / "charts" / "a2i-retraining-operator"
RELEASE = "rtp"
OPERATOR_NAMESPACE = "rtp-system"
LEDGER_KEY_SECRET = f"{RELEASE}-a2i-retraining-operator-ledger-key"


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        aws_env: dict[str, str],
        log_path: Path,
        *,
        namespaces: tuple[str, ...] = (),
        extra_args: tuple[str, ...] = (),
        tick: float = 1.0,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.aws_env = aws_env
        self.log_path = log_path
        self.namespaces = namespaces
        self.extra_args = extra_args
        self.tick = tick
        self.metrics_port = free_port()
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "retraining_operator", "run", "--liveness="]
        for ns in self.namespaces:
            argv += ["--namespace", ns]
        argv += [
            f"--metrics-port={self.metrics_port}",
            f"--tick-seconds={self.tick}",
            f"--observe-seconds={self.tick}",
            *self.extra_args,
        ]
        return argv

    def start(self) -> OperatorProcess:
        env = {
            **os.environ,
            **self.aws_env,
            "KUBECONFIG": str(self.kubeconfig),
            # The ledger key Secret where the chart's RBAC lets its ServiceAccount keep it.
            "RTP_LEDGER_KEY_NAMESPACE": OPERATOR_NAMESPACE,
            "RTP_LEDGER_KEY_SECRET": LEDGER_KEY_SECRET,
        }
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n===== start #{self.starts} =====\n".encode())
        log.flush()
        self.popen = subprocess.Popen(
            self.argv(), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.popen is None or self.popen.poll() is not None:
            return self.popen.returncode if self.popen else None
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(5)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no final status patch - a crash."""
        assert self.popen is not None
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def log(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    interval: float = 0.5,
    on_timeout: Callable[[], str] | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    detail = on_timeout() if on_timeout else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last={last!r}\n{detail}")


def render_chart(*values: str) -> list[dict[str, Any]]:
    """`helm template` of the chart with `--set` values; the documents as dicts."""
    argv = [tools.helm_path(), "template", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE]
    for value in values:
        argv += ["--set", value]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def chart_rbac(kube: KubeCluster, *values: str) -> tuple[str, str]:
    """Apply exactly the chart's ServiceAccount and RBAC; return (namespace, SA name)."""
    docs = [d for d in render_chart(*values) if d["kind"] in RBAC_KINDS]
    if kube.kubectl("get", "namespace", OPERATOR_NAMESPACE).returncode != 0:
        kube.create_namespace(OPERATOR_NAMESPACE)
    for doc in docs:
        doc.setdefault("metadata", {})
        if doc["kind"] in {"ServiceAccount", "Role", "RoleBinding"}:
            doc["metadata"].setdefault("namespace", OPERATOR_NAMESPACE)
        kube.apply(doc, check=True)
    (sa,) = [d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"]
    return OPERATOR_NAMESPACE, sa


@pytest.fixture
def operator_factory(
    tmp_path: Path, kube: KubeCluster, aws: AwsStandins
) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []
    if kube.kubectl("get", "namespace", OPERATOR_NAMESPACE).returncode != 0:
        kube.create_namespace(OPERATOR_NAMESPACE)  # where the operator keeps its ledger key

    def make(kubeconfig: Path | None = None, **kwargs: Any) -> OperatorProcess:
        proc = OperatorProcess(
            kubeconfig or kube.kubeconfig,
            isolated_aws_env(aws),
            tmp_path / f"operator-{len(started)}.log",
            **kwargs,
        )
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()
