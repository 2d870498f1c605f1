"""Flow definitions and human loops: seeding, listing, paging, outputs in S3."""

from __future__ import annotations

import json
import random
import re
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from retraining_standins.seed import VOC_CLASSES, random_a2i_output
from retraining_standins.stack import AwsStandins

KEY_LAYOUT = re.compile(
    r"^a2i-results/fd-test/\d{4}/\d{2}/\d{2}/\d{2}/\d{2}/\d{2}/(?P<loop>[a-z0-9-]+)/output\.json$"
)


@pytest.fixture
def a2i(aws: AwsStandins) -> Any:
    return boto3.client("sagemaker-a2i-runtime")


def read_json(uri: str) -> Any:
    bucket, key = uri[len("s3://") :].split("/", 1)
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return json.loads(body)


def list_all(a2i: Any, **params: Any) -> list[dict[str, Any]]:
    pages = a2i.get_paginator("list_human_loops").paginate(**params)
    return [s for page in pages for s in page["HumanLoopSummaries"]]


def test_flow_definition_round_trip(aws, aws_bucket) -> None:
    sm = boto3.client("sagemaker")
    arn = sm.create_flow_definition(
        FlowDefinitionName="fd-sagemaker-object-detection-demo",
        OutputConfig={"S3OutputPath": f"s3://{aws_bucket}/a2i-results"},
        RoleArn="arn:aws:iam::123456789012:role/a2i",
        HumanLoopConfig={
            "WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t",
            "HumanTaskUiArn": "arn:aws:sagemaker:us-east-1:123456789012:human-task-ui/od",
            "TaskTitle": "Label",
            "TaskDescription": "Draw boxes",
            "TaskCount": 1,
        },
    )["FlowDefinitionArn"]
    described = sm.describe_flow_definition(FlowDefinitionName="fd-sagemaker-object-detection-demo")
    assert described["FlowDefinitionArn"] == arn
    assert arn.endswith(":flow-definition/fd-sagemaker-object-detection-demo")
    assert described["FlowDefinitionStatus"] == "Active"
    assert described["OutputConfig"]["S3OutputPath"] == f"s3://{aws_bucket}/a2i-results"
    with pytest.raises(ClientError) as err:
        sm.describe_flow_definition(FlowDefinitionName="nope")
    assert err.value.response["Error"]["Code"] == "ResourceNotFound"


def test_completed_loop_output_is_in_s3_at_the_a2i_layout(aws, a2i_flow, a2i) -> None:
    loop = aws.a2i.add_loop(a2i_flow.name)
    described = a2i.describe_human_loop(HumanLoopName=loop.name)
    assert described["HumanLoopStatus"] == "Completed"
    assert described["FlowDefinitionArn"] == a2i_flow.arn
    uri = described["HumanLoopOutput"]["OutputS3Uri"]
    bucket, key = uri[len("s3://") :].split("/", 1)
    assert bucket == "rtp-test-bucket"
    match = KEY_LAYOUT.match(key)
    assert match is not None
    assert match.group("loop") == loop.name
    stamp = described["CreationTime"].strftime("%Y/%m/%d/%H/%M/%S")
    assert f"/fd-test/{stamp}/" in key
    output = read_json(uri)
    assert output["flowDefinitionArn"] == a2i_flow.arn
    assert output["humanLoopName"] == loop.name
    assert output["inputContent"]["taskObject"].startswith("s3://rtp-test-bucket/")
    [answer] = output["humanAnswers"]
    assert set(answer) == {
        "acceptanceTime",
        "answerContent",
        "submissionTime",
        "timeSpentInSeconds",
        "workerId",
        "workerMetadata",
    }
    result = answer["answerContent"]["annotatedResult"]
    assert result["boundingBoxes"]
    assert set(result["inputImageProperties"]) == {"height", "width"}
    assert "identityData" in answer["workerMetadata"]


def test_loops_finish_out_of_creation_order(aws, a2i_flow, a2i) -> None:
    early = aws.a2i.add_loop(a2i_flow.name, status="InProgress")
    aws.clock.advance(60)
    late = aws.a2i.add_loop(a2i_flow.name)  # completes at once
    first = {
        s["HumanLoopName"]: s["HumanLoopStatus"]
        for s in list_all(a2i, FlowDefinitionArn=a2i_flow.arn)
    }
    assert first == {early.name: "InProgress", late.name: "Completed"}
    assert "HumanLoopOutput" not in a2i.describe_human_loop(HumanLoopName=early.name)
    aws.clock.advance(600)
    uri = aws.a2i.complete_loop(early.name)
    described = a2i.describe_human_loop(HumanLoopName=early.name)
    assert described["HumanLoopStatus"] == "Completed"
    assert described["HumanLoopOutput"]["OutputS3Uri"] == uri
    # The key carries the creation time, the answer the (later) submission time.
    output = read_json(uri)
    submitted = output["humanAnswers"][0]["submissionTime"]
    assert submitted.startswith(aws.clock.now().strftime("%Y-%m-%dT%H:%M"))


