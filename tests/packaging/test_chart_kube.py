"""The chart's rendered manifests on a real kube-apiserver (envtest): server-side dry-run,
PodSecurity admission at "restricted", and the RBAC as the API server's authorizer sees it —
up to running the operator itself as the chart's ServiceAccount."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helmkit import VALUE_SETS, as_yaml_stream, by_kind, container_env, one, render, workload
from pss_cases import CASES, Case
from pss_restricted import violations

from support.envtest import REPO_ROOT, tail
from support.kube import KubeCluster, eventually

pytestmark = pytest.mark.kube

SETS = sorted(VALUE_SETS)
RTP = "retrainingpolicies.retraining.hitl.dev"
FINALIZER = "retraining.hitl.dev/finalizer"


def _crd(group: str, kind: str, plural: str, scope: str) -> dict[str, Any]:
    """A minimal stand-in CRD (status/spec preserved as-is) for a third-party kind."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


# kopf's peering CRDs (kopf.dev/v1; the user installs kopf's peering.yaml) and a stand-in for
# prometheus-operator's ServiceMonitor, so that every rendered kind is known to the API server.
THIRD_PARTY_CRDS = [
    _crd("kopf.dev", "ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
    _crd("kopf.dev", "KopfPeering", "kopfpeerings", "Namespaced"),
    _crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors", "Namespaced"),
]


@pytest.fixture(scope="module")
def third_party_crds(kube: KubeCluster, rtp_crd: dict[str, Any]) -> None:
    for crd in THIRD_PARTY_CRDS:
        existing = kube.kubectl("get", "crd", crd["metadata"]["name"])
        if existing.returncode != 0:
            kube.apply(crd, check=True)
        kube.kubectl(
            "wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", check=True
        )
    for crd in THIRD_PARTY_CRDS:
        resource = f"{crd['spec']['names']['plural']}.{crd['spec']['group']}"
        eventually(
            lambda r=resource: kube.kubectl("get", r, "-A").returncode == 0,
            what=f"{resource} in discovery",
        )


def _release(kube_namespace: str) -> str:
    return "r" + kube_namespace[-6:]  # unique per test: cluster-scoped names never collide


def _values_for(name: str, kube: KubeCluster, kube_namespace: str) -> dict[str, Any]:
    """The value set, with watched namespaces replaced by fresh, existing ones."""
    values = json.loads(json.dumps(VALUE_SETS[name]))
    if values.get("watchNamespaces"):
        watched = [f"{kube_namespace}-w{i}" for i in range(len(values["watchNamespaces"]))]
        for namespace in watched:
            kube.create_namespace(namespace)
        values["watchNamespaces"] = watched
    return values


def _apply(kube: KubeCluster, docs: list[dict[str, Any]], *flags: str) -> Any:
    return kube.kubectl("apply", *flags, "-f", "-", input=as_yaml_stream(docs))


# ------------------------------------------------------------------------------ dry-run


@pytest.mark.parametrize("name", SETS)
def test_rendered_manifests_pass_server_side_dry_run(
    name: str, kube: KubeCluster, third_party_crds: None, kube_namespace: str
) -> None:
    values = _values_for(name, kube, kube_namespace)
    docs = render(
        values, "--include-crds", namespace=kube_namespace, release=_release(kube_namespace)
    )
    assert by_kind(docs, "CustomResourceDefinition")
    result = _apply(kube, docs, "--server-side", "--dry-run=server")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # no deprecation or PodSecurity warnings
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == len(docs), result.stdout
    assert all(line.endswith("(server dry run)") for line in lines), result.stdout
    # Nothing was created.
    deployments = kube.kubectl_json("get", "deployments", namespace=kube_namespace)
    assert deployments["items"] == []


def _subset(small: Any, big: Any) -> bool:
    """Whether `big` holds everything `small` says (the API server adds defaults)."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(
            k in big and _subset(v, big[k]) for k, v in small.items()
        )
    if isinstance(small, list):
        return isinstance(big, list) and len(small) == len(big) and all(map(_subset, small, big))
    return bool(small == big)


@pytest.mark.parametrize("name", ["default", "sharded"])
def test_probes_and_topology_spread_are_stored_as_rendered(
    name: str, kube: KubeCluster, kube_namespace: str
) -> None:
    """The startup and readiness probes and the default topologySpreadConstraints (their label
    selector filled in from the chart's selector labels) pass the API server's validation and
    are stored as rendered."""
    docs = render(VALUE_SETS[name], namespace=kube_namespace, release=_release(kube_namespace))
    rendered = workload(docs)
    result = _apply(kube, [rendered], "--server-side", "--dry-run=server", "-o", "json")
    assert result.returncode == 0, result.stderr
    stored = json.loads(result.stdout)["spec"]["template"]["spec"]
    template = rendered["spec"]["template"]
    (container,) = template["spec"]["containers"]
    (echo,) = stored["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert _subset(container[probe], echo[probe]), (probe, echo[probe])
    spread = template["spec"]["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == [
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    ]
    assert stored["topologySpreadConstraints"] == spread
    for constraint in spread:
        selector = constraint["labelSelector"]["matchLabels"]
        assert selector.items() <= template["metadata"]["labels"].items()


# ------------------------------------------------------------------------------ PodSecurity


@pytest.fixture(scope="module")
def restricted_namespace(kube: KubeCluster) -> str:
    name = f"pss-restricted-{secrets.token_hex(3)}"
    kube.create_namespace(name)
    kube.kubectl(
        "label",
        "namespace",
        name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
        "pod-security.kubernetes.io/warn=restricted",
        "pod-security.kubernetes.io/warn-version=latest",
        check=True,
    )
    return name


def _pod_from(deployment: dict[str, Any], name: str, spec: dict[str, Any] | None = None) -> Any:
    template = deployment["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            **template["metadata"],
            "name": name,
            "namespace": deployment["metadata"]["namespace"],
        },
        "spec": spec if spec is not None else template["spec"],
    }


@pytest.mark.parametrize("name", SETS)
def test_deployment_and_its_pod_are_admitted_at_restricted(
    name: str, kube: KubeCluster, restricted_namespace: str
) -> None:
    values = json.loads(json.dumps(VALUE_SETS[name]))
    if values.pop("watchNamespaces", None):  # only the pod matters here
        values.setdefault("tenancy", {})["single"] = {"trustAllNamespaces": True}
    deployment = workload(render(values, namespace=restricted_namespace))
    admitted = _apply(kube, [deployment], "--dry-run=server")
    assert admitted.returncode == 0, admitted.stderr
    # PodSecurity only warns about workloads; a clean template gets no warning at all.
    assert "PodSecurity" not in admitted.stderr, admitted.stderr
    pod = _apply(kube, [_pod_from(deployment, f"{name}-pod")], "--dry-run=server")
    assert pod.returncode == 0, pod.stderr
    assert "PodSecurity" not in pod.stderr, pod.stderr


@pytest.mark.parametrize("name", SETS)
def test_whole_chart_with_its_network_policy_is_admitted_at_restricted(
    name: str, kube: KubeCluster, restricted_namespace: str, third_party_crds: None
) -> None:
    """Everything the chart renders, NetworkPolicy included (and the PodDisruptionBudget, the
    Lease Role, the sharded StatefulSet with its headless Service), in an `enforce=restricted`
    namespace: the API server admits it all (server-side dry-run) without a warning."""
    values = json.loads(json.dumps(VALUE_SETS[name]))
    if values.pop("watchNamespaces", None):  # Roles in other namespaces are not the point
        values.setdefault("tenancy", {})["single"] = {"trustAllNamespaces": True}
    docs = render(values, namespace=restricted_namespace, release=f"r{name[:8]}")
    policies = by_kind(docs, "NetworkPolicy")
    assert len(policies) == (0 if name == "ha-peering" else 1)
    result = _apply(kube, docs, "--server-side", "--dry-run=server", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    stored = json.loads(result.stdout)
    items = stored["items"] if stored.get("kind") == "List" else [stored]
    assert len(items) == len(docs)
    # The API server keeps the policy as rendered: no field was dropped or rewritten.
    for policy in policies:
        (echo,) = [i for i in items if i["kind"] == "NetworkPolicy"]
        assert echo["spec"] == policy["spec"]


API_CASES = [c for c in CASES if c.apiserver]


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_checker_agrees_with_the_pod_security_admission(
    case: Case, kube: KubeCluster, restricted_namespace: str
) -> None:
    deployment = one(render({}, namespace=restricted_namespace), "Deployment")
    spec = case.apply(deployment["spec"]["template"]["spec"])
    ours = violations(spec)
    result = _apply(kube, [_pod_from(deployment, f"case-{case.id}", spec)], "--dry-run=server")
    if case.control is None:
        assert ours == []
        assert result.returncode == 0, result.stderr
    else:
        assert ours, case.id
        assert result.returncode != 0, f"the API server admitted {case.id}"
        assert "violates PodSecurity" in result.stderr, result.stderr
        # As a workload template it is admitted with a warning (that is how PodSecurity works).
        bad = json.loads(json.dumps(deployment))
        bad["spec"]["template"]["spec"] = spec
        bad["metadata"]["name"] = f"case-{case.id}"
        warned = _apply(kube, [bad], "--dry-run=server")
        assert warned.returncode == 0, warned.stderr
        assert "would violate PodSecurity" in warned.stderr, warned.stderr


# ------------------------------------------------------------------------------ RBAC


@contextlib.contextmanager
def installed_rbac(kube: KubeCluster, docs: list[dict[str, Any]]) -> Iterator[None]:
    """The chart's ServiceAccount, (Cluster)Roles and bindings, applied for real."""
    kinds = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    kinds |= {"KopfPeering", "ClusterKopfPeering"}
    objects = [d for d in docs if d["kind"] in kinds]
    applied = _apply(kube, objects, "--server-side")
    assert applied.returncode == 0, applied.stderr
    try:
        yield
    finally:
        cluster_kinds = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
        cluster = [d for d in objects if d["kind"] in cluster_kinds]
        if cluster:
            kube.kubectl("delete", "--ignore-not-found", "-f", "-", input=as_yaml_stream(cluster))


def _can_i_list(kube: KubeCluster, user: str, namespace: str) -> set[tuple[str, str, str]]:
    """`kubectl auth can-i --list` as (resource, resourceNames, verb) triples."""
    out = kube.kubectl("auth", "can-i", "--list", as_user=user, namespace=namespace, check=True)
    rows: set[tuple[str, str, str]] = set()
    for line in out.stdout.splitlines()[1:]:
        match = re.match(r"^(\S*)\s+\[(.*?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s*$", line)
        assert match, f"unparsed can-i line: {line!r}"
        resource, urls, names, verbs = match.groups()
        if urls:
            continue  # discovery URLs every identity may read
        for verb in verbs.split():
            rows.add((resource, names, verb))
    return rows


def _sa(namespace: str, docs: list[dict[str, Any]]) -> str:
    return f"system:serviceaccount:{namespace}:{one(docs, 'ServiceAccount')['metadata']['name']}"


# Scoped mode (the chart's default, issue 28): tenants read, namespace labels for selectors.
TENANT_GRANTS = {
    ("retrainingtenants.retraining.hitl.dev", "", "get"),
    ("retrainingtenants.retraining.hitl.dev", "", "list"),
    ("retrainingtenants.retraining.hitl.dev", "", "watch"),
    ("namespaces", "", "get"),
}
OPERATOR_GRANTS = {
    (RTP, "", "get"),
    (RTP, "", "list"),
    (RTP, "", "watch"),
    (RTP, "", "patch"),
    (f"{RTP}/status", "", "get"),
    (f"{RTP}/status", "", "patch"),
    ("events", "", "create"),
}
FORBIDDEN_ASKS = [
    ("delete", RTP),
    ("create", RTP),
    ("update", RTP),
    ("deletecollection", RTP),
    ("update", f"{RTP}/status"),
    ("get", "secrets"),
    ("list", "secrets"),
    ("list", "namespaces"),
    ("get", "customresourcedefinitions.apiextensions.k8s.io"),
    ("list", "pods"),
    ("delete", "events"),
    ("patch", "events"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("impersonate", "serviceaccounts"),
]


def test_cluster_wide_rbac_grants_exactly_what_the_operator_uses(
    kube: KubeCluster, rtp_crd: dict[str, Any], third_party_crds: None, kube_namespace: str
) -> None:
    values = VALUE_SETS["ha-peering"]
    docs = render(values, namespace=kube_namespace, release=_release(kube_namespace))
    user = _sa(kube_namespace, docs)
    other = f"{kube_namespace}-other"
    kube.create_namespace(other)
    baseline = _can_i_list(kube, f"system:serviceaccount:{kube_namespace}:nobody", other)
    with installed_rbac(kube, docs):
        granted = _can_i_list(kube, user, other) - baseline
        peering = values["peering"]["name"]
        assert granted == OPERATOR_GRANTS | TENANT_GRANTS | {
            ("clusterkopfpeerings.kopf.dev", "", "list"),
            ("clusterkopfpeerings.kopf.dev", "", "watch"),
            ("clusterkopfpeerings.kopf.dev", peering, "get"),
            ("clusterkopfpeerings.kopf.dev", peering, "patch"),
        }
        for verb, resource in [("list", RTP), ("patch", f"{RTP}/status"), ("create", "events")]:
            assert kube.can_i(verb, resource, as_user=user, namespace=other)
        # Cluster-wide list/watch, which is what kopf does without --namespace.
        out = kube.kubectl("auth", "can-i", "watch", RTP, "--all-namespaces", as_user=user)
        assert out.stdout.strip() == "yes", out.stdout + out.stderr
        for verb, resource in FORBIDDEN_ASKS:
            result = kube.kubectl("auth", "can-i", verb, resource, as_user=user, namespace=other)
            assert result.stdout.strip() == "no", (verb, resource, result.stdout)
        patch_other = kube.kubectl(
            "auth", "can-i", "patch", "clusterkopfpeerings.kopf.dev/someone-else", as_user=user
        )
        assert patch_other.stdout.strip() == "no"
        # The leader Lease: only in the release namespace, only its own by name.
        own = _can_i_list(kube, user, kube_namespace) - baseline - granted
        assert own == _lease_grants(one(docs, "Deployment"))
        _assert_lease_access(kube, user, kube_namespace, [_lease_name(one(docs, "Deployment"))])
        assert not kube.can_i("create", LEASES, as_user=user, namespace=other)


LEASES = "leases.coordination.k8s.io"


def _lease_name(deployment: dict[str, Any]) -> str:
    name: str = container_env(deployment)["RTP_LEASE_NAME"]
    return name


def _lease_grants(deployment: dict[str, Any], *names: str) -> set[tuple[str, str, str]]:
    """The leader Lease(s), and the ledger key Secret (issue 27: read by name, created once),
    both in the release namespace only."""
    names = names or (_lease_name(deployment),)
    secret = container_env(deployment)["RTP_LEDGER_KEY_SECRET"]
    return {(LEASES, "", "create"), ("secrets", secret, "get"), ("secrets", "", "create")} | {
        (LEASES, name, verb) for name in names for verb in ("get", "update")
    }


def _assert_lease_access(kube: KubeCluster, user: str, namespace: str, names: list[str]) -> None:
    def ask(*args: str) -> str:
        out = kube.kubectl("auth", "can-i", *args, as_user=user, namespace=namespace)
        return str(out.stdout.strip())

    for name in names:
        assert ask("get", f"{LEASES}/{name}") == "yes"
        assert ask("update", f"{LEASES}/{name}") == "yes"
        assert ask("delete", f"{LEASES}/{name}") == "no"
        assert ask("patch", f"{LEASES}/{name}") == "no"
    assert ask("create", LEASES) == "yes"
    for verb in ("list", "watch", "deletecollection"):
        assert ask(verb, LEASES) == "no", verb
    # Another component's Lease (say a controller-manager's) stays out of reach.
    assert ask("update", f"{LEASES}/kube-controller-manager") == "no"
    assert ask("get", f"{LEASES}/someone-else") == "no"


def test_sharded_rbac_names_one_lease_per_shard(
    kube: KubeCluster, rtp_crd: dict[str, Any], third_party_crds: None, kube_namespace: str
) -> None:
    docs = render(VALUE_SETS["sharded"], namespace=kube_namespace, release=_release(kube_namespace))
    user = _sa(kube_namespace, docs)
    sts = one(docs, "StatefulSet")
    lease = _lease_name(sts)
    shards = [f"{lease}-{n}" for n in range(3)]
    baseline = _can_i_list(kube, f"system:serviceaccount:{kube_namespace}:nobody", kube_namespace)
    with installed_rbac(kube, docs):
        granted = (
            _can_i_list(kube, user, kube_namespace) - baseline - OPERATOR_GRANTS - TENANT_GRANTS
        )
        assert granted == _lease_grants(sts, *shards)
        _assert_lease_access(kube, user, kube_namespace, shards)
        assert kube.can_i("list", RTP, as_user=user, namespace=kube_namespace)
        out = kube.kubectl(
            "auth", "can-i", "get", f"{LEASES}/{lease}-3", as_user=user, namespace=kube_namespace
        )
        assert out.stdout.strip() == "no"


def test_namespaced_rbac_stays_in_the_watched_namespaces(
    kube: KubeCluster, rtp_crd: dict[str, Any], third_party_crds: None, kube_namespace: str
) -> None:
    values = _values_for("namespaced", kube, kube_namespace)
    docs = render(values, namespace=kube_namespace, release=_release(kube_namespace))
    user = _sa(kube_namespace, docs)
    peering = "a2i-retraining-operator"  # the chart's default peering name
    assert "name" not in values["peering"]
    with installed_rbac(kube, docs):
        baseline = _can_i_list(kube, f"system:serviceaccount:{kube_namespace}:nobody", "default")
        for watched in values["watchNamespaces"]:
            granted = _can_i_list(kube, user, watched) - baseline
            assert granted == OPERATOR_GRANTS | {
                ("kopfpeerings.kopf.dev", "", "list"),
                ("kopfpeerings.kopf.dev", "", "watch"),
                ("kopfpeerings.kopf.dev", peering, "get"),
                ("kopfpeerings.kopf.dev", peering, "patch"),
            }
        # Not in its own namespace (but for its leader Lease), not elsewhere, not cluster-wide.
        own = _can_i_list(kube, user, kube_namespace) - baseline
        assert own == _lease_grants(one(docs, "Deployment"))
        assert _can_i_list(kube, user, "default") - baseline == set()
        for namespace in (kube_namespace, "default"):
            assert not kube.can_i("list", RTP, as_user=user, namespace=namespace)
        out = kube.kubectl("auth", "can-i", "list", RTP, "--all-namespaces", as_user=user)
        assert out.stdout.strip() == "no"
        for verb, resource in FORBIDDEN_ASKS:
            watched = values["watchNamespaces"][0]
            result = kube.kubectl("auth", "can-i", verb, resource, as_user=user, namespace=watched)
            assert result.stdout.strip() == "no", (verb, resource, result.stdout)


# ------------------------------------------------------------------------------ the operator


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _policy(namespace: str) -> dict[str, Any]:
    for path in sorted((REPO_ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "RetrainingPolicy":
                doc["metadata"] = {"name": "chart-rbac-check", "namespace": namespace}
                return dict(doc)
    pytest.fail("no RetrainingPolicy in examples/*.yaml")


# kopf falls back gracefully when it may not list/watch namespaces and CRDs; the chart grants
# neither on purpose (docs/packaging.md). Forbidden requests for those two are expected (kopf
# retries them with backoff, then logs a warning); any other permission problem fails the test.
EXPECTED_FORBIDDEN = re.compile(
    r"GET \S+/api/v1/namespaces(\?\S*)? |"
    r"GET \S+/apis/apiextensions\.k8s\.io/v1/customresourcedefinitions(\?\S*)? |"
    r"Not enough permissions to (list namespaces|watch for namespaces|watch for resources)"
)
# In namespaced mode kopf first retries the forbidden namespace listing (about 55 s of backoff)
# before it falls back to the exact names; only then does it start serving.
SERVE_TIMEOUT = 150
LEASE = "rtp-e2e-leader"


def test_operator_runs_with_the_chart_rbac_and_settings(
    kube: KubeCluster,
    rtp_crd: dict[str, Any],
    third_party_crds: None,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    """`retraining-operator run` with the chart's container environment (namespaced, peering
    on, leader election on), authenticated with a real token of the chart's ServiceAccount: it
    takes the leader Lease, serves the liveness endpoint, joins the peering, finalizes a policy
    and releases it again."""
    values = {
        "watchNamespaces": [kube_namespace],
        "peering": {"enabled": True, "name": "rtp-e2e"},
        "leaderElection": {"enabled": True, "leaseName": LEASE},
        "operator": {"logFormat": "text"},
    }
    docs = render(values, namespace=kube_namespace, release=_release(kube_namespace))
    deployment = one(docs, "Deployment")
    env = {k: v for k, v in container_env(deployment).items() if isinstance(v, str)}
    liveness, metrics = _free_port(), _free_port()
    assert env["RTP_LIVENESS"] == "http://0.0.0.0:8080/healthz"
    env |= {
        "POD_ID": "rtp-e2e-pod-0",  # what the downward API would give
        "POD_NAMESPACE": kube_namespace,
        "RTP_LIVENESS": f"http://127.0.0.1:{liveness}/healthz",
        "RTP_METRICS_PORT": str(metrics),
    }
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    # The kubelet's three probes ask the endpoint this process serves, leader or standby.
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz", probe
    argv = [str(Path(sys.executable).with_name("retraining-operator")), "run"]
    argv += container.get("args", [])
    log = tmp_path / "operator.log"
    with installed_rbac(kube, docs):
        kubeconfig = kube.service_account_kubeconfig(
            kube_namespace, one(docs, "ServiceAccount")["metadata"]["name"], create=False
        )
        policy = _policy(kube_namespace)
        assert kube.apply(policy).returncode == 0
        name = policy["metadata"]["name"]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                env={**os.environ, **env, "KUBECONFIG": str(kubeconfig)},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _exercise(kube, kube_namespace, name, liveness, proc)
        except BaseException:
            print(f"--- operator log ({log}) ---\n{tail(log, 80)}")
            raise
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
    text = log.read_text(errors="replace")
    problems = [
        line
        for line in text.splitlines()
        # HTTP status codes as words, not digits inside a timestamp like "00:11:31,403".
        if re.search(r"forbidden|unauthorized|(?<![,.\d])\b40[13]\b", line, re.IGNORECASE)
        and not EXPECTED_FORBIDDEN.search(line)
    ]
    assert not problems, "\n".join(problems)


def _exercise(
    kube: KubeCluster, namespace: str, name: str, liveness: int, proc: subprocess.Popen[bytes]
) -> None:
    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{liveness}/healthz", timeout=2) as rsp:
                return bool(rsp.status == 200)
        except OSError:
            return False

    eventually(healthy, timeout=60, what="kopf's liveness endpoint")

    def leading() -> bool:
        out = kube.kubectl(
            "get", "lease", LEASE, "-o", "jsonpath={.spec.holderIdentity}", namespace=namespace
        )
        return bool(out.stdout.strip() == "rtp-e2e-pod-0")

    eventually(leading, timeout=60, what="the operator holding the leader Lease")

    def peered() -> Any:
        obj = kube.kubectl_json("get", "kopfpeerings.kopf.dev", "rtp-e2e", namespace=namespace)
        return (obj.get("status") or {}).get("rtp-e2e-pod-0")

    eventually(peered, timeout=SERVE_TIMEOUT, what="the operator's keep-alive in its KopfPeering")

    def finalized() -> bool:
        obj = kube.kubectl_json("get", "rtp", name, namespace=namespace)
        return FINALIZER in obj["metadata"].get("finalizers", [])

    eventually(finalized, timeout=SERVE_TIMEOUT, what="the operator's finalizer")

    kube.kubectl("delete", "rtp", name, "--wait=false", namespace=namespace, check=True)

    def gone() -> bool:
        return kube.kubectl("get", "rtp", name, namespace=namespace).returncode != 0

    eventually(gone, timeout=60, what="the policy to be released and deleted")
    assert proc.poll() is None, "the operator exited"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "ERROR kopf: Request attempt #2/9 failed; will retry: GET https://127.0.0.1:1/api/v1/"
            "namespaces -> APIForbiddenError('namespaces is forbidden: ...', status=403)",
            True,
        ),
        (
            "ERROR kopf: GET https://127.0.0.1:1/api/v1/namespaces?watch=true&x=1 -> 403",
            True,
        ),
        ("WARNING kopf: Not enough permissions to watch for resources: ...", True),
        (
            "WARNING kopf: Failed to post an event. Code: 403. Message: events is forbidden",
            False,
        ),
        (
            "ERROR kopf: GET https://127.0.0.1:1/api/v1/namespaces/ns/secrets -> 403 forbidden",
            False,
        ),
    ],
)
def test_only_the_documented_fallbacks_are_tolerated(line: str, expected: bool) -> None:
    assert bool(EXPECTED_FORBIDDEN.search(line)) is expected
