"""The Argo CD health check (Lua) against sample RetrainingPolicies, run under lupa.

Argo CD runs health scripts in gopher-lua (Lua 5.1 semantics, JSON numbers as float64) with only
the base, table, string and math libraries; the tests run the script the same way under Lua 5.1
(numbers as floats) and under Lua 5.4 (integers), in a sandbox without os/io/require.

The rows of the tables in docs/argocd.md ("What it reports") are the specification: each row's
samples are parsed from the doc and run here, so the doc and the script cannot drift apart.
"""

from __future__ import annotations

import importlib
import re
import textwrap
from typing import Any

import pytest
import yaml
from helmkit import CHART_DIR, REPO_ROOT

from retraining_operator.api import ConditionType, Phase, RunStage
from retraining_operator.reconcile.status import WAITING_FOR_VALIDATION_DATA

SCRIPT = (CHART_DIR / "argocd" / "health.lua").read_text()
DOC = (REPO_ROOT / "docs" / "argocd.md").read_text()
OPERATOR = REPO_ROOT / "operator" / "retraining_operator"
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
        policy(phase="Suspended", conditions=[cond("Ready", "True", "Suspended", "phase x")]),
        "Suspended",
        "spec.suspend is true",
    ),
    (
        "degraded-wins-over-suspended",
        policy(phase="Suspended", conditions=[cond("Degraded", "True", "RolledBack", "x")]),
        "Degraded",
        "x (also: suspended)",
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
        "degradation-wins-over-awaiting-approval",
        policy(
            phase="Evaluating",
            currentRun={**RUN, "stage": "AwaitingApproval"},
            conditions=[cond("Degraded", "True", "TrainingFailed", "an earlier run failed")],
        ),
        "Degraded",
        "an earlier run failed (also: awaiting approval of run r7)",
    ),
    (
        "every-problem-and-every-wait-named",
        policy(
            phase="Evaluating",
            currentRun={**RUN, "stage": "AwaitingApproval"},
            conditions=[
                cond("Degraded", "True", "AccessDenied"),
                cond("Drifted", "True", "EndpointChanged", "runs c-2"),
                cond("PollsStarved", "True", "AwsBudget", "late"),
                cond("EventsFlowing", "False", "QueueUnreachable", "cannot read"),
            ],
        ),
        "Degraded",
        "AccessDenied (also: Drifted, PollsStarved, EventsFlowing, awaiting approval of run r7)",
    ),
    (
        "problem-while-waiting-for-validation-data",
        policy(
            phase="Collecting",
            conditions=[
                cond("Progressing", "False", "WaitingForValidationData", "holdout too small"),
                cond("PollsStarved", "True", "AwsBudget"),
            ],
        ),
        "Degraded",
        "AwsBudget (also: waiting for validation data)",
    ),
    (
        "drifted-without-message",
        policy(phase="Serving", conditions=[cond("Drifted", "True", "")]),
        "Degraded",
        "The endpoint changed out of band",
    ),
    (
        "failed-after-quota",
        policy(
            phase="Failed",
            conditions=[cond("QuotaExceeded", "True", "QuotaExceeded", "concurrentJobs is 2")],
        ),
        "Degraded",
        "The policy failed",
    ),
    (
        "events-unknown-status-is-ignored",
        policy(
            phase="Serving",
            conditions=[cond("EventsFlowing", "Unknown", "Starting")],
            serving={"modelName": "m-1"},
        ),
        "Healthy",
        "Serving model m-1",
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


# ------------------------------------------------------------------------------ the doc's tables


class Sample:
    """One sample of a row of docs/argocd.md, parsed from its notation (explained above the
    table): `phase=P`, `run=Stage`, `Type=Status/Reason`, `pending=N`, `model=M`, `job=J`,
    `stale`, `unobserved`."""

    def __init__(self, notation: str) -> None:
        self.notation = notation
        self.phase: str | None = None
        self.stage: str | None = None
        self.conditions: list[tuple[str, str, str]] = []
        status: dict[str, Any] = {}
        run: dict[str, Any] = {}
        generation, observed = 3, 3
        self.observed = True
        for token in notation.split():
            key, _, value = token.partition("=")
            if token == "unobserved":
                self.observed = False
            elif token == "stale":
                generation = 4
            elif key == "phase":
                self.phase = status["phase"] = value
            elif key == "run":
                self.stage = value
                run.update({"id": "r7", "stage": value, "startedAt": "2025-01-01T00:00:00Z"})
            elif key == "job":
                run["trainingJobName"] = value
            elif key == "pending":
                status["ingest"] = {"pendingSamples": int(value)}
            elif key == "model":
                status["serving"] = {"modelName": value}
            elif key[:1].isupper() and re.fullmatch(r"(True|False)/\w+", value):
                state, _, reason = value.partition("/")
                self.conditions.append((key, state, reason))
            else:
                raise AssertionError(f"unknown sample token {token!r} in {notation!r}")
        if run:
            status["currentRun"] = run
        if self.conditions:
            status["conditions"] = [
                cond(ctype, state, reason, f"<{ctype} message>")
                for ctype, state, reason in self.conditions
            ]
        self.obj = policy(generation)
        if self.observed:
            self.obj["status"] = {"observedGeneration": observed, **status}


class Row:
    def __init__(self, cells: dict[str, str]) -> None:
        self.id = cells["#"]
        self.samples = [Sample(n) for n in re.findall(r"`([^`]+)`", cells["sample (as tested)"])]
        self.status = cells["Argo CD health"].strip("* ")
        found = re.search(r"`([^`]+)`", cells["message"])
        assert found, f"row {self.id}: no `expected message` in {cells['message']!r}"
        self.message = found.group(1)
        assert self.samples, f"row {self.id}: no sample"


def doc_rows(doc: str = DOC) -> list[Row]:
    """Every row of the tables (with a "sample (as tested)" column) in "What it reports"."""
    section = doc.split("## What it reports", 1)[1].split("\n## ", 1)[0]
    rows: list[Row] = []
    header: list[str] | None = None
    for line in section.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if header is None:
            header = cells
        elif not set(line) <= set("|- "):
            assert len(cells) == len(header), line
            rows.append(Row(dict(zip(header, cells, strict=True))))
    return rows


ROWS = doc_rows()
SAMPLES = [(row, sample) for row in ROWS for sample in row.samples]


def test_the_doc_tables_are_found_and_numbered_in_order() -> None:
    assert [row.id for row in ROWS] == [str(n) for n in range(1, len(ROWS) + 1)]
    assert len(ROWS) >= 27
    assert {row.status for row in ROWS} == {"Progressing", "Degraded", "Suspended", "Healthy"}


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(
    ("row", "sample"),
    SAMPLES,
    ids=[f"row{row.id}-{row.samples.index(s)}" for row, s in SAMPLES],
)
def test_every_row_of_the_doc_table(row: Row, sample: Sample, runtime: str) -> None:
    result = health(sample.obj, runtime)
    assert result["status"] == row.status, (sample.notation, result)
    assert row.message in result["message"], (sample.notation, result)


def _crd_status_schema() -> dict[str, Any]:
    crd = yaml.safe_load((REPO_ROOT / "crds" / "retrainingpolicies.yaml").read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return dict(schema["properties"]["status"]["properties"])


def test_the_tables_cover_every_phase_stage_and_condition_the_operator_writes() -> None:
    status = _crd_status_schema()
    phases = set(status["phase"]["enum"])
    stages = set(status["currentRun"]["properties"]["stage"]["enum"])
    types = set(status["conditions"]["items"]["properties"]["type"]["enum"])
    # The CRD and the operator's enums agree, so covering one covers both.
    assert phases == {p.value for p in Phase}
    assert stages == {s.value for s in RunStage}
    assert types == {t.value for t in ConditionType}
    samples = [sample for _, sample in SAMPLES]
    assert phases <= {s.phase for s in samples}, phases - {s.phase for s in samples}
    assert stages <= {s.stage for s in samples}, stages - {s.stage for s in samples}
    written = {(ctype, state) for s in samples for ctype, state, _ in s.conditions}
    wanted = {(ctype, state) for ctype in types for state in ("True", "False")}
    assert wanted <= written, wanted - written


def _written_reasons(path: str, pattern: str) -> set[tuple[str, str]]:
    code = (OPERATOR / path).read_text()
    return {(str(ok), reason) for ok, reason in re.findall(pattern, code)}


def test_the_tables_cover_every_reason_that_changes_the_health() -> None:
    """The script looks at the reason of two conditions: EventsFlowing (some reasons of False
    are expected, the others a problem) and Progressing=False WaitingForValidationData."""
    events = _written_reasons(
        "policy_pass/stages/events.py", r'_condition\(\s*p,\s*(True|False),\s*"(\w+)"'
    )
    assert ("False", "QueueUnreachable") in events, events  # the pattern still matches
    assert ("True", "Consuming") in events, events
    samples = [sample for _, sample in SAMPLES]
    covered = {(t, state, reason) for s in samples for t, state, reason in s.conditions}
    flowing = {(state, reason) for t, state, reason in covered if t == "EventsFlowing"}
    assert events <= flowing, events - flowing
    assert ("Progressing", "False", WAITING_FOR_VALIDATION_DATA) in covered
    script_reasons = set(re.findall(r'reason [~=]= "(\w+)"', SCRIPT))
    assert script_reasons == {"Connecting", "Backlogged", "Suspended", WAITING_FOR_VALIDATION_DATA}
    assert script_reasons - {WAITING_FOR_VALIDATION_DATA} <= {r for _, r in events}


def test_the_table_parser_reads_what_the_notation_says() -> None:
    (row,) = doc_rows(
        "## What it reports\n\n| # | sample (as tested) | Argo CD health | message |\n"
        "| --- | --- | --- | --- |\n"
        "| 1 | `stale phase=Evaluating run=AwaitingApproval Drifted=True/X pending=2` `unobserved` "
        "| **Healthy** | the `<Drifted message>` and `other` |\n\n## Next\n| 9 | x |\n"
    )
    assert (row.id, row.status, row.message) == ("1", "Healthy", "<Drifted message>")
    stale, unobserved = row.samples
    assert stale.obj["metadata"]["generation"] == 4
    assert stale.obj["status"]["observedGeneration"] == 3
    assert stale.obj["status"]["currentRun"]["stage"] == "AwaitingApproval"
    assert stale.obj["status"]["conditions"][0]["message"] == "<Drifted message>"
    assert stale.obj["status"]["ingest"] == {"pendingSamples": 2}
    assert "status" not in unobserved.obj
    with pytest.raises(AssertionError, match="unknown sample token"):
        Sample("phase=Serving Drifted")


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
