"""The Helm chart, rendered with the real `helm`: lint, schema, RBAC, pod security, wiring."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from helmkit import (
    CHART_DIR,
    DIGEST,
    FULLNAME,
    IRSA_ROLE,
    NAMESPACE,
    REPO_ROOT,
    VALUE_SETS,
    by_kind,
    container_env,
    helm,
    lint,
    one,
    render,
    template_text,
    workload,
)
from pss_restricted import violations

from support import tools

SETS = sorted(VALUE_SETS)
RTP_GROUP = "retraining.hitl.dev"
SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
PYPROJECT_VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module", params=SETS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(VALUE_SETS[request.param])


def _pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = workload(docs)["spec"]["template"]["spec"]
    return spec


# ------------------------------------------------------------------------------ lint, render


def test_helm_binary_is_helm() -> None:
    out = subprocess.run(
        [tools.helm_path(), "version", "--short"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("v"), out.stdout


@pytest.mark.parametrize("name", SETS)
def test_helm_lint_strict_passes(name: str) -> None:
    result = lint(VALUE_SETS[name])
    assert "0 chart(s) failed" in result.stdout
    assert "[ERROR]" not in result.stdout, result.stdout
    assert "[WARNING]" not in result.stdout, result.stdout


# Scoped mode is the default (issue 28): the tenants' ClusterRole and the admission policy.
EXPECTED_KINDS = {
    "default": [
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ],
    "ha-peering": [
        "ClusterKopfPeering",
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ],
    "namespaced": [
        "Deployment",
        "KopfPeering",
        "KopfPeering",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Role",
        "Role",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "RoleBinding",
        "RoleBinding",
        "ServiceAccount",
    ],
    "irsa-monitoring": [
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "Deployment",
        "NetworkPolicy",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ],
    "sharded": [
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "Service",
        "Service",
        "ServiceAccount",
        "StatefulSet",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ],
}


def test_template_renders_the_expected_objects(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    assert sorted(doc["kind"] for doc in docs) == EXPECTED_KINDS[name]
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "rtp"
        assert labels["app.kubernetes.io/version"] == PYPROJECT_VERSION
        cluster_scoped = doc["kind"] in {
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterKopfPeering",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        }
        assert ("namespace" in doc["metadata"]) is not cluster_scoped, doc["metadata"]


# Every Kubernetes API the chart renders and the release that serves it by default (GA).
# Third-party kinds (kopf.dev, monitoring.coreos.com) come with their own CRDs.
SERVED_SINCE: dict[str, tuple[int, int]] = {
    "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy": (1, 30),
    "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding": (1, 30),
    "policy/v1/PodDisruptionBudget": (1, 21),
    "networking.k8s.io/v1/NetworkPolicy": (1, 7),
    "apps/v1/Deployment": (1, 9),
    "apps/v1/StatefulSet": (1, 9),
    "rbac.authorization.k8s.io/v1/ClusterRole": (1, 8),
    "rbac.authorization.k8s.io/v1/ClusterRoleBinding": (1, 8),
    "rbac.authorization.k8s.io/v1/Role": (1, 8),
    "rbac.authorization.k8s.io/v1/RoleBinding": (1, 8),
    "v1/ConfigMap": (1, 0),
    "v1/Service": (1, 0),
    "v1/ServiceAccount": (1, 0),
}


def _kube_minimum() -> tuple[int, int]:
    constraint = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["kubeVersion"]
    major, minor = constraint.removeprefix(">=").split("-")[0].split(".")[:2]
    return int(major), int(minor)


def test_kube_version_admits_only_clusters_that_serve_every_rendered_api() -> None:
    """Scoped mode renders a v1 ValidatingAdmissionPolicy (Kubernetes 1.30); Chart.yaml says
    >=1.30 (v1beta1 on 1.29 is off by default, so the chart does not fall back to it)."""
    extra = {
        "metrics": {"grafanaDashboard": {"enabled": True}, "serviceMonitor": {"enabled": True}},
    }
    rendered: set[str] = set()
    for values in [*VALUE_SETS.values(), extra]:
        for doc in render(values):
            api = f"{doc['apiVersion']}/{doc['kind']}"
            group = doc["apiVersion"].rpartition("/")[0]
            if "." in group and not group.endswith(".k8s.io"):
                continue
            assert api in SERVED_SINCE, f"add {api} to SERVED_SINCE"
            rendered.add(api)
    assert "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy" in rendered
    assert _kube_minimum() == max(SERVED_SINCE[api] for api in rendered) == (1, 30)
    refused = template_text({}, "--kube-version", "1.29.9", check=False)
    assert refused.returncode != 0
    assert "chart requires kubeVersion: >=1.30.0-0" in refused.stderr, refused.stderr
    for version in ("1.30.0", "v1.30.2-eks-1234"):
        policy = one(render({}, "--kube-version", version), "ValidatingAdmissionPolicy")
        assert policy["apiVersion"] == "admissionregistration.k8s.io/v1"


def test_chart_metadata_matches_the_package() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == PYPROJECT_VERSION == "0.1.0"
    assert chart["type"] == "application"


# ------------------------------------------------------------------------------ the CRD


CRD_FILES = ["retrainingpolicies.yaml", "retrainingtenants.yaml"]


def test_chart_crd_is_a_byte_for_byte_copy_of_the_source() -> None:
    sources = []
    for name in CRD_FILES:
        source = (REPO_ROOT / "crds" / name).read_bytes()
        copy = (CHART_DIR / "crds" / name).read_bytes()
        assert copy == source, f"run: cp crds/{name} charts/*/crds/"
        sources.append(yaml.safe_load(source))
    # The chart ships no other CRD, and Helm installs exactly these from crds/.
    assert sorted(p.name for p in (CHART_DIR / "crds").iterdir()) == CRD_FILES
    shown = [d for d in yaml.safe_load_all(helm("show", "crds", str(CHART_DIR)).stdout) if d]
    assert sorted(shown, key=lambda d: d["metadata"]["name"]) == sources


def test_crd_is_not_a_template() -> None:
    # In templates/ Helm would delete it (and every policy) on uninstall; crds/ keeps it.
    docs = render({})
    assert not by_kind(docs, "CustomResourceDefinition")
    with_crds = [d for d in yaml.safe_load_all(template_text({}, "--include-crds").stdout) if d]
    assert len(by_kind(with_crds, "CustomResourceDefinition")) == len(CRD_FILES)


# ------------------------------------------------------------------------------ the schema


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("typo=1", "additional properties 'typo' not allowed"),
        ("image.tagg=v1", "additional properties 'tagg' not allowed"),
        ("operator.tickSecond=5", "additional properties 'tickSecond' not allowed"),
        ("metrics.serviceMonitor.enable=true", "additional properties 'enable' not allowed"),
        ("securityContext.privilegd=true", "additional properties 'privilegd' not allowed"),
        ("podSecurityContext.seccompProfile.typ=x", "additional properties 'typ' not allowed"),
        ("shards=0", "/shards"),
        ("leaderElection.leaseName=Bad_Name", "/leaderElection/leaseName"),
        ("podDisruptionBudget.minAvailable=1", "additional properties 'minAvailable' not allowed"),
        ("watchNamespaces={team-*}", "/watchNamespaces/0"),
        ("image.digest=abc123", "/image/digest"),
        ("operator.logFormat=xml", "/operator/logFormat"),
        ("operator.maxWorkers=0", "/operator/maxWorkers"),
        ("readinessProbe.path=/ready", "additional properties 'path' not allowed"),
        ("startupProbe.failureThreshold=0", "/startupProbe/failureThreshold"),
        ("topologySpreadConstraints[0].whenUnsatisfiable=Maybe", "/topologySpreadConstraints/0"),
        ("topologySpreadConstraints[0].maxSkw=1", "additional properties 'maxSkw' not allowed"),
    ],
)
def test_schema_rejects_typos_and_bad_values(setting: str, complaint: str) -> None:
    result = template_text({}, "--set", setting, check=False)
    assert result.returncode != 0, result.stdout[:500]
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr, result.stderr


def _walk(node: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            found.append((path, node))
        for key, value in node.items():
            found += _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _walk(value, f"{path}/{index}")
    return found


# Objects whose keys are free by nature: maps of strings, and Kubernetes pass-through objects
# the API server validates (plus `global`, which Helm passes to every subchart).
OPEN_OBJECTS = {
    "/properties/global",
    "/definitions/stringMap",
    "/properties/affinity/properties/nodeAffinity",
    "/properties/affinity/properties/podAffinity",
    "/properties/affinity/properties/podAntiAffinity",
    "/properties/topologySpreadConstraints/items/properties/labelSelector",
}


def test_schema_is_closed_at_every_object_level() -> None:
    objects = _walk(SCHEMA, "")
    assert len(objects) > 25
    for path, node in objects:
        if path in OPEN_OBJECTS:
            assert "properties" not in node, path
            continue
        assert node.get("additionalProperties") is False, f"{path} is open"
    stringmap = SCHEMA["definitions"]["stringMap"]
    assert stringmap["additionalProperties"] == {"type": "string"}


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = _merged(base[key], value)
        else:
            out[key] = value
    return out


def test_values_yaml_validates_and_every_default_is_declared() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    jsonschema.Draft7Validator(SCHEMA).validate(values)
    for overrides in VALUE_SETS.values():
        jsonschema.Draft7Validator(SCHEMA).validate(_merged(values, overrides))
    declared = set(SCHEMA["properties"])
    assert set(values) == declared - {"global"}


# ------------------------------------------------------------------------------ RBAC


def _rule(groups: list[str], resources: list[str], verbs: list[str], names: Any = ()) -> Any:
    return (tuple(groups), tuple(resources), tuple(sorted(verbs)), tuple(names))


def _normalized(rules: list[dict[str, Any]]) -> set[Any]:
    return {
        _rule(r["apiGroups"], r["resources"], r["verbs"], r.get("resourceNames", ())) for r in rules
    }


OPERATOR_RULES = {
    _rule([RTP_GROUP], ["retrainingpolicies"], ["get", "list", "watch", "patch"]),
    _rule([RTP_GROUP], ["retrainingpolicies/status"], ["get", "patch"]),
    _rule([""], ["events"], ["create"]),
}


def _peering_rules(resource: str, name: str) -> set[Any]:
    return {
        _rule(["kopf.dev"], [resource], ["list", "watch"]),
        _rule(["kopf.dev"], [resource], ["get", "patch"], [name]),
    }


# Scoped mode (the default, issue 28): tenants read, namespace labels for selectors.
TENANT_RULES = {
    _rule([RTP_GROUP], ["retrainingtenants"], ["get", "list", "watch"]),
    _rule([""], ["namespaces"], ["get"]),
}
# The ledger key Secret (issue 27): read by name, created on the first start.
LEDGER_KEY_RULES = {
    _rule([""], ["secrets"], ["get"], [f"{FULLNAME}-ledger-key"]),
    _rule([""], ["secrets"], ["create"]),
}


def _lease_rules(*names: str) -> set[Any]:
    """`create` cannot be narrowed by name; get/update only on the operator's own Lease(s)."""
    return {
        _rule(["coordination.k8s.io"], ["leases"], ["create"]),
        _rule(["coordination.k8s.io"], ["leases"], ["get", "update"], names),
    }