def test_list_pagination_returns_every_loop_once(aws, a2i_flow, a2i) -> None:
    start = aws.clock.now() - timedelta(hours=5)
    created = [
        aws.a2i.add_loop(a2i_flow.name, status="InProgress", created=start + timedelta(seconds=i))
        for i in range(250)
    ]
    pages = list(
        a2i.get_paginator("list_human_loops").paginate(
            FlowDefinitionArn=a2i_flow.arn, PaginationConfig={"PageSize": 100}
        )
    )
    assert [len(p["HumanLoopSummaries"]) for p in pages] == [100, 100, 50]
    names = [s["HumanLoopName"] for p in pages for s in p["HumanLoopSummaries"]]
    assert len(names) == len(set(names)) == 250
    assert names == [loop.name for loop in created]  # Ascending by creation time by default
    descending = list_all(a2i, FlowDefinitionArn=a2i_flow.arn, SortOrder="Descending")
    assert [s["HumanLoopName"] for s in descending] == names[::-1]


def test_pages_stay_exact_when_loops_arrive_between_pages(aws, a2i_flow, a2i) -> None:
    base = aws.clock.now() - timedelta(hours=1)
    for i in range(5):
        aws.a2i.add_loop(a2i_flow.name, status="InProgress", created=base + timedelta(seconds=i))
    page1 = a2i.list_human_loops(FlowDefinitionArn=a2i_flow.arn, MaxResults=3)
    aws.a2i.add_loop(a2i_flow.name, status="InProgress", created=base - timedelta(seconds=1))
    page2 = a2i.list_human_loops(
        FlowDefinitionArn=a2i_flow.arn, MaxResults=3, NextToken=page1["NextToken"]
    )
    assert len(page1["HumanLoopSummaries"]) == 3
    assert len(page2["HumanLoopSummaries"]) == 2
    assert "NextToken" not in page2


def test_creation_time_filters(aws, a2i_flow, a2i) -> None:
    base = aws.clock.now() - timedelta(hours=3)
    loops = [
        aws.a2i.add_loop(a2i_flow.name, created=base + timedelta(hours=i), status="InProgress")
        for i in range(3)
    ]
    after = list_all(a2i, FlowDefinitionArn=a2i_flow.arn, CreationTimeAfter=base)
    assert [s["HumanLoopName"] for s in after] == [loops[1].name, loops[2].name]  # strict
    window = list_all(
        a2i,
        FlowDefinitionArn=a2i_flow.arn,
        CreationTimeAfter=base - timedelta(minutes=1),
        CreationTimeBefore=base + timedelta(hours=1, minutes=1),
    )
    assert [s["HumanLoopName"] for s in window] == [loops[0].name, loops[1].name]
    # Timestamps travel as ISO-8601 in the query string; the wire answer is ISO-8601 too.
    call = aws.log.calls("sagemaker-a2i-runtime", "ListHumanLoops")[-1]
    assert call.params["CreationTimeBefore"] == base + timedelta(hours=1, minutes=1)
    assert [s["CreationTime"] for s in window] == [loops[0].created, loops[1].created]


