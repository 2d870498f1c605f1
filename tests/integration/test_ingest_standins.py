"""Ingest and dataset assembly against the AWS stand-ins (A2I emulator + S3 on moto, over HTTP).

Every poll here runs the operator's own code (`workflow.ingest.poll`,
`workflow.dataset.assemble_run_dataset`) with a fresh `AwsSession` where a restart is
meant: nothing survives between polls except what is in S3 (and the status, which the
code does not even need). The emulated clock is manual: it moves only when a test says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.aws.s3 import S3, S3Location
from retraining_operator.aws.session import AwsSession, ClientSettings
from retraining_operator.errors import NeedsAttention, RetryLater
from retraining_operator.flows import dataset as dataset_flow
from retraining_operator.flows.dataset import NothingToTrain, ValidationSource
from retraining_operator.flows.ingest import PollResult
from retraining_operator.flows.ledger_store import LedgerStore
from retraining_operator.manifest.quarantine import redact_identity
from retraining_operator.reconcile.ledger import Ledger
from retraining_standins.a2i import FlowDefinition
from retraining_standins.seed import random_a2i_output
from retraining_standins.stack import AwsStandins
from support.ingest import access, assemble_run_dataset, poll
from unit.ingest_policies import VOC, flow_arn, ingest_spec

BUCKET = "rtp-test-bucket"
OUT = f"s3://{BUCKET}/out"


def _spec(**kw: Any) -> RetrainingPolicySpec:
    return ingest_spec(output=OUT, flow=flow_arn("fd-test"), **kw)


def _poll(aws: AwsStandins, spec: RetrainingPolicySpec, **kw: Any) -> PollResult:
    """One poll as a freshly started operator would run it (new session, new clients)."""
    return poll(AwsSession("us-east-1"), spec, clock=aws.clock.now, **kw)


def _lines(aws: AwsStandins, uri: str) -> list[dict[str, Any]]:
    body = aws.get_object(uri)
    assert body is not None, uri
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


def _loop_of(line: dict[str, Any], attribute: str = "a2i-retraining") -> str:
    job: str = line[f"{attribute}-metadata"]["job-name"]
    assert job.startswith("a2i/")
    return job[4:]


def _ledger(aws: AwsStandins) -> Ledger:
    body = aws.get_object(f"{OUT}/ledger/head.json")
    assert body is not None
    return Ledger.from_json(body)


# -- exactly once ---------------------------------------------------------------------------


def test_thousand_loops_out_of_order_three_polls_with_restarts(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    rng = random.Random(5)
    spec = _spec(lookback="1h", dataset={"validation": {"holdoutPercent": 10}})
    now = aws.clock.now()
    names = [f"loop-{i:04d}" for i in range(1000)]
    for i, name in enumerate(names):  # created over the last 3 hours, 3 lookbacks
        created = now - timedelta(seconds=3 * 3600 - i * 10.8)
        aws.a2i.add_loop(a2i_flow, name, status="InProgress", created=created)
    order = names[:]
    rng.shuffle(order)  # humans finish in any order, many long after the lookback
    waves = [order[:400], order[400:750], order[750:]]
    failed = set(waves[2][:20])
    a2i = aws.client("sagemaker-a2i-runtime")

    def finish(wave: list[str]) -> None:
        for name in wave:
            if name in failed:
                aws.a2i.fail_loop(name)
            else:
                aws.a2i.complete_loop(name)

    finish(waves[0])
    first = _poll(aws, spec)
    assert first.new_samples == 400
    assert first.in_progress == 600
    assert first.status.pending_samples == 400
    # The watermark may not pass the oldest loop still in progress.
    oldest_open = min(aws.a2i.loop(n).created for n in waves[1] + waves[2])
    assert first.status.watermark is not None
    assert first.status.watermark <= oldest_open

    aws.clock.advance(2 * 3600)  # two lookbacks later: the open loops are "old" now
    finish(waves[1])
    for name in waves[2][20:40]:  # stopped by a person
        a2i.stop_human_loop(HumanLoopName=name)
    second = _poll(aws, spec)  # restarted operator: new session, state from S3 only
    assert second.new_samples == 350
    assert second.failed_loops == 20
    assert second.status.ingested_loops == 750
    run1 = assemble_run_dataset(AwsSession("us-east-1"), spec, "r1", clock=aws.clock.now)
    assert run1.samples.new == 750

    aws.clock.advance(5 * 3600)
    stopped = set(waves[2][20:40])
    finish([name for name in waves[2] if name not in stopped])
    third = _poll(aws, spec)
    assert third.new_samples == 1000 - 750 - 20 - 20
    assert third.failed_loops == 20
    assert third.in_progress == 0
    # A crash after the claim and a retry: the same run id gives the same manifests.
    run2 = assemble_run_dataset(AwsSession("us-east-1"), spec, "r2", clock=aws.clock.now)
    again = assemble_run_dataset(AwsSession("us-east-1"), spec, "r2", clock=aws.clock.now)
    assert again == run2
    idle = _poll(aws, spec)
    assert (idle.new_samples, idle.quarantined, idle.failed_loops) == (0, 0, 0)

    seen: list[str] = []
    for run in (run1, run2):
        assert run.validation_source is ValidationSource.HOLDOUT
        train = _lines(aws, run.train_manifest_s3_uri)
        validation = _lines(aws, run.validation_manifest_s3_uri)
        assert len(train) == run.num_training_samples
        assert len(validation) == run.samples.validation
        assert not {line["source-ref"] for line in train} & {
            line["source-ref"] for line in validation
        }
        seen += [_loop_of(line) for line in train + validation]
    completed = set(names) - failed - stopped
    assert len(seen) == len(set(seen)), "a loop entered two datasets"
    assert set(seen) == completed, "a completed loop was lost"
    status = idle.status
    assert status.ingested_loops == len(completed)
    assert status.failed_loops == 40
    assert status.pending_samples == 0
    assert len(json.dumps(status.to_wire())) < 1000  # small: counters, never loop names


def test_concurrent_polls_still_ingest_each_loop_once(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    aws.a2i.add_loops(a2i_flow, 60, interval=5)
    aws.faults.delay("s3", "PutObject", seconds=0.05)  # widen the race window
    spec = _spec()
    results: list[PollResult] = []
    threads = [
        threading.Thread(target=lambda: results.append(_poll(aws, spec, concurrency=4)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The polls really raced: conditional ledger writes lost, were re-read and re-applied.
    assert any(call.status == 412 for call in aws.log.calls("s3", "PutObject"))
    assert sum(result.new_samples for result in results) == 60
    ledger = _ledger(aws)
    assert ledger.totals.samples == 60
    lines = [
        _loop_of(line)
        for segment in ledger.pending
        for line in _lines(aws, f"{OUT}/pending/{segment.sha256}.jsonl")
    ]
    assert sorted(lines) == sorted(loop.name for loop in aws.a2i.loops())


def test_unreadable_output_is_retried_next_poll_and_holds_the_watermark(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    loops = aws.a2i.add_loops(a2i_flow, 5, interval=60)
    spec = _spec()
    session = AwsSession(
        "us-east-1", settings=ClientSettings(max_attempts=1)
    )  # botocore: 1 retry, 2 attempts
    armed: list[bool] = []

    def clock() -> Any:
        # The poll reads its clock once the ledger is loaded; from then on, the next
        # GetObject (the first output) fails on both attempts the client makes.
        if not armed:
            armed.append(True)
            aws.faults.fail("s3", "GetObject", times=2)
        return aws.clock.now()

    first = poll(session, spec, clock=clock, concurrency=1)
    assert first.fetch_errors == 1
    assert first.new_samples == 4
    assert "InternalError" in first.errors[0]
    assert first.status.in_progress_loops == 1
    assert first.status.watermark == loops[0].created  # held by the unread loop
    aws.clock.advance(3600)
    second = _poll(aws, spec)
    assert second.new_samples == 1
    assert second.status.ingested_loops == 5


def test_listing_failure_fails_the_poll_without_changing_state(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    from retraining_operator.flows.ingest import IngestRetry

    aws.a2i.add_loops(a2i_flow, 3)
    aws.faults.throttle("sagemaker-a2i-runtime", "ListHumanLoops")
    with pytest.raises(IngestRetry, match="ListHumanLoops") as caught:
        poll(
            AwsSession("us-east-1", settings=ClientSettings(max_attempts=1)),
            _spec(),
            clock=aws.clock.now,
        )
    assert isinstance(caught.value, RetryLater)  # AWS throttling: the class decides
    assert aws.get_object(f"{OUT}/ledger/head.json") is None
    aws.faults.clear()
    assert _poll(aws, _spec()).new_samples == 3


# -- quarantine -----------------------------------------------------------------------------


def _valid(flow: FlowDefinition, name: str, **kw: Any) -> dict[str, Any]:
    return random_a2i_output(
        flow_definition_arn=flow.arn,
        human_loop_name=name,
        task_object=f"s3://{BUCKET}/images/{name}.jpg",
        classes=VOC,
        rng=random.Random(name),
        **kw,
    )


def _result(document: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = document["humanAnswers"][0]["answerContent"]["annotatedResult"]
    return answer


def _broken(flow: FlowDefinition) -> dict[str, tuple[bytes | dict[str, Any], str]]:
    cases: dict[str, tuple[bytes | dict[str, Any], str]] = {}
    cases["bad-json"] = (b'{"humanLoopName": "bad-json", "humanAn', "InvalidJson")
    doc = _valid(flow, "missing-field")
    del doc["inputContent"]["taskObject"]
    cases["missing-field"] = (doc, "MissingField")
    doc = _valid(flow, "no-answers")
    doc["humanAnswers"] = []
    cases["no-answers"] = (doc, "NoAnswers")
    doc = _valid(flow, "unknown-label")
    _result(doc)["boundingBoxes"].append(
        {"label": "unicorn", "left": 1, "top": 1, "width": 2, "height": 2}
    )
    cases["unknown-label"] = (doc, "UnknownLabel")
    doc = _valid(flow, "outside")
    image = _result(doc)["inputImageProperties"]
    _result(doc)["boundingBoxes"].append(
        {"label": "cat", "left": image["width"] - 5, "top": 0, "width": 10, "height": 5}
    )
    cases["outside"] = (doc, "BoxOutsideImage")
    doc = _valid(flow, "zero-size")
    _result(doc)["boundingBoxes"].append(
        {"label": "cat", "left": 1, "top": 1, "width": 0, "height": 5}
    )
    cases["zero-size"] = (doc, "NonPositiveSize")
    doc = _valid(flow, "not-a-number")
    _result(doc)["boundingBoxes"].append(
        {"label": "cat", "left": "12px", "top": 1, "width": 3, "height": 5}
    )
    cases["not-a-number"] = (doc, "NonNumeric")
    return cases


def test_broken_outputs_are_quarantined_counted_and_kept(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    cases = _broken(a2i_flow)
    for name, (output, _) in cases.items():
        aws.a2i.add_loop(a2i_flow, name, output=output)
    aws.a2i.add_loops(a2i_flow, 10)
    gone = aws.a2i.add_loop(a2i_flow, "output-deleted")
    assert gone.output_uri is not None
    bucket, key = gone.output_uri[5:].split("/", 1)
    aws.admin_client("s3").delete_object(Bucket=bucket, Key=key)

    result = _poll(aws, _spec())
    assert result.new_samples == 10
    assert result.quarantined == len(cases) + 1
    assert result.status.quarantined_samples == len(cases) + 1
    assert sum(result.quarantined_by_reason.values()) == len(cases) + 1
    assert result.quarantined_by_reason["OutputMissing"] == 1
    reasons = {note.loop_name: str(note.reason) for note in result.quarantine}
    assert reasons == {
        **{name: reason for name, (_, reason) in cases.items()},
        "output-deleted": "OutputMissing",
    }
    for name, (output, reason) in cases.items():
        record = json.loads(aws.get_object(f"{OUT}/quarantine/{name}.json") or b"")
        assert record["reason"] == reason
        assert record["humanLoopName"] == name
        assert record["detail"]
        raw = output if isinstance(output, bytes) else json.dumps(output).encode()
        # kept for a person to fix, without the workers' identity data
        assert record["raw"] == redact_identity(raw.decode())
    message = result.event_message()
    assert message is not None
    assert message.startswith(f"Quarantined {len(cases) + 1} A2I output(s)")
    assert f"{OUT}/quarantine/" in message
    # Quarantined loops are settled: the next poll neither refetches nor recounts them.
    aws.log.clear()
    again = _poll(aws, _spec())
    assert again.quarantined == 0
    assert again.status.quarantined_samples == len(cases) + 1
    assert not aws.log.calls("s3", "GetObject")[1:]  # only the ledger read


def test_drop_mode_drops_only_the_box_and_says_so(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    doc = _valid(a2i_flow, "with-unicorn")
    kept = len(_result(doc)["boundingBoxes"])
    _result(doc)["boundingBoxes"].insert(
        0, {"label": "unicorn", "left": 1, "top": 1, "width": 2, "height": 2}
    )
    aws.a2i.add_loop(a2i_flow, "with-unicorn", output=doc)
    result = _poll(aws, _spec(labels={"unknownLabel": "Drop"}))
    assert result.new_samples == 1
    assert result.dropped_boxes == 1
    assert result.quarantined == 0
    (line,) = _lines(aws, result.segments[0])
    assert len(line["a2i-retraining"]["annotations"]) == kept
    assert _ledger(aws).totals.dropped_boxes == 1
    assert result.event_message() == (
        "Dropped 1 bounding box(es) whose label is not in spec.labels.classes (unknownLabel: Drop)"
    )


# -- dataset assembly -----------------------------------------------------------------------


def test_assembly_with_replay_validation_manifest_and_multipart(
    aws: AwsStandins, a2i_flow: FlowDefinition, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_base = {
        "validation": {"manifestS3Uri": f"s3://{BUCKET}/voc/validation.manifest"},
        "replay": {"manifestS3Uri": f"s3://{BUCKET}/voc/train.manifest", "samplesPerNewSample": 3},
    }
    spec = _spec(dataset=spec_base)
    # An original training manifest under another attribute name, as Ground Truth writes it.
    old = []
    for i in range(320):
        document = {
            "source-ref": f"s3://{BUCKET}/voc/{i:05d}.jpg",
            "bounding-box": {
                "annotations": [
                    {"class_id": i % 20, "left": 1, "top": 2, "width": 30, "height": 40}
                ],
                "image_size": [{"width": 500, "height": 375, "depth": 3}],
            },
            "bounding-box-metadata": {
                "type": "groundtruth/object-detection",
                "class-map": {str(k): name for k, name in enumerate(VOC)},
                "padding": "x" * 20_000,  # ~20 KB per line: the train manifest goes multipart
            },
        }
        old.append(json.dumps(document))
    aws.put_object(f"s3://{BUCKET}/voc/train.manifest", "\n".join([*old, "not json"]) + "\n")
    aws.put_object(f"s3://{BUCKET}/voc/validation.manifest", "\n".join(old[:7]) + "\n")
    aws.a2i.add_loops(a2i_flow, 100, interval=1)
    assert _poll(aws, spec).new_samples == 100

    session = AwsSession("us-east-1")
    monkeypatch.setattr(dataset_flow, "PART_SIZE", 5 << 20)
    dataset = assemble_run_dataset(session, spec, "r1", clock=aws.clock.now)
    assert dataset.validation_source is ValidationSource.MANIFEST
    assert dataset.validation_manifest_s3_uri == f"s3://{BUCKET}/voc/validation.manifest"
    assert dataset.samples.validation == 7
    assert dataset.samples.new == 100
    assert dataset.samples.replay == 300
    assert dataset.replay_skipped == 1
    assert dataset.samples.train == 400 == dataset.num_training_samples
    assert any(c.operation == "UploadPart" for c in aws.log.calls("s3"))
    train = _lines(aws, dataset.train_manifest_s3_uri)
    assert len(train) == 400
    assert all(
        set(line) == {"source-ref", "a2i-retraining", "a2i-retraining-metadata"} for line in train
    )
    # Every new line is followed by its three replay lines.
    assert ["voc/" in line["source-ref"] for line in train[:8]] == [False, True, True, True] * 2
    digest = dataset.train_manifest_s3_uri.rsplit("/", 1)[-1].removesuffix(".jsonl")
    assert (
        hashlib.sha256(aws.get_object(dataset.train_manifest_s3_uri) or b"").hexdigest() == digest
    )
    assert not list(S3(session.s3()).list(S3Location.parse(f"{OUT}/staging/")))
    with pytest.raises(NothingToTrain):
        assemble_run_dataset(session, spec, "r2", clock=aws.clock.now)


def test_missing_replay_manifest_is_a_clear_permanent_error(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    spec = _spec(
        dataset={"replay": {"manifestS3Uri": f"s3://{BUCKET}/voc/nope.manifest"}},
    )
    aws.a2i.add_loops(a2i_flow, 3)
    _poll(aws, spec)
    with pytest.raises(NeedsAttention, match=r"nope\.manifest") as caught:
        assemble_run_dataset(AwsSession("us-east-1"), spec, "r1", clock=aws.clock.now)
    assert caught.value.reason == "DatasetUnavailable"


def test_ledger_store_detects_a_concurrent_writer(aws: AwsStandins, aws_bucket: str) -> None:
    s3 = S3(AwsSession("us-east-1").s3())
    first, second = LedgerStore(s3, OUT, access()), LedgerStore(s3, OUT, access())
    first.load()
    second.load()
    first.update(lambda ledger: ledger.advance(aws.clock.now(), None))
    calls: list[int] = []

    def change(ledger: Ledger) -> None:
        calls.append(1)
        ledger.output_prefix = "s3://x/y"

    second.update(change)
    assert len(calls) == 2  # the first attempt lost the race and was re-applied
    final = _ledger(aws)
    assert final.watermark == aws.clock.now()
    assert final.output_prefix == "s3://x/y"


# -- no input can wedge a poll (issue 13) ----------------------------------------------------

HUGE_BYTES = 60 * 1024 * 1024


def _huge_output(name: str) -> bytes:
    return b'{"humanLoopName": "' + name.encode() + b'", "pad": "' + b"a" * HUGE_BYTES + b'"}'


def test_poisoned_outputs_are_quarantined_and_the_batch_goes_on(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    good = aws.a2i.add_loops(a2i_flow, 5, interval=1)
    depth = 100_000
    deep = b'{"humanLoopName": "deep", "x": ' + b"[" * depth + b"]" * depth + b"}"
    big_int = json.dumps(_valid(a2i_flow, "big-int")).replace(
        '"width": ', '"width": ' + "9" * 5000, 1
    )
    bom = b"\xef\xbb\xbf" + json.dumps(_valid(a2i_flow, "bom")).encode()
    aws.a2i.add_loop(a2i_flow, "deep", output=deep)
    aws.a2i.add_loop(a2i_flow, "big-int", output=big_int.encode())
    huge = aws.a2i.add_loop(a2i_flow, "huge", output=_huge_output("huge"))
    aws.a2i.add_loop(a2i_flow, "bom", output=bom)

    result = _poll(aws, _spec())
    assert result.new_samples == 6  # the five good loops, and the BOM one (accepted)
    assert result.fetch_errors == 0
    reasons = {note.loop_name: str(note.reason) for note in result.quarantine}
    assert reasons == {"deep": "TooDeep", "big-int": "NumberTooLarge", "huge": "OutputTooLarge"}
    assert result.status.watermark == aws.clock.now()  # nothing holds it back
    assert result.status.in_progress_loops == 0
    ingested = {_loop_of(line) for uri in result.segments for line in _lines(aws, uri)}
    assert ingested == {loop.name for loop in good} | {"bom"}
    record = json.loads(aws.get_object(f"{OUT}/quarantine/huge.json") or b"")
    assert record["size"] == len(_huge_output("huge"))
    assert record["etag"]
    assert record["source"] == huge.output_uri
    assert "raw" not in record
    assert "rawBase64" not in record
    # Settled: the next poll fetches nothing again.
    aws.log.clear()
    again = _poll(aws, _spec())
    assert (again.new_samples, again.quarantined, again.fetch_errors) == (0, 0, 0)
    assert not aws.log.calls("s3", "GetObject")[1:]


def test_a_loop_that_cannot_be_read_is_quarantined_after_three_polls(
    aws: AwsStandins, a2i_flow: FlowDefinition
) -> None:
    lost = aws.a2i.add_loop(a2i_flow, "no-output")
    aws.a2i.add_loops(a2i_flow, 2, interval=1)
    # A2I calls it Completed but names no output (and there is none at the usual key).
    assert lost.output_uri is not None
    bucket, key = lost.output_uri[5:].split("/", 1)
    aws.admin_client("s3").delete_object(Bucket=bucket, Key=key)
    aws.a2i.loop("no-output").output_uri = None
    spec = _spec()

    for attempt in (1, 2):
        result = _poll(aws, spec)
        assert result.fetch_errors == 1
        assert f"attempt {attempt} of 3" in result.errors[0]
        assert result.status.watermark == lost.created  # held while attempts remain
        message = result.fetch_error_message()
        assert message is not None
        assert "Could not read 1 A2I output(s)" in message
        assert _ledger(aws).fetch_attempts("no-output") == attempt  # survives restarts
        aws.clock.advance(600)
    third = _poll(aws, spec)
    assert third.fetch_errors == 0
    assert [(n.loop_name, str(n.reason)) for n in third.quarantine] == [
        ("no-output", "FetchFailed")
    ]
    assert third.status.watermark == aws.clock.now()  # no longer pinned
    ledger = _ledger(aws)
    assert ledger.outcome("no-output") == "Q"
    assert ledger.fetch_failures == {}
    assert ledger.totals.samples == 2


_MEMORY_CHILD = """
import json, resource, sys
from pathlib import Path
from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.aws.session import AwsSession, ClientSettings
from support.ingest import poll

