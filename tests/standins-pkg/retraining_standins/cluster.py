"""The Kubernetes side the demo and the sandbox share: API clients for a kubeconfig, the CRD
installed and Established, namespaces, and the real operator as a child process."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from retraining_standins.kubeapi import ControlPlane, die_with_parent

# A copy of the repository's crds/retrainingpolicies.yaml, shipped in this package so the demo
# and the sandbox run from the installed wheels too (tests/unit/test_packaging.py keeps the
# copy exact).
CRD_FILE = Path(__file__).resolve().parent / "crds" / "retrainingpolicies.yaml"


class BackgroundStart:
    """Start the control plane, install the CRD and create `namespaces` on another thread,
    while the caller seeds the AWS stand-ins; `result()` gives the API clients. The kubernetes
    client's import (a second or more) runs on a third thread meanwhile.

    The starting thread lives until `stop()` has stopped the control plane: Linux's
    parent-death signal (`kubeapi.die_with_parent`) fires when the *thread* that forked a child
    ends, so a pool thread that finished its task would SIGKILL kube-apiserver and etcd.
    """

    def __init__(self, plane: ControlPlane, namespaces: Sequence[str]) -> None:
        self.plane = plane
        self.namespaces = list(namespaces)
        self._api: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._release = threading.Event()
        self._warm = threading.Thread(
            target=importlib.import_module, args=("kubernetes.client",), daemon=True
        )
        self._thread = threading.Thread(target=self._start, name="control-plane", daemon=True)
        self._warm.start()
        self._thread.start()

    def _start(self) -> None:
        try:
            self.plane.start()
            self._warm.join()
            api = clients(self.plane.kubeconfig)
            install_crd(api)
            for namespace in self.namespaces:
                create_namespace(api, namespace)
            self._api = api
        except BaseException as error:  # handed to the caller by result()
            self._error = error
        finally:
            self._done.set()
        self._release.wait()

    def result(self) -> dict[str, Any]:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._api is not None
        return self._api

    def stop(self) -> None:
        """Stop the control plane (once a start under way has ended), then the thread."""
        self._done.wait()
        self.plane.stop()
        self._release.set()
        self._thread.join()


def clients(kubeconfig: Path) -> dict[str, Any]:
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
    return {
        "custom": client.CustomObjectsApi(api_client),
        "core": client.CoreV1Api(api_client),
        "ext": client.ApiextensionsV1Api(api_client),
    }


def install_crd(api: dict[str, Any]) -> None:
    crd = yaml.safe_load(CRD_FILE.read_text())
    api["ext"].create_custom_resource_definition(crd)
    wait_for(
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in (
                api["ext"]
                .read_custom_resource_definition(crd["metadata"]["name"])
                .status.conditions
                or []
            )
        ),
        "the CRD to be Established",
    )


def create_namespace(api: dict[str, Any], name: str) -> None:
    api["core"].create_namespace({"metadata": {"name": name}})


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def operator_argv(namespaces: Sequence[str], *extra: str) -> list[str]:
    """`python -m retraining_operator run` for local stand-ins: no liveness or metrics port,
    short ticks (the stand-ins' lifecycles take seconds, not minutes)."""
    watch = [arg for namespace in namespaces for arg in ("--namespace", namespace)]
    return [
        sys.executable,
        "-m",
        "retraining_operator",
        "run",
        *watch,
        "--liveness=",
        "--metrics-port=0",
        "--tick-seconds=2",
        "--observe-seconds=1",
        *extra,
    ]


@dataclass
class OperatorChild:
    """The operator as a child process, its output in `log`.

    It leads its own process group, so a Ctrl-C in the terminal reaches only the parent, which
    stops it in order; and it dies with the parent (Linux) if the parent is killed."""

    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, argv: Sequence[str], env: Mapping[str, str], log: Path) -> OperatorChild:
        # Its own TMPDIR next to the log, removed with it: the kubernetes client writes the
        # kubeconfig's CA to a temporary file that it deletes at exit, and the operator ends
        # with os._exit (runner.exit_now), so the file would stay in /tmp after every run.
        tmpdir = log.parent / "operator-tmp"
        tmpdir.mkdir(exist_ok=True)
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(argv),
                env={**env, "TMPDIR": str(tmpdir)},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
        return cls(popen, log)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, grace: float = 20.0) -> int | None:
        """SIGTERM (kopf stops its handlers), SIGKILL after `grace` seconds; the exit code."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        return self.popen.returncode