def test_list_validation_and_unknown_flow(aws, a2i_flow, a2i) -> None:
    with pytest.raises(ClientError) as err:
        a2i.list_human_loops(FlowDefinitionArn=a2i_flow.arn, MaxResults=101)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as err:
        a2i.list_human_loops(FlowDefinitionArn=a2i_flow.arn, NextToken="garbage")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    other = a2i_flow.arn.replace("fd-test", "fd-other")
    with pytest.raises(ClientError) as err:
        a2i.list_human_loops(FlowDefinitionArn=other)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_start_stop_delete_human_loop(aws, a2i_flow, a2i) -> None:
    arn = a2i.start_human_loop(
        HumanLoopName="loop-1",
        FlowDefinitionArn=a2i_flow.arn,
        HumanLoopInput={"InputContent": json.dumps({"taskObject": "s3://b/i.jpg"})},
    )["HumanLoopArn"]
    assert arn.endswith(":human-loop/loop-1")
    assert a2i.describe_human_loop(HumanLoopName="loop-1")["HumanLoopStatus"] == "InProgress"
    with pytest.raises(ClientError) as err:
        a2i.start_human_loop(
            HumanLoopName="loop-1",
            FlowDefinitionArn=a2i_flow.arn,
            HumanLoopInput={"InputContent": "{}"},
        )
    assert err.value.response["Error"]["Code"] == "ConflictException"
    with pytest.raises(ClientError) as err:
        a2i.delete_human_loop(HumanLoopName="loop-1")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    a2i.stop_human_loop(HumanLoopName="loop-1")
    assert a2i.describe_human_loop(HumanLoopName="loop-1")["HumanLoopStatus"] == "Stopped"
    a2i.delete_human_loop(HumanLoopName="loop-1")
    with pytest.raises(ClientError) as err:
        a2i.describe_human_loop(HumanLoopName="loop-1")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_started_loop_completes_with_its_own_task_object(aws, a2i_flow, a2i) -> None:
    a2i.start_human_loop(
        HumanLoopName="loop-2",
        FlowDefinitionArn=a2i_flow.arn,
        HumanLoopInput={"InputContent": json.dumps({"taskObject": "s3://imgs/cat.jpg"})},
    )
    uri = aws.a2i.complete_loop("loop-2", classes=["cat"])
    output = read_json(uri)
    assert output["inputContent"]["taskObject"] == "s3://imgs/cat.jpg"
    labels = {
        b["label"]
        for a in output["humanAnswers"]
        for b in a["answerContent"]["annotatedResult"]["boundingBoxes"]
    }
    assert labels == {"cat"}


def test_failed_and_stopped_seeded_loops(aws, a2i_flow, a2i) -> None:
    failed = aws.a2i.add_loop(a2i_flow.name, status="Failed", failure_reason="worker timeout")
    stopped = aws.a2i.add_loop(a2i_flow.name, status="Stopped")
    described = a2i.describe_human_loop(HumanLoopName=failed.name)
    assert described["HumanLoopStatus"] == "Failed"
    assert described["FailureReason"] == "worker timeout"
    assert a2i.describe_human_loop(HumanLoopName=stopped.name)["HumanLoopStatus"] == "Stopped"
    statuses = sorted(s["HumanLoopStatus"] for s in list_all(a2i, FlowDefinitionArn=a2i_flow.arn))
    assert statuses == ["Failed", "Stopped"]


def test_malformed_outputs_are_written_verbatim(aws, a2i_flow, a2i) -> None:
    loop = aws.a2i.add_loop(a2i_flow.name, output=b"{not json")
    uri = a2i.describe_human_loop(HumanLoopName=loop.name)["HumanLoopOutput"]["OutputS3Uri"]
    assert aws.get_object(uri) == b"{not json"
    custom = {"humanAnswers": [], "humanLoopName": "x"}
    other = aws.a2i.add_loop(a2i_flow.name, output=custom)
    assert json.loads(aws.get_object(other.output_uri or "") or b"") == custom


def test_several_workers(aws, a2i_flow) -> None:
    loop = aws.a2i.add_loop(a2i_flow.name, workers=3)
    output = json.loads(aws.get_object(loop.output_uri or "") or b"")
    answers = output["humanAnswers"]
    assert len(answers) == 3
    sizes = {
        json.dumps(a["answerContent"]["annotatedResult"]["inputImageProperties"]) for a in answers
    }
    assert len(sizes) == 1  # every worker saw the same image


@pytest.mark.parametrize("seed", range(25))
def test_random_output_is_valid(seed: int) -> None:
    output = random_a2i_output(
        flow_definition_arn="arn:aws:sagemaker:us-east-1:123456789012:flow-definition/fd",
        human_loop_name="loop",
        task_object="s3://b/img.jpg",
        rng=random.Random(seed),
        workers=2,
    )
    for answer in output["humanAnswers"]:
        result = answer["answerContent"]["annotatedResult"]
        width = result["inputImageProperties"]["width"]
        height = result["inputImageProperties"]["height"]
        assert 1 <= len(result["boundingBoxes"]) <= 5
        for box in result["boundingBoxes"]:
            assert box["label"] in VOC_CLASSES
            assert box["width"] > 0
            assert box["height"] > 0
            assert box["left"] >= 0
            assert box["left"] + box["width"] <= width
            assert box["top"] >= 0
            assert box["top"] + box["height"] <= height
            assert all(isinstance(box[k], int) for k in ("left", "top", "width", "height"))
        assert answer["acceptanceTime"] < answer["submissionTime"]
    again = random_a2i_output(
        flow_definition_arn="arn:aws:sagemaker:us-east-1:123456789012:flow-definition/fd",
        human_loop_name="loop",
        task_object="s3://b/img.jpg",
        rng=random.Random(seed),
        workers=2,
    )
    assert again["humanAnswers"][0]["answerContent"] == output["humanAnswers"][0]["answerContent"]
