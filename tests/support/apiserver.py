"""Stopping and restarting the envtest kube-apiserver while etcd keeps running.

`ControlPlane` (retraining_standins.kubeapi) starts etcd and one kube-apiserver and
stops both. Outage tests need more: take only the API server away (etcd and its data stay),
bring it back on the same address with the same certificates and tokens (so every
kubeconfig and watch client reconnects to "the same" server), and, to model an HA control
plane, run a second API server replica on the same etcd while the first one is down.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from retraining_standins.kubeapi import ControlPlane, _Proc, free_port

APISERVER = "kube-apiserver"


@dataclass
class Outage:
    """What `stop_apiserver` took away, to bring it back with `start_apiserver`."""

    argv: list[str]
    stopped_at: float  # time.monotonic()
    stopped_wall: float  # time.time()


def _apiserver(plane: ControlPlane, name: str = APISERVER) -> _Proc:
    for proc in plane._procs:
        if proc.name == name:
            return proc
    raise AssertionError(f"{name} is not running")


def stop_apiserver(plane: ControlPlane) -> Outage:
    """SIGTERM the API server (etcd keeps running); returns what restarts it."""
    proc = _apiserver(plane)
    argv = [str(a) for a in proc.popen.args]  # the argv it was started with
    proc.stop()
    plane._procs.remove(proc)
    return Outage(argv=argv, stopped_at=time.monotonic(), stopped_wall=time.time())


def _ready(plane: ControlPlane, name: str, server: str) -> None:
    proc = _apiserver(plane, name)
    ctx = ssl.create_default_context(cafile=str(plane.ca_file))
    plane._wait(proc, f"{server}/readyz", ctx, f"{name} /readyz")


def start_apiserver(plane: ControlPlane, outage: Outage) -> float:
    """Start the API server again with the same arguments (same port, certificates, tokens);
    returns how long it was down, in seconds."""
    plane._spawn(APISERVER, outage.argv)
    _ready(plane, APISERVER, plane.server)
    return time.monotonic() - outage.stopped_at


@dataclass
class Replica:
    """A second API server on the same etcd, with its own port and kubeconfig."""

    name: str
    server: str
    kubeconfig: Path


def start_replica(plane: ControlPlane, outage: Outage, name: str = "kube-apiserver-2") -> Replica:
    """Another API server replica on the same etcd (an HA control plane's second member)."""
    port = free_port()
    argv = [re.sub(r"^--secure-port=\d+$", f"--secure-port={port}", a) for a in outage.argv]
    plane._spawn(name, argv)
    server = f"https://127.0.0.1:{port}"
    _ready(plane, name, server)
    assert plane.workdir is not None
    config = json.loads(plane.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = server
    path = plane.workdir / f"kubeconfig-{name}"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return Replica(name=name, server=server, kubeconfig=path)


def stop_replica(plane: ControlPlane, replica: Replica) -> None:
    proc = _apiserver(plane, replica.name)
    proc.stop()
    plane._procs.remove(proc)
