"""How an emulated model serves live traffic: its latency and error rates, and the per-minute
CloudWatch metrics SageMaker publishes for a variant (namespace `AWS/SageMaker`, dimensions
`EndpointName` and `VariantName`).

A model's `ModelServing` gives its latency as a median and a 99th percentile (milliseconds)
and its 5XX/4XX error rates. The emulator turns it into one statistic set per minute and
metric, the way SageMaker aggregates per-request samples:

* `Invocations` (Count): SampleCount = Sum = the requests of the minute;
* `Invocation5XXErrors`, `Invocation4XXErrors` (Count): SampleCount = requests, Sum = errors,
  so `Average` is the error rate and `Sum` the error count, as on AWS;
* `ModelLatency` (Microseconds, as AWS): SampleCount = requests, Average = the mean of a
  log-normal latency with the given median and p99, Maximum = the p99, Minimum = the p1.

A statistic set carries no distribution, so its `Maximum` stands for the minute's p99: the
CloudWatch stand-in answers a `p99` query with it (`moto_server._percentile_statistics`).

Errors are spread exactly over the minutes: after N requests a variant has answered
floor(N x rate) errors, so small rates still show up, deterministically.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

NAMESPACE = "AWS/SageMaker"
Z99 = 2.3263478740408408
"""The standard normal's 99th percentile: p99 = median * exp(Z99 * sigma) for a log-normal."""
DEFAULT_INVOCATIONS_PER_MINUTE = 100


@dataclass(frozen=True)
class ModelServing:
    """How a model serves: latency percentiles (ms) and the share of requests that fail."""

    p50_ms: float = 20.0
    p99_ms: float = 60.0
    error_5xx_rate: float = 0.0
    error_4xx_rate: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.p50_ms <= self.p99_ms:
            raise ValueError(f"need 0 < p50 <= p99, not p50={self.p50_ms} p99={self.p99_ms}")
        rates = (self.error_5xx_rate, self.error_4xx_rate)
        if any(not 0.0 <= r <= 1.0 for r in rates) or sum(rates) > 1.0:
            raise ValueError(f"error rates must be in [0, 1] and sum to at most 1: {rates}")

    @property
    def sigma(self) -> float:
        return math.log(self.p99_ms / self.p50_ms) / Z99

    @property
    def mean_ms(self) -> float:
        return self.p50_ms * math.exp(self.sigma**2 / 2)

    @property
    def p1_ms(self) -> float:
        return self.p50_ms * math.exp(-Z99 * self.sigma)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ModelServing:
        """`{"p50Ms": 20, "p99Ms": 60, "error5xxRate": 0.01, "error4xxRate": 0}`."""
        defaults = cls()
        return cls(
            p50_ms=float(body.get("p50Ms", defaults.p50_ms)),
            p99_ms=float(body.get("p99Ms", defaults.p99_ms)),
            error_5xx_rate=float(body.get("error5xxRate", defaults.error_5xx_rate)),
            error_4xx_rate=float(body.get("error4xxRate", defaults.error_4xx_rate)),
        )


ServingProvider = Callable[[str, str], ModelServing]
"""`provider(model_name, model_data_url) -> ModelServing`."""


def default_serving(model_name: str, model_data_url: str) -> ModelServing:
    return ModelServing()


def serving_table(
    models: Mapping[str, ModelServing], default: ModelServing | None = None
) -> ServingProvider:
    """A provider that looks a model up by its data URL, then by its name; `default` (or
    `ModelServing()`) for every other model."""
    table = dict(models)
    fallback = default or ModelServing()

    def provider(model_name: str, model_data_url: str) -> ModelServing:
        return table.get(model_data_url) or table.get(model_name) or fallback

    return provider


@dataclass
class VariantCounter:
    """What one variant has answered so far (keeps the error spread exact across minutes)."""

    requests: int = 0
    errors_5xx: int = 0
    errors_4xx: int = 0

    def take(self, requests: int, serving: ModelServing) -> tuple[int, int]:
        """Count `requests` more; the 5XX and 4XX errors among them."""
        self.requests += requests
        e5 = math.floor(self.requests * serving.error_5xx_rate) - self.errors_5xx
        e4 = math.floor(self.requests * serving.error_4xx_rate) - self.errors_4xx
        self.errors_5xx += e5
        self.errors_4xx += e4
        return e5, e4


def minute_metrics(
    endpoint: str,
    variant: str,
    minute: datetime,
    requests: int,
    errors: tuple[int, int],
    serving: ModelServing,
) -> list[dict[str, Any]]:
    """PutMetricData members for one variant and one minute (none without requests)."""
    if requests <= 0:
        return []
    dimensions = [
        {"Name": "EndpointName", "Value": endpoint},
        {"Name": "VariantName", "Value": variant},
    ]
    # moto stores naive UTC timestamps and compares them with the query's.
    stamp = minute.astimezone(UTC).replace(tzinfo=None)

    def datum(name: str, unit: str, total: float, low: float, high: float) -> dict[str, Any]:
        return {
            "MetricName": name,
            "Dimensions": dimensions,
            "Timestamp": stamp,
            "Unit": unit,
            "StatisticValues": {
                "SampleCount": float(requests),
                "Sum": float(total),
                "Minimum": float(low),
                "Maximum": float(high),
            },
        }

    e5, e4 = errors
    micros = 1000.0
    return [
        datum("Invocations", "Count", requests, 1, 1),
        datum("Invocation5XXErrors", "Count", e5, 0, 1 if e5 else 0),
        datum("Invocation4XXErrors", "Count", e4, 0, 1 if e4 else 0),
        datum(
            "ModelLatency",
            "Microseconds",
            requests * serving.mean_ms * micros,
            serving.p1_ms * micros,
            serving.p99_ms * micros,
        ),
    ]


class MotoCloudWatch:
    """A `MetricSink` writing into moto's in-process CloudWatch backend: the emulator always
    runs in the process that serves moto (`stack.AwsStandins`), so what it writes is what
    `GetMetricData` on the CloudWatch stand-in answers (and `AwsStandins.reset` forgets it)."""

    def __init__(self, account_id: str, region: str) -> None:
        self.account_id = account_id
        self.region = region

    def put(self, namespace: str, data: list[dict[str, Any]]) -> None:
        from moto.cloudwatch.models import cloudwatch_backends

        backend = cloudwatch_backends[self.account_id][self.region]
        for start in range(0, len(data), 1000):
            backend.put_metric_data(namespace, data[start : start + 1000])
