"""`aws_calls.py`: each AWS call the gateways make is declared once, with its IAM actions,
and `iam-policy` grants exactly the declared actions of the features a policy uses.

The gateways' calls are read from their syntax tree (client method calls and
`get_paginator("...")` names) and named by botocore's service models, so a new call in a
gateway without its row fails here, not in production as AccessDenied.
"""

from __future__ import annotations

import ast
import copy
from collections import Counter
from typing import Any

import botocore
import botocore.session
import pytest

from retraining_operator.aws_calls import (
    CALLS,
    PASS_ROLE,
    STS,
    AwsCall,
    Feature,
    Undeclared,
    declared,
    used_by,
)
from retraining_operator.reconcile import iam
from support.iam_cases import REPO, examples, variations

PACKAGE = REPO / "operator" / "retraining_operator"
SERVICES = ("s3", "sagemaker", "sagemaker-a2i-runtime", "cloudwatch", "sts", "sqs")
SERVICES += ("application-autoscaling",)


def _method_maps() -> dict[str, dict[str, str]]:
    """Per service: boto3 method name -> operation name."""
    session = botocore.session.get_session()
    return {
        service: {
            botocore.xform_name(operation): operation
            for operation in session.get_service_model(service).operation_names
        }
        for service in SERVICES
    }


