"""An SQS queue URL is read by one pure function (`reconcile/events.py parse_queue_url`):
the operator's queue check, the `iam-policy` queue ARN and the IAM audit agree on every
form of URL AWS has used, legacy ones included, and name the queue's region in its ARN.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.reconcile import iam
from retraining_operator.reconcile.events import parse_queue_url, queue_problem
from retraining_standins.requestlog import Call
from support.iam_cases import example
from support.iamcheck import needs

ACCOUNT = "111122223333"


@pytest.mark.parametrize(
    ("url", "region"),
    [
        (f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/q", "us-east-1"),
        (f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/q.fifo", "eu-west-1"),
        (f"https://queue.amazonaws.com/{ACCOUNT}/q", "us-east-1"),  # legacy, first region
        (f"https://us-west-2.queue.amazonaws.com/{ACCOUNT}/q", "us-west-2"),  # legacy
        (f"https://sqs.cn-north-1.amazonaws.com.cn/{ACCOUNT}/q", "cn-north-1"),
        (f"https://cn-northwest-1.queue.amazonaws.com.cn/{ACCOUNT}/q", "cn-northwest-1"),
        (f"https://sqs-fips.us-gov-west-1.amazonaws.com/{ACCOUNT}/q", "us-gov-west-1"),
        (
            f"https://vpce-0a1b2c3d-4e5f.sqs.eu-central-1.vpce.amazonaws.com/{ACCOUNT}/q",
            "eu-central-1",
        ),
        (f"https://SQS.AP-SOUTHEAST-2.AMAZONAWS.COM/{ACCOUNT}/q", "ap-southeast-2"),
        (f"http://127.0.0.1:4566/{ACCOUNT}/q", None),  # an endpoint override says nothing
        (f"https://sqs.internal.example/{ACCOUNT}/q", None),
    ],
)
def test_every_form_of_queue_url_names_its_region(url: str, region: str | None) -> None:
    address = parse_queue_url(url)
    assert address is not None
    assert (address.account, address.region) == (ACCOUNT, region)
    assert address.name in ("q", "q.fifo")


@pytest.mark.parametrize("url", ["https://example.com/not-a-queue", f"ftp://h/{ACCOUNT}/q"])
def test_what_is_not_a_queue_url_is_none(url: str) -> None:
    assert parse_queue_url(url) is None


def test_the_arn_takes_the_policy_region_only_where_the_url_names_none() -> None:
    legacy = parse_queue_url(f"https://queue.amazonaws.com/{ACCOUNT}/q")
    override = parse_queue_url(f"http://localhost:9324/{ACCOUNT}/q")
    assert legacy is not None
    assert override is not None
    assert legacy.arn("aws", "eu-west-1") == f"arn:aws:sqs:us-east-1:{ACCOUNT}:q"
    assert override.arn("aws", "eu-west-1") == f"arn:aws:sqs:eu-west-1:{ACCOUNT}:q"


def _spec(region: str, url: str, partition: str = "aws") -> RetrainingPolicySpec:
    _, raw = example("event-driven-ingest")
    raw["aws"]["region"] = region
    flow = f"arn:{partition}:sagemaker:{region}:{ACCOUNT}:flow-definition/fd-voc"
    raw["humanLoops"]["flowDefinitionArn"] = flow
    raw["humanLoops"]["events"]["sqsQueueUrl"] = url
    return RetrainingPolicySpec.model_validate(raw)


def _queue_resource(document: dict[str, Any]) -> Any:
    (statement,) = [s for s in document["Statement"] if s["Sid"] == "ConsumeA2IEvents"]
    return statement["Resource"]


@pytest.mark.parametrize(
    ("region", "url", "partition", "arn"),
    [
        (
            "us-east-1",
            f"https://queue.amazonaws.com/{ACCOUNT}/q",
            "aws",
            f"arn:aws:sqs:us-east-1:{ACCOUNT}:q",
        ),
        (
            "us-west-2",
            f"https://us-west-2.queue.amazonaws.com/{ACCOUNT}/q",
            "aws",
            f"arn:aws:sqs:us-west-2:{ACCOUNT}:q",
        ),
        (
            "eu-west-1",
            f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/q",
            "aws",
            f"arn:aws:sqs:eu-west-1:{ACCOUNT}:q",
        ),
        (
            "cn-north-1",
            f"https://sqs.cn-north-1.amazonaws.com.cn/{ACCOUNT}/q",
            "aws-cn",
            f"arn:aws-cn:sqs:cn-north-1:{ACCOUNT}:q",
        ),
        (
            "eu-west-1",
            f"http://127.0.0.1:4566/{ACCOUNT}/q",  # the client signs for the policy's region
            "aws",
            f"arn:aws:sqs:eu-west-1:{ACCOUNT}:q",
        ),
    ],
)
def test_iam_policy_scopes_the_queue_to_its_region(
    region: str, url: str, partition: str, arn: str
) -> None:
    spec = _spec(region, url, partition)
    assert _queue_resource(iam.for_policy("p", spec)) == arn
    assert queue_problem(url, spec.human_loops.flow_definition_arn, region) is None


def test_the_audit_reads_the_queue_the_same_way() -> None:
    call = Call(
        0,
        "sqs",
        "DeleteMessageBatch",
        {"QueueUrl": f"https://us-west-2.queue.amazonaws.com/{ACCOUNT}/q"},
        datetime.now(UTC),
        0.0,
        200,
    )
    (request,) = needs(call, region="eu-west-1", account="999999999999")
    assert request.action == "sqs:DeleteMessage"
    assert request.resource == f"arn:aws:sqs:us-west-2:{ACCOUNT}:q"


def test_a_legacy_queue_in_another_region_is_refused() -> None:
    flow = f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:flow-definition/fd"
    problem = queue_problem(f"https://queue.amazonaws.com/{ACCOUNT}/q", flow, "eu-west-1")
    assert problem is not None
    assert "region us-east-1" in problem