def vm_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)

spec = RetrainingPolicySpec.model_validate(json.loads(sys.argv[1]))
session = AwsSession("us-east-1", settings=ClientSettings(pool=16))
session.s3().list_buckets()  # clients built and connected, as in a running operator
session.a2i()
Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS: the poll's own peak
before = vm_kb("VmRSS")
result = poll(session, spec, concurrency=16)
print(json.dumps({"before_kb": before, "peak_kb": vm_kb("VmHWM"),
                  "new": result.new_samples, "quarantined": result.quarantined,
                  "reasons": dict(result.quarantined_by_reason)}))
"""


def _poll_peak_in_child(spec: RetrainingPolicySpec) -> dict[str, Any]:
    import subprocess
    import sys

    tests = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, json.dumps(spec.to_wire())],
        env={**os.environ, "PYTHONPATH": tests},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def test_a_poll_over_huge_outputs_peaks_like_a_poll_over_small_ones(
    aws: AwsStandins, a2i_flow: FlowDefinition, aws_bucket: str
) -> None:
    """Four 60 MB outputs are refused by their headers: the poll's peak RSS stays put."""
    small_flow = aws.a2i.create_flow_definition("fd-small", f"s3://{aws_bucket}/a2i-small")
    for i in range(4):
        aws.a2i.add_loop(small_flow, f"small-{i}", output=f'{{"humanLoopName": "small-{i}"}}')
        aws.a2i.add_loop(a2i_flow, f"huge-{i}", output=_huge_output(f"huge-{i}"))
    small = _poll_peak_in_child(
        ingest_spec(output=f"s3://{aws_bucket}/small", flow=flow_arn("fd-small"))
    )
    huge = _poll_peak_in_child(_spec())
    assert small["quarantined"] == 4
    assert huge["reasons"] == {"OutputTooLarge": 4}
    growth_mb = (huge["peak_kb"] - small["peak_kb"]) / 1024
    print(
        f"poll peak RSS: small outputs {small['peak_kb'] / 1024:.1f} MB, four 60 MB outputs "
        f"{huge['peak_kb'] / 1024:.1f} MB (difference {growth_mb:+.1f} MB)"
    )
    assert growth_mb <= 64
