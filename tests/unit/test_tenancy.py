"""Tenancy, pure: the RetrainingTenant API (models vs CRD), pattern and prefix semantics,
and the verdict on hostile policies in both modes (reconcile/tenancy.py)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.aws.session import AssumedRole, role_session_name
from retraining_operator.policy_pass.tenancy import tenant_identity
from retraining_operator.reconcile import tenancy
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.tenancy_api import RetrainingTenantSpec, TenancyMode, Tenant
from support import crdschema
from unit.test_api_models import _agree

ROOT = Path(__file__).resolve().parents[2]
TENANT_CRD = crdschema.load_crd(ROOT / "crds" / "retrainingtenants.yaml")
TENANT_SCHEMA = crdschema.version_schema(TENANT_CRD)

FLOW_PREFIX = "arn:aws:sagemaker:us-east-1"
A_ACCOUNT = "111111111111"
B_ACCOUNT = "222222222222"


def tenant_body(team: str, account: str) -> dict[str, Any]:
    return {
        "apiVersion": "retraining.hitl.dev/v1alpha1",
        "kind": "RetrainingTenant",
        "metadata": {"name": team, "uid": f"uid-{team}"},
        "spec": {
            "namespaces": [team],
            "aws": {"roleArn": f"arn:aws:iam::{account}:role/{team}-operator"},
            "allow": {
                "trainingRoleArns": [f"arn:aws:iam::{account}:role/{team}-sagemaker-*"],
                "flowDefinitionArns": [f"arn:aws:sagemaker:*:{account}:flow-definition/{team}-*"],
                "endpointNames": [f"{team}-*"],
                "images": [f"{account}.dkr.ecr.*.amazonaws.com/{team}/*"],
                "instanceTypes": ["ml.m5.*", "ml.g4dn.xlarge"],
                "alarmNames": [f"{team}-*"],
                "s3": {"read": [f"s3://{team}-data/shared/"], "write": [f"s3://{team}-data/loop/"]},
            },
            "limits": {"maxInstanceHours": 48},
        },
    }  # fmt: skip


def tenant(team: str, account: str, **spec: Any) -> Tenant:
    body = tenant_body(team, account)
    body["spec"].update(spec)
    return Tenant.from_body(body)


def policy(team: str, account: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "aws": {"region": "us-east-1"},
        "humanLoops": {
            "flowDefinitionArn": f"{FLOW_PREFIX}:{account}:flow-definition/{team}-review"
        },
        "labels": {"classes": ["cat", "dog"]},
        "dataset": {"outputS3Uri": f"s3://{team}-data/loop/dataset"},
        "training": {
            "roleArn": f"arn:aws:iam::{account}:role/{team}-sagemaker-train",
            "algorithm": "object-detection",
            "resources": {"instanceType": "ml.m5.xlarge", "instanceCount": 2},
            "maxRuntime": "12h",
            "outputS3Uri": f"s3://{team}-data/loop/models",
        },
        "gate": {"minimum": 0.5},
        "deployment": {"endpointName": f"{team}-detector", "instanceType": "ml.m5.large"},
    }  # fmt: skip
    spec.update(overrides)
    return spec


def spec_of(body: dict[str, Any]) -> RetrainingPolicySpec:
    return RetrainingPolicySpec.model_validate(body)


def scoped(spec: dict[str, Any], namespace: str = "team-b", *tenants: Tenant) -> Any:
    return tenancy.admit(
        spec_of(spec),
        mode=TenancyMode.SCOPED,
        namespace=namespace,
        tenants=tenants or (tenant("team-a", A_ACCOUNT), tenant("team-b", B_ACCOUNT)),
    )


# ------------------------------------------------------------------------ the API


def test_tenant_models_match_the_crd() -> None:
    problems: list[str] = []
    _agree(TENANT_SCHEMA["properties"]["spec"], RetrainingTenantSpec, "spec", problems)
    assert problems == []


def test_tenant_crd_is_structural_and_every_field_is_described() -> None:
    assert TENANT_CRD["spec"]["scope"] == "Cluster"
    assert crdschema.structural_problems(TENANT_SCHEMA) == []
    assert crdschema.undescribed_fields(TENANT_SCHEMA) == []


def test_the_example_tenant_is_admitted_by_crd_and_model() -> None:
    body = tenant_body("team-a", A_ACCOUNT)
    admitted, errors = crdschema.admit(TENANT_SCHEMA, copy.deepcopy(body))
    assert errors == []
    assert admitted["spec"]["adoptEndpoints"] is False  # the CRD's default
    assert Tenant.from_body(admitted).spec.adopt_endpoints is False


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"namespaces": None}, "namespaces or a namespaceSelector"),
        ({"aws": {"roleArn": "team-a-admin"}}, "roleArn"),
        ({"allow": {"s3": {"read": ["https://team-a-data/"]}}}, "read"),
        ({"allow": {"endpointNames": ["team-a-[0-9]"]}}, "endpointNames"),
        ({"allow": {"images": ["x" * 600]}}, "images"),
        ({"expectedBucketOwner": "not-an-account"}, "expectedBucketOwner"),
        ({"limits": {"gateMinimumFloor": -1}}, "gateMinimumFloor"),
    ],
)
def test_hostile_tenants_are_refused_by_crd_and_model(
    change: dict[str, Any], expected: str
) -> None:
    body = tenant_body("team-a", A_ACCOUNT)
    for key, value in change.items():
        if value is None:
            body["spec"].pop(key)
        else:
            body["spec"][key] = value
    _, errors = crdschema.admit(TENANT_SCHEMA, copy.deepcopy(body))
    assert any(expected in e for e in errors), errors
    with pytest.raises(pydantic.ValidationError):
        Tenant.from_body(body)


# --------------------------------------------------------------- patterns, prefixes


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("team-a-*", "team-a-detector", True),
        ("team-a-*", "team-b-detector", False),
        ("team-a-*", "team-a-", True),
        ("team-a", "team-a-detector", False),
        ("arn:aws:iam::1:role/*-train", "arn:aws:iam::1:role/x/y-train", True),
        ("a*b*c", "abc", True),
        ("a*b*c", "acb", False),
        ("ml.m5.*", "ml.m5x.large", False),  # "." is literal, not a regex wildcard
        ("ab*ba", "aba", False),  # the two ends may not overlap
    ],
)
def test_glob_match(pattern: str, value: str, matches: bool) -> None:
    assert tenancy.glob_match(pattern, value) is matches


@pytest.mark.parametrize(
    ("uri", "prefix", "within"),
    [
        ("s3://b/p", "s3://b/p", True),
        ("s3://b/p/", "s3://b/p", True),
        ("s3://b/p/x", "s3://b/p/", True),
        ("s3://b/px", "s3://b/p", False),
        ("s3://bb/p/x", "s3://b/", False),
        ("s3://b", "s3://b/", True),
    ],
)
def test_s3_within(uri: str, prefix: str, within: bool) -> None:
    assert tenancy.s3_within(uri, prefix) is within


# ----------------------------------------------------------------- Scoped verdicts


def test_team_b_in_its_own_scope_is_admitted_as_its_tenant() -> None:
    verdict = scoped(policy("team-b", B_ACCOUNT))
    assert isinstance(verdict, tenancy.Admission)
    assert verdict.tenant is not None
    assert verdict.tenant.name == "team-b"


def test_the_hostile_team_b_policy_is_refused_naming_every_field() -> None:
    """The issue's team B: team A's roles, flow, endpoint and buckets, its own image on 100
    p4d for 672 h, and a gate it controls."""
    hostile = policy(
        "team-a", A_ACCOUNT,
        aws={"region": "us-east-1", "roleArn": f"arn:aws:iam::{A_ACCOUNT}:role/team-a-operator"},
        training={
            "roleArn": f"arn:aws:iam::{A_ACCOUNT}:role/team-a-sagemaker-admin",
            "image": "999999999999.dkr.ecr.us-east-1.amazonaws.com/evil:latest",
            "resources": {"instanceType": "ml.p4d.24xlarge", "instanceCount": 100},
            "maxRuntime": "672h",
            "outputS3Uri": "s3://team-b-data/loop/models",
            "baseModel": {"s3Uri": "s3://team-a-data/shared/model.tar.gz"},
        },
        dataset={"outputS3Uri": "s3://team-b-data/loop/stolen",
                 "replay": {"manifestS3Uri": "s3://team-a-data/loop/replay.manifest"}},
    )  # fmt: skip
    # A gate it controls: a negative bar never reaches tenancy (the CRD and the models
    # refuse it: tests/unit/test_gate.py); tenancy still bounds it (below).
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        spec_of({**hostile, "gate": {"minimum": -1}})
    verdict = scoped(hostile)
    assert isinstance(verdict, tenancy.Refusal)
    assert verdict.reason == "OutOfScope"
    for field in (
        "spec.aws.roleArn", "spec.training.roleArn", "spec.humanLoops.flowDefinitionArn",
        "spec.deployment.endpointName", "spec.training.image",
        "spec.training.resources.instanceType", "spec.dataset.replay.manifestS3Uri",
        "spec.training.baseModel.s3Uri", "instance-hours",
    ):  # fmt: skip
        assert field in verdict.message, field
    assert "RetrainingTenant team-b" in verdict.message
    # Team B's own bucket is fine: only team A's resources are named.
    assert "spec.dataset.outputS3Uri" not in verdict.message


def test_a_namespace_without_a_tenant_is_refused() -> None:
    verdict = scoped(policy("team-c", B_ACCOUNT), "team-c")
    assert isinstance(verdict, tenancy.Refusal)
    assert verdict.reason == "TenantMissing"


def test_a_namespace_with_two_tenants_is_refused() -> None:
    two = (tenant("team-b", B_ACCOUNT), tenant("team-b2", B_ACCOUNT, namespaces=["team-b"]))
    verdict = scoped(policy("team-b", B_ACCOUNT), "team-b", *two)
    assert isinstance(verdict, tenancy.Refusal)
    assert verdict.reason == "TenantAmbiguous"


def test_namespace_selector_covers_by_labels_only() -> None:
    by_label = tenant("team-b", B_ACCOUNT, namespaceSelector={"matchLabels": {"team": "b"}})
    by_label = Tenant(
        name=by_label.name,
        uid=by_label.uid,
        spec=by_label.spec.model_copy(update={"namespaces": None}),
    )
    spec = spec_of(policy("team-b", B_ACCOUNT))
    for labels, admitted in (({"team": "b"}, True), ({"team": "a"}, False), (None, False)):
        verdict = tenancy.admit(
            spec, mode=TenancyMode.SCOPED, namespace="b-prod", tenants=[by_label],
            namespace_labels=lambda labels=labels: labels,
        )  # fmt: skip
        assert isinstance(verdict, tenancy.Admission) is admitted, labels


def test_gate_floor_makes_the_minimum_required() -> None:
    strict = tenant("team-b", B_ACCOUNT, limits={"gateMinimumFloor": 0.6})
    verdict = scoped(policy("team-b", B_ACCOUNT), "team-b", strict)
    assert isinstance(verdict, tenancy.Refusal)
    assert "spec.gate.minimum 0.5 is below 0.6" in verdict.message
    verdict = scoped(policy("team-b", B_ACCOUNT, gate={}), "team-b", strict)
    assert isinstance(verdict, tenancy.Refusal)
    assert "spec.gate.minimum is required" in verdict.message


def test_tuning_counts_every_job_in_the_instance_hour_cap() -> None:
    body = policy("team-b", B_ACCOUNT)
    body["training"]["tuning"] = {"maxJobs": 4, "ranges": {"lr": {"min": 0.1, "max": 0.2}}}
    assert tenancy.instance_hours(spec_of(body)) == 2 * 12 * 4
    verdict = scoped(body)
    assert isinstance(verdict, tenancy.Refusal)
    assert "instance-hours) is 96, more than limits.maxInstanceHours" in verdict.message


# ------------------------------------------------------------------ Single verdicts


def test_single_mode_checks_every_role_in_the_spec() -> None:
    """Before: only spec.aws.roleArn was checked, so training.roleArn named any role."""
    body = policy("team-a", A_ACCOUNT)
    body["training"]["roleArn"] = "arn:aws:iam::999999999999:role/admin"
    verdict = tenancy.admit(
        spec_of(body), mode=TenancyMode.SINGLE, namespace="x",
        allowed_role_patterns=[f"arn:aws:iam::{A_ACCOUNT}:role/*"],
    )  # fmt: skip
    assert isinstance(verdict, tenancy.Refusal)
    assert verdict.reason == "RoleNotAllowed"
    assert "spec.training.roleArn arn:aws:iam::999999999999:role/admin" in verdict.message


def test_single_mode_bounds_gate_minimum() -> None:
    # Defence in depth: the models refuse a negative bar, so build one past validation.
    spec = spec_of(policy("a", A_ACCOUNT))
    spec = spec.model_copy(update={"gate": spec.gate.model_copy(update={"minimum": -1.0})})
    verdict = tenancy.admit(spec, mode=TenancyMode.SINGLE, namespace="x")
    assert isinstance(verdict, tenancy.Refusal)
    assert "spec.gate.minimum -1" in verdict.message
    ok = tenancy.admit(spec_of(policy("a", A_ACCOUNT)), mode=TenancyMode.SINGLE, namespace="x")
    assert ok == tenancy.Admission(tenant=None)


# ----------------------------------------------------------------- the identity


def test_session_names_are_unique_and_at_most_64_characters() -> None:
    a = role_session_name("n" * 63)
    b = role_session_name("n" * 62 + "m")
    assert a != b  # both would be cut to the same 64 characters without the hash
    assert len(a) <= 64
    assert len(b) <= 64
    assert role_session_name("team-a").startswith("rtp-team-a-")
    assert role_session_name("team-a") == role_session_name("team-a")  # one per namespace


def test_tenant_identity_tags_the_session() -> None:
    team = tenant("team-b", B_ACCOUNT, aws={"roleArn": f"arn:aws:iam::{B_ACCOUNT}:role/op",
                                           "externalId": "team-b-x1"})  # fmt: skip
    identity = tenant_identity(PolicyRef("team-b", "detector", "u1"), team)
    args = identity.assume_role_args(3600)
    assert args["RoleArn"] == f"arn:aws:iam::{B_ACCOUNT}:role/op"
    assert args["ExternalId"] == "team-b-x1"
    assert args["Tags"] == [{"Key": "namespace", "Value": "team-b"}]
    # Every policy of the namespace is the same identity: they share clients and credentials.
    other = tenant_identity(PolicyRef("team-b", "segmenter", "u2"), team)
    assert other == identity
    assert "ExternalId" not in AssumedRole("arn:aws:iam::1:role/r", "s").assume_role_args(900)


def test_fixture_file_is_yaml_round_trippable() -> None:
    # The docs' worked example is generated from the same shape.
    assert yaml.safe_load(yaml.safe_dump(tenant_body("team-a", A_ACCOUNT)))["spec"]["aws"]


def test_an_invalid_tenant_in_the_index_covers_nothing() -> None:
    import logging

    from retraining_operator.policy_pass.tenancy import TenantIndex

    log = logging.getLogger("test")
    good = TenantIndex.entry(tenant_body("team-a", A_ACCOUNT), "team-a", log)
    hostile = tenant_body("team-b", B_ACCOUNT)
    hostile["spec"]["aws"]["roleArn"] = "*"
    hostile["spec"]["allow"]["endpointNames"] = ["x" * 10_000]
    assert TenantIndex.entry(hostile, "team-b", log) is None
    index = TenantIndex(lambda namespace: None)
    assert index.tenants() == []  # before kopf's index is attached: no tenant, all refused
    index.attach({key: [value] for key, value in good.items()})
    assert [t.name for t in index.tenants()] == ["team-a"]
    verdict = tenancy.admit(
        spec_of(policy("team-b", B_ACCOUNT)), mode=TenancyMode.SCOPED, namespace="team-b",
        tenants=index.tenants(),
    )  # fmt: skip
    assert isinstance(verdict, tenancy.Refusal)
    assert verdict.reason == "TenantMissing"


def test_a_team_may_consume_only_the_queues_its_tenant_allows() -> None:
    """Issue 27: a team naming another team's queue would take that team's events (and while
    the other team's policy is suspended, send them to the dead-letter queue)."""
    theirs = f"https://sqs.us-east-1.amazonaws.com/{A_ACCOUNT}/team-a-events"
    ours = f"https://sqs.us-east-1.amazonaws.com/{B_ACCOUNT}/team-b-events"
    human_loops = policy("team-b", B_ACCOUNT)["humanLoops"]

    def with_queue(url: str) -> dict[str, Any]:
        return policy(
            "team-b", B_ACCOUNT, humanLoops={**human_loops, "events": {"sqsQueueUrl": url}}
        )

    refused = scoped(with_queue(theirs))
    assert isinstance(refused, tenancy.Refusal)
    assert "spec.humanLoops.events.sqsQueueUrl" in refused.message
    assert "allow.sqsQueueUrls" in refused.message
    # Without an allow-list no queue is allowed (fail closed); with one, that queue is.
    assert isinstance(scoped(with_queue(ours)), tenancy.Refusal)
    allowing = tenant(
        "team-b", B_ACCOUNT,
        allow={**tenant_body("team-b", B_ACCOUNT)["spec"]["allow"], "sqsQueueUrls": [ours]},
    )  # fmt: skip
    admitted = scoped(with_queue(ours), "team-b", tenant("team-a", A_ACCOUNT), allowing)
    assert isinstance(admitted, tenancy.Admission)
    assert isinstance(scoped(with_queue(theirs), "team-b", allowing), tenancy.Refusal)


@pytest.mark.parametrize(
    "example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_the_first_tenant_command_admits_its_policy_and_nothing_else(example: Path) -> None:
    """`retraining-operator tenant` (issue 28: Scoped is the chart's default, so an admin needs
    a first tenant in one command): the printed tenant admits exactly the policy."""
    out = subprocess.run(
        [sys.executable, "-m", "retraining_operator", "tenant", "first", "-n", "vision",
         "--role-arn", "arn:aws:iam::111122223333:role/vision-tenant",
         "--from-policy", str(example)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    body = yaml.safe_load(out)
    first = Tenant.from_body({**body, "metadata": {"name": "first", "uid": "u"}})
    policy = yaml.safe_load(example.read_text())
    policy["spec"]["aws"].pop("roleArn", None)  # the tenant's role is assumed instead
    spec = spec_of(policy["spec"])
    assert tenancy.scope_problems(spec, first) == []
    assert tenancy.admit(spec, mode=TenancyMode.SCOPED, namespace="vision", tenants=[first]).tenant
    other = spec_of(
        {
            **policy["spec"],
            "deployment": {**policy["spec"]["deployment"], "endpointName": "someone-elses"},
        }
    )
    assert tenancy.scope_problems(other, first)
