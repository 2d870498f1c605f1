"""The real operator entry point against the real API server: finalizer in, finalizer out."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.envtest import REPO_ROOT, tail
from support.kube import KubeCluster, eventually

pytestmark = pytest.mark.kube

FINALIZER = "retraining.hitl.dev/finalizer"
OPERATOR = Path(sys.executable).with_name("retraining-operator")


@contextlib.contextmanager
def running_operator(
    kube: KubeCluster, namespace: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`retraining-operator run` as a subprocess, watching one namespace, no HTTP listeners."""
    assert OPERATOR.exists(), f"{OPERATOR} missing: `pip install -e .` provides the entry point"
    argv = [str(OPERATOR), "run", "--namespace", namespace, "--liveness=", "--metrics-port", "0"]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=kube.env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # kopf stops gracefully on SIGTERM
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def _get(kube: KubeCluster, namespace: str, name: str) -> dict[str, Any] | None:
    result = kube.kubectl("get", "rtp", name, "-o", "json", namespace=namespace)
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    return json.loads(result.stdout)


def _policy(namespace: str) -> dict[str, Any]:
    """A valid policy: the first example, moved into the test's namespace."""
    for path in sorted((REPO_ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "RetrainingPolicy":
                doc["metadata"] = {"name": "finalizer-check", "namespace": namespace}
                return dict(doc)
    pytest.fail("no RetrainingPolicy in examples/*.yaml")


def test_operator_adds_and_releases_its_finalizer(
    kube: KubeCluster, rtp_crd: dict[str, Any], kube_namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "operator.log"
    policy = _policy(kube_namespace)
    name = policy["metadata"]["name"]
    applied = kube.apply(policy)
    assert applied.returncode == 0, applied.stderr

    def finalized() -> dict[str, Any] | None:
        obj = _get(kube, kube_namespace, name)
        return obj if obj and FINALIZER in obj["metadata"].get("finalizers", []) else None

    def gone() -> bool:
        return _get(kube, kube_namespace, name) is None

    try:
        # 1. The running operator puts its finalizer on the policy.
        with running_operator(kube, kube_namespace, log) as proc:
            eventually(finalized, timeout=60, what="the operator's finalizer")
            assert proc.poll() is None, "the operator exited"

        # 2. With the operator stopped, deletion is blocked by that finalizer.
        kube.kubectl("delete", "rtp", name, "--wait=false", namespace=kube_namespace, check=True)
        blocked = _get(kube, kube_namespace, name)
        assert blocked is not None, "deleted although the finalizer was on it"
        assert blocked["metadata"].get("deletionTimestamp")
        assert FINALIZER in blocked["metadata"]["finalizers"]

        # 3. The operator, started again, runs its delete handler and releases the object.
        with running_operator(kube, kube_namespace, log) as proc:
            eventually(gone, timeout=60, what="the policy to be deleted")
            assert proc.poll() is None, "the operator exited"
    except BaseException:
        print(f"--- operator log ({log}) ---\n{tail(log, 80)}")
        raise