def called_operations() -> list[tuple[str, str, str]]:
    """(service, operation, where) of every client call in aws/ (one entry per call site)."""
    maps = _method_maps()
    found = []
    for path in sorted((PACKAGE / "aws").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            name = node.func.attr
            if name == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                name = str(node.args[0].value)
            services = [service for service, methods in maps.items() if name in methods]
            assert len(services) <= 1, f"{path.name}:{node.lineno} {name}: which of {services}?"
            for service in services:
                found.append((service, maps[service][name], f"{path.name}:{node.lineno}"))
    return found


def test_every_operation_a_gateway_calls_has_exactly_one_declaration() -> None:
    rows = Counter((call.service, call.operation) for call in CALLS)
    assert [row for row, count in rows.items() if count > 1] == []
    called = called_operations()
    undeclared = [(s, o, where) for s, o, where in called if (s, o) not in rows]
    assert undeclared == []
    # ... and no row for a call nothing makes (boto3's managed copy makes its own calls).
    made = {(s, o) for s, o, _ in called}
    stale = [c.operation for c in CALLS if (c.service, c.operation) not in made and not c.by_boto3]
    assert stale == []


def test_the_scan_sees_every_kind_of_call() -> None:
    """Plain calls, paginators, and a call outside a gateway module's functions (sts)."""
    called = {(s, o) for s, o, _ in called_operations()}
    assert {
        ("sagemaker", "CreateTrainingJob"),
        ("sagemaker-a2i-runtime", "ListHumanLoops"),  # a paginator
        ("sts", "AssumeRole"),
        ("sqs", "DeleteMessageBatch"),
    } <= called


def test_an_undeclared_call_is_named() -> None:
    with pytest.raises(Undeclared, match="no IAM declaration for s3 PutBucketPolicy"):
        declared("s3", "PutBucketPolicy")


def test_every_action_is_one_aws_knows() -> None:
    """Each declared action exists in the Service Authorization Reference (parliament's
    copy), with a resource type exactly when the row is scoped."""
    import parliament

    def privilege(action: str) -> dict[str, Any]:
        prefix, name = action.split(":")
        service = next(s for s in parliament.iam_definition if s["prefix"] == prefix)
        return next(p for p in service["privileges"] if p["privilege"] == name)

    for call in CALLS:
        for action in call.needs():
            types = [r["resource_type"] for r in privilege(action)["resource_types"]]
            assert any(types) is not call.unscoped, (call.operation, action, types)


def _actions(document: dict[str, Any]) -> set[str]:
    return {a for statement in document["Statement"] for a in statement["Action"]}


def _declared(calls: tuple[AwsCall, ...], *, tagged: bool = True) -> set[str]:
    return {action for call in calls for action in call.needs(tagged=tagged)}


CASES = [*examples(), *variations()]


@pytest.mark.parametrize(("case", "name", "spec"), CASES, ids=[c[0] for c in CASES])
def test_iam_policy_grants_exactly_the_declared_actions_of_the_features_used(
    case: str, name: str, spec: Any
) -> None:
    used = iam.features(spec)
    assert _actions(iam.for_policy(name, spec)) == _declared(used_by(used))
    operator = _actions(iam.for_operator(name, spec))
    if spec.aws.role_arn is None:
        assert operator == _declared(used_by(used))
    else:  # Single mode assumes the role without session tags
        assert operator == _declared(used_by({Feature.ASSUME_ROLE}), tagged=False)


def test_scoped_mode_grants_the_assume_role_declaration_with_session_tags() -> None:
    document = iam.for_scoped_operator(["arn:aws:iam::111122223333:role/team-a"])
    assert _actions(document) == set(declared(STS, "AssumeRole").needs())
    assert _actions(document) == {"sts:AssumeRole", "sts:TagSession"}


_ROLLOUT = {Feature.SERVING_READ, Feature.DEPLOY, Feature.ROLLBACK_ALARMS}


@pytest.mark.parametrize(
    ("case", "features"),
    [
        ("train-only", set()),
        ("train-only-from-endpoint", {Feature.SERVING_READ}),
        ("pascal-voc-detector", _ROLLOUT),
        ("no-alarms", _ROLLOUT - {Feature.ROLLBACK_ALARMS}),
        ("event-driven-ingest", {*_ROLLOUT, Feature.EVENTS}),
        ("variant-shift", {*_ROLLOUT, Feature.VARIANT_SHIFT}),
        ("registry-manual-approval", {*_ROLLOUT, Feature.REGISTRY}),
        ("spot-canary-tuning", {*_ROLLOUT, Feature.TUNING}),
    ],
)
def test_features_are_read_off_the_spec(case: str, features: set[Feature]) -> None:
    spec = next(spec for name, _, spec in CASES if name == case)
    every_policy = {Feature.HUMAN_LOOPS, Feature.DATASET, Feature.TRAINING}
    assert iam.features(spec) == every_policy | features


def test_unscoped_actions_are_granted_on_star_and_nothing_else_is() -> None:
    only_unscoped = {a for c in CALLS for a in c.actions if c.unscoped} - {
        a for c in CALLS for a in c.needs() if not c.unscoped
    }
    for _, name, spec in CASES:
        for statement in iam.for_policy(name, spec)["Statement"]:
            star = statement["Resource"] == "*"
            for action in statement["Action"]:
                assert star == (action in only_unscoped), (statement["Sid"], action)


def test_calls_no_feature_grants_are_not_made_by_any_pass() -> None:
    """DeleteEndpoint (the operator never deletes an endpoint) is declared, never granted; the
    S3 listing is the offline `manifest` command's (the user's own credentials) and, in a
    pass, only the evaluation's prediction cache (gate.evaluation) and the shadow test's
    data capture (deployment.shadow.dataCapture)."""
    outside = [c.operation for c in CALLS if not set(c.features) - {Feature.TOOLS}]
    assert sorted(outside) == ["DeleteEndpoint"]
    sources = {
        p: p.read_text() for p in PACKAGE.rglob("*.py") if "aws" not in p.relative_to(PACKAGE).parts
    }
    assert not [p for p, text in sources.items() if "delete_endpoint(" in text]
    listing = sorted(p.name for p, text in sources.items() if "s3.list(" in text)
    assert listing == ["evaluation.py", "offline.py", "shadow.py"]
    importers = [p.name for p, text in sources.items() if "flows import offline" in text]
    assert importers == ["manifest.py"]


def test_each_rollout_strategy_names_only_declared_actions_of_its_feature() -> None:
    """A strategy's rules (`reconcile/rollout/strategy.py`) say what it needs beyond every
    rollout's; `iam-policy` grants that, so it must be what the rows of its calls say."""
    from retraining_operator.api import Strategy
    from retraining_operator.reconcile.rollout.strategies import RULES

    feature = {Strategy.VARIANT_SHIFT: Feature.VARIANT_SHIFT}
    for strategy, rules in RULES.items():
        own = feature.get(strategy)
        declared_for_it = _declared(used_by({own})) - _declared(used_by({Feature.DEPLOY}))
        assert set(rules.iam.actions) == (declared_for_it if own else set()), strategy


def test_pass_role_is_declared_on_the_calls_that_hand_sagemaker_a_role() -> None:
    passing = sorted(c.operation for c in CALLS if PASS_ROLE in c.needs())
    assert passing == [
        "CreateHyperParameterTuningJob",
        "CreateInferenceExperiment",  # its RoleArn: SageMaker deploys the shadow as it
        "CreateModel",
        "CreateTrainingJob",
    ]


@pytest.mark.parametrize("source", ["pascal-voc-detector", "train-only"])
def test_gate_evaluation_grants_exactly_its_declared_calls(source: str) -> None:
    """gate.evaluation (issue 30): the transform jobs, the candidate's Model (made by the
    evaluation itself when nothing is rolled out), the prediction cache's listing."""
    from retraining_operator.api import RetrainingPolicySpec
    from support.iam_cases import example

    name, raw = example(source)
    raw["gate"] = {**raw.get("gate", {}), "evaluation": {"minImages": 20}}
    spec = RetrainingPolicySpec.model_validate(raw)
    used = iam.features(spec)
    assert Feature.EVALUATION in used
    document = iam.for_policy(name, spec)
    assert _actions(document) == _declared(used_by(used))
    sids = {s["Sid"]: s for s in document["Statement"]}
    assert "sagemaker:CreateTransformJob" in sids["TransformJobs"]["Action"]
    listing = sids["ListPredictionCache"]
    assert listing["Condition"]["StringLike"]["s3:prefix"][0].endswith("/evaluation/predictions/*")
    assert ("EvaluationModels" in sids) == (source == "train-only")


def test_shadow_data_capture_grants_exactly_its_declared_calls() -> None:
    """deployment.shadow.dataCapture (issue 31): the captures are listed and read, under the
    destination only."""
    from retraining_operator.api import RetrainingPolicySpec
    from support.iam_cases import example

    name, shared = example("shadow-then-canary")
    raw = copy.deepcopy(shared)
    raw["deployment"]["shadow"]["dataCapture"] = {"destinationS3Uri": "s3://depot-capture/shadow"}
    spec = RetrainingPolicySpec.model_validate(raw)
    used = iam.features(spec)
    assert Feature.SHADOW_CAPTURE in used
    document = iam.for_policy(name, spec)
    assert _actions(document) == _declared(used_by(used))
    [listing] = [s for s in document["Statement"] if s["Sid"] == "ListShadowCapture"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["shadow/*"]}}
    [reading] = [s for s in document["Statement"] if s["Sid"] == "ReadShadowCapture"]
    assert reading["Resource"] == "arn:aws:s3:::depot-capture/shadow/*"
