"""`retraining-operator iam-policy` prints the same documents, byte for byte, as before its
builder was split into small functions and its actions moved to `aws_calls.py`, but for
one intended change since: a deleted policy releases its endpoint (commit 8c0ad90), so the
endpoint's owner tag may be removed too (`sagemaker:DeleteTags` in `OwnTheEndpoint`).

The expected documents (`iam_policy_output.json` beside this file) were rendered by the
code before that change (commit b89ca43) from `support/iam_cases.py`: every example, each
as the policy's role and as the operator's own, with and without `--a2i-output`, plus
variations that switch each feature on or off. Regenerate only for an intended change of
the output: `PYTHONPATH=operator:tests python tests/unit/test_iam_policy_output.py >
tests/unit/iam_policy_output.json`.
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


def rendered() -> dict[str, Any]:
    """Every case's document (printed by the command as `json.dumps(document, indent=2)`)."""
    out: dict[str, Any] = {}
    for case, name, spec in examples():
        for a2i in A2I_OUTPUTS:
            for who, build in (("role", iam.for_policy), ("operator", iam.for_operator)):
                out[f"{case}/{who}/{a2i}"] = build(name, spec, a2i_output_s3_uri=a2i)
    for case, name, spec in variations():
        out[f"{case}/role/None"] = iam.for_policy(name, spec)
    roles = ["arn:aws:iam::1:role/b", "arn:aws:iam::1:role/a", "arn:aws:iam::1:role/a"]
    out["scoped-operator"] = iam.for_scoped_operator(roles)
    return out


def printed(document: Any) -> str:
    return json.dumps(document, indent=2) + "\n"


def _since_then(document: dict[str, Any]) -> dict[str, Any]:
    """A document rendered before, with the changes made on purpose since (see above)."""
    for statement in document["Statement"]:
        if statement["Sid"] == "OwnTheEndpoint":
            statement["Action"] = sorted({*statement["Action"], "sagemaker:DeleteTags"})
    return document


def _expected() -> dict[str, Any]:
    recorded = json.loads(EXPECTED.read_text())  # key order is kept: so is the printed text
    return {case: _since_then(document) for case, document in recorded.items()}


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
    cases = rendered()
    lines = [f"{json.dumps(case)}: {json.dumps(cases[case])}" for case in sorted(cases)]
    print("{\n" + ",\n".join(lines) + "\n}")
