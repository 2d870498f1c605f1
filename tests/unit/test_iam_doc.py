"""docs/observability.md's IAM table names every statement `iam-policy` can write."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IAM = ROOT / "operator" / "retraining_operator" / "reconcile" / "iam.py"
DOC = ROOT / "docs" / "observability.md"


def test_every_statement_of_a_policy_document_is_in_the_table() -> None:
    # Each `self.allow("<Sid>", ...)` writes one statement of a policy's document.
    source = IAM.read_text()
    sids = set(re.findall(r'self\.allow\(\s*"([A-Za-z0-9]+)"', source))
    assert len(sids) >= 25, sids
    table = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    named = {sid for line in table for sid in re.findall(r"`([A-Za-z0-9]+)`", line.split("|")[1])}
    assert sids - named == set(), f"statements missing from docs/observability.md: {sids - named}"
