"""Shared dataset state, hostile: a ledger owned by another policy (or flow) is refused, and
a forged pending segment is refused when read, before any manifest is written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from retraining_operator.aws.session import AwsSession
from retraining_operator.errors import NeedsAttention
from retraining_operator.reconcile.ledger import Ledger
from retraining_standins.a2i import FlowDefinition
from retraining_standins.stack import AwsStandins
from support.ingest import KEYRING, assemble_run_dataset, poll
from unit.ingest_policies import flow_arn, ingest_spec

BUCKET = "rtp-test-bucket"
OUT = f"s3://{BUCKET}/out"
MINE = {"policyUid": "uid-a", "flowDefinitionArn": flow_arn("fd-test")}


def _ledger(aws: AwsStandins) -> dict[str, Any]:
    body = aws.get_object(f"{OUT}/ledger/head.json")
    assert body is not None
    document: dict[str, Any] = json.loads(body)
    return document


def test_the_ledger_records_its_owner_and_refuses_another(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    spec = ingest_spec(output=OUT, flow=flow_arn("fd-test"))
    aws.a2i.add_loops(a2i_flow, 5)
    assert poll(AwsSession("us-east-1"), spec, clock=aws.clock.now, owner=MINE).new_samples == 5
    assert _ledger(aws)["owner"] == MINE
    # `s3://b/out/` is the same ledger as `s3://b/out`: another policy on it is refused.
    other = ingest_spec(output=OUT + "/", flow=flow_arn("fd-test"))
    thief = {**MINE, "policyUid": "uid-b"}
    with pytest.raises(NeedsAttention) as caught:
        poll(AwsSession("us-east-1"), other, clock=aws.clock.now, owner=thief)
    assert caught.value.reason == "LedgerOwnedElsewhere"
    with pytest.raises(NeedsAttention) as claimed:
        assemble_run_dataset(AwsSession("us-east-1"), other, "r1", clock=aws.clock.now,
                             owner=thief)  # fmt: skip
    assert claimed.value.reason == "LedgerOwnedElsewhere"
    assert Ledger.from_json(aws.get_object(f"{OUT}/ledger/head.json") or b"").runs == []
    # A hostile owner field (not strings) written by someone else: the seal fails first.
    document = _ledger(aws)
    document["owner"] = {"policyUid": ["x"] * 3}
    aws.put_object(f"{OUT}/ledger/head.json", json.dumps(document))
    with pytest.raises(NeedsAttention) as tampered:
        poll(AwsSession("us-east-1"), spec, clock=aws.clock.now, owner=MINE)
    assert tampered.value.reason == "LedgerTampered"
    # Even sealed (a bug, or a stolen key), it is a corrupt ledger, not a traceback.
    _reseal(aws, document)
    with pytest.raises(NeedsAttention) as corrupt:
        poll(AwsSession("us-east-1"), spec, clock=aws.clock.now, owner=MINE)
    assert corrupt.value.reason == "LedgerCorrupt"


@pytest.mark.parametrize("forgery", ["replaced", "appended", "truncated"])
def test_a_forged_pending_segment_is_refused_and_nothing_is_built(
    aws: AwsStandins, a2i_flow: FlowDefinition, forgery: str
) -> None:
    spec = ingest_spec(output=OUT, flow=flow_arn("fd-test"))
    aws.a2i.add_loops(a2i_flow, 6)
    poll(AwsSession("us-east-1"), spec, clock=aws.clock.now, owner=MINE)
    (segment,) = _ledger(aws)["pending"]
    uri = f"{OUT}/pending/{segment['sha256']}.jsonl"
    body = aws.get_object(uri) or b""
    lines = body.splitlines(keepends=True)
    forged = {
        "replaced": lines[0].replace(b"s3://", b"s3://attacker-") + b"".join(lines[1:]),
        "appended": body + lines[0],
        "truncated": b"".join(lines[:-1]),
    }[forgery]
    aws.put_object(uri, forged)
    with pytest.raises(NeedsAttention) as caught:
        assemble_run_dataset(AwsSession("us-east-1"), spec, "r1", clock=aws.clock.now, owner=MINE)
    assert caught.value.reason == "PendingSegmentTampered"
    assert segment["sha256"][:16] in caught.value.message
    writes = ("PutObject", "CreateMultipartUpload")
    written = [c for c in aws.log.calls("s3") if c.operation in writes]
    assert not [c for c in written if "manifests/" in str(c.params)]


@pytest.mark.parametrize("sealed", [False, True])
def test_a_forged_ledger_output_prefix_is_refused_before_any_read(
    aws: AwsStandins, a2i_flow: FlowDefinition, sealed: bool
) -> None:
    spec = ingest_spec(output=OUT, flow=flow_arn("fd-test"))
    aws.a2i.add_loops(a2i_flow, 4)
    poll(AwsSession("us-east-1"), spec, clock=aws.clock.now, owner=MINE)
    document = _ledger(aws)
    assert document["outputPrefix"]  # learned from A2I on the first poll
    aws.a2i.add_loops(a2i_flow, 4)
    # The second poll trusts what the flow definition says, not what the ledger says.
    assert poll(AwsSession("us-east-1"), spec, clock=aws.clock.now, owner=MINE).new_samples == 4
    document = _ledger(aws)
    document["outputPrefix"] = "s3://team-a-bucket/a2i"
    aws.put_object(f"{OUT}/ledger/head.json", json.dumps(document))
    if sealed:  # as if sealed by the operator (the flow definition moved): the guard's turn
        _reseal(aws, document)
    aws.a2i.add_loops(a2i_flow, 4)
    aws.log.clear()
    with pytest.raises(NeedsAttention) as caught:
        poll(AwsSession("us-east-1"), spec, clock=aws.clock.now, owner=MINE)
    if sealed:
        assert caught.value.reason == "LedgerOutputPrefixForeign"
        assert "s3://team-a-bucket/a2i" in caught.value.message
    else:
        assert caught.value.reason == "LedgerTampered"
        assert not aws.log.calls("sagemaker-a2i-runtime")  # not even a listing
    assert not [c for c in aws.log.calls("s3") if "team-a-bucket" in str(c.params)]


def _reseal(aws: AwsStandins, document: dict[str, Any]) -> None:
    """Seal a changed ledger document as the operator would (the test has its key)."""
    document.pop("mac", None)
    document["mac"] = KEYRING.for_policy(MINE["policyUid"]).seal_document(document)
    aws.put_object(f"{OUT}/ledger/head.json", json.dumps(document))
