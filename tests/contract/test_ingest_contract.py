"""AWS contract of ingest and dataset assembly: botocore `Stubber` with `expected_params`.

Stubber validates every request against the real service models (A2I runtime, S3) and
`expected_params` pins what we send: MaxResults 100 and CreationTimeAfter on
ListHumanLoops, conditional writes (If-None-Match / If-Match) on the ledger, put-if-absent
on content-addressed objects, the multipart sequence of a large manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from retraining_operator.aws import a2i
from retraining_operator.aws.errors import NotFound, Throttled
from retraining_operator.aws.s3 import S3, S3Location, WriteConflict
from retraining_operator.aws.session import AwsSession
from retraining_operator.flows.sinks import S3LineSink
from retraining_operator.manifest.convert import Converter
from retraining_operator.reconcile.ledger import Ledger
from support.ingest import KEYRING, assemble_run_dataset, poll
from unit.ingest_policies import VOC, flow_arn, ingest_spec

FLOW = flow_arn()
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def session() -> AwsSession:
    base = boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        # A fresh botocore session: boto3 adds S3 transfer methods to a session's S3 client
        # class once per boto3.Session, so a shared one cannot make a second S3 client.
        botocore_session=botocore.session.get_session(),
    )
    return AwsSession("us-east-1", base=base)


@pytest.fixture
def a2i_stub(session: AwsSession) -> Iterator[Stubber]:
    with Stubber(session.a2i()) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def sm_stub(session: AwsSession) -> Iterator[Stubber]:
    with Stubber(session.sagemaker()) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


# The seal tests' ledgers carry: the process's ledger key, for a policy without an owner.
SEALER = KEYRING.for_policy("")


@pytest.fixture
def s3_stub(session: AwsSession) -> Iterator[Stubber]:
    with Stubber(session.s3()) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def _body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def _summary(name: str, status: str = "Completed", created: datetime = T0) -> dict[str, Any]:
    return {
        "HumanLoopName": name,
        "HumanLoopStatus": status,
        "CreationTime": created,
        "FlowDefinitionArn": FLOW,
    }


def _output(name: str, label: str = "cat") -> bytes:
    return json.dumps(
        {
            "humanLoopName": name,
            "inputContent": {"taskObject": f"s3://images/{name}.jpg"},
            "humanAnswers": [
                {
                    "submissionTime": "2026-03-01T12:05:00.000Z",
                    "answerContent": {
                        "annotatedResult": {
                            "inputImageProperties": {"width": 500, "height": 375},
                            "boundingBoxes": [
                                {"label": label, "left": 1, "top": 2, "width": 30, "height": 40}
                            ],
                        }
                    },
                }
            ],
        }
    ).encode()


# -- gateways -------------------------------------------------------------------------------


def test_list_human_loops_pages_with_max_results_and_window(
    session: AwsSession, a2i_stub: Stubber
) -> None:
    after = T0 - timedelta(hours=24)
    base = {"FlowDefinitionArn": FLOW, "SortOrder": "Ascending", "MaxResults": 100}
    a2i_stub.add_response(
        "list_human_loops",
        {"HumanLoopSummaries": [_summary("a"), _summary("b", "InProgress")], "NextToken": "t1"},
        {**base, "CreationTimeAfter": after},
    )
    a2i_stub.add_response(
        "list_human_loops",
        {"HumanLoopSummaries": [_summary("c", "Failed")]},
        {**base, "CreationTimeAfter": after, "NextToken": "t1"},
    )
    pages = list(a2i.list_human_loops(session.a2i(), FLOW, created_after=after))
    assert [[loop.name for loop in page] for page in pages] == [["a", "b"], ["c"]]
    assert pages[0][1].status == "InProgress"
    assert pages[0][0].created == T0


def test_list_errors_are_typed(session: AwsSession, a2i_stub: Stubber) -> None:
    a2i_stub.add_client_error("list_human_loops", "ThrottlingException", "slow down", 429)
    with pytest.raises(Throttled, match="ListHumanLoops"):
        list(a2i.list_human_loops(session.a2i(), FLOW))


def test_describe_output_uri(session: AwsSession, a2i_stub: Stubber) -> None:
    uri = a2i.output_uri("s3://out/a2i", "fd-test", T0, "loop-1")
    assert uri == "s3://out/a2i/fd-test/2026/03/01/12/00/00/loop-1/output.json"
    a2i_stub.add_response(
        "describe_human_loop",
        {
            "CreationTime": T0,
            "HumanLoopStatus": "Completed",
            "HumanLoopName": "loop-1",
            "HumanLoopArn": "arn:aws:sagemaker:us-east-1:123456789012:human-loop/loop-1",
            "FlowDefinitionArn": FLOW,
            "HumanLoopOutput": {"OutputS3Uri": uri},
        },
        {"HumanLoopName": "loop-1"},
    )
    a2i_stub.add_client_error("describe_human_loop", "ResourceNotFoundException", "no", 404)
    assert a2i.describe_output_uri(session.a2i(), "loop-1") == uri
    assert a2i.output_prefix_of(uri, "fd-test", "loop-1") == "s3://out/a2i"
    assert a2i.output_prefix_of(uri, "fd-other", "loop-1") is None
    with pytest.raises(NotFound):
        a2i.describe_output_uri(session.a2i(), "gone")


def test_s3_conditional_writes(session: AwsSession, s3_stub: Stubber) -> None:
    s3 = S3(session.s3())
    where = S3Location.parse("s3://bucket/out/ledger/head.json")
    s3_stub.add_response(
        "put_object",
        {"ETag": '"e1"'},
        {
            "Bucket": "bucket",
            "Key": "out/ledger/head.json",
            "Body": b"{}",
            "ContentType": "application/json",
            "IfNoneMatch": "*",
        },
    )
    s3_stub.add_client_error("put_object", "PreconditionFailed", "At least one", 412)
    s3_stub.add_client_error("put_object", "PreconditionFailed", "exists", 412)
    assert s3.put(where, b"{}", if_none_match=True) == '"e1"'
    with pytest.raises(WriteConflict):
        s3.put(where, b"{}", if_match='"old"')
    assert s3.put_if_absent(where, b"{}") is False


def test_s3_reads(session: AwsSession, s3_stub: Stubber) -> None:
    s3 = S3(session.s3())
    where = S3Location.parse("s3://bucket/k")
    s3_stub.add_client_error("get_object", "NoSuchKey", "gone", 404)
    s3_stub.add_response(
        "get_object", {"Body": _body(b"a\nb\n\nc"), "ETag": '"x"'}, {"Bucket": "bucket", "Key": "k"}
    )
    s3_stub.add_client_error("get_object", "AccessDenied", "no", 403)
    s3_stub.add_client_error("get_object", "NoSuchBucket", "no bucket", 404)
    assert s3.get_with_etag(where, limit=100) is None
    assert list(s3.iter_lines(where)) == [b"a", b"b", b"", b"c"]
    with pytest.raises(Exception, match="AccessDenied"):
        s3.get(where)
    with pytest.raises(NotFound, match="NoSuchBucket"):
        s3.get_with_etag(where, limit=100)  # a missing bucket is not a missing ledger


def test_large_manifest_goes_multipart_then_to_its_content_address(
    session: AwsSession, s3_stub: Stubber
) -> None:
    s3 = S3(session.s3())
    directory = S3Location.parse("s3://bucket/out/manifests")
    staging = S3Location.parse("s3://bucket/out/staging/r1/train.jsonl")
    lines = [b"x" * 9, b"y" * 3, b"z" * 3]  # one full 10-byte part, then the rest
    digest = hashlib.sha256(b"".join(line + b"\n" for line in lines)).hexdigest()
    key = {"Bucket": "bucket", "Key": staging.key}
    s3_stub.add_response(
        "create_multipart_upload", {"UploadId": "u1"}, {**key, "ContentType": "application/jsonl"}
    )
    s3_stub.add_response(
        "upload_part", {"ETag": '"p1"'}, {**key, "UploadId": "u1", "PartNumber": 1, "Body": ANY}
    )
    s3_stub.add_response(
        "upload_part", {"ETag": '"p2"'}, {**key, "UploadId": "u1", "PartNumber": 2, "Body": ANY}
    )
    s3_stub.add_response(
        "complete_multipart_upload",
        {},
        {
            **key,
            "UploadId": "u1",
            "MultipartUpload": {
                "Parts": [{"ETag": '"p1"', "PartNumber": 1}, {"ETag": '"p2"', "PartNumber": 2}]
            },
        },
    )
    final = {"Bucket": "bucket", "Key": f"out/manifests/{digest}.jsonl"}
    s3_stub.add_client_error("head_object", "404", "Not Found", 404, expected_params=final)
    s3_stub.add_response(
        "copy_object", {}, {**final, "CopySource": {"Bucket": "bucket", "Key": staging.key}}
    )
    s3_stub.add_response("delete_object", {}, key)
    sink = S3LineSink(s3, directory=directory, staging=staging, part_size=10)
    for line in lines:
        sink.write(line)
    written = sink.close()
    assert written.uri == f"s3://bucket/out/manifests/{digest}.jsonl"
    assert written.lines == 3


def test_failed_multipart_is_aborted(session: AwsSession, s3_stub: Stubber) -> None:
    s3 = S3(session.s3())
    target = S3Location.parse("s3://bucket/cli/out.manifest")
    key = {"Bucket": "bucket", "Key": target.key}
    s3_stub.add_response(
        "create_multipart_upload", {"UploadId": "u9"}, {**key, "ContentType": "application/jsonl"}
    )
    s3_stub.add_client_error("upload_part", "InternalError", "boom", 500)
    s3_stub.add_response("abort_multipart_upload", {}, {**key, "UploadId": "u9"})
    sink = S3LineSink(s3, target=target, part_size=4)
    with pytest.raises(Exception, match="UploadPart"), sink:
        sink.write(b"12345")


# -- a whole poll and assembly, one request at a time ----------------------------------------


def test_first_poll_requests(
    session: AwsSession, a2i_stub: Stubber, s3_stub: Stubber, sm_stub: Stubber
) -> None:
    spec = ingest_spec(output="s3://bucket/out")
    out_uri = a2i.output_uri("s3://bucket/a2i-results", "fd-test", T0, "loop-b")
    head = {"Bucket": "bucket", "Key": "out/ledger/head.json"}
    s3_stub.add_client_error("get_object", "NoSuchKey", "none", 404, expected_params=head)
    a2i_stub.add_response(
        "list_human_loops",
        {
            "HumanLoopSummaries": [
                _summary("loop-b"),
                _summary("loop-q", created=T0 + timedelta(seconds=1)),
                _summary("loop-busy", "InProgress", T0 + timedelta(seconds=2)),
            ]
        },
        {"FlowDefinitionArn": FLOW, "SortOrder": "Ascending", "MaxResults": 100},
    )
    # Before the first read, where A2I writes this flow's outputs (also on a new ledger).
    sm_stub.add_response(
        "describe_flow_definition",
        {
            "FlowDefinitionArn": FLOW,
            "FlowDefinitionName": "fd-test",
            "FlowDefinitionStatus": "Active",
            "CreationTime": T0,
            "HumanLoopConfig": {
                "WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t",
                "HumanTaskUiArn": "arn:aws:sagemaker:us-east-1:123456789012:human-task-ui/ui",
                "TaskTitle": "t",
                "TaskDescription": "d",
                "TaskCount": 1,
            },
            "OutputConfig": {"S3OutputPath": "s3://bucket/a2i-results"},
            "RoleArn": "arn:aws:iam::123456789012:role/a2i",
        },
        {"FlowDefinitionName": "fd-test"},
    )
    # The first Completed loop teaches the output layout (one DescribeHumanLoop) ...
    a2i_stub.add_response(
        "describe_human_loop",
        {
            "CreationTime": T0,
            "HumanLoopStatus": "Completed",
            "HumanLoopName": "loop-b",
            "HumanLoopArn": "arn:aws:sagemaker:us-east-1:123456789012:human-loop/loop-b",
            "FlowDefinitionArn": FLOW,
            "HumanLoopOutput": {"OutputS3Uri": out_uri},
        },
        {"HumanLoopName": "loop-b"},
    )
    s3_stub.add_response(
        "get_object",
        {"Body": _body(_output("loop-b"))},
        {"Bucket": "bucket", "Key": S3Location.parse(out_uri).key},
    )
    # ... the second is read straight from its predicted key.
    predicted = a2i.output_uri(
        "s3://bucket/a2i-results", "fd-test", T0 + timedelta(seconds=1), "loop-q"
    )
    s3_stub.add_response(
        "get_object",
        {"Body": _body(_output("loop-q", label="unicorn"))},
        {"Bucket": "bucket", "Key": S3Location.parse(predicted).key},
    )
    s3_stub.add_response(
        "put_object",
        {"ETag": '"q"'},
        {
            "Bucket": "bucket",
            "Key": "out/quarantine/loop-q.json",
            "Body": ANY,
            "ContentType": "application/json",
        },
    )
    line = Converter(spec.labels).convert_bytes(_output("loop-b"))
    segment = (getattr(line, "line", "") + "\n").encode()
    digest = hashlib.sha256(segment).hexdigest()
    s3_stub.add_response(
        "put_object",
        {"ETag": '"s"'},
        {
            "Bucket": "bucket",
            "Key": f"out/pending/{digest}.jsonl",
            "Body": segment,
            "ContentType": "application/jsonl",
            "IfNoneMatch": "*",
        },
    )
    s3_stub.add_response(
        "put_object",
        {"ETag": '"l1"'},
        {**head, "Body": ANY, "ContentType": "application/json", "IfNoneMatch": "*"},
    )
    result = poll(session, spec, clock=lambda: T0 + timedelta(minutes=10), concurrency=1)
    assert result.new_samples == 1
    assert result.quarantined == 1
    assert result.quarantine[0].reason == "UnknownLabel"
    assert result.in_progress == 1
    assert result.status.pending_samples == 1
    assert result.status.watermark == T0 + timedelta(seconds=2)  # held by the InProgress loop
    assert "loop" not in json.dumps(result.status.to_wire())  # no loop names in status


def test_idle_poll_is_two_calls(session: AwsSession, a2i_stub: Stubber, s3_stub: Stubber) -> None:
    spec = ingest_spec(output="s3://bucket/out")
    ledger = Ledger()
    ledger.advance(T0, T0 - timedelta(hours=24))
    s3_stub.add_response(
        "get_object",
        {"Body": _body(ledger.to_json(SEALER)), "ETag": '"l1"'},
        {"Bucket": "bucket", "Key": "out/ledger/head.json"},
    )
    a2i_stub.add_response(
        "list_human_loops",
        {"HumanLoopSummaries": []},
        {
            "FlowDefinitionArn": FLOW,
            "SortOrder": "Ascending",
            "MaxResults": 100,
            "CreationTimeAfter": T0 - timedelta(hours=24),
        },
    )
    result = poll(session, spec, clock=lambda: T0 + timedelta(minutes=5))
    assert result.listed == 0
    assert result.status.watermark == T0


def test_assembly_claims_then_writes_then_records(session: AwsSession, s3_stub: Stubber) -> None:
    spec = ingest_spec(
        output="s3://bucket/out",
        dataset={"validation": {"holdoutPercent": 0, "allowTrainAsValidation": True}},
    )
    converted = Converter(spec.labels).convert_bytes(_output("loop-b"))
    segment = (getattr(converted, "line", "") + "\n").encode()
    digest = hashlib.sha256(segment).hexdigest()
    from retraining_operator.reconcile.ledger import LoopOutcome, PendingSegment

    ledger = Ledger()
    pending = PendingSegment(digest, 1, 1, T0)
    ledger.record([LoopOutcome("loop-b", T0, pending.id)], segment=pending)
    head = {"Bucket": "bucket", "Key": "out/ledger/head.json"}
    s3_stub.add_response(
        "get_object", {"Body": _body(ledger.to_json(SEALER)), "ETag": '"l1"'}, head
    )
    s3_stub.add_response(
        "put_object",
        {"ETag": '"l2"'},
        {**head, "Body": ANY, "ContentType": "application/json", "IfMatch": '"l1"'},
    )
    segment_key = {"Bucket": "bucket", "Key": f"out/pending/{digest}.jsonl"}
    s3_stub.add_response("get_object", {"Body": _body(segment)}, segment_key)  # pass 1
    s3_stub.add_response("get_object", {"Body": _body(segment)}, segment_key)  # pass 2
    s3_stub.add_response(
        "put_object",
        {"ETag": '"m"'},
        {
            "Bucket": "bucket",
            "Key": f"out/manifests/{digest}.jsonl",  # one line: same content as the segment
            "Body": segment,
            "ContentType": "application/jsonl",
            "IfNoneMatch": "*",
        },
    )
    s3_stub.add_response(
        "put_object",
        {"ETag": '"l3"'},
        {**head, "Body": ANY, "ContentType": "application/json", "IfMatch": '"l2"'},
    )
    dataset = assemble_run_dataset(session, spec, "r1", clock=lambda: T0)
    assert dataset.train_manifest_s3_uri == f"s3://bucket/out/manifests/{digest}.jsonl"
    # holdout 0, allowed explicitly: validation = train, as the seed
    assert dataset.validation_manifest_s3_uri == dataset.train_manifest_s3_uri
    assert dataset.samples.train == 1
    assert dataset.num_training_samples == 1
    assert VOC[7] == "cat"


class _CountingStream(io.BytesIO):
    """A response body that counts the bytes taken off it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk


