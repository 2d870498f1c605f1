"""`retraining-operator iam-policy`: exactly the actions the operator's code calls, each
scoped to the policy's own resources; linted by parliament.

That every call the operator really makes is allowed is proved on the e2e and reliability
runs (support/iam_audit.py reads the stand-ins' request log).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.reconcile import iam
from support.iamcheck import Request, allows

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def load(path: Path) -> tuple[str, RetrainingPolicySpec]:
    doc = yaml.safe_load(path.read_text())
    return doc["metadata"]["name"], RetrainingPolicySpec.model_validate(doc["spec"])


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retraining_operator", "iam-policy", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def findings(document: dict[str, Any], *, community: bool = False) -> list[tuple[str, str, Any]]:
    """parliament's findings (issue, severity, detail), as its CLI reports them."""
    import parliament

    if community:
        parliament.override_config(
            Path(parliament.__file__).parent / "community_auditors" / "config_override.yaml"
        )
    policy = parliament.analyze_policy_string(
        json.dumps(document), include_community_auditors=community
    )
    enhanced = [parliament.enhance_finding(f) for f in policy.findings]
    return [(f.issue, f.severity, f.detail) for f in enhanced]


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return list(document["Statement"])


def actions(document: dict[str, Any]) -> set[str]:
    return {a for s in statements(document) for a in s["Action"]}


# ---------------------------------------------------------------------------------------
# The linter


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("operator", [False, True], ids=["role", "operator"])
def test_parliament_finds_nothing_above_low(path: Path, operator: bool) -> None:
    args = ["--policy", str(path), *(["--operator"] if operator else [])]
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    serious = [f for f in findings(document) if f[1] not in ("LOW", "INFO")]
    assert serious == []
    # The community auditors flag two actions by name, whatever their scope: iam:PassRole
    # (which the issue asks for, on training.roleArn to SageMaker only) and sts:AssumeRole
    # (the operator's role assuming spec.aws.roleArn). Nothing else may show up.
    inherent = {
        "PERMISSIONS_MANAGEMENT_ACTIONS": "iam:PassRole",
        "CREDENTIALS_EXPOSURE": "sts:AssumeRole",
    }
    granted = actions(document)
    for issue, severity, _ in findings(document, community=True):
        if severity in ("LOW", "INFO"):
            continue
        assert inherent.get(issue) in granted, issue


def test_the_linter_does_flag_a_mis_scoped_document() -> None:
    bad = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b"}],
    }
    assert [f[:2] for f in findings(bad)] == [("RESOURCE_MISMATCH", "MEDIUM")]


# ---------------------------------------------------------------------------------------
# Exactly the actions the code calls: test_aws_calls.py (one declaration per call)


def test_strategy_none_grants_no_endpoint_action() -> None:
    name, spec = load(REPO / "examples" / "train-only.yaml")
    granted = actions(iam.for_policy(name, spec))
    assert not {a for a in granted if "Endpoint" in a or "Model" in a or a.startswith("cloudwatch")}
    assert "sagemaker:CreateTrainingJob" in granted


def test_star_resources_only_where_aws_has_no_resource_level_permission() -> None:
    import parliament

    def resource_types(action: str) -> list[str]:
        prefix, name = action.split(":")
        service = next(s for s in parliament.iam_definition if s["prefix"] == prefix)
        privilege = next(p for p in service["privileges"] if p["privilege"] == name)
        return [r["resource_type"] for r in privilege["resource_types"] if r["resource_type"]]

    for path in EXAMPLES:
        name, spec = load(path)
        for statement in statements(iam.for_policy(name, spec)):
            if statement["Resource"] == "*":
                for action in statement["Action"]:
                    assert resource_types(action) == [], action


# ---------------------------------------------------------------------------------------
# Scoped to the policy's own resources

ACCOUNT = "arn:aws:sagemaker:us-east-1:111122223333"


@pytest.fixture
def pascal() -> dict[str, Any]:
    name, spec = load(REPO / "examples" / "pascal-voc-detector.yaml")
    return iam.for_policy(name, spec)


@pytest.mark.parametrize(
    "request_",
    [
        Request("sagemaker:CreateTrainingJob", f"{ACCOUNT}:training-job/pascal-detector-r1-tj-ab"),
        Request("sagemaker:DeleteModel", f"{ACCOUNT}:model/pascal-detector-r1-m-ab"),
        Request("sagemaker:UpdateEndpoint", f"{ACCOUNT}:endpoint/od-endpoint"),
        Request("s3:PutObject", "arn:aws:s3:::my-bucket/a2i-results/pending/x.jsonl"),
        Request(
            "s3:GetObject",
            "arn:aws:s3:::reviews/out/fd-sagemaker-object-detection-demo/2026/11/29/l1/output.json",
        ),
        Request(
            "iam:PassRole",
            "arn:aws:iam::111122223333:role/SageMakerExecution",
            {"iam:PassedToService": "sagemaker.amazonaws.com"},
        ),
        Request(
            "sagemaker:AddTags",
            f"{ACCOUNT}:model/pascal-detector-r1-m-ab",
            {"sagemaker:TaggingAction": "CreateModel"},
        ),
        Request(
            "cloudwatch:DescribeAlarms",
            "arn:aws:cloudwatch:us-east-1:111122223333:alarm:od-endpoint-5xx",
        ),
    ],
    ids=str,
)
def test_the_policy_allows_its_own_resources(pascal: dict[str, Any], request_: Request) -> None:
    assert allows([pascal], request_)