EXPECTED_RULES: dict[str, dict[tuple[str, str | None], set[Any]]] = {
    "default": {
        ("ClusterRole", None): OPERATOR_RULES | TENANT_RULES,
        ("Role", NAMESPACE): _lease_rules(FULLNAME) | LEDGER_KEY_RULES,
    },
    "irsa-monitoring": {
        ("ClusterRole", None): OPERATOR_RULES | TENANT_RULES,
        ("Role", NAMESPACE): LEDGER_KEY_RULES,
    },
    "ha-peering": {
        ("ClusterRole", None): OPERATOR_RULES
        | TENANT_RULES
        | _peering_rules("clusterkopfpeerings", "rtp-peering"),
        ("Role", NAMESPACE): _lease_rules(FULLNAME) | LEDGER_KEY_RULES,
    },
    "namespaced": {
        **{
            ("Role", ns): OPERATOR_RULES | _peering_rules("kopfpeerings", "a2i-retraining-operator")
            for ns in ("vision", "audio")
        },
        ("Role", NAMESPACE): _lease_rules("rtp-leader") | LEDGER_KEY_RULES,
    },
    "sharded": {
        ("ClusterRole", None): OPERATOR_RULES | TENANT_RULES,
        ("Role", NAMESPACE): _lease_rules(*(f"{FULLNAME}-{n}" for n in range(3)))
        | LEDGER_KEY_RULES,
    },
}


