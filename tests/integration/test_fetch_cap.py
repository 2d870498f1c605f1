"""A cap on fetches per poll: a backlog is read in slices, each loop exactly once, and the
loops left for later hold the watermark."""

from __future__ import annotations

from retraining_operator.aws.session import AwsSession
from retraining_operator.reconcile.ledger import Ledger
from retraining_standins.a2i import FlowDefinition
from retraining_standins.stack import AwsStandins
from support.ingest import poll
from unit.ingest_policies import flow_arn, ingest_spec

OUT = "s3://rtp-test-bucket/out"


def test_a_backlog_is_read_in_capped_slices_exactly_once(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    spec = ingest_spec(output=OUT, flow=flow_arn("fd-test"))
    aws.a2i.add_loops(a2i_flow, 25, interval=1)
    slices = []
    for _ in range(4):
        aws.log.clear()
        result = poll(AwsSession("us-east-1"), spec, clock=aws.clock.now, max_fetches=10)
        reads = [c for c in aws.log.calls("s3", "GetObject") if "output.json" in str(c.params)]
        assert len(reads) <= 10
        slices.append((result.new_samples, result.deferred))
        aws.clock.advance(1)
    assert slices == [(10, 15), (10, 5), (5, 0), (0, 0)]
    ledger = Ledger.from_json(aws.get_object(f"{OUT}/ledger/head.json") or b"")
    assert ledger.totals.samples == 25
    assert sum(segment.samples for segment in ledger.pending) == 25
