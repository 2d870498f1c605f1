"""Prometheus metrics of the operator, labelled by namespace and policy."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from retraining_operator.api import RetrainingPolicyStatus

REGISTRY = CollectorRegistry(auto_describe=True)
_POLICY = ("namespace", "policy")

LOOPS_INGESTED = Counter(
    "rtp_loops_ingested_total",
    "Completed A2I human loops converted into pending samples.",
    _POLICY,
    registry=REGISTRY,
)
LOOPS_QUARANTINED = Counter(
    "rtp_loops_quarantined_total",
    "A2I outputs that could not be converted, by reason.",
    (*_POLICY, "reason"),
    registry=REGISTRY,
)
PENDING_SAMPLES = Gauge(
    "rtp_pending_samples",
    "Samples waiting for the next training run.",
    _POLICY,
    registry=REGISTRY,
)
RUNS = Counter(
    "rtp_runs_total",
    "Finished retraining runs, by outcome.",
    (*_POLICY, "outcome"),
    registry=REGISTRY,
)
TRAINING_SECONDS = Histogram(
    "rtp_training_duration_seconds",
    "Wall time from training job submission to its end.",
    _POLICY,
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200),
    registry=REGISTRY,
)
ROLLOUT_SECONDS = Histogram(
    "rtp_rollout_duration_seconds",
    "Wall time from the first rollout call to Serving or rollback.",
    _POLICY,
    buckets=(30, 60, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800),
    registry=REGISTRY,
)
AWS_CALLS = Counter(
    "rtp_aws_calls_total",
    "AWS API calls made, by service and operation.",
    ("service", "operation"),
    registry=REGISTRY,
)
AWS_ERRORS = Counter(
    "rtp_aws_errors_total",
    "AWS API calls that failed, by service, operation and error code.",
    ("service", "operation", "code"),
    registry=REGISTRY,
)
AWS_THROTTLED = Counter(
    "rtp_aws_throttled_total",
    "Throttled AWS responses (ThrottlingException, SlowDown, ...), retried ones included.",
    ("service", "operation"),
    registry=REGISTRY,
)
REVIEWER_AGREEMENT = Gauge(
    "rtp_reviewer_agreement",
    "Mean agreement of a reviewer with the consensus of their images (0..1; "
    "labels.consolidation.mode Consensus). `worker` is a stable hash of the workerId.",
    (*_POLICY, "worker"),
    registry=REGISTRY,
)
REVIEWER_IMAGES = Gauge(
    "rtp_reviewer_images",
    "Images a reviewer answered that were consolidated (Consensus), by worker hash.",
    (*_POLICY, "worker"),
    registry=REGISTRY,
)
LAST_SUCCESS = Gauge(
    "rtp_last_successful_run_timestamp_seconds",
    "Unix time of the last run that ended Deployed or Trained.",
    _POLICY,
    registry=REGISTRY,
)
POLL_DELAY = Histogram(
    "rtp_poll_delay_seconds",
    "How much later than pollInterval x 1.1 after the previous poll each poll came (0 when on "
    "time): above 0, the AWS call budget or the workers are too small for the polls.",
    buckets=(0, 1, 5, 15, 30, 60, 120, 300, 600, 1800),
    registry=REGISTRY,
)
POLL_DEMAND = Gauge(
    "rtp_poll_demand_calls_per_second",
    "AWS calls a second the configured polls need when idle (one per pollInterval per "
    "policy); above --aws-calls-per-second the polls cannot keep their intervals.",
    registry=REGISTRY,
)
POLICY_STARVED = Gauge(
    "rtp_policy_polls_starved",
    "1 while the policy's polls come later than pollInterval x 1.1 (condition PollsStarved).",
    _POLICY,
    registry=REGISTRY,
)
LEADER = Gauge(
    "rtp_leader",
    "1 while this operator process holds the leader Lease (or runs without leader election).",
    registry=REGISTRY,
)
GATE_METRIC = Gauge(
    "rtp_gate_metric",
    "The gate metric (spec.gate.metric) at the last evaluation: model=candidate is the newly "
    "trained model, model=serving the model it was compared with.",
    (*_POLICY, "metric", "model"),
    registry=REGISTRY,
)
PHASE = Gauge(
    "rtp_phase",
    "1 for the policy's current phase (Collecting, Training, Evaluating, Deploying, Serving, "
    "Suspended, Failed), 0 for a phase it has left while this process ran; a phase the policy "
    "has not been in has no series.",
    (*_POLICY, "phase"),
    registry=REGISTRY,
)
CONDITION = Gauge(
    "rtp_condition",
    "1 for each condition the policy's status has now (Ready, Progressing, Degraded, Drifted, "
    "PollsStarved, EventsFlowing, QuotaExceeded), with its status (True, False, Unknown) and "
    "reason; a status or reason the condition no longer has has no series.",
    (*_POLICY, "type", "status", "reason"),
    registry=REGISTRY,
)
AWS_IDENTITIES = Gauge(
    "rtp_aws_identities",
    "AWS identities (region, role, session tags, budget) holding a set of clients now: the "
    "operator's memory grows with these, not with its policies.",
    registry=REGISTRY,
)
AWS_SESSIONS = Gauge(
    "rtp_aws_sessions",
    "Policies holding AWS clients now (0 once every policy is deleted).",
    registry=REGISTRY,
)


class ClientPoolView(Protocol):
    def identities(self) -> int: ...

    def users(self) -> int: ...


def watch_client_pool(pool: ClientPoolView) -> None:
    """The two pool gauges read the pool at scrape time."""
    AWS_IDENTITIES.set_function(pool.identities)
    AWS_SESSIONS.set_function(pool.users)


def set_reviewers(
    namespace: str,
    policy: str,
    reviewers: Mapping[str, tuple[int, float]],
    previous: frozenset[str],
) -> frozenset[str]:
    """Series for these reviewers (worker hash -> (images, mean agreement)) and none for the
    ones of `previous` no longer among them: a policy keeps a bounded set of reviewer series
    (the most recently active, see ingest), not one per reviewer it ever saw."""
    for worker, (images, agreement) in reviewers.items():
        REVIEWER_AGREEMENT.labels(namespace, policy, worker).set(agreement)
        REVIEWER_IMAGES.labels(namespace, policy, worker).set(images)
    for worker in previous - reviewers.keys():
        for metric in (REVIEWER_AGREEMENT, REVIEWER_IMAGES):
            with contextlib.suppress(KeyError):
                metric.remove(namespace, policy, worker)
    return frozenset(reviewers)


EVENTS_DROPPED = Counter(
    "rtp_events_dropped_total",
    "A2I status-change events that A2I's own record does not confirm (UnknownLoop, ForeignLoop, "
    "FutureCreation): deleted from the queue, nothing recorded for them.",
    (*_POLICY, "reason"),
    registry=REGISTRY,
)


def set_phase(namespace: str, policy: str, phase: str, previous: str | None = None) -> None:
    """Only phases the policy has been in have a series: an idle policy has one, not seven
    (issue 18: each labelled child costs memory for the operator's life). Every phase it
    enters, Failed included, gets its series at once."""
    PHASE.labels(namespace, policy, phase).set(1)
    if previous is not None and previous != phase:
        PHASE.labels(namespace, policy, previous).set(0)


# (type, status, reason) of one condition: the labels of its rtp_condition series.
ConditionLabels = tuple[str, str, str]


def set_conditions(
    namespace: str,
    policy: str,
    conditions: frozenset[ConditionLabels],
    previous: frozenset[ConditionLabels],
) -> frozenset[ConditionLabels]:
    """A series for each condition the policy has now and none for a label set it no longer
    has: unlike rtp_phase, a condition's old status or reason is removed, not set to 0 (the
    reasons are many; a policy keeps one series per condition type, at most seven)."""
    for labels in conditions:
        CONDITION.labels(namespace, policy, *labels).set(1)
    for labels in previous - conditions:
        with contextlib.suppress(KeyError):
            CONDITION.remove(namespace, policy, *labels)
    return conditions


@dataclass(frozen=True)
class StatusSeries:
    """What rtp_phase and rtp_condition last reported for one policy (kept in its memo)."""

    phase: str | None = None
    conditions: frozenset[ConditionLabels] = frozenset()


def report_status(
    namespace: str, policy: str, status: RetrainingPolicyStatus, reported: StatusSeries
) -> StatusSeries:
    """The phase and conditions a pass ended with, on /metrics; returns what is reported now.
    Every pass that ends calls this, a refused one (phase Failed) included."""
    phase = reported.phase
    if status.phase is not None:
        set_phase(namespace, policy, status.phase.value, reported.phase)
        phase = status.phase.value
    conditions = frozenset((c.type.value, c.status, c.reason) for c in status.conditions)
    return StatusSeries(phase, set_conditions(namespace, policy, conditions, reported.conditions))


# Every metric labelled by namespace and policy (tests/unit/test_phase_metric.py checks that
# none is missing): a deleted policy's series leave with it.
_PER_POLICY = (
    LOOPS_INGESTED,
    LOOPS_QUARANTINED,
    PENDING_SAMPLES,
    RUNS,
    TRAINING_SECONDS,
    ROLLOUT_SECONDS,
    REVIEWER_AGREEMENT,
    REVIEWER_IMAGES,
    LAST_SUCCESS,
    POLICY_STARVED,
    GATE_METRIC,
    PHASE,
    CONDITION,
    EVENTS_DROPPED,
)


def forget_policy(namespace: str, policy: str) -> None:
    """Drop every series of a deleted policy: /metrics stops reporting it, and the operator
    keeps nothing of it (issue 18: nothing retained for a deleted policy)."""
    labels = {"namespace": namespace, "policy": policy}
    for metric in _PER_POLICY:
        metric.remove_by_labels(labels)


def serve(port: int, bind_address: str = "0.0.0.0") -> WSGIServer | None:  # noqa: S104
    """Expose /metrics on `bind_address` (default: every interface of the pod); port 0 disables.
    Returns the server (it runs in a daemon thread), so a caller may shut it down."""
    if not port:
        return None
    server, _ = start_http_server(port, addr=bind_address, registry=REGISTRY)
    return server


class MetricsObserver:
    """Counts AWS calls and errors (plugged into aws.session.AwsSession as its observer)."""

    def called(self, service: str, operation: str) -> None:
        AWS_CALLS.labels(service, operation).inc()

    def failed(self, service: str, operation: str, code: str) -> None:
        AWS_ERRORS.labels(service, operation, code).inc()

    def throttled(self, service: str, operation: str) -> None:
        AWS_THROTTLED.labels(service, operation).inc()