def test_rbac_grants_exactly_the_expected_rules(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, docs = rendered
    roles: dict[tuple[str, str | None], set[Any]] = {}
    for doc in docs:
        if doc["kind"] in ("Role", "ClusterRole"):
            key = (doc["kind"], doc["metadata"].get("namespace"))
            roles[key] = roles.get(key, set()) | _normalized(doc["rules"])
    assert roles == EXPECTED_RULES[name]
    # Never namespaces, CRDs, pods or anything else: kopf finds the CRD by API discovery and
    # does not read namespaces when cluster-wide (and the chart takes exact names otherwise).
    # Secrets: only the ledger key, by name, in the release namespace (and creating it).
    for (_, namespace), rules in roles.items():
        resources = {res for _, resources, _, _ in rules for res in resources}
        assert not resources & {"customresourcedefinitions", "pods"}
        assert "namespaces" not in resources or rules >= TENANT_RULES  # get, for selectors
        secrets = {rule for rule in rules if "secrets" in rule[1]}
        assert secrets <= LEDGER_KEY_RULES
        assert not secrets or namespace == NAMESPACE


def test_rbac_has_no_wildcards_anywhere(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    rbac = [d for d in docs if d["kind"] in ("Role", "ClusterRole")]
    assert rbac
    for role in rbac:
        assert "aggregationRule" not in role
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                for value in rule.get(field, []):
                    assert "*" not in value, (role["metadata"]["name"], rule)


def test_bindings_bind_the_chart_service_account(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    account = one(docs, "ServiceAccount")["metadata"]
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs}
    bindings = by_kind(docs, "RoleBinding") + by_kind(docs, "ClusterRoleBinding")
    assert bindings
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": NAMESPACE}
        ]
        ref = binding["roleRef"]
        role_ns = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        assert (ref["kind"], role_ns, ref["name"]) in roles
    assert workload(docs)["spec"]["template"]["spec"]["serviceAccountName"] == account["name"]


def test_rbac_can_be_left_to_the_cluster_admin() -> None:
    docs = render({"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "ops"}})
    assert sorted(d["kind"] for d in docs) == [
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops"
    missing = template_text({"serviceAccount": {"create": False}}, check=False)
    assert missing.returncode != 0
    assert "serviceAccount.name is required" in missing.stderr


# ------------------------------------------------------------------------------ pod security


def test_pod_meets_pod_security_restricted(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    template = workload(docs)["spec"]["template"]
    assert violations(template["spec"], template["metadata"].get("annotations")) == []


def test_pod_hardening_beyond_the_profile(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    spec = _pod_spec(docs)
    (container,) = spec["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsUser"] == spec["securityContext"]["runAsUser"] == 65532
    assert sc["runAsGroup"] == spec["securityContext"]["runAsGroup"] == 65532
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in spec["volumes"]
    assert spec["enableServiceLinks"] is False
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}


# ------------------------------------------------------------------------------ deployment


def test_standalone_uses_recreate_and_leader_election_or_peering_a_rolling_update() -> None:
    standalone = one(render(VALUE_SETS["irsa-monitoring"]), "Deployment")["spec"]
    assert standalone["replicas"] == 1
    assert standalone["strategy"] == {"type": "Recreate"}
    rolling = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    for values in (
        {},
        VALUE_SETS["namespaced"],
        {"leaderElection": {"enabled": False}, "replicaCount": 1, "peering": {"enabled": True}},
    ):
        assert one(render(values), "Deployment")["spec"]["strategy"] == rolling
    assert one(render({}), "Deployment")["spec"]["replicas"] == 2
    assert one(render(VALUE_SETS["namespaced"]), "Deployment")["spec"]["replicas"] == 3
    assert one(render({"replicaCount": 0}), "Deployment")["spec"]["replicas"] == 0


@pytest.mark.parametrize(
    "values",
    [
        {"leaderElection": {"enabled": False}, "replicaCount": 2},
        {"leaderElection": {"enabled": False}, "replicaCount": 2, "peering": {"enabled": True}},
    ],
)
def test_more_than_one_replica_needs_leader_election(values: dict[str, Any]) -> None:
    """The template refuses it and says why and what to do (kopf peers of equal priority all
    pause, standalone ones all reconcile). Not the schema: Helm would print only "maximum: got
    2, want 1"."""
    for extra in ((), ("--skip-schema-validation",)):
        refused = template_text(values, *extra, check=False)
        assert refused.returncode != 0
        assert "schema" not in refused.stderr, refused.stderr
        assert "replicaCount 2 > 1 needs leaderElection.enabled" in refused.stderr
        assert "Set leaderElection.enabled=true" in refused.stderr
        assert "or replicaCount=1" in refused.stderr
    assert not {"if", "then"} & set(SCHEMA)
    assert one(render({**values, "replicaCount": 1}), "Deployment")["spec"]["replicas"] == 1
    sharded = render({**values, "replicaCount": 1, "shards": 2})
    assert one(sharded, "StatefulSet")["spec"]["replicas"] == 2


def test_leader_election_environment_and_lease_name() -> None:
    env = container_env(one(render({}), "Deployment"))
    assert env["RTP_LEADER_ELECTION"] == "true"
    assert env["RTP_LEASE_NAME"] == FULLNAME
    # The Lease lives in the pod's namespace, which the downward API tells it.
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert "RTP_SHARDS" not in env
    named = container_env(one(render(VALUE_SETS["namespaced"]), "Deployment"))
    assert named["RTP_LEASE_NAME"] == "rtp-leader"
    off = container_env(one(render(VALUE_SETS["irsa-monitoring"]), "Deployment"))
    assert not {"RTP_LEADER_ELECTION", "RTP_LEASE_NAME", "POD_NAMESPACE"} & set(off)


def test_pod_disruption_budget_only_when_more_than_one_pod_runs() -> None:
    pdb = one(render({}), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    pod_labels = one(render({}), "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert not by_kind(render(VALUE_SETS["irsa-monitoring"]), "PodDisruptionBudget")
    assert not by_kind(render({"replicaCount": 0}), "PodDisruptionBudget")
    assert not by_kind(render({"podDisruptionBudget": {"enabled": False}}), "PodDisruptionBudget")
    assert by_kind(render(VALUE_SETS["sharded"]), "PodDisruptionBudget")


def test_default_anti_affinity_spreads_pods_over_nodes() -> None:
    for values in ({}, VALUE_SETS["sharded"]):
        spec = _pod_spec(render(values))
        (term,) = spec["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        selector = term["podAffinityTerm"]["labelSelector"]["matchLabels"]
        assert selector == {
            "app.kubernetes.io/name": "a2i-retraining-operator",
            "app.kubernetes.io/instance": "rtp",
        }
    # A given affinity replaces it entirely.
    given = VALUE_SETS["irsa-monitoring"]["affinity"]
    assert _pod_spec(render(VALUE_SETS["irsa-monitoring"]))["affinity"] == given


SELECTOR = {
    "app.kubernetes.io/name": "a2i-retraining-operator",
    "app.kubernetes.io/instance": "rtp",
}


def test_topology_spread_over_zones_and_nodes_by_default() -> None:
    for values in ({}, VALUE_SETS["sharded"], VALUE_SETS["irsa-monitoring"]):
        template = workload(render(values))["spec"]["template"]
        spread = template["spec"]["topologySpreadConstraints"]
        assert spread == [
            {
                "maxSkew": 1,
                "topologyKey": key,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": SELECTOR},
            }
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ]
        # The selector counts exactly this release's operator pods.
        assert SELECTOR.items() <= template["metadata"]["labels"].items()
    assert "topologySpreadConstraints" not in _pod_spec(render({"topologySpreadConstraints": []}))


def test_topology_spread_given_is_used_as_given() -> None:
    own = {"matchLabels": {"team": "ml"}}
    zone = {"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
    node = {"maxSkew": 1, "topologyKey": "node", "whenUnsatisfiable": "ScheduleAnyway"}
    given = [
        {**zone, "minDomains": 2},
        {**node, "labelSelector": own, "matchLabelKeys": ["pod-template-hash"]},
    ]
    spread = _pod_spec(render({"topologySpreadConstraints": given}))["topologySpreadConstraints"]
    assert spread == [{**given[0], "labelSelector": {"matchLabels": SELECTOR}}, given[1]]


def test_shards_render_a_stateful_set_whose_ordinal_is_the_shard() -> None:
    docs = render(VALUE_SETS["sharded"])
    assert not by_kind(docs, "Deployment")
    sts = one(docs, "StatefulSet")
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    env = container_env(sts)
    assert env["RTP_SHARDS"] == "3"
    # The shard is the ordinal the operator reads from the end of POD_ID (the pod name).
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "RTP_SHARD" not in env
    assert env["RTP_LEASE_NAME"] == FULLNAME  # the operator appends -<shard>
    (headless,) = [s for s in by_kind(docs, "Service") if s["spec"].get("clusterIP") == "None"]
    assert sts["spec"]["serviceName"] == headless["metadata"]["name"]
    assert (
        headless["spec"]["selector"].items()
        <= sts["spec"]["template"]["metadata"]["labels"].items()
    )
    # replicaCount does not multiply shards; 0 still stops the operator.
    assert (
        one(render({**VALUE_SETS["sharded"], "replicaCount": 5}), "StatefulSet")["spec"]["replicas"]
        == 3
    )
    assert (
        one(render({**VALUE_SETS["sharded"], "replicaCount": 0}), "StatefulSet")["spec"]["replicas"]
        == 0
    )


EXPECTED_ENV: dict[str, dict[str, Any]] = {
    "default": {
        "RTP_LIVENESS": "http://0.0.0.0:8080/healthz",
        "RTP_METRICS_PORT": "9090",
        "RTP_METRICS_BIND_ADDRESS": "0.0.0.0",
        "RTP_LOG_FORMAT": "json",
        "RTP_TICK_SECONDS": "30",
        "RTP_OBSERVE_SECONDS": "30",
        "RTP_MAX_WORKERS": "16",
        "RTP_AWS_CALLS_PER_SECOND": "20",
        "RTP_FETCH_CONCURRENCY": "16",
        "RTP_NAMESPACE_CALLS_PER_SECOND": "0",
        "RTP_MAX_FETCHES_PER_POLL": "1000",
        "RTP_TENANCY_MODE": "Scoped",
        "RTP_ALLOW_ENDPOINT_ADOPTION": "false",
        "RTP_ALLOWED_ROLE_PATTERNS": "",
    },
}
EXPECTED_ENV["ha-peering"] = EXPECTED_ENV["default"] | {
    "RTP_PEERING": "rtp-peering",
    "RTP_LOG_FORMAT": "text",
    "RTP_LIVENESS": "http://[::]:8080/healthz",
    "RTP_METRICS_BIND_ADDRESS": "::",
}
EXPECTED_ENV["namespaced"] = EXPECTED_ENV["default"] | {
    "RTP_TENANCY_MODE": "Single",
    "RTP_WATCH_NAMESPACES": "vision,audio",
    "RTP_PEERING": "a2i-retraining-operator",
    "RTP_LIVENESS": "",
    "RTP_METRICS_PORT": "0",
    "RTP_METRICS_BIND_ADDRESS": "127.0.0.1",
    "RTP_TICK_SECONDS": "2.5",
    "RTP_OBSERVE_SECONDS": "120",
    "RTP_MAX_WORKERS": "4",
    "RTP_AWS_CALLS_PER_SECOND": "0",
    "RTP_FETCH_CONCURRENCY": "8",
    "RTP_ALLOWED_ROLE_PATTERNS": (
        "arn:aws:iam::111122223333:role/vision-*,arn:aws:iam::111122223333:role/audio-*"
    ),
}
EXPECTED_ENV["irsa-monitoring"] = EXPECTED_ENV["default"] | {
    "AWS_STS_REGIONAL_ENDPOINTS": "regional"
}
EXPECTED_ENV["sharded"] = EXPECTED_ENV["default"] | {"RTP_SHARDS": "3"}


def test_operator_settings_map_to_environment_variables(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, docs = rendered
    env = container_env(workload(docs))
    # kopf's peering identity and the Lease holder come from the downward API.
    assert env.pop("POD_ID") == {"fieldRef": {"fieldPath": "metadata.name"}}
    if env.pop("POD_NAMESPACE", None) is not None:
        assert env.pop("RTP_LEADER_ELECTION") == "true"
        assert env.pop("RTP_LEASE_NAME") in (FULLNAME, "rtp-leader")
    # The ledger key Secret, in the pod's own namespace (issue 27).
    assert env.pop("RTP_LEDGER_KEY_SECRET") == f"{FULLNAME}-ledger-key"
    assert env.pop("RTP_LEDGER_KEY_NAMESPACE") == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env == EXPECTED_ENV[name]
    (container,) = _pod_spec(docs)["containers"]
    assert container.get("args") == (["--verbose"] if name == "ha-peering" else None)


def test_every_variable_the_chart_sets_is_read_by_the_operator() -> None:
    # `retraining-operator run --help` names the environment variable behind every flag.
    run_help = subprocess.run(
        [str(Path(sys.executable).with_name("retraining-operator")), "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    chart_variables = set()
    for name in SETS:
        chart_variables |= set(container_env(workload(render(VALUE_SETS[name]))))
    rtp_variables = {v for v in chart_variables if v.startswith("RTP_")}
    assert len(rtp_variables) == 21
    missing = sorted(v for v in rtp_variables if v not in run_help)
    assert not missing, f"the chart sets {missing}, which `run --help` does not mention"


def test_liveness_probe_targets_kopf_liveness_endpoint() -> None:
    docs = render({})
    (container,) = _pod_spec(docs)["containers"]
    env = container_env(one(docs, "Deployment"))
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert env["RTP_LIVENESS"] == f"http://0.0.0.0:{ports[probe['port']]}{probe['path']}"
    assert (ports["health"], probe["path"]) == (8080, "/healthz")
    assert ports["metrics"] == 9090
    custom = render({"livenessProbe": {"port": 8181, "path": "/live"}})
    assert container_env(one(custom, "Deployment"))["RTP_LIVENESS"] == "http://0.0.0.0:8181/live"
    off = render({"livenessProbe": {"enabled": False}, "metrics": {"enabled": False}})
    (bare,) = _pod_spec(off)["containers"]
    # livenessProbe.enabled serves the endpoint: without it there is nothing to probe.
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(bare)
    assert "ports" not in bare


@pytest.mark.parametrize("name", SETS)
def test_startup_and_readiness_probe_the_health_endpoint(name: str) -> None:
    """One endpoint answers while the process runs, leader or standby (runner.py); readiness
    means "up", not "leading": a standby is Ready, so rolling updates with maxUnavailable 0
    finish and the metrics Service keeps it."""
    values = VALUE_SETS[name]
    (container,) = _pod_spec(render(values))["containers"]
    if not values.get("livenessProbe", {}).get("enabled", True):
        assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container)
        return
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = container_env(workload(render(values)))
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        get = container[kind]["httpGet"]
        assert get == {"path": "/healthz", "port": "health"}, kind
        assert env["RTP_LIVENESS"].endswith(f":{ports['health']}{get['path']}")
    startup, ready = container["startupProbe"], container["readinessProbe"]
    # Two minutes to answer first; liveness (3 x 20 s) only counts after that.
    assert startup["periodSeconds"] * startup["failureThreshold"] == 120
    assert (ready["periodSeconds"], ready["failureThreshold"]) == (10, 3)
    assert "initialDelaySeconds" not in ready


def test_probes_can_be_turned_off_one_by_one() -> None:
    (container,) = _pod_spec(
        render({"readinessProbe": {"enabled": False}, "startupProbe": {"periodSeconds": 2}})
    )["containers"]
    assert "readinessProbe" not in container
    assert container["startupProbe"]["periodSeconds"] == 2
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    custom = _pod_spec(
        render({"livenessProbe": {"path": "/live"}, "startupProbe": {"enabled": False}})
    )
    (container,) = custom["containers"]
    assert "startupProbe" not in container
    assert container["readinessProbe"]["httpGet"]["path"] == "/live"


def test_metrics_service_and_service_monitor_line_up() -> None:
    docs = render(VALUE_SETS["irsa-monitoring"])
    service = one(docs, "Service")
    monitor = one(docs, "ServiceMonitor")
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert monitor["spec"]["endpoints"] == [
        {
            "port": "metrics",
            "path": "/metrics",
            "interval": "30s",
            "scrapeTimeout": "10s",
            # The series' own namespace/policy labels stay (not exported_namespace).
            "honorLabels": True,
        }
    ]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    # The monitor only selects the metrics Service, never another Service of the release.
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "metrics"
    failed = template_text(
        {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}}, check=False
    )
    assert failed.returncode != 0
    assert "metrics.serviceMonitor.enabled needs metrics.enabled" in failed.stderr


def test_service_account_carries_the_irsa_annotation() -> None:
    docs = render(VALUE_SETS["irsa-monitoring"])
    account = one(docs, "ServiceAccount")["metadata"]
    assert account["annotations"] == {"eks.amazonaws.com/role-arn": IRSA_ROLE}
    assert "annotations" not in one(render({}), "ServiceAccount")["metadata"]


def test_image_reference_tag_digest_and_pull_settings() -> None:
    def image(values: dict[str, Any]) -> tuple[str, str, Any]:
        spec = _pod_spec(render(values))
        (container,) = spec["containers"]
        return container["image"], container["imagePullPolicy"], spec.get("imagePullSecrets")

    assert image({}) == ("a2i-retraining-operator:0.1.0", "IfNotPresent", None)
    assert image(VALUE_SETS["ha-peering"])[0] == (
        f"registry.example.com/ml/a2i-retraining-operator@{DIGEST}"
    )
    assert image(VALUE_SETS["irsa-monitoring"]) == (
        "a2i-retraining-operator:0.1.0-rc1",
        "Always",
        [{"name": "registry-credentials"}],
    )


def test_scheduling_and_pod_metadata_pass_through() -> None:
    values = VALUE_SETS["irsa-monitoring"]
    template = workload(render(values))["spec"]["template"]
    spec = template["spec"]
    assert spec["nodeSelector"] == values["nodeSelector"]
    assert spec["tolerations"] == values["tolerations"]
    assert spec["affinity"] == values["affinity"]
    assert template["metadata"]["annotations"] == values["podAnnotations"]
    assert template["metadata"]["labels"]["example.com/cost-center"] == "ml"
    assert _pod_spec(render(VALUE_SETS["ha-peering"]))["priorityClassName"] == (
        "system-cluster-critical"
    )
    assert "priorityClassName" not in _pod_spec(render({}))


def test_peering_objects_follow_the_watch_scope() -> None:
    cluster = one(render(VALUE_SETS["ha-peering"]), "ClusterKopfPeering")
    assert (cluster["apiVersion"], cluster["metadata"]["name"]) == ("kopf.dev/v1", "rtp-peering")
    namespaced = by_kind(render(VALUE_SETS["namespaced"]), "KopfPeering")
    assert {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in namespaced} == {
        ("vision", "a2i-retraining-operator"),
        ("audio", "a2i-retraining-operator"),
    }
    unmanaged = render({"peering": {"enabled": True, "createPeeringObjects": False}})
    assert not by_kind(unmanaged, "ClusterKopfPeering")


def test_notes_render_for_every_value_set(tmp_path: Path) -> None:
    for name in SETS:
        values = tmp_path / f"{name}.json"
        values.write_text(json.dumps(VALUE_SETS[name]))
        result = helm(
            "install",
            "rtp",
            str(CHART_DIR),
            "--namespace",
            NAMESPACE,
            "--dry-run=client",
            "--values",
            str(values),
        )
        notes = result.stdout.split("NOTES:", 1)[1]
        kind = "statefulset" if name == "sharded" else "deployment"
        assert f"{kind}/{FULLNAME}" in notes
        assert "never upgrades or deletes it" in notes
        assert ("IRSA role " + IRSA_ROLE in notes) is (name == "irsa-monitoring")


# ------------------------------------------------------------------------------ tenancy


def test_single_mode_ships_no_tenancy_objects() -> None:
    docs = render({"tenancy": {"mode": "Single"}, "watchNamespaces": ["vision"]})
    assert container_env(one(docs, "Deployment"))["RTP_TENANCY_MODE"] == "Single"
    assert not by_kind(docs, "ValidatingAdmissionPolicy")
    assert not [d for d in by_kind(docs, "ClusterRole") if "tenants" in d["metadata"]["name"]]


def test_scoped_mode_reads_tenants_and_never_writes_them() -> None:
    docs = render({"tenancy": {"mode": "Scoped"}, "watchNamespaces": ["team-a"]})
    assert container_env(one(docs, "Deployment"))["RTP_TENANCY_MODE"] == "Scoped"
    (role,) = [
        d for d in by_kind(docs, "ClusterRole") if d["metadata"]["name"].endswith("-tenants")
    ]
    assert role["rules"] == [
        {"apiGroups": ["retraining.hitl.dev"], "resources": ["retrainingtenants"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
    ]  # fmt: skip
    # Nothing else in the chart mentions tenants: no Role grants tenants any verb on them.
    for kind in ("Role", "ClusterRole"):
        for doc in by_kind(docs, kind):
            if doc is not role:
                assert "retrainingtenants" not in str(doc["rules"])
    binding = one(docs, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["paramRef"]["parameterNotFoundAction"] == "Deny"
    assert binding["spec"]["validationActions"] == ["Deny"]
    policy = one(docs, "ValidatingAdmissionPolicy")
    assert policy["spec"]["paramKind"]["kind"] == "RetrainingTenant"


def test_the_default_install_is_scoped_and_single_mode_names_what_it_trusts() -> None:
    """Issue 28: a default install is safe on a shared cluster. Scoped mode by default; Single
    mode (the operator's identity for every policy it watches) only with the namespaces it
    trusts named, or trustAllNamespaces; adoption off unless the values allow it."""
    default = render({})
    env = container_env(one(default, "Deployment"))
    assert env["RTP_TENANCY_MODE"] == "Scoped"
    assert env["RTP_ALLOW_ENDPOINT_ADOPTION"] == "false"
    assert one(default, "ValidatingAdmissionPolicyBinding")["spec"]["validationActions"] == ["Deny"]
    refused = template_text({"tenancy": {"mode": "Single"}}, check=False)
    assert refused.returncode != 0
    assert "watchNamespaces" in refused.stderr
    assert "trustAllNamespaces" in refused.stderr
    trusting = render(
        {
            "tenancy": {
                "mode": "Single",
                "single": {"trustAllNamespaces": True, "adoptEndpoints": True},
            }
        }
    )
    env = container_env(one(trusting, "Deployment"))
    assert (env["RTP_TENANCY_MODE"], env["RTP_ALLOW_ENDPOINT_ADOPTION"]) == ("Single", "true")
    assert not by_kind(trusting, "ValidatingAdmissionPolicy")


def test_only_the_monitoring_namespace_may_scrape_metrics_by_default() -> None:
    policy = one(render({}), "NetworkPolicy")
    by_port = {rule["ports"][0]["port"]: rule.get("from") for rule in policy["spec"]["ingress"]}
    assert by_port["metrics"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert by_port["health"] == [{"namespaceSelector": {}}]
