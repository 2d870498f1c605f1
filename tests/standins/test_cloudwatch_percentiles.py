"""CloudWatch percentile statistics on the stand-ins (moto answers none by itself)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from retraining_standins.stack import AwsStandins

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _query(aws: AwsStandins, name: str, stat: str, minutes: int = 1) -> list[float]:
    response = aws.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {"Namespace": "Test", "MetricName": name},
                    "Period": 60 * minutes,
                    "Stat": stat,
                },
            }
        ],
        StartTime=START,
        EndTime=START + timedelta(minutes=minutes),
    )
    [result] = response["MetricDataResults"]
    return [float(v) for v in result["Values"]]


def _put(aws: AwsStandins, name: str, **datum: Any) -> None:
    aws.admin_client("cloudwatch").put_metric_data(
        Namespace="Test", MetricData=[{"MetricName": name, "Timestamp": START, **datum}]
    )


def test_single_values_get_the_nearest_rank_percentile(aws: AwsStandins) -> None:
    for value in range(1, 101):  # 1..100
        _put(aws, "Latency", Value=float(value))
    assert _query(aws, "Latency", "p99") == [99.0]
    assert _query(aws, "Latency", "p50") == [50.0]
    assert _query(aws, "Latency", "p99.9") == [100.0]
    assert _query(aws, "Latency", "Average") == [50.5]  # the basic statistics are moto's


def test_a_statistic_set_answers_its_maximum(aws: AwsStandins) -> None:
    _put(
        aws,
        "ModelLatency",
        StatisticValues={"SampleCount": 100, "Sum": 3000.0, "Minimum": 5.0, "Maximum": 90.0},
    )
    assert _query(aws, "ModelLatency", "p99") == [90.0]
