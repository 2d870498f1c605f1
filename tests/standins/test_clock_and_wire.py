"""Units: the clock, wire (de)serialization against botocore's model, constraint checks."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from retraining_standins.clock import Clock
from retraining_standins.errors import ApiError
from retraining_standins.model import A2I_RUNTIME, SAGEMAKER, operation_model
from retraining_standins.paging import paginate, time_key
from retraining_standins.validation import compile_pattern, validate_params
from retraining_standins.wire import (
    ShapeError,
    parse_json_body,
    parse_rest_request,
    serialize_output,
)

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_manual_clock_only_moves_when_told() -> None:
    clock = Clock(START)
    assert clock.manual
    time.sleep(0.01)
    assert clock.now() == START
    assert clock.advance(90) == START + timedelta(seconds=90)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="back"):
        clock.set(START)
    clock.reset(START)
    assert clock.now() == START


def test_real_time_clock_runs_at_speed() -> None:
    clock = Clock(START, speed=1000)
    time.sleep(0.05)
    elapsed = (clock.now() - START).total_seconds()
    assert 40 <= elapsed < 5000
    jumped = clock.advance(3600)
    assert (jumped - START).total_seconds() >= 3600 + 40


def test_json11_timestamps_arrive_as_epoch_numbers() -> None:
    op = operation_model(SAGEMAKER, "ListTrainingJobs")
    params = parse_json_body(b'{"CreationTimeAfter": 1714564800, "MaxResults": 5}', op.input_shape)
    assert params == {"CreationTimeAfter": START, "MaxResults": 5}


def test_rest_json_query_timestamps_are_iso8601() -> None:
    op = operation_model(A2I_RUNTIME, "ListHumanLoops")
    params = parse_rest_request(
        op,
        {},
        {
            "CreationTimeAfter": ["2024-05-01T12:00:00Z"],
            "MaxResults": ["100"],
            "FlowDefinitionArn": ["arn:aws:sagemaker:us-east-1:123456789012:flow-definition/f"],
        },
        {},
        b"",
    )
    assert params["CreationTimeAfter"] == START
    assert params["MaxResults"] == 100


def test_output_timestamps_follow_the_model() -> None:
    a2i = operation_model(A2I_RUNTIME, "DescribeHumanLoop")
    out = serialize_output(
        {
            "CreationTime": START,
            "HumanLoopStatus": "Completed",
            "HumanLoopName": "l",
            "HumanLoopArn": "arn",
            "FlowDefinitionArn": "arn",
        },
        a2i.output_shape,
        "unixTimestamp",
    )
    assert out["CreationTime"] == "2024-05-01T12:00:00.000Z"  # iso8601 per the model
    sm = operation_model(SAGEMAKER, "DescribeModel")
    out = serialize_output(
        {"ModelName": "m", "ModelArn": "arn", "CreationTime": START},
        sm.output_shape,
        "unixTimestamp",
    )
    assert out["CreationTime"] == START.timestamp()


def test_serialization_is_strict() -> None:
    sm = operation_model(SAGEMAKER, "DescribeEndpoint")
    with pytest.raises(ShapeError, match="not a member"):
        serialize_output({"EndpointName": "e", "Bogus": 1}, sm.output_shape, "unixTimestamp")
    with pytest.raises(ShapeError, match="not one of"):
        serialize_output({"EndpointStatus": "Sleeping"}, sm.output_shape, "unixTimestamp")
    with pytest.raises(ShapeError, match="expected a string"):
        serialize_output({"EndpointName": 3}, sm.output_shape, "unixTimestamp")


def test_constraint_messages_follow_aws() -> None:
    op = operation_model(SAGEMAKER, "UpdateEndpointWeightsAndCapacities")
    with pytest.raises(ApiError) as err:
        validate_params(
            {
                "EndpointName": "e" * 64,
                "DesiredWeightsAndCapacities": [{"VariantName": "bad_name", "DesiredWeight": 1.0}],
            },
            op.input_shape,
        )
    assert err.value.code == "ValidationException"
    assert err.value.message.startswith("3 validation errors detected: ")
    assert "at 'endpointName' failed to satisfy constraint" in err.value.message
    assert "at 'desiredWeightsAndCapacities.1.member.variantName'" in err.value.message


def test_java_unicode_classes_are_approximated() -> None:
    tag_value = compile_pattern(r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)")
    assert tag_value is not None
    assert tag_value.fullmatch("vision team:a/b=c")
    assert not tag_value.fullmatch("no#hash")


def test_paging_tokens_are_scoped() -> None:
    items = list(range(5))
    key = lambda i: time_key(START + timedelta(seconds=i), str(i))  # noqa: E731
    page, token = paginate(items, key, descending=False, max_results=2, next_token=None, scope="a")
    assert page == [0, 1]
    assert token is not None
    page, _ = paginate(items, key, descending=False, max_results=2, next_token=token, scope="a")
    assert page == [2, 3]
    with pytest.raises(ApiError):
        paginate(items, key, descending=False, max_results=2, next_token=token, scope="b")