@pytest.mark.parametrize(
    "request_",
    [
        # Another policy's (tenant's) resources.
        Request("sagemaker:CreateTrainingJob", f"{ACCOUNT}:training-job/other-team-r1-tj-ab"),
        Request("sagemaker:StopTrainingJob", f"{ACCOUNT}:training-job/other-team-r1-tj-ab"),
        Request("sagemaker:DeleteModel", f"{ACCOUNT}:model/production-model"),
        Request("sagemaker:DeleteEndpointConfig", f"{ACCOUNT}:endpoint-config/prod-config"),
        Request("sagemaker:UpdateEndpoint", f"{ACCOUNT}:endpoint/someone-elses-endpoint"),
        Request("sagemaker:DeleteEndpoint", f"{ACCOUNT}:endpoint/od-endpoint"),
        Request("s3:PutObject", "arn:aws:s3:::my-bucket/other-prefix/x.jsonl"),
        Request("s3:PutObject", "arn:aws:s3:::other-bucket/a2i-results/x.jsonl"),
        Request("s3:DeleteObject", "arn:aws:s3:::my-bucket/voc/train.manifest"),
        Request("s3:GetObject", "arn:aws:s3:::reviews/out/other-flow/2026/11/29/l1/output.json"),
        Request("s3:GetObject", "arn:aws:s3:::my-bucket/secrets.txt"),
        Request("s3:ListBucket", "arn:aws:s3:::my-bucket"),
        # The training role, but not to SageMaker; another role.
        Request(
            "iam:PassRole",
            "arn:aws:iam::111122223333:role/SageMakerExecution",
            {"iam:PassedToService": "ec2.amazonaws.com"},
        ),
        Request(
            "iam:PassRole",
            "arn:aws:iam::111122223333:role/Admin",
            {"iam:PassedToService": "sagemaker.amazonaws.com"},
        ),
        # Tagging someone else's resource, or tagging outside a create.
        Request(
            "sagemaker:AddTags",
            f"{ACCOUNT}:model/production-model",
            {"sagemaker:TaggingAction": "CreateModel"},
        ),
        Request("sagemaker:AddTags", f"{ACCOUNT}:model/pascal-detector-r1-m-ab"),
        Request("cloudwatch:DescribeAlarms", "arn:aws:cloudwatch:us-east-1:111122223333:alarm:x"),
        # Another region or account.
        Request(
            "sagemaker:CreateTrainingJob",
            "arn:aws:sagemaker:eu-west-1:111122223333:training-job/pascal-detector-r1-tj-ab",
        ),
        Request(
            "sagemaker:DescribeHumanLoop", "arn:aws:sagemaker:us-east-1:999999999999:human-loop/l1"
        ),
    ],
    ids=str,
)
def test_the_policy_denies_everything_else(pascal: dict[str, Any], request_: Request) -> None:
    assert not allows([pascal], request_)


def test_operator_role_only_assumes_the_tenant_role() -> None:
    name, spec = load(REPO / "examples" / "pascal-voc-detector.yaml")
    assert spec.aws.role_arn is not None
    document = iam.for_operator(name, spec)
    assert actions(document) == {"sts:AssumeRole"}
    assert allows([document], Request("sts:AssumeRole", spec.aws.role_arn))
    assert not allows([document], Request("sts:AssumeRole", "arn:aws:iam::1:role/other"))
    # Without spec.aws.roleArn the operator's own role makes every call.
    name, spec = load(REPO / "examples" / "spot-canary-tuning.yaml")
    assert spec.aws.role_arn is None
    assert iam.for_operator(name, spec) == iam.for_policy(name, spec)


def test_name_heads_match_the_names_the_operator_makes() -> None:
    from retraining_operator.reconcile.naming import PolicyRef

    for policy_name in ("pascal-detector", "a" * 63, "x", "retail-shelves"):
        ref = PolicyRef("ns", policy_name, "0d9f7c1e-uid")
        for kind, name in (
            ("tj", ref.training_job_name("r20261129-101500")),
            ("ht", ref.tuning_job_name("r20261129-101500")),
        ):
            head = iam.name_head(policy_name, kind, max_len=32 if kind == "ht" else None)
            assert name.startswith(f"{head}-"), (name, head)


def test_a2i_output_flag_narrows_review_reads_to_that_prefix(tmp_path: Path) -> None:
    path = REPO / "examples" / "pascal-voc-detector.yaml"
    narrow = json.loads(cli("--policy", str(path), "--a2i-output", "s3://reviews/out").stdout)
    flow = "fd-sagemaker-object-detection-demo"
    inside = Request("s3:GetObject", f"arn:aws:s3:::reviews/out/{flow}/2026/11/29/l1/output.json")
    outside = Request("s3:GetObject", f"arn:aws:s3:::other/out/{flow}/2026/11/29/l1/output.json")
    assert allows([narrow], inside)
    assert not allows([narrow], outside)
    bad = cli("--policy", str(path), "--a2i-output", "https://reviews/out")
    assert bad.returncode == 2
    assert "is not an s3:// URI" in bad.stderr


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("kind: Pod\napiVersion: v1\n", "is not a RetrainingPolicy"),
        ("{{{{", "is not valid YAML"),
        (
            "apiVersion: retraining.hitl.dev/v1alpha1\nkind: RetrainingPolicy\n"
            "metadata: {name: p}\nspec: {aws: {region: us-east-1}}\n",
            "invalid spec",
        ),
    ],
)
def test_a_bad_policy_file_is_an_error_not_a_traceback(
    tmp_path: Path, text: str, complaint: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    result = cli("--policy", str(path))
    assert result.returncode == 2
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr
