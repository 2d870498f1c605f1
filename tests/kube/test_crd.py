"""The RetrainingPolicy CRD on a real kube-apiserver: schema, CEL rules, status, discovery."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.envtest import REPO_ROOT
from support.kube import CRD_NAME, KubeCluster, eventually

pytestmark = pytest.mark.kube

EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))
INVALID = sorted((REPO_ROOT / "tests" / "data" / "invalid").glob("*.yaml"))
EXPECT_RE = re.compile(r"^#\s*expect:\s*(?P<text>.+?)\s*$")


def _load(path: Path, namespace: str) -> list[dict[str, Any]]:
    """The file's documents, moved into the test's namespace."""
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert docs, f"{path} holds no YAML document"
    for doc in docs:
        doc.setdefault("metadata", {})["namespace"] = namespace
    return docs


def _policies(path: Path, namespace: str) -> list[dict[str, Any]]:
    return [doc for doc in _load(path, namespace) if doc.get("kind") == "RetrainingPolicy"]


def _normalise(text: str) -> str:
    return " ".join(text.split())


def test_crd_is_structural_and_established(kube: KubeCluster, rtp_crd: dict[str, Any]) -> None:
    crd = kube.kubectl_json("get", "crd", CRD_NAME)
    conditions = {c["type"]: c for c in crd["status"]["conditions"]}
    assert conditions["Established"]["status"] == "True"
    assert conditions["NamesAccepted"]["status"] == "True"
    # A non-structural schema would surface here (and block pruning/defaulting).
    assert conditions.get("NonStructuralSchema", {}).get("status") != "True"
    assert crd["status"]["acceptedNames"]["shortNames"] == ["rtp"]
    served = [v["name"] for v in crd["spec"]["versions"] if v["served"]]
    assert served == ["v1alpha1"]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_is_admitted(
    kube: KubeCluster, rtp_crd: dict[str, Any], kube_namespace: str, path: Path
) -> None:
    policies = _policies(path, kube_namespace)
    assert policies, f"{path.name} has no RetrainingPolicy"
    for policy in policies:
        result = kube.apply(policy)
        assert result.returncode == 0, result.stderr
        name = policy["metadata"]["name"]
        stored = kube.kubectl_json("get", "rtp", name, namespace=kube_namespace)
        assert stored["spec"]["aws"]["region"] == policy["spec"]["aws"]["region"]
        # Defaults from the schema are filled in by the API server.
        assert stored["spec"]["suspend"] is policy["spec"].get("suspend", False)


def test_examples_exist() -> None:
    assert EXAMPLES, "examples/*.yaml is empty"
    assert INVALID, "tests/data/invalid/*.yaml is empty"


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_example_is_refused(
    kube: KubeCluster, rtp_crd: dict[str, Any], kube_namespace: str, path: Path
) -> None:
    first_line = path.read_text().splitlines()[0]
    match = EXPECT_RE.match(first_line)
    assert match, f"{path.name} must start with '# expect: <error substring>'"
    expected = match.group("text")
    (policy,) = _policies(path, kube_namespace)
    result = kube.kubectl("create", "-f", "-", input=json.dumps(policy))
    assert result.returncode != 0, f"{path.name} was admitted:\n{result.stdout}"
    assert expected in _normalise(result.stderr), result.stderr
    if "\n# errors: 1\n" in path.read_text():  # one problem, one line: no noise beside it
        assert "\n* " not in result.stderr, result.stderr
    gone = kube.kubectl("get", "rtp", policy["metadata"]["name"], namespace=kube_namespace)
    assert "NotFound" in gone.stderr


def _any_example(namespace: str) -> dict[str, Any]:
    for path in EXAMPLES:
        policies = _policies(path, namespace)
        if policies:
            return policies[0]
    pytest.fail("no RetrainingPolicy in examples/*.yaml")


def test_status_changes_only_through_the_status_subresource(
    kube: KubeCluster, rtp_crd: dict[str, Any], kube_namespace: str
) -> None:
    policy = _any_example(kube_namespace)
    name = policy["metadata"]["name"]
    assert kube.apply(policy).returncode == 0
    generation = kube.kubectl_json("get", "rtp", name, namespace=kube_namespace)["metadata"][
        "generation"
    ]

    status_patch = json.dumps({"status": {"phase": "Training", "lastTrainingJobName": "job-1"}})
    main = kube.kubectl(
        "patch", "rtp", name, "--type=merge", "-p", status_patch, namespace=kube_namespace
    )
    assert main.returncode == 0, main.stderr
    after_main = kube.kubectl_json("get", "rtp", name, namespace=kube_namespace)
    assert "phase" not in after_main.get("status", {}), "status changed via the main resource"

    sub = kube.kubectl(
        "patch",
        "rtp",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        status_patch,
        namespace=kube_namespace,
    )
    assert sub.returncode == 0, sub.stderr
    after_sub = kube.kubectl_json("get", "rtp", name, namespace=kube_namespace)
    assert after_sub["status"]["phase"] == "Training"
    assert after_sub["status"]["lastTrainingJobName"] == "job-1"
    # A status write does not bump the spec generation...
    assert after_sub["metadata"]["generation"] == generation

    # ...and a spec change sent to /status is ignored.
    spec_via_status = json.dumps({"spec": {"suspend": True}})
    kube.kubectl(
        "patch",
        "rtp",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        spec_via_status,
        namespace=kube_namespace,
        check=True,
    )
    final = kube.kubectl_json("get", "rtp", name, namespace=kube_namespace)
    assert final["spec"]["suspend"] is policy["spec"].get("suspend", False)

    # The status schema is enforced on the subresource too.
    bad = kube.kubectl(
        "patch",
        "rtp",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Dancing"}}),
        namespace=kube_namespace,
    )
    assert bad.returncode != 0
    assert "status.phase" in bad.stderr


def test_explain_shows_field_descriptions(kube: KubeCluster, rtp_crd: dict[str, Any]) -> None:
    version = rtp_crd["spec"]["versions"][0]
    spec_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    fields = spec_schema["properties"]

    def explained() -> str | None:
        # The OpenAPI document for a new CRD is published asynchronously; retry until it is.
        result = kube.kubectl("explain", "retrainingpolicy.spec")
        text = _normalise(result.stdout)
        if result.returncode == 0 and _normalise(spec_schema["description"]) in text:
            return text
        return None

    text = eventually(explained, timeout=60, what="kubectl explain retrainingpolicy.spec")
    assert "GROUP: retraining.hitl.dev" in text
    for field_name, field_schema in fields.items():
        assert re.search(rf"\b{re.escape(field_name)}\b", text), field_name
        if "description" in field_schema:
            assert _normalise(field_schema["description"]) in text, field_name


def test_printer_columns_in_kubectl_get(
    kube: KubeCluster, rtp_crd: dict[str, Any], kube_namespace: str
) -> None:
    columns = rtp_crd["spec"]["versions"][0]["additionalPrinterColumns"]
    policy = _any_example(kube_namespace)
    name = policy["metadata"]["name"]
    assert kube.apply(policy).returncode == 0
    kube.kubectl(
        "patch",
        "rtp",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Collecting", "ingest": {"pendingSamples": 42}}}),
        namespace=kube_namespace,
        check=True,
    )

    out = kube.kubectl("get", "rtp", namespace=kube_namespace, check=True).stdout
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", *(c["name"].upper() for c in columns)]
    (row,) = rows
    cells = row.split()
    assert cells[0] == name
    by_column = dict(zip((c["jsonPath"] for c in columns), cells[1:], strict=False))
    assert by_column[".status.phase"] == "Collecting"
    assert by_column[".status.ingest.pendingSamples"] == "42"
