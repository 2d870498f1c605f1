"""`retraining-operator iam-policy` prints the same documents, byte for byte, as before its
builder was split into small functions and its actions moved to `aws_calls.py`, but for
the changes made on purpose since, both for deletion finishing what a policy started
(commit 8c0ad90), which the IAM audit found missing:

- the endpoint is released: its owner tag removed (`sagemaker:DeleteTags`, OwnTheEndpoint);
- the run's tuning job is stopped whatever the spec says now, so every policy may describe
  and stop its own tuning jobs and describe their training jobs (TuningJobs and
  TuningTrainingJobs, without CreateHyperParameterTuningJob unless it tunes);
- likewise its held-out evaluation's transform jobs (issue 30: TransformJobs, without
  CreateTransformJob unless `gate.evaluation` is set).

The expected documents (`iam_policy_output.json` beside this file) were rendered by the
code before that change (commit b89ca43) from `support/iam_cases.py`: every example, each
as the policy's role and as the operator's own, with and without `--a2i-output`, plus
variations that switch each feature on or off. An intended change of the output is
written into `_since_then`, so the file stays what b89ca43 printed (it was recorded with
`python tests/unit/test_iam_policy_output.py > tests/unit/iam_policy_output.json`, run
with PYTHONPATH=operator:tests on that commit).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from retraining_operator.reconcile import iam
from support.iam_cases import REPO, examples, variations

EXPECTED = Path(__file__).with_name("iam_policy_output.json")
A2I_OUTPUTS = (None, "s3://reviews/out", "s3://reviews")


def _rendered() -> dict[str, tuple[str, Any]]:
    """Every case: (policy name, document printed by the command as `printed(document)`)."""
    out: dict[str, tuple[str, Any]] = {}
    for case, name, spec in examples():
        for a2i in A2I_OUTPUTS:
            for who, build in (("role", iam.for_policy), ("operator", iam.for_operator)):
                out[f"{case}/{who}/{a2i}"] = name, build(name, spec, a2i_output_s3_uri=a2i)
    for case, name, spec in variations():
        out[f"{case}/role/None"] = name, iam.for_policy(name, spec)
    roles = ["arn:aws:iam::1:role/b", "arn:aws:iam::1:role/a", "arn:aws:iam::1:role/a"]
    out["scoped-operator"] = "", iam.for_scoped_operator(roles)
    return out


def rendered() -> dict[str, Any]:
    return {case: document for case, (_, document) in _rendered().items()}


def printed(document: Any) -> str:
    return json.dumps(document, indent=2) + "\n"


def _allow(sid: str, actions: list[str], resource: str) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}


def _since_then(document: dict[str, Any], policy_name: str) -> dict[str, Any]:
    """A document rendered at b89ca43, with the changes made on purpose since (see above)."""
    statements = document["Statement"]
    for statement in statements:
        if statement["Sid"] == "OwnTheEndpoint":
            statement["Action"] = sorted({*statement["Action"], "sagemaker:DeleteTags"})
    sids = [statement["Sid"] for statement in statements]
    if "TrainingJobs" in sids and "TuningJobs" not in sids:
        at = sids.index("TrainingJobs")
        account = statements[at]["Resource"].partition("training-job/")[0]
        head = iam.name_head(policy_name, "ht", max_len=32)
        stop = [
            "sagemaker:DescribeHyperParameterTuningJob",
            "sagemaker:StopHyperParameterTuningJob",
        ]
        statements[at + 1 : at + 1] = [
            _allow("TuningJobs", stop, f"{account}hyper-parameter-tuning-job/{head}-*"),
            _allow(
                "TuningTrainingJobs",
                ["sagemaker:DescribeTrainingJob"],
                f"{account}training-job/{head}-*",
            ),
        ]
    sids = [statement["Sid"] for statement in statements]
    if "TuningTrainingJobs" in sids:
        at = sids.index("TuningTrainingJobs")
        account = statements[at]["Resource"].partition("training-job/")[0]
        transforms = sorted(
            {f"{account}transform-job/{iam.name_head(policy_name, k)}-*" for k in ("tc", "ts")}
        )
        stop = ["sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob"]
        statements.insert(
            at + 1,
            {
                "Sid": "TransformJobs",
                "Effect": "Allow",
                "Action": stop,
                "Resource": transforms[0] if len(transforms) == 1 else transforms,
            },
        )
    sids = [statement["Sid"] for statement in statements]
    if "RollTheEndpoint" in sids:  # deployment.shadow (issue 31): describe/stop the run's
        watch = ("ReadEndpointAutoscaling", "ReadRollbackAlarms", "ReadVariantMetrics")
        at = max(sids.index(sid) for sid in (*watch, "RollTheEndpoint") if sid in sids)
        rolled = next(s["Resource"] for s in statements if s["Sid"] == "RollTheEndpoint")
        arn = ":".join((rolled[0] if isinstance(rolled, list) else rolled).split(":")[:5]) + ":"
        stop = ["sagemaker:DescribeInferenceExperiment", "sagemaker:StopInferenceExperiment"]
        experiments = f"{arn}inference-experiment/{iam.name_head(policy_name, 'sx')}-*"
        statements.insert(at + 1, _allow("ShadowTests", stop, experiments))
    return document


# Examples added after b89ca43, recorded by the commit that added them (no `_since_then`):
# `python tests/unit/test_iam_policy_output.py --later > tests/unit/iam_policy_output_later.json`.
LATER = Path(__file__).with_name("iam_policy_output_later.json")
LATER_EXAMPLES = ("shadow-then-canary",)


def _later(case: str) -> bool:
    return case.split("/", 1)[0] in LATER_EXAMPLES


def _expected() -> dict[str, Any]:
    recorded = json.loads(EXPECTED.read_text())  # key order is kept: so is the printed text
    names = {case: name for case, (name, _) in _rendered().items()}
    expected = {case: _since_then(doc, names.get(case, "")) for case, doc in recorded.items()}
    return {**expected, **json.loads(LATER.read_text())}


def test_every_document_is_unchanged_byte_for_byte() -> None:
    expected = _expected()
    got = rendered()
    assert sorted(got) == sorted(expected)
    changed = [case for case in got if printed(got[case]) != printed(expected[case])]
    assert changed == []


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_command_prints_the_same_document(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from retraining_operator.cli import main

    assert main(["iam-policy", "--policy", str(path)]) == 0
    expected = _expected()
    assert capsys.readouterr().out == printed(expected[f"{path.stem}/role/None"])


if __name__ == "__main__":
    import sys

    cases = rendered()
    if "--later" in sys.argv:
        cases = {case: document for case, document in cases.items() if _later(case)}
    lines = [f"{json.dumps(case)}: {json.dumps(cases[case])}" for case in sorted(cases)]
    print("{\n" + ",\n".join(lines) + "\n}")
