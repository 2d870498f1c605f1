"""A real kube-apiserver + etcd on loopback ports, in the controller-runtime "envtest" style.

The binaries are not part of this package: they come from ``--assets`` / ``KUBEBUILDER_ASSETS``
(a directory holding ``kube-apiserver`` and ``etcd``), which a checkout of the project builds
with ``bash tests/envtest/build.sh`` (it prints that directory last). Everything else is
generated per start in a temporary directory: a CA and a serving certificate, a static token
file (one admin token in ``system:masters``), a service-account signing key pair (so
TokenRequest works), and a kubeconfig. Authorization is RBAC, so restricted identities are
really restricted.

There is no kube-controller-manager: nothing creates ``default`` ServiceAccounts, garbage-collects
owner references or finishes namespace deletion. Tests must not rely on those.

The demo and ``retraining-standins sandbox`` use it as well as the tests;
``tests/support/envtest.py`` adds the checkout's default build cache. To start a control plane
by hand, ``retraining-standins sandbox`` is the documented way (with the AWS stand-ins, the CRD
and the examples' namespaces). ``python -m retraining_standins.kubeapi`` (with
``KUBEBUILDER_ASSETS``) starts the bare control plane: it prints the kubeconfig path and the
start-up time, and stops on SIGINT or SIGTERM, also when started in the background.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

ASSETS_HINT = (
    "point KUBEBUILDER_ASSETS (or --assets) at a directory holding kube-apiserver and etcd; "
    "a checkout of a2i-retraining-operator builds them with `bash tests/envtest/build.sh` "
    "(or `make envtest`), which prints that directory last"
)
ADMIN_USER = "envtest-admin"
SERVICE_CIDR = "10.0.0.0/24"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


class EnvtestError(RuntimeError):
    """The control plane could not be found or started; the message says why."""


# --------------------------------------------------------------------------------------------
# Finding the binaries
# --------------------------------------------------------------------------------------------


def has_binaries(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in ("kube-apiserver", "etcd"))


def find_assets(
    explicit: Path | None = None, *, default: Path | None = None, hint: str = ASSETS_HINT
) -> Path:
    """The directory with ``kube-apiserver`` and ``etcd``, or EnvtestError saying how to get it.

    Looked up in order: ``explicit`` (a ``--assets`` flag), ``KUBEBUILDER_ASSETS``, ``default``
    (the tests pass the checkout's build cache). Nothing depends on where this package sits.
    """
    env = os.environ.get("KUBEBUILDER_ASSETS")
    if explicit is not None:
        candidate, where = explicit, f"--assets {explicit}"
    elif env:
        candidate, where = Path(env), f"KUBEBUILDER_ASSETS={env}"
    elif default is not None:
        candidate, where = default, str(default)
    else:
        raise EnvtestError(f"no envtest binaries given: {hint}")
    if has_binaries(candidate):
        return candidate
    raise EnvtestError(f"kube-apiserver and etcd not found in {where}; {hint}")


# --------------------------------------------------------------------------------------------
# Certificates and keys
# --------------------------------------------------------------------------------------------


def _write_pki(directory: Path) -> None:
    """CA, serving cert for 127.0.0.1/localhost/the service IP, and the SA signing key pair."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "envtest-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    serving_key = ec.generate_private_key(ec.SECP256R1())
    # 10.0.0.1, the `kubernetes` service's address.
    service_ip = ipaddress.IPv4Address(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))
    serving_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(serving_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes"),
                    x509.DNSName("kubernetes.default"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(service_ip),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (directory / "apiserver.crt").write_bytes(serving_cert.public_bytes(serialization.Encoding.PEM))
    (directory / "apiserver.key").write_bytes(pem_key(serving_key))
    (directory / "sa.key").write_bytes(pem_key(sa_key))
    (directory / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for name in ("apiserver.key", "sa.key"):
        (directory / name).chmod(0o600)


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGKILL the child if the test process dies without running its teardown.

    SIGKILL, not SIGTERM: a kube-apiserver whose etcd is gone would otherwise spend a minute
    in graceful shutdown; the data is throw-away anyway.
    """
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"<{path} unreadable>"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self, grace: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        # Each process leads its own session/group: signal the group, not a name.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


@dataclass
class ControlPlane:
    """etcd + kube-apiserver started from ``assets``; use as a context manager or start/stop."""

    assets: Path
    workdir: Path | None = None
    startup_timeout: float = 90.0
    server: str = ""
    token: str = ""
    etcd_url: str = ""
    startup_seconds: float = 0.0
    _procs: list[_Proc] = field(default_factory=list)
    _own_workdir: bool = False

    # paths, valid after start()
    @property
    def kubeconfig(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "pki" / "ca.crt"

    def log_file(self, name: str) -> Path:
        assert self.workdir is not None
        return self.workdir / f"{name}.log"

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------

    def start(self) -> None:
        began = time.monotonic()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="envtest-"))
            self._own_workdir = True
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        _write_pki(pki)
        self.token = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)
        try:
            self._start_etcd()
            self._start_apiserver()
        except BaseException:
            self.stop(keep_workdir=True)
            raise
        self._write_kubeconfig()
        self.startup_seconds = time.monotonic() - began

    def stop(self, keep_workdir: bool = False) -> None:
        for proc in reversed(self._procs):  # apiserver first, then etcd
            proc.stop()
        self._procs.clear()
        keep = keep_workdir or bool(os.environ.get("ENVTEST_KEEP_WORKDIR"))
        if self._own_workdir and self.workdir is not None and not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _spawn(self, name: str, argv: Sequence[str]) -> _Proc:
        log = self.log_file(name)
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group, killed as a group in stop()
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
        proc = _Proc(name, popen, log)
        self._procs.append(proc)
        return proc

    def _wait(self, proc: _Proc, probe: str, ctx: ssl.SSLContext | None, what: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error = ""
        headers = {"Authorization": f"Bearer {self.token}"} if ctx is not None else {}
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise EnvtestError(
                    f"{proc.name} exited with code {proc.popen.returncode} during start-up; "
                    f"last lines of {proc.log}:\n{tail(proc.log)}"
                )
            try:
                request = urllib.request.Request(probe, headers=headers)
                with urllib.request.urlopen(request, timeout=5, context=ctx) as response:
                    body = response.read().decode(errors="replace")
                    if response.status == 200 and (ctx is not None or '"true"' in body):
                        return
                    last_error = f"HTTP {response.status}: {body[:200]}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(0.2)
        raise EnvtestError(
            f"{what} not ready after {self.startup_timeout:.0f}s ({last_error}); "
            f"last lines of {proc.log}:\n{tail(proc.log)}"
        )

    def _start_etcd(self) -> None:
        assert self.workdir is not None
        client_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        proc = self._spawn(
            "etcd",
            [
                str(self.assets / "etcd"),
                "--name=envtest",
                f"--data-dir={self.workdir / 'etcd-data'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=envtest={peer_url}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",  # throw-away data: skip fsync, much faster on CI disks
                "--log-level=warn",
            ],
        )
        self._wait(proc, f"{self.etcd_url}/health", None, "etcd")

    def _start_apiserver(self) -> None:
        assert self.workdir is not None
        pki = self.workdir / "pki"
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        proc = self._spawn(
            "kube-apiserver",
            [
                str(self.assets / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # No controller-manager creates `default` ServiceAccounts; the admission plugin
                # would then refuse every Pod. (envtest does the same.)
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                "--profiling=false",
            ],
        )
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self._wait(proc, f"{self.server}/readyz", ctx, "kube-apiserver /readyz")

    def _write_kubeconfig(self) -> None:
        ca_data = base64.b64encode(self.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "envtest",
                    "cluster": {"server": self.server, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": ADMIN_USER, "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "envtest",
                    "context": {"cluster": "envtest", "user": ADMIN_USER, "namespace": "default"},
                }
            ],
            "current-context": "envtest",
        }
        # JSON is valid YAML; kubectl and the Python client both read it.
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)

    def token_kubeconfig(self, path: Path, token: str, user: str, namespace: str) -> Path:
        """A kubeconfig for the same server that authenticates with ``token`` (e.g. an SA's)."""
        config = json.loads(self.kubeconfig.read_text())
        config["users"] = [{"name": user, "user": {"token": token}}]
        config["contexts"][0]["context"] = {
            "cluster": "envtest",
            "user": user,
            "namespace": namespace,
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path


@contextlib.contextmanager
def running(assets: Path | None = None) -> Iterator[ControlPlane]:
    with ControlPlane(assets or find_assets()) as plane:
        yield plane


def main() -> int:  # pragma: no cover - manual helper
    try:
        assets = find_assets()
    except EnvtestError as exc:
        print(exc, file=sys.stderr)
        return 1
    with stop_signals() as stop, running(assets) as plane:
        print(f"kube-apiserver {plane.server} ready in {plane.startup_seconds:.2f}s")
        print(f"export KUBECONFIG={plane.kubeconfig}", flush=True)
        if "--once" not in sys.argv:
            stop.wait()
    return 0


@contextlib.contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An Event set by SIGINT or SIGTERM while the block runs; the previous handlers after it.

    Installed explicitly because a shell starts a background job (`cmd &`) with SIGINT
    ignored, and Python then never raises KeyboardInterrupt; SIGTERM's default would kill the
    process without stopping its children or removing its files.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
