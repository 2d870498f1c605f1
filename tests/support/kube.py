"""Pytest plugin: a real kube-apiserver + etcd per test session, and helpers around it.

Fixtures:

- ``kube`` (session): the running control plane as a :class:`KubeCluster` — ``kubectl()``,
  ``api_client()``, ``apply_crd()``, ``service_account_kubeconfig()``, ``can_i()``.
- ``kubeconfig`` (session): path of the admin kubeconfig.
- ``kube_api`` (session): an admin ``kubernetes.client.ApiClient``.
- ``rtp_crd`` (session): the project's CRD applied and Established (returns the CRD object).
- ``kube_namespace`` (function): a fresh namespace for one test.

Missing binaries FAIL the tests that need them (never a silent skip): build them with
``bash tests/envtest/build.sh`` (see tests/envtest/README.md).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from support import tools
from support.envtest import REPO_ROOT, ControlPlane, EnvtestError, find_assets

CRD_PATH = REPO_ROOT / "crds" / "retrainingpolicies.yaml"
CRD_NAME = "retrainingpolicies.retraining.hitl.dev"

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.25,
    what: str = "condition",
) -> T:
    """Call ``probe`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            pytest.fail(f"{what} not reached within {timeout:.0f}s (last value: {last!r})")
        time.sleep(interval)


class KubeCluster:
    """Handle on the running control plane for tests."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        assert plane.workdir is not None
        self.workdir = plane.workdir
        self.kubeconfig = plane.kubeconfig
        self.server = plane.server
        self._cache_dir = self.workdir / "kubectl-cache"

    # ---------------------------------------------------------------------------- kubectl

    def kubectl(
        self,
        *args: str,
        as_user: str | None = None,
        as_groups: Sequence[str] = (),
        namespace: str | None = None,
        input: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = False,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; ``as_user`` impersonates (``--as``).

        For a ServiceAccount pass ``as_user="system:serviceaccount:NS:NAME"``: the API server
        then adds the ``system:serviceaccounts`` groups itself, exactly as for its real token.
        """
        argv = [
            tools.kubectl_path(),
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            f"--cache-dir={self._cache_dir}",
        ]
        if namespace:
            argv.append(f"--namespace={namespace}")
        if as_user:
            argv.append(f"--as={as_user}")
        argv += [f"--as-group={group}" for group in as_groups]
        argv += args
        result = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "KUBECONFIG": str(kubeconfig or self.kubeconfig)},
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def kubectl_json(self, *args: str, **kwargs: Any) -> Any:
        """``kubectl ... -o json`` parsed; fails the test if kubectl fails."""
        result = self.kubectl(*args, "-o", "json", check=True, **kwargs)
        return json.loads(result.stdout)

    def apply(self, obj: dict[str, Any] | str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Server-side apply of one object (dict) or a YAML/JSON document (str)."""
        text = obj if isinstance(obj, str) else json.dumps(obj)
        return self.kubectl("apply", "--server-side", "-f", "-", input=text, **kwargs)

    # ---------------------------------------------------------------------------- clients

    def api_client(self, kubeconfig: Path | None = None) -> Any:
        """A ``kubernetes.client.ApiClient`` for the admin (or the given kubeconfig)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        """Environment for a subprocess that should talk to this cluster."""
        return {**os.environ, "KUBECONFIG": str(kubeconfig or self.kubeconfig)}

    # ---------------------------------------------------------------------------- CRDs

    def apply_crd(self, path: Path = CRD_PATH, timeout: float = 60.0) -> dict[str, Any]:
        """Apply a CRD file, wait until Established and served; return the CRD object."""
        if not path.is_file():
            pytest.fail(f"CRD file {path} does not exist")
        self.kubectl("apply", "--server-side", "-f", str(path), check=True)
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        self.kubectl(
            "wait",
            "--for=condition=Established",
            f"crd/{name}",
            f"--timeout={int(timeout)}s",
            check=True,
        )
        crd: dict[str, Any] = self.kubectl_json("get", "crd", name)
        plural = crd["spec"]["names"]["plural"]
        group = crd["spec"]["group"]
        # Established means the API server serves it; kubectl must also see it in discovery.
        eventually(
            lambda: self.kubectl("get", f"{plural}.{group}", "--all-namespaces").returncode == 0,
            timeout=timeout,
            what=f"{plural}.{group} in discovery",
        )
        return crd

    # ---------------------------------------------------------------------------- identities

    def create_namespace(self, name: str) -> str:
        self.kubectl("create", "namespace", name, check=True)
        return name

    def service_account_kubeconfig(
        self,
        namespace: str,
        name: str,
        *,
        create: bool = True,
        duration: str = "2h",
        path: Path | None = None,
    ) -> Path:
        """A kubeconfig that authenticates as ServiceAccount NAMESPACE/NAME with a real token.

        The token comes from the TokenRequest API (``kubectl create token``), signed with the
        control plane's service-account key, so RBAC sees the genuine SA identity.
        """
        if create:
            exists = self.kubectl("get", "serviceaccount", name, namespace=namespace)
            if exists.returncode != 0:
                self.kubectl("create", "serviceaccount", name, namespace=namespace, check=True)
        token = self.kubectl(
            "create", "token", name, f"--duration={duration}", namespace=namespace, check=True
        ).stdout.strip()
        target = path or self.workdir / f"kubeconfig-sa-{namespace}-{name}"
        return self.plane.token_kubeconfig(
            target, token, f"system:serviceaccount:{namespace}:{name}", namespace
        )

    def can_i(
        self, verb: str, resource: str, *, as_user: str, namespace: str | None = None
    ) -> bool:
        """``kubectl auth can-i`` as ``as_user`` (impersonated)."""
        result = self.kubectl("auth", "can-i", verb, resource, as_user=as_user, namespace=namespace)
        return result.stdout.strip() == "yes"


# -------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def envtest_assets() -> Path:
    try:
        return find_assets()
    except EnvtestError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)  # outside `except`: no chained traceback


@pytest.fixture(scope="session")
def kube(envtest_assets: Path, request: pytest.FixtureRequest) -> Iterator[KubeCluster]:
    plane = ControlPlane(envtest_assets)
    failure = None
    try:
        plane.start()
    except EnvtestError as exc:
        failure = f"envtest control plane did not start: {exc}"
    if failure:
        pytest.fail(failure, pytrace=False)
    request.config.stash[_STARTUP_KEY] = (plane.startup_seconds, str(envtest_assets))
    try:
        yield KubeCluster(plane)
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kubeconfig(kube: KubeCluster) -> Path:
    return kube.kubeconfig


@pytest.fixture(scope="session")
def kube_api(kube: KubeCluster) -> Iterator[Any]:
    client = kube.api_client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def rtp_crd(kube: KubeCluster) -> dict[str, Any]:
    """The project's RetrainingPolicy CRD, applied once per session and Established."""
    return kube.apply_crd(CRD_PATH)


@pytest.fixture
def kube_namespace(kube: KubeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test (deletion is requested afterwards, not awaited: without a
    kube-controller-manager, namespaces stay Terminating forever)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    kube.create_namespace(name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false")


# -------------------------------------------------------------------------------- reporting

_STARTUP_KEY = pytest.StashKey[tuple[float, str]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    started = config.stash.get(_STARTUP_KEY, None)
    if started is not None:
        seconds, assets = started
        terminalreporter.write_line(
            f"envtest: etcd + kube-apiserver from {assets} ready in {seconds:.1f}s"
        )
