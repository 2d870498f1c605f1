"""`retraining-operator run`: start the operator."""

from __future__ import annotations

import argparse
import os
import socket
import sys

from retraining_operator.commands import Subparsers


def _env_list(name: str) -> list[str]:
    raw = os.environ.get(name, "")
    return [item.strip() for item in raw.split(",") if item.strip()]


def register(sub: Subparsers) -> None:
    run = sub.add_parser(
        "run",
        help="start the operator (watches RetrainingPolicy resources)",
        description="Start the operator. Every flag also reads an environment variable "
        "(shown in brackets) so the Helm chart can configure it.",
    )
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=_env_list("RTP_WATCH_NAMESPACES"),
        help="namespace to watch; repeat for several (glob patterns allowed). "
        "Default: all namespaces [RTP_WATCH_NAMESPACES, comma-separated]",
    )
    run.add_argument(
        "--peering",
        default=os.environ.get("RTP_PEERING") or None,
        help="kopf peering name for HA (several replicas, one active). "
        "Default: standalone, no peering [RTP_PEERING]",
    )
    run.add_argument(
        "--liveness",
        default=os.environ.get("RTP_LIVENESS", "http://0.0.0.0:8080/healthz"),
        help="kopf liveness endpoint URL; its host is the address it listens on; empty "
        "disables [RTP_LIVENESS]",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("RTP_METRICS_PORT", "9090")),
        help="Prometheus /metrics port, 0 disables [RTP_METRICS_PORT]",
    )
    run.add_argument(
        "--metrics-bind-address",
        default=os.environ.get("RTP_METRICS_BIND_ADDRESS", "0.0.0.0"),  # noqa: S104
        help="address /metrics listens on: 0.0.0.0 (every interface), ::, 127.0.0.1, or "
        "one IP of the pod [RTP_METRICS_BIND_ADDRESS]",
    )
    run.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=os.environ.get("RTP_LOG_FORMAT", "text"),
        help="log line format [RTP_LOG_FORMAT]",
    )
    run.add_argument(
        "--tick-seconds",
        type=float,
        default=float(os.environ.get("RTP_TICK_SECONDS", "30")),
        help="how often a policy with a problem (Degraded, AWS busy) is looked at again; a "
        "healthy policy sleeps until its next poll, job/rollout check or maxWait, at most "
        "max(tick, pollInterval), or until its spec or annotations change [RTP_TICK_SECONDS]",
    )
    run.add_argument(
        "--observe-seconds",
        type=float,
        default=float(os.environ.get("RTP_OBSERVE_SECONDS", "30")),
        help="how often an in-flight training job or rollout is described [RTP_OBSERVE_SECONDS]",
    )
    run.add_argument(
        "--max-workers",
        type=int,
        default=int(os.environ.get("RTP_MAX_WORKERS", "16")),
        help="policies reconciled at once (worker threads) [RTP_MAX_WORKERS]",
    )
    run.add_argument(
        "--fetch-concurrency",
        type=int,
        default=int(os.environ.get("RTP_FETCH_CONCURRENCY", "16")),
        help="parallel S3 reads of A2I outputs per poll [RTP_FETCH_CONCURRENCY]",
    )
    run.add_argument(
        "--aws-calls-per-second",
        type=float,
        default=float(os.environ.get("RTP_AWS_CALLS_PER_SECOND", "20")),
        help="budget of AWS HTTP calls per second for all policies together, 0 = unlimited "
        "[RTP_AWS_CALLS_PER_SECOND]",
    )
    run.add_argument(
        "--allowed-role-pattern",
        action="append",
        default=_env_list("RTP_ALLOWED_ROLE_PATTERNS"),
        help="fnmatch pattern of role ARNs policies may name (spec.aws.roleArn and "
        "spec.training.roleArn); repeat for several; default: any "
        "[RTP_ALLOWED_ROLE_PATTERNS, comma-separated]",
    )
    run.add_argument(
        "--namespace-calls-per-second",
        type=float,
        default=float(os.environ.get("RTP_NAMESPACE_CALLS_PER_SECOND", "0")),
        help="a hard cap of AWS calls per second for one namespace, under the operator-wide "
        "budget (which is shared fairly between namespaces either way); 0 = none "
        "[RTP_NAMESPACE_CALLS_PER_SECOND]",
    )
    run.add_argument(
        "--max-fetches-per-poll",
        type=int,
        default=int(os.environ.get("RTP_MAX_FETCHES_PER_POLL", "1000")),
        help="the most A2I outputs one poll reads; a longer backlog is read by the next "
        "polls, which come at once; 0 = no cap [RTP_MAX_FETCHES_PER_POLL]",
    )
    run.add_argument(
        "--tenancy-mode",
        choices=["Single", "Scoped"],
        default=os.environ.get("RTP_TENANCY_MODE", "Single"),
        help="Single: one team, the operator's identity, every role in a spec checked against "
        "--allowed-role-pattern; Scoped: each namespace must belong to one RetrainingTenant, "
        "whose role the operator assumes and whose allow-lists bound every policy "
        "(docs/tenancy.md) [RTP_TENANCY_MODE]",
    )
    run.add_argument(
        "--allow-endpoint-adoption",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("RTP_ALLOW_ENDPOINT_ADOPTION", "false").lower()
        in ("1", "true", "yes"),
        help="Single mode: let the annotation retraining.hitl.dev/adopt-endpoint take over an "
        "endpoint another policy rolled (Scoped mode: the tenant's adoptEndpoints decides); "
        "default: no [RTP_ALLOW_ENDPOINT_ADOPTION]",
    )
    run.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("RTP_LEADER_ELECTION", "false").lower() in ("1", "true", "yes"),
        help="run kopf only while holding a coordination.k8s.io Lease (several replicas, one "
        "active, failover within ~20 s) [RTP_LEADER_ELECTION]",
    )
    run.add_argument(
        "--lease-name",
        default=os.environ.get("RTP_LEASE_NAME", "a2i-retraining-operator"),
        help="name of the leader Lease; a shard appends -<shard> [RTP_LEASE_NAME]",
    )
    run.add_argument(
        "--lease-namespace",
        default=os.environ.get("RTP_LEASE_NAMESPACE") or os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the leader Lease [RTP_LEASE_NAMESPACE, else POD_NAMESPACE]",
    )
    run.add_argument(
        "--identity",
        default=os.environ.get("POD_ID") or socket.gethostname(),
        help="this process's name in the Lease [POD_ID, else the host name]",
    )
    # Lease timings (controller-runtime's 15/10/2 s by default); hidden: tests shorten them,
    # production has no reason to.
    for flag, default in (
        ("--lease-duration", 15.0),
        ("--renew-deadline", 10.0),
        ("--retry-period", 2.0),
    ):
        run.add_argument(flag, type=float, default=default, help=argparse.SUPPRESS)
    run.add_argument(
        "--shards",
        type=int,
        default=int(os.environ.get("RTP_SHARDS", "1")),
        help="number of shards: each operator serves the policies whose UID hashes to its "
        "shard [RTP_SHARDS]",
    )
    run.add_argument(
        "--shard",
        type=int,
        default=_shard_from_env(),
        help="this operator's shard, 0..shards-1 [RTP_SHARD, else the ordinal at the end of "
        "POD_ID as a StatefulSet names its pods]",
    )
    run.add_argument(
        "--ledger-key-secret",
        default=os.environ.get("RTP_LEDGER_KEY_SECRET", "a2i-retraining-operator-ledger-key"),
        help="the Secret whose key seals every policy's ingest ledger; created with a random "
        "key when missing (docs/tenancy.md, threat model) [RTP_LEDGER_KEY_SECRET]",
    )
    run.add_argument(
        "--ledger-key-namespace",
        default=os.environ.get("RTP_LEDGER_KEY_NAMESPACE")
        or os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the ledger key Secret [RTP_LEDGER_KEY_NAMESPACE, else POD_NAMESPACE]",
    )
    run.add_argument(
        "--ledger-key-file",
        default=os.environ.get("RTP_LEDGER_KEY_FILE") or None,
        help="read the ledger key from this file (the raw key, at least 16 bytes) or directory "
        "(a mounted Secret: `current`, and older keys that still verify) instead of the "
        "Secret [RTP_LEDGER_KEY_FILE]",
    )
    run.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    run.set_defaults(handler=_run)


def _shard_from_env() -> int:
    explicit = os.environ.get("RTP_SHARD")
    if explicit:
        return int(explicit)
    pod = os.environ.get("POD_ID", "")
    ordinal = pod.rsplit("-", 1)[-1]
    return int(ordinal) if ordinal.isdigit() else 0


def _run(args: argparse.Namespace) -> int:
    if not 0 <= args.shard < args.shards:
        print(f"--shard {args.shard} is outside 0..{args.shards - 1}", file=sys.stderr)
        return 2
    if not 0 < args.retry_period < args.renew_deadline < args.lease_duration:
        print("lease timings need 0 < retry period < renew deadline < duration", file=sys.stderr)
        return 2
    from retraining_operator.runner import exit_now, run_operator

    exit_now(run_operator(args))
