"""The request log: exactly which calls were made, in order, with params and outcome."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.exceptions import ClientError

from retraining_standins.stack import AwsStandins


def test_calls_are_logged_in_order_across_services(aws: AwsStandins, a2i_flow) -> None:
    aws.log.clear()  # fixtures set up through in-process helpers and moto's direct listener
    loop = aws.a2i.add_loop(a2i_flow.name)
    assert aws.log.calls() == []  # seeding is not the operator's traffic
    a2i = boto3.client("sagemaker-a2i-runtime")
    s3 = boto3.client("s3")
    sm = boto3.client("sagemaker")
    summaries = a2i.list_human_loops(FlowDefinitionArn=a2i_flow.arn)["HumanLoopSummaries"]
    uri = a2i.describe_human_loop(HumanLoopName=loop.name)["HumanLoopOutput"]["OutputS3Uri"]
    bucket, key = uri[len("s3://") :].split("/", 1)
    s3.get_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError):
        sm.describe_endpoint(EndpointName="missing")
    aws.clock.advance(42)
    s3.list_objects_v2(Bucket=bucket, Prefix="a2i-results/")

    calls = aws.log.calls()
    assert [(c.service, c.operation) for c in calls] == [
        ("sagemaker-a2i-runtime", "ListHumanLoops"),
        ("sagemaker-a2i-runtime", "DescribeHumanLoop"),
        ("s3", "GetObject"),
        ("sagemaker", "DescribeEndpoint"),
        ("s3", "ListObjectsV2"),
    ]
    assert [c.seq for c in calls] == sorted(c.seq for c in calls)
    assert [c.outcome for c in calls] == ["ok", "ok", "ok", "ValidationException", "ok"]
    assert calls[0].params == {"FlowDefinitionArn": a2i_flow.arn}
    assert calls[1].params == {"HumanLoopName": loop.name}
    assert calls[2].params == {"Bucket": bucket, "Key": key}
    assert calls[4].params["Prefix"] == "a2i-results/"
    assert calls[3].status == 400
    assert (calls[4].time - calls[0].time).total_seconds() == 42
    assert len(summaries) == 1
    assert aws.log.operations("s3") == ["GetObject", "ListObjectsV2"]
    assert aws.log.count("sagemaker") == 1


def test_concurrent_calls_are_all_logged(aws: AwsStandins) -> None:
    sm = boto3.client("sagemaker")

    def call(index: int) -> None:
        sm.create_model(
            ModelName=f"m-{index}",
            PrimaryContainer={"Image": "811284229777.dkr.ecr.us-east-1.amazonaws.com/od:1"},
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(call, range(40)))
    calls = aws.log.calls("sagemaker", "CreateModel")
    assert len(calls) == 40
    assert len({c.seq for c in calls}) == 40
    assert {c.params["ModelName"] for c in calls} == {f"m-{i}" for i in range(40)}
    assert all(c.ok for c in calls)


def test_wait_for_and_json_export(aws: AwsStandins) -> None:
    boto3.client("sagemaker").list_endpoints()
    calls = aws.log.wait_for(lambda calls: len(calls) >= 1, timeout=1)
    assert calls[0].operation == "ListEndpoints"
    exported = aws.log.to_json()
    assert exported[0]["operation"] == "ListEndpoints"
    assert exported[0]["error"] is None
    with pytest.raises(TimeoutError):
        aws.log.wait_for(lambda calls: len(calls) > 5, timeout=0.2)


def test_each_call_records_the_access_key_it_was_signed_with(aws: AwsStandins, a2i_flow) -> None:
    """Two processes given different access key ids are told apart in the log (the HA cases
    attribute every AWS call to the operator that made it)."""
    aws.log.clear()

    def session(key: str) -> boto3.session.Session:
        return boto3.session.Session(aws_access_key_id=key, aws_secret_access_key="s")

    session("AKIAOPERATORA0000001").client("sagemaker-a2i-runtime").list_human_loops(
        FlowDefinitionArn=a2i_flow.arn
    )
    session("AKIAOPERATORB0000002").client("sagemaker").list_training_jobs()
    s3 = session("AKIAOPERATORB0000002").client("s3")
    s3.list_buckets()
    with pytest.raises(ClientError):
        s3.head_object(Bucket="missing-bucket", Key="k")
    assert [(c.operation, c.access_key) for c in aws.log.calls()] == [
        ("ListHumanLoops", "AKIAOPERATORA0000001"),
        ("ListTrainingJobs", "AKIAOPERATORB0000002"),
        ("ListBuckets", "AKIAOPERATORB0000002"),
        ("HeadObject", "AKIAOPERATORB0000002"),
    ]
    assert aws.log.to_json()[0]["access_key"] == "AKIAOPERATORA0000001"


def test_a_call_in_flight_across_clear_is_not_logged_when_it_completes(aws: AwsStandins) -> None:
    # A stopped operator's 20 s SQS long poll completes after the next test's reset: it must
    # not land in that test's log (the IAM audit would charge it to the wrong test).
    url = aws.create_queue("in-flight")
    sqs = boto3.client("sqs")
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(sqs.receive_message, QueueUrl=url, WaitTimeSeconds=2)
        deadline = time.monotonic() + 5
        while aws.log.in_flight() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert aws.log.in_flight() == 1  # the long poll has arrived and waits
        aws.log.clear()
        assert waiting.result()["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert aws.log.calls("sqs") == []
    sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    assert aws.log.operations("sqs") == ["ReceiveMessage"]
