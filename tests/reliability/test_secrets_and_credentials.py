"""Credentials: they rotate under a long ingest, and they never leak into logs, Events or
status. (This module runs last in the suite on purpose: case 14 also scans the operator
logs every earlier case wrote.)"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.sts.models import sts_backends

from reliability.conftest import CaseReport
from reliability.scene import Scene
from retraining_operator.aws import session as aws_session
from retraining_operator.aws.session import AssumedRole, AwsSession, role_session_name
from retraining_operator.config import OperatorConfig
from retraining_operator.policy_pass.controller import Controller, PolicyView
from retraining_operator.reconcile.naming import PolicyRef
from retraining_standins.demo import seed_demo
from retraining_standins.demo_run import demo_policy
from retraining_standins.stack import SECRET_ACCESS_KEY, AwsStandins

pytestmark = pytest.mark.reliability

ROLE = "arn:aws:iam::210987654321:role/rtp-tenant-vision"
REF = PolicyRef(
    namespace="vision", name="pascal-detector", uid="5b1f7c0e-13ad-4c59-9d47-0c1f2e3d4a5b"
)
CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")
AUTH_ERRORS = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "AccessDenied"}


def _assumed_roles() -> list[Any]:
    return list(sts_backends[ROLE.split(":")[4]]["aws"].assumed_roles)


def test_credentials_rotating_during_a_long_ingest_keep_it_going(
    aws: AwsStandins, report: CaseReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    report.case(13, "credentials rotate during a long ingest")
    report.inject(
        "spec.aws.roleArn assumed with DurationSeconds 903: botocore's refresh window (15 min) "
        "is reached 3 s after each AssumeRole; 200 A2I outputs read at +0.1 s each, 2 at a "
        "time (a ~10 s ingest); in-process controller on the stand-ins"
    )
    monkeypatch.setattr(aws_session, "ASSUME_ROLE_SECONDS", 903)
    world = seed_demo(aws, 200)
    aws.faults.delay("s3", "GetObject", seconds=0.1)
    spec = demo_policy(world, min_new_samples=200)["spec"]
    spec["aws"]["roleArn"] = ROLE

    signed: list[tuple[datetime, str, str]] = []

    def capture(service: str) -> Any:
        def before_send(request: Any, **_: Any) -> None:
            auth = request.headers.get("Authorization", b"")
            text = auth.decode() if isinstance(auth, bytes) else str(auth)
            match = CREDENTIAL.search(text)
            assert match, f"unsigned {service} request"
            signed.append((datetime.now(UTC).replace(tzinfo=None), service, match.group(1)))

        return before_send

    sessions: dict[str, AwsSession] = {}

    def session_for(ref: PolicyRef, policy: Any) -> AwsSession:
        if ref.uid not in sessions:
            made = AwsSession(
                policy.aws.region,
                assumed=AssumedRole.of(policy.aws.role_arn, role_session_name(ref.namespace)),
            )
            for service in ("s3", "sagemaker-a2i-runtime", "sagemaker"):
                made.client(service).meta.events.register("before-send", capture(service))
            sessions[ref.uid] = made
        return sessions[ref.uid]

    controller = Controller(
        OperatorConfig(tick_seconds=10, observe_seconds=0, aws_calls_per_second=0,
                       fetch_concurrency=2),
        session_for,
        clock=aws.clock.now,
        started_at=aws.clock.now() - timedelta(hours=1),
    )  # fmt: skip
    status: dict[str, Any] = {}
    events: list[tuple[str, str, str]] = []

    def checkpoint(new: Any) -> None:
        status.clear()
        status.update(new.to_wire())

    for _ in range(6):
        aws.clock.advance(30)
        result = controller.reconcile(
            PolicyView(REF, 1, {}, copy.deepcopy(spec), copy.deepcopy(status)), checkpoint
        )
        events += [(e.type, e.reason, e.message) for e in result.events]
        if (status.get("currentRun") or {}).get("trainingJobName"):
            break

    assume = aws.log.calls("sts", "AssumeRole")
    roles = {role.access_key_id: role for role in _assumed_roles()}
    keys_used = [key for _, _, key in signed]
    expired = [
        (at, key) for at, _, key in signed if key not in roles or at >= roles[key].expiration
    ]
    ingest_keys = {key for _, service, key in signed if service == "s3"}
    auth_failures = [c for c in aws.log.calls() if c.error in AUTH_ERRORS]
    warnings = [e for e in events if e[0] == "Warning"]
    report.observe(
        assume_role_calls=len(assume),
        assume_role_failed=sum(not c.ok for c in assume),
        distinct_keys_signing=len(set(keys_used)),
        keys_during_ingest=len(ingest_keys),
        requests_signed=len(signed),
        signed_with_expired_or_unknown_key=len(expired),
        auth_failures=len(auth_failures),
        loops_ingested=status.get("ingest", {}).get("ingestedLoops"),
        warning_events=len(warnings),
    )
    report.summary()
    assert len(assume) >= 2
    assert all(c.ok for c in assume)
    assert {c.params["RoleArn"] for c in assume} == {ROLE}
    assert len(ingest_keys) >= 2  # the key changed while the outputs were being read
    assert set(keys_used) <= set(roles)  # only assumed-role keys, never the base ones
    assert expired == []
    assert auth_failures == []
    assert warnings == []
    assert status["ingest"]["ingestedLoops"] == 200
    assert status["currentRun"]["trainingJobName"]


# ---------------------------------------------------------------------------------------
# Case 14


LEAK_PATTERNS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"aws_secret_access_key",
        r"secret_?access_?key",
        r"session_?token",
        r"x-amz-security-token",
        r"AWS4-HMAC-SHA256\s+Credential",
        r"authorization:\s*bearer",
        r"\bASIA[A-Z0-9]{12,}",  # temporary access key ids
        r"\bAKIA[A-Z0-9]{12,}",
    )
]


def _leaks(text: str, secrets: list[str]) -> list[str]:
    found = [p.pattern for p in LEAK_PATTERNS if p.search(text)]
    found += [f"secret#{i}" for i, s in enumerate(secrets) if s and s in text]
    return found


def test_no_secret_in_any_log_line_event_or_status(
    scene: Scene, report: CaseReport, tmp_path_factory: pytest.TempPathFactory
) -> None:
    report.case(14, "no secret in logs, Events or status")
    report.inject(
        "a full loop with spec.aws.roleArn (assumed-role credentials), --verbose logging, and "
        "injected AccessDenied/ExpiredToken/throttling errors; scanned: this run's log, Events "
        "and status, plus every operator log of the suite"
    )
    aws = scene.aws
    scene.seed(12)
    aws.faults.fail("sagemaker", "DescribeEndpoint", rate=1.0, times=1, status=400,
                    code="AccessDeniedException")  # fmt: skip
    aws.faults.fail("s3", "GetObject", rate=1.0, times=2, status=400, code="ExpiredToken")
    aws.faults.throttle("sagemaker-a2i-runtime", "ListHumanLoops", rate=1.0, times=3)
    aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.74})
    op = scene.operator("--verbose").start()
    scene.apply(scene.policy(aws={"roleArn": ROLE}))
    status = scene.wait(
        lambda: (s := scene.status()).get("phase") == "Serving" and s.get("history") and s,
        timeout=120,
        what="the loop to close",
    )
    obj = scene.get()
    events = scene.events(None)
    roles = _assumed_roles()
    sa_token = json.loads(op.kubeconfig.read_text())["users"][0]["user"]["token"]
    secrets = [SECRET_ACCESS_KEY, sa_token]
    for role in roles:
        secrets += [role.secret_access_key, role.session_token, role.access_key_id]

    texts = {
        "operator log": scene.logs(),
        "events": "\n".join(f"{e.reason} {e.message}" for e in events),
        "status and metadata": json.dumps(obj),
    }
    found = {where: _leaks(text, secrets) for where, text in texts.items()}
    # The dummy base secret is a dictionary word: look for it as a word, not inside others.
    base = re.compile(rf"\b{re.escape(SECRET_ACCESS_KEY)}\b")
    for where, text in texts.items():
        if base.search(text):
            found[where].append("base secret")
    suite_logs = sorted(tmp_path_factory.getbasetemp().glob("**/operator-*.log"))
    suite_found = {}
    for path in suite_logs:
        text = path.read_text(errors="replace")
        hits = [p.pattern for p in LEAK_PATTERNS if p.search(text)]
        hits += ["base secret"] if base.search(text) else []
        hits += ["SA token"] if sa_token in text else []
        if hits:
            suite_found[str(path.relative_to(tmp_path_factory.getbasetemp()))] = hits
    lines = texts["operator log"].count("\n")
    report.observe(
        secrets_checked=len(secrets),
        assumed_roles=len(roles),
        log_lines=lines,
        events=len(events),
        suite_logs_scanned=len(suite_logs),
        leaks=sum(len(v) for v in found.values()) + sum(len(v) for v in suite_found.values()),
        outcome=status["history"][0]["outcome"],
    )
    report.summary()
    assert roles, "no role was assumed: nothing to leak, nothing proven"
    assert aws.log.count("sts", "AssumeRole") >= 1
    assert lines > 30
    # The error paths were taken and logged (the messages AWS sent back are in the log).
    assert "AccessDeniedException" in texts["operator log"]
    assert "ExpiredToken" in texts["operator log"]
    assert len(events) >= 5
    assert any(e.type == "Warning" for e in events), "the injected errors produced no Warning"
    assert found == {where: [] for where in texts}
    assert suite_found == {}
    assert op.log_path.resolve() in {p.resolve() for p in suite_logs}