def test_a_bounded_read_takes_at_most_limit_plus_one_byte() -> None:
    from retraining_operator.aws.s3 import READ_CHUNK, StoredObject

    where = S3Location.parse("s3://bucket/k")
    data = b"x" * (3 * READ_CHUNK)
    # The headers understate the body: the limit still holds, whatever the server says.
    stream = _CountingStream(data)
    stored = StoredObject(where, {"Body": StreamingBody(stream, len(data)), "ContentLength": 10})
    assert stored.read_at_most(READ_CHUNK + 5) is None
    assert stream.taken == READ_CHUNK + 6
    exact = _CountingStream(b"y" * 1000)
    stored = StoredObject(where, {"Body": StreamingBody(exact, 1000), "ContentLength": 1000})
    assert stored.read_at_most(1000) == b"y" * 1000


def test_an_oversized_object_is_refused_by_its_headers(
    session: AwsSession, s3_stub: Stubber
) -> None:
    from retraining_operator.aws.s3 import ObjectTooLarge

    stream = _CountingStream(b"z" * 5000)
    s3_stub.add_response(
        "get_object",
        {"Body": StreamingBody(stream, 5000), "ContentLength": 5000, "ETag": '"big"'},
        {"Bucket": "bucket", "Key": "ledger/head.json"},
    )
    with pytest.raises(ObjectTooLarge) as caught:
        S3(session.s3()).get_with_etag(S3Location.parse("s3://bucket/ledger/head.json"), limit=100)
    assert (caught.value.size, caught.value.etag) == (5000, '"big"')
    assert stream.taken == 0  # not one byte of the body was read
