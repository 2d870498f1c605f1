"""Verified input (issue 27): an event, a file under the dataset prefix and a ledger are claims.

Each test plays a hostile tenant against the operator's own ingest code on the stand-ins:
someone who can send to the queue, or write under a policy's dataset prefix. On the code
before issue 27 each of them changed what trains; here none does, and the loops' real
answers still count.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from retraining_operator.api import IngestStatus
from retraining_operator.aws.session import AwsSession
from retraining_operator.errors import NeedsAttention
from retraining_operator.reconcile.events import LoopEvent
from retraining_operator.reconcile.ledger import Ledger
from retraining_standins.a2i import FlowDefinition
from retraining_standins.seed import a2i_output_uri, random_a2i_output
from retraining_standins.stack import AwsStandins
from support.ingest import KEYRING, assemble_run_dataset, poll, settle_events
from unit.ingest_policies import ACCOUNT, flow_arn, ingest_spec

BUCKET = "rtp-test-bucket"
OUT = f"s3://{BUCKET}/out"
MINE = {"policyUid": "uid-a", "flowDefinitionArn": flow_arn("fd-test")}


def _spec() -> Any:
    return ingest_spec(
        output=OUT,
        flow=flow_arn("fd-test"),
        dataset={"minNewSamples": 1, "validation": {"allowTrainAsValidation": True}},
    )


def _event(name: str, status: str, created: datetime, output: str | None = None) -> LoopEvent:
    return LoopEvent(
        name=name,
        status=status,
        created=created,
        flow_definition_arn=flow_arn("fd-test"),
        output_s3_uri=output,
        failure_reason=None,
        account=ACCOUNT,
        region="us-east-1",
    )


def _settle(aws: AwsStandins, *events: LoopEvent) -> Any:
    return settle_events(
        AwsSession("us-east-1"), _spec(), events, previous=IngestStatus(), clock=aws.clock.now,
        owner=MINE,
    )  # fmt: skip


def _ledger(aws: AwsStandins) -> Ledger:
    return Ledger.from_json(aws.get_object(f"{OUT}/ledger/head.json") or b"")


def _a2i_calls(aws: AwsStandins) -> list[Any]:
    return aws.log.calls("sagemaker-a2i-runtime")


# -- an event is a hint to look, never a fact -------------------------------------------------


def test_a_forged_failed_event_for_a_loop_under_review_records_nothing(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    loop = aws.a2i.add_loop(a2i_flow, "real-1", status="InProgress")
    forged = _settle(aws, _event("real-1", "Failed", loop.created))
    assert "real-1" in forged.unsettled  # A2I says InProgress: the message comes back later
    assert "real-1" not in forged.settled
    ledger = _ledger(aws) if aws.get_object(f"{OUT}/ledger/head.json") else Ledger()
    assert ledger.outcome("real-1") is None
    assert ledger.totals.failed_loops == 0
    # The reviewer's real answer still counts, from its genuine event ...
    uri = aws.a2i.complete_loop("real-1")
    genuine = _settle(aws, _event("real-1", "Completed", loop.created, uri))
    assert genuine.result.new_samples == 1
    assert "real-1" in genuine.settled
    # ... and a replayed forgery of its failure changes nothing any more.
    again = _settle(aws, _event("real-1", "Stopped", loop.created))
    assert again.result.failed_loops == 0
    assert _ledger(aws).totals.samples == 1


def test_forged_events_dated_far_ahead_leave_nothing_in_the_ledger(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    poll(AwsSession("us-east-1"), _spec(), clock=aws.clock.now, owner=MINE)  # a ledger exists
    before = aws.get_object(f"{OUT}/ledger/head.json")
    year_2099 = datetime(2099, 1, 1, tzinfo=UTC)
    forged = [_event(f"forged-{i}", "Failed", year_2099) for i in range(1000)]
    aws.log.clear()
    result = _settle(aws, *forged)
    assert aws.get_object(f"{OUT}/ledger/head.json") == before  # the ledger did not grow
    assert result.dropped == {"FutureCreation": 1000}
    assert len(result.settled) == 1000  # their messages are deleted, not kept forever
    assert not _a2i_calls(aws)  # not even a question to A2I


def test_a_forged_completed_event_for_a_loop_that_never_existed_trains_nothing(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    aws.a2i.add_loops(a2i_flow, 3)
    poll(AwsSession("us-east-1"), _spec(), clock=aws.clock.now, owner=MINE)
    created = aws.clock.now() - timedelta(minutes=5)
    forged: list[LoopEvent] = []
    for i in range(3):
        name = f"ghost-{i}"
        uri = a2i_output_uri(a2i_flow.output_path, a2i_flow.name, name, created)
        output = random_a2i_output(
            flow_definition_arn=a2i_flow.arn,
            human_loop_name=name,
            task_object=f"s3://{BUCKET}/attacker/{name}.jpg",
            rng=i,
        )
        aws.put_object(uri, json.dumps(output))  # planted where A2I would have written it
        forged.append(_event(name, "Completed", created, uri))
    aws.log.clear()
    result = _settle(aws, *forged)
    assert result.result.new_samples == 0
    assert result.dropped == {"UnknownLoop": 3}
    assert not [c for c in aws.log.calls("s3", "GetObject") if "ghost-" in str(c.params)]
    assert _ledger(aws).totals.samples == 3  # the three genuine loops only


def test_events_are_confirmed_a_listing_page_at_a_time_not_one_call_each(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    loops = aws.a2i.add_loops(a2i_flow, 150, interval=1)
    aws.log.clear()
    result = _settle(aws, *(_event(loop.name, "Completed", loop.created) for loop in loops))
    assert result.result.new_samples == 150
    assert result.confirmations == 2  # two listing pages confirm 150 loops
    assert not aws.log.calls("sagemaker-a2i-runtime", "DescribeHumanLoop")[1:]


def test_the_event_settle_refuses_another_policys_ledger(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    aws.a2i.add_loops(a2i_flow, 2)
    poll(AwsSession("us-east-1"), _spec(), clock=aws.clock.now, owner=MINE)
    before = aws.get_object(f"{OUT}/ledger/head.json")
    loop = aws.a2i.add_loop(a2i_flow, "theirs-1")
    thief = {**MINE, "policyUid": "uid-b"}
    with pytest.raises(NeedsAttention) as caught:
        settle_events(
            AwsSession("us-east-1"), _spec(), [_event("theirs-1", "Completed", loop.created)],
            previous=IngestStatus(), clock=aws.clock.now, owner=thief,
        )  # fmt: skip
    assert caught.value.reason == "LedgerOwnedElsewhere"
    assert aws.get_object(f"{OUT}/ledger/head.json") == before


def test_a_forged_ledger_output_prefix_and_an_event_read_nothing_foreign(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    aws.a2i.add_loops(a2i_flow, 2)
    poll(AwsSession("us-east-1"), _spec(), clock=aws.clock.now, owner=MINE)
    aws.create_bucket("team-a-bucket")
    document = json.loads(aws.get_object(f"{OUT}/ledger/head.json") or b"{}")
    document["outputPrefix"] = "s3://team-a-bucket/a2i"
    aws.put_object(f"{OUT}/ledger/head.json", json.dumps(document))
    loop = aws.a2i.add_loop(a2i_flow, "next-1")
    aws.log.clear()
    with pytest.raises(NeedsAttention) as caught:
        _settle(aws, _event("next-1", "Completed", loop.created))
    assert caught.value.reason == "LedgerTampered"
    assert not [c for c in aws.log.calls("s3") if "team-a-bucket" in str(c.params)]


# -- a file under the dataset prefix is data only if the operator wrote it -------------------


def _forged_segment(lines: int) -> tuple[bytes, str]:
    good = random_a2i_output(
        flow_definition_arn=flow_arn("fd-test"),
        human_loop_name="forged",
        task_object=f"s3://{BUCKET}/attacker/x.jpg",
        rng=7,
    )
    line = json.dumps(
        {
            "source-ref": good["inputContent"]["taskObject"],
            "a2i-retraining": {
                "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 5, "height": 5}],
                "image_size": [{"width": 50, "height": 50, "depth": 3}],
            },
        }
    )
    body = "".join(f"{line}\n" for _ in range(lines)).encode()
    return body, hashlib.sha256(body).hexdigest()


def test_a_planted_segment_listed_in_the_ledger_is_never_trained(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    aws.a2i.add_loops(a2i_flow, 4)
    poll(AwsSession("us-east-1"), _spec(), clock=aws.clock.now, owner=MINE)
    body, digest = _forged_segment(500)
    aws.put_object(f"{OUT}/pending/{digest}.jsonl", body)  # named by its own sha256
    document = json.loads(aws.get_object(f"{OUT}/ledger/head.json") or b"{}")
    document["pending"].append(
        {"sha256": digest, "samples": 500, "loops": 500, "addedAt": "2026-01-01T00:00:00+00:00"}
    )
    aws.put_object(f"{OUT}/ledger/head.json", json.dumps(document))
    with pytest.raises(NeedsAttention) as caught:
        assemble_run_dataset(AwsSession("us-east-1"), _spec(), "r1", clock=aws.clock.now,
                             owner=MINE)  # fmt: skip
    assert caught.value.reason == "PendingSegmentTampered"
    assert digest[:16] in caught.value.message
    with pytest.raises(NeedsAttention) as polled:
        poll(AwsSession("us-east-1"), _spec(), clock=aws.clock.now, owner=MINE)
    assert polled.value.reason == "PendingSegmentTampered"
    written = [c for c in aws.log.calls("s3", "PutObject") if "manifests/" in str(c.params)]
    assert not written


def test_a_planted_segment_without_a_ledger_entry_is_never_read(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    aws.a2i.add_loops(a2i_flow, 4)
    poll(AwsSession("us-east-1"), _spec(), clock=aws.clock.now, owner=MINE)
    body, digest = _forged_segment(500)
    aws.put_object(f"{OUT}/pending/{digest}.jsonl", body)
    built = assemble_run_dataset(
        AwsSession("us-east-1"), _spec(), "r1", clock=aws.clock.now, owner=MINE
    )
    assert built.samples.new == 4
    assert not [c for c in aws.log.calls("s3", "GetObject") if digest in str(c.params)]


def test_a_garbage_line_in_a_sealed_segment_is_tampering_not_an_internal_error(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    """Defense in depth: even a segment entry sealed with the key (a stolen key, a bug) whose
    lines are not manifest lines is refused as tampered, never trained, never a traceback."""
    aws.a2i.add_loops(a2i_flow, 2)
    poll(AwsSession("us-east-1"), _spec(), clock=aws.clock.now, owner=MINE)
    body = b"this is not json\n"
    digest = hashlib.sha256(body).hexdigest()
    aws.put_object(f"{OUT}/pending/{digest}.jsonl", body)
    document = json.loads(aws.get_object(f"{OUT}/ledger/head.json") or b"{}")
    sealer = KEYRING.for_policy(MINE["policyUid"])
    document["pending"].append(
        {
            "sha256": digest,
            "samples": 1,
            "loops": 1,
            "addedAt": "2026-01-01T00:00:00+00:00",
            "mac": sealer.seal_segment(digest, 1, 1),
        }
    )
    document.pop("mac", None)
    document["mac"] = sealer.seal_document(document)
    aws.put_object(f"{OUT}/ledger/head.json", json.dumps(document))
    with pytest.raises(NeedsAttention) as caught:
        assemble_run_dataset(AwsSession("us-east-1"), _spec(), "r1", clock=aws.clock.now,
                             owner=MINE)  # fmt: skip
    assert caught.value.reason == "PendingSegmentTampered"


def test_a_ledger_rolled_back_to_an_older_sealed_copy_is_refused(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    aws.a2i.add_loops(a2i_flow, 2)
    first = poll(AwsSession("us-east-1"), _spec(), clock=aws.clock.now, owner=MINE)
    old = aws.get_object(f"{OUT}/ledger/head.json") or b""
    built = assemble_run_dataset(
        AwsSession("us-east-1"), _spec(), "r1", clock=aws.clock.now, owner=MINE
    )
    assert built.samples.new == 2
    assert built.pending_after is not None
    known = first.status.model_copy(update={"ledger_revision": built.pending_after[2]})
    aws.put_object(f"{OUT}/ledger/head.json", old)  # its samples would train a second time
    with pytest.raises(NeedsAttention) as caught:
        poll(AwsSession("us-east-1"), _spec(), clock=aws.clock.now, owner=MINE, known=known)
    assert caught.value.reason == "LedgerRolledBack"


def test_an_unsealed_ledger_is_adopted_only_by_the_policy_that_wrote_it(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    aws.a2i.add_loops(a2i_flow, 3)
    first = poll(AwsSession("us-east-1"), _spec(), clock=aws.clock.now, owner=MINE)
    # As an operator before sealing wrote it: version 1, no seals.
    document = json.loads(aws.get_object(f"{OUT}/ledger/head.json") or b"{}")
    document.update(version=1)
    document.pop("mac")
    document.pop("revision")
    for segment in document["pending"]:
        segment.pop("mac")
    aws.put_object(f"{OUT}/ledger/head.json", json.dumps(document))
    # A policy with no record of it (a planted ledger): refused.
    with pytest.raises(NeedsAttention) as caught:
        poll(AwsSession("us-east-1"), _spec(), clock=aws.clock.now, owner=MINE)
    assert caught.value.reason == "LedgerTampered"
    # The policy whose status shows it ingested there before sealing: adopted, sealed at once.
    before_sealing = first.status.model_copy(update={"ledger_revision": None})
    adopted = poll(
        AwsSession("us-east-1"), _spec(), clock=aws.clock.now, owner=MINE, known=before_sealing
    )
    assert adopted.status.pending_samples == 3
    stored = json.loads(aws.get_object(f"{OUT}/ledger/head.json") or b"{}")
    assert stored["version"] == 2
    assert stored["mac"]
    assert all(segment["mac"] for segment in stored["pending"])
