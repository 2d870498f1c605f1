"""CloudWatch gateway: per-variant endpoint metrics (GetMetricData) and alarm states.

`variant_series` fetches, for each production variant, the per-period points of the
metrics a variant-shift step is judged on; the judgement itself is pure
(`reconcile/rollout/variant_shift/`). `firing_alarms` answers which of the named alarms are in
state ALARM. Errors are mapped like every gateway's (`aws/errors.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from retraining_operator.aws.errors import mapped

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDataQueryTypeDef

MAX_QUERIES = 500  # GetMetricData's limit per request
MAX_ALARM_NAMES = 100  # DescribeAlarms' limit per request


@dataclass(frozen=True)
class MetricQuery:
    """One statistic of one metric, returned under `key` in each variant's series."""

    key: str
    metric_name: str
    stat: str


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SeriesRequest:
    """The metrics of some variants of one endpoint over [start, end), per `period` s."""

    namespace: str
    endpoint_name: str
    variants: Sequence[str]
    queries: Sequence[MetricQuery]
    start: datetime
    end: datetime
    period: int = 60


def variant_series(
    cw: CloudWatchClient, request: SeriesRequest
) -> dict[str, dict[str, list[tuple[datetime, float]]]]:
    """`{variant: {key: [(period start, value), ...]}}` over [start, end), paginated.

    Dimensions are SageMaker's per-variant pair, EndpointName + VariantName. A metric with
    no data in the window yields an empty list.
    """
    namespace, endpoint_name, period = request.namespace, request.endpoint_name, request.period
    variants, queries, start, end = request.variants, request.queries, request.start, request.end
    ids: dict[str, tuple[str, str]] = {}
    metric_queries: list[MetricDataQueryTypeDef] = []
    for v_index, variant in enumerate(variants):
        for q_index, query in enumerate(queries):
            query_id = f"v{v_index}q{q_index}"
            ids[query_id] = (variant, query.key)
            metric_queries.append(
                {
                    "Id": query_id,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": namespace,
                            "MetricName": query.metric_name,
                            "Dimensions": [
                                {"Name": "EndpointName", "Value": endpoint_name},
                                {"Name": "VariantName", "Value": variant},
                            ],
                        },
                        "Period": period,
                        "Stat": query.stat,
                    },
                    "ReturnData": True,
                }
            )
    out: dict[str, dict[str, list[tuple[datetime, float]]]] = {
        variant: {query.key: [] for query in queries} for variant in variants
    }
    for chunk_start in range(0, len(metric_queries), MAX_QUERIES):
        chunk = metric_queries[chunk_start : chunk_start + MAX_QUERIES]
        kwargs: dict[str, Any] = {
            "MetricDataQueries": chunk,
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        with mapped("GetMetricData"):
            for page in cw.get_paginator("get_metric_data").paginate(**kwargs):
                for result in page.get("MetricDataResults", []):
                    variant, key = ids[result["Id"]]
                    out[variant][key].extend(
                        (_utc(when), float(value))
                        for when, value in zip(
                            result.get("Timestamps", []), result.get("Values", []), strict=False
                        )
                    )
    return out


def firing_alarms(cw: CloudWatchClient, names: Sequence[str]) -> list[str]:
    """Which of the named metric or composite alarms are in state ALARM (missing: ignored)."""
    firing: list[str] = []
    for chunk_start in range(0, len(names), MAX_ALARM_NAMES):
        chunk = list(names[chunk_start : chunk_start + MAX_ALARM_NAMES])
        with mapped("DescribeAlarms"):
            for page in cw.get_paginator("describe_alarms").paginate(
                AlarmNames=chunk, AlarmTypes=["MetricAlarm", "CompositeAlarm"]
            ):
                alarms = [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]
                firing.extend(str(a["AlarmName"]) for a in alarms if a.get("StateValue") == "ALARM")
    return sorted(set(firing))


def missing_alarms(cw: CloudWatchClient, names: Sequence[str]) -> list[str]:
    """Which of the named alarms do not exist (a typo in autoRollbackAlarms watches nothing)."""
    found: set[str] = set()
    for chunk_start in range(0, len(names), MAX_ALARM_NAMES):
        chunk = list(names[chunk_start : chunk_start + MAX_ALARM_NAMES])
        with mapped("DescribeAlarms"):
            for page in cw.get_paginator("describe_alarms").paginate(
                AlarmNames=chunk, AlarmTypes=["MetricAlarm", "CompositeAlarm"]
            ):
                for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                    found.add(str(alarm["AlarmName"]))
    return sorted(set(names) - found)
