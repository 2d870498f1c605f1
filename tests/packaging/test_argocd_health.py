"""The Argo CD health check (Lua) against sample RetrainingPolicies, run under lupa.

Argo CD runs health scripts in gopher-lua (Lua 5.1 semantics, JSON numbers as float64) with only
the base, table, string and math libraries; the tests run the script the same way under Lua 5.1
(numbers as floats) and under Lua 5.4 (integers), in a sandbox without os/io/require.
"""

from __future__ import annotations

import importlib
import re
import textwrap
from typing import Any

import pytest
from helmkit import CHART_DIR, REPO_ROOT

SCRIPT = (CHART_DIR / "argocd" / "health.lua").read_text()
RUNTIMES = ["lua51", "lua54"]
UNSAFE_GLOBALS = ["os", "io", "require", "package", "debug", "dofile", "loadfile", "load"]


def _floats(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value


def health(obj: dict[str, Any], runtime: str = "lua54") -> dict[str, str]:
    lupa = importlib.import_module(f"lupa.{runtime}")
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    env = lua.globals()
    for name in UNSAFE_GLOBALS:
        env[name] = None
    env.obj = lua.table_from(_floats(obj) if runtime == "lua51" else obj, recursive=True)
    result = lua.execute(SCRIPT)
    out = dict(result.items())
    assert set(out) == {"status", "message"}, out
    assert isinstance(out["message"], str)
    assert out["message"], "Argo CD shows the message: it must never be empty"
    return out


def policy(generation: int = 3, **status: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "retraining.hitl.dev/v1alpha1",
        "kind": "RetrainingPolicy",
        "metadata": {"name": "pascal-detector", "namespace": "vision", "generation": generation},
        "spec": {"suspend": False},
    }
    if status:
        obj["status"] = {"observedGeneration": generation, **status}
    return obj


def cond(ctype: str, status: str, reason: str = "Reason", message: str = "") -> dict[str, Any]:
    c = {"type": ctype, "status": status, "reason": reason}
    if message:
        c["message"] = message
    c["lastTransitionTime"] = "2025-01-01T00:00:00Z"
    return c


READY = cond("Ready", "True", "Serving", "ok")
RUN = {"id": "r7", "stage": "Training", "startedAt": "2025-01-01T00:00:00Z"}

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, resource, Argo CD status, message fragment)
    ("no-status", policy(), "Progressing", "Waiting for the operator"),
    ("empty-status", {**policy(), "status": {}}, "Progressing", "Waiting for the operator"),
    (
        "no-observed-generation",
        {**policy(), "status": {"phase": "Serving"}},
        "Progressing",
        "Waiting for the operator",
    ),
    (
        "stale-generation",
        {**policy(generation=4), "status": {"observedGeneration": 3, "phase": "Serving"}},
        "Progressing",
        "Waiting for the operator",
    ),
    (
        "stale-even-if-degraded",
        {
            **policy(generation=5),
            "status": {
                "observedGeneration": 4,
                "phase": "Failed",
                "conditions": [cond("Degraded", "True", "BadSpec", "old spec was bad")],
            },
        },
        "Progressing",
        "Waiting for the operator",
    ),
    (
        "suspended",
        policy(phase="Suspended", conditions=[cond("Ready", "False", "Suspended", "paused")]),
        "Suspended",
        "paused",
    ),
    (
        "suspended-wins-over-degraded",
        policy(phase="Suspended", conditions=[cond("Degraded", "True", "RolledBack", "x")]),
        "Suspended",
        "spec.suspend",
    ),
    (
        "degraded-condition",
        policy(
            phase="Serving",
            conditions=[
                READY,
                cond("Degraded", "True", "RolledBack", "SageMaker rolled back od-endpoint: 5xx"),
            ],
        ),
        "Degraded",
        "SageMaker rolled back od-endpoint: 5xx",
    ),
    (
        "degraded-reason-without-message",
        policy(phase="Training", conditions=[cond("Degraded", "True", "AccessDenied")]),
        "Degraded",
        "AccessDenied",
    ),
    (
        "degraded-false-is-ignored",
        policy(
            phase="Serving",
            conditions=[READY, cond("Degraded", "False")],
            serving={"modelName": "m-1"},
        ),
        "Healthy",
        "m-1",
    ),
    ("failed", policy(phase="Failed"), "Degraded", "failed"),
    (
        "waiting-for-quota",
        policy(
            phase="Collecting",
            conditions=[
                READY,
                cond("QuotaExceeded", "True", "QuotaExceeded", "concurrentJobs is 2"),
            ],
        ),
        "Progressing",
        "concurrentJobs is 2",
    ),
    (
        "failed-with-ready-message",
        policy(phase="Failed", conditions=[cond("Ready", "False", "Invalid", "roleArn denied")]),
        "Degraded",
        "roleArn denied",
    ),
    (
        "training",
        policy(phase="Training", currentRun={**RUN, "trainingJobName": "pascal-r7-train-1a2b"}),
        "Progressing",
        "pascal-r7-train-1a2b",
    ),
    (
        "training-progress-message",
        policy(
            phase="Training",
            currentRun=RUN,
            conditions=[cond("Progressing", "True", "Training", "job at 40%")],
        ),
        "Progressing",
        "job at 40%",
    ),
    ("evaluating", policy(phase="Evaluating", currentRun=RUN), "Progressing", "Evaluating"),
    ("deploying", policy(phase="Deploying", currentRun=RUN), "Progressing", "Deploying"),
    (
        "awaiting-approval",
        policy(
            phase="Evaluating",
            currentRun={**RUN, "stage": "AwaitingApproval"},
            conditions=[cond("Progressing", "True", "RunAwaitingApproval", "annotate approve=r7")],
        ),
        "Suspended",
        "annotate approve=r7",
    ),
    (
        "awaiting-approval-without-message",
        policy(phase="Evaluating", currentRun={**RUN, "stage": "AwaitingApproval"}),
        "Suspended",
        "Awaiting approval of run r7",
    ),
    (
        "awaiting-approval-wins-over-an-old-degradation",
        policy(
            phase="Evaluating",
            currentRun={**RUN, "stage": "AwaitingApproval"},
            conditions=[cond("Degraded", "True", "TrainingFailed", "an earlier run failed")],
        ),
        "Suspended",
        "Awaiting approval",
    ),
    (
        "collecting-ready-idle",
        policy(phase="Collecting", conditions=[READY], ingest={"pendingSamples": 37}),
        "Healthy",
        "37 samples pending",
    ),
    (
        "collecting-ready-no-ingest-yet",
        policy(phase="Collecting", conditions=[cond("Ready", "True", "Collecting", "polling")]),
        "Healthy",
        "polling",
    ),
    (
        "collecting-not-ready",
        policy(phase="Collecting", conditions=[cond("Ready", "False", "FirstPoll")]),
        "Progressing",
        "Collecting",
    ),
    ("collecting-no-conditions", policy(phase="Collecting"), "Progressing", "Collecting"),
    (
        "collecting-with-run-in-flight",
        policy(phase="Collecting", conditions=[READY], currentRun={**RUN, "stage": "Preparing"}),
        "Progressing",
        "Collecting",
    ),
    (
        "serving",
        policy(phase="Serving", conditions=[READY], serving={"modelName": "pascal-r6-model"}),
        "Healthy",
        "Serving model pascal-r6-model",
    ),
    ("serving-no-model", policy(phase="Serving"), "Healthy", "Serving"),
    ("no-phase", policy(conditions=[READY]), "Progressing", "report a phase"),
    ("unknown-phase", policy(phase="Rebalancing"), "Progressing", "Unknown phase Rebalancing"),
]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(
    ("obj", "status", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_health(obj: dict[str, Any], status: str, fragment: str, runtime: str) -> None:
    result = health(obj, runtime)
    assert result["status"] == status, result
    assert fragment in result["message"], result


def test_every_phase_of_the_crd_is_covered() -> None:
    import yaml

    crd = yaml.safe_load((REPO_ROOT / "crds" / "retrainingpolicies.yaml").read_text())
    status_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    phases = set(status_schema["properties"]["phase"]["enum"])
    covered = {c[1].get("status", {}).get("phase") for c in CASES}
    assert phases <= covered, phases - covered
    conditions = set(
        status_schema["properties"]["conditions"]["items"]["properties"]["type"]["enum"]
    )
    # Informational, health follows the others: Drifted (the endpoint changed out of band),
    # PollsStarved (polls later than pollInterval x 1.1), EventsFlowing (event ingest).
    # QuotaExceeded (a run waits for its tenant's quota) is Progressing.
    assert conditions == {
        "Ready",
        "Progressing",
        "Degraded",
        "Drifted",
        "PollsStarved",
        "EventsFlowing",
        "QuotaExceeded",
    }


def test_the_script_uses_only_what_argo_cd_provides() -> None:
    # The sandbox above removes the unsafe globals; any use of them would fail at run time, but
    # the code paths are many, so also refuse them textually (and Lua 5.2+ only syntax).
    code = re.sub(r"--[^\n]*", "", SCRIPT)
    for name in [*UNSAFE_GLOBALS, "goto", "//", "setmetatable", "rawset"]:
        assert not re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", code), name


def test_docs_snippet_is_the_script() -> None:
    doc = (REPO_ROOT / "docs" / "argocd.md").read_text()
    key = "resource.customizations.health.retraining.hitl.dev_RetrainingPolicy: |"
    assert key in doc
    block = doc.split(key, 1)[1].split("```", 1)[0]
    lines = block.split("\n")[1:]
    assert textwrap.dedent("\n".join(lines)).strip() == SCRIPT.strip()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_sandbox_bites(runtime: str) -> None:
    lupa = importlib.import_module(f"lupa.{runtime}")
    lua = lupa.LuaRuntime()
    for name in UNSAFE_GLOBALS:
        lua.globals()[name] = None
    with pytest.raises(lupa.LuaError, match="os"):
        lua.execute("return os.getenv('HOME')")
    assert lua.execute("return string.format('%d', 37.0)") == "37"
