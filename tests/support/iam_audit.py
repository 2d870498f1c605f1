"""Pytest plugin: every AWS call the operator makes in the e2e and reliability suites must be
allowed by the `iam-policy` documents of the policies the test applied.

For each test marked `e2e` or `reliability`, the RetrainingPolicy bodies the test creates
(through `KubeCluster.apply` or the kubernetes client) are recorded; when the test ends, every
call in the stand-ins' request log is turned into the IAM requests AWS would authorize
(support/iamcheck.py) and checked against `reconcile.iam.for_policy` and `for_operator` of
those policies. A call that no document allows fails the test (at teardown) with the call
and what it needed. The terminal summary reports the figures.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from retraining_operator.api import KIND, RetrainingPolicySpec
from retraining_operator.reconcile import iam
from retraining_operator.tenancy_api import TENANT_KIND
from support.iamcheck import Request, allows, needs
from support.kube import KubeCluster

_AUDIT = pytest.StashKey[dict[str, Any]]()


def _policies(obj: Any) -> list[tuple[str, RetrainingPolicySpec]]:
    docs = list(yaml.safe_load_all(obj)) if isinstance(obj, str) else [obj]
    found = []
    for doc in docs:
        if isinstance(doc, Mapping) and doc.get("kind") == KIND:
            try:
                spec = RetrainingPolicySpec.model_validate(doc.get("spec") or {})
            except ValueError:
                continue  # refused by admission too: the operator never sees it
            found.append((str(doc["metadata"]["name"]), spec))
    return found


def _tenant_roles(obj: Any) -> list[str]:
    """The roles of the RetrainingTenants a test applies (Scoped mode assumes them)."""
    docs = list(yaml.safe_load_all(obj)) if isinstance(obj, str) else [obj]
    return [
        str(doc["spec"]["aws"]["roleArn"])
        for doc in docs
        if isinstance(doc, Mapping)
        and doc.get("kind") == TENANT_KIND
        and isinstance((doc.get("spec") or {}).get("aws"), Mapping)
        and "roleArn" in doc["spec"]["aws"]
    ]


def documents(
    policies: list[tuple[str, RetrainingPolicySpec]], tenant_roles: list[str] | None = None
) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if tenant_roles:
        document = iam.for_scoped_operator(tenant_roles)
        out[json.dumps(document, sort_keys=True)] = document
    for name, spec in policies:
        for document in (iam.for_policy(name, spec), iam.for_operator(name, spec)):
            out[json.dumps(document, sort_keys=True)] = document  # the same policy applied twice
    return list(out.values())


def denied_requests(
    calls: list[Any],
    policies: list[tuple[str, RetrainingPolicySpec]],
    tenant_roles: list[str] | None = None,
) -> tuple[list[tuple[Any, Request]], list[Request]]:
    """(calls with a request no document allows, every request checked)."""
    docs = documents(policies, tenant_roles)
    # The stand-ins are one account and region: the policies' flow definitions name them.
    arn_parts = policies[0][1].human_loops.flow_definition_arn.split(":")
    partition, account, region = arn_parts[1], arn_parts[4], policies[0][1].aws.region
    denied, checked = [], []
    verdicts: dict[tuple[str, str, tuple[tuple[str, str], ...]], bool] = {}
    for call in calls:
        for request in needs(call, partition=partition, region=region, account=account):
            checked.append(request)
            key = (request.action, request.resource, tuple(sorted(request.context.items())))
            if key not in verdicts:  # calls repeat: each distinct request is evaluated once
                verdicts[key] = allows(docs, request)
            if not verdicts[key]:
                denied.append((call, request))
    return denied, checked


@pytest.fixture(autouse=True)
def iam_audit(request: pytest.FixtureRequest) -> Iterator[None]:
    node = request.node
    if node.get_closest_marker("e2e") is None and node.get_closest_marker("reliability") is None:
        yield
        return
    applied: list[tuple[str, RetrainingPolicySpec]] = []
    tenant_roles: list[str] = []
    original_apply = KubeCluster.apply
    original_create = k8s.CustomObjectsApi.create_namespaced_custom_object

    def apply(self: KubeCluster, obj: Any, **kwargs: Any) -> Any:
        applied.extend(_policies(obj))
        tenant_roles.extend(_tenant_roles(obj))
        return original_apply(self, obj, **kwargs)

    def create(
        self: Any, group: str, version: str, namespace: str, plural: str, body: Any, **kw: Any
    ) -> Any:
        applied.extend(_policies(body))
        return original_create(self, group, version, namespace, plural, body, **kw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(KubeCluster, "apply", apply)
        patch.setattr(k8s.CustomObjectsApi, "create_namespaced_custom_object", create)
        yield
    if "aws_standins" not in request.fixturenames or not applied:
        return
    calls = request.getfixturevalue("aws_standins").log.calls()
    denied, checked = denied_requests(calls, applied, tenant_roles)
    audit = request.config.stash.setdefault(
        _AUDIT, {"tests": 0, "calls": 0, "denied": 0, "actions": Counter()}
    )
    audit["tests"] += 1
    audit["calls"] += len(calls)
    audit["denied"] += len(denied)
    audit["actions"].update(r.action for r in checked)
    if denied:
        lines = [f"{c.service} {c.operation} needs {r}" for c, r in denied[:20]]
        pytest.fail(
            f"{len(denied)} AWS request(s) the iam-policy output does not allow:\n"
            + "\n".join(lines),
            pytrace=False,
        )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    audit = config.stash.get(_AUDIT, None)
    if not audit:
        return
    actions = audit["actions"]
    terminalreporter.write_line(
        f"IAM audit: {audit['calls']} AWS calls in {audit['tests']} e2e/reliability test(s), "
        f"{sum(actions.values())} IAM requests over {len(actions)} actions, "
        f"{audit['denied']} not allowed by `retraining-operator iam-policy`: "
        + ", ".join(sorted(actions))
    )
