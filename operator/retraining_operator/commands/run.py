"""`retraining-operator run`: start the operator.

Every flag's default comes from an environment variable (the Helm chart sets them), read and
checked only when `run` is parsed without that flag (`FromEnvironment`, cli.py): a bad value
stops `run` with the variable's name and never breaks `--help`, `--version` or another command.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

from retraining_operator.cli import FromEnvironment, Repeated
from retraining_operator.commands import Subparsers


def register(sub: Subparsers) -> None:
    run = sub.add_parser(
        "run",
        help="start the operator (watches RetrainingPolicy resources)",
        description="Start the operator. Every flag also reads an environment variable "
        "(shown in brackets) so the Helm chart can configure it.",
    )
    _add_watch_flags(run)
    _add_pace_flags(run)
    _add_trust_flags(run)
    _add_leader_flags(run)
    _add_ledger_key_flags(run)
    run.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    run.set_defaults(handler=_run)


def _add_watch_flags(run: argparse.ArgumentParser) -> None:
    """What the operator watches, and where it answers (liveness, /metrics, logs)."""
    run.add_argument(
        "--namespace",
        "-n",
        action=Repeated,
        default=FromEnvironment("RTP_WATCH_NAMESPACES", parse=_comma_list),
        help="namespace to watch; repeat for several (glob patterns allowed). "
        "Default: all namespaces [RTP_WATCH_NAMESPACES, comma-separated]",
    )
    run.add_argument(
        "--peering",
        default=FromEnvironment("RTP_PEERING", parse=_text_or_none),
        help="kopf peering name: a rolling update hands over without two active operators, "
        "and a developer's `kopf run --dev` pauses this one. Not HA: peers of equal priority "
        "all pause, so several replicas need --leader-election. Default: standalone, no "
        "peering [RTP_PEERING]",
    )
    run.add_argument(
        "--liveness",
        default=FromEnvironment("RTP_LIVENESS", "http://0.0.0.0:8080/healthz"),
        help="kopf liveness endpoint URL; its host is the address it listens on; empty "
        "disables [RTP_LIVENESS]",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=FromEnvironment("RTP_METRICS_PORT", "9090", _whole_number),
        help="Prometheus /metrics port, 0 disables [RTP_METRICS_PORT]",
    )
    run.add_argument(
        "--metrics-bind-address",
        default=FromEnvironment("RTP_METRICS_BIND_ADDRESS", "0.0.0.0"),  # noqa: S104
        help="address /metrics listens on: 0.0.0.0 (every interface), ::, 127.0.0.1, or "
        "one IP of the pod [RTP_METRICS_BIND_ADDRESS]",
    )
    run.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=FromEnvironment("RTP_LOG_FORMAT", "text"),
        help="log line format [RTP_LOG_FORMAT]",
    )


def _add_pace_flags(run: argparse.ArgumentParser) -> None:
    """How often policies are looked at, and how much work and AWS traffic at once."""
    run.add_argument(
        "--tick-seconds",
        type=float,
        default=FromEnvironment("RTP_TICK_SECONDS", "30", _number),
        help="how often a policy with a problem (Degraded, AWS busy) is looked at again; a "
        "healthy policy sleeps until its next poll, job/rollout check or maxWait, at most "
        "max(tick, pollInterval), or until its spec or annotations change [RTP_TICK_SECONDS]",
    )
    run.add_argument(
        "--observe-seconds",
        type=float,
        default=FromEnvironment("RTP_OBSERVE_SECONDS", "30", _number),
        help="how often an in-flight training job or rollout is described [RTP_OBSERVE_SECONDS]",
    )
    run.add_argument(
        "--max-workers",
        type=int,
        default=FromEnvironment("RTP_MAX_WORKERS", "16", _whole_number),
        help="policies reconciled at once (worker threads) [RTP_MAX_WORKERS]",
    )
    run.add_argument(
        "--fetch-concurrency",
        type=int,
        default=FromEnvironment("RTP_FETCH_CONCURRENCY", "16", _whole_number),
        help="parallel S3 reads of A2I outputs per poll [RTP_FETCH_CONCURRENCY]",
    )
    run.add_argument(
        "--aws-calls-per-second",
        type=float,
        default=FromEnvironment("RTP_AWS_CALLS_PER_SECOND", "20", _number),
        help="budget of AWS HTTP calls per second for all policies together, 0 = unlimited "
        "[RTP_AWS_CALLS_PER_SECOND]",
    )
    run.add_argument(
        "--namespace-calls-per-second",
        type=float,
        default=FromEnvironment("RTP_NAMESPACE_CALLS_PER_SECOND", "0", _number),
        help="a hard cap of AWS calls per second for one namespace, under the operator-wide "
        "budget (which is shared fairly between namespaces either way); 0 = none "
        "[RTP_NAMESPACE_CALLS_PER_SECOND]",
    )
    run.add_argument(
        "--max-fetches-per-poll",
        type=int,
        default=FromEnvironment("RTP_MAX_FETCHES_PER_POLL", "1000", _whole_number),
        help="the most A2I outputs one poll reads; a longer backlog is read by the next "
        "polls, which come at once; 0 = no cap [RTP_MAX_FETCHES_PER_POLL]",
    )


def _add_trust_flags(run: argparse.ArgumentParser) -> None:
    """Whose roles a policy may use, and whether it may take over another policy's endpoint."""
    run.add_argument(
        "--allowed-role-pattern",
        action=Repeated,
        default=FromEnvironment("RTP_ALLOWED_ROLE_PATTERNS", parse=_comma_list),
        help="fnmatch pattern of role ARNs policies may name (spec.aws.roleArn and "
        "spec.training.roleArn); repeat for several; default: any "
        "[RTP_ALLOWED_ROLE_PATTERNS, comma-separated]",
    )
    run.add_argument(
        "--tenancy-mode",
        choices=["Single", "Scoped"],
        default=FromEnvironment("RTP_TENANCY_MODE", "Single"),
        help="Single: one team, the operator's identity, every role in a spec checked against "
        "--allowed-role-pattern; Scoped: each namespace must belong to one RetrainingTenant, "
        "whose role the operator assumes and whose allow-lists bound every policy "
        "(docs/tenancy.md) [RTP_TENANCY_MODE]",
    )
    run.add_argument(
        "--allow-endpoint-adoption",
        action=argparse.BooleanOptionalAction,
        default=FromEnvironment("RTP_ALLOW_ENDPOINT_ADOPTION", "false", _switch),
        help="Single mode: let the annotation retraining.hitl.dev/adopt-endpoint take over an "
        "endpoint another policy rolled (Scoped mode: the tenant's adoptEndpoints decides); "
        "default: no [RTP_ALLOW_ENDPOINT_ADOPTION]",
    )


def _add_leader_flags(run: argparse.ArgumentParser) -> None:
    """Which replica is active (the Lease) and which policies it serves (its shard)."""
    run.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=FromEnvironment("RTP_LEADER_ELECTION", "false", _switch),
        help="run kopf only while holding a coordination.k8s.io Lease (several replicas, one "
        "active, failover within ~20 s) [RTP_LEADER_ELECTION]",
    )
    run.add_argument(
        "--lease-name",
        default=FromEnvironment("RTP_LEASE_NAME", "a2i-retraining-operator"),
        help="name of the leader Lease; a shard appends -<shard> [RTP_LEASE_NAME]",
    )
    run.add_argument(
        "--lease-namespace",
        default=FromEnvironment("RTP_LEASE_NAMESPACE", parse=_text_or_pod_namespace),
        help="namespace of the leader Lease [RTP_LEASE_NAMESPACE, else POD_NAMESPACE]",
    )
    run.add_argument(
        "--identity",
        default=FromEnvironment("POD_ID", parse=_text_or_host_name),
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
        default=FromEnvironment("RTP_SHARDS", "1", _whole_number),
        help="number of shards: each operator serves the policies whose UID hashes to its "
        "shard [RTP_SHARDS]",
    )
    run.add_argument(
        "--shard",
        type=int,
        default=FromEnvironment("RTP_SHARD", parse=_shard),
        help="this operator's shard, 0..shards-1 [RTP_SHARD, else the ordinal at the end of "
        "POD_ID as a StatefulSet names its pods]",
    )


def _add_ledger_key_flags(run: argparse.ArgumentParser) -> None:
    """Where the key that seals every policy's ingest ledger is kept."""
    run.add_argument(
        "--ledger-key-secret",
        default=FromEnvironment("RTP_LEDGER_KEY_SECRET", "a2i-retraining-operator-ledger-key"),
        help="the Secret whose key seals every policy's ingest ledger; created with a random "
        "key when missing (docs/tenancy.md, threat model) [RTP_LEDGER_KEY_SECRET]",
    )
    run.add_argument(
        "--ledger-key-namespace",
        default=FromEnvironment("RTP_LEDGER_KEY_NAMESPACE", parse=_text_or_pod_namespace),
        help="namespace of the ledger key Secret [RTP_LEDGER_KEY_NAMESPACE, else POD_NAMESPACE]",
    )
    run.add_argument(
        "--ledger-key-file",
        default=FromEnvironment("RTP_LEDGER_KEY_FILE", parse=_text_or_none),
        help="read the ledger key from this file (the raw key, at least 16 bytes) or directory "
        "(a mounted Secret: `current`, and older keys that still verify) instead of the "
        "Secret [RTP_LEDGER_KEY_FILE]",
    )


# How an environment variable's text becomes a flag's value (FromEnvironment.parse): each
# raises ValueError saying what it expected.


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("not a number") from None


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("not a whole number") from None


_SWITCH_WORDS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _switch(text: str) -> bool:
    # An empty value is off, as an unset variable is.
    if not text.strip():
        return False
    try:
        return _SWITCH_WORDS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"not one of {', '.join(_SWITCH_WORDS)}") from None


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _text_or_none(text: str) -> str | None:
    return text or None


def _text_or_pod_namespace(text: str) -> str:
    return text or os.environ.get("POD_NAMESPACE", "default")


def _text_or_host_name(text: str) -> str:
    return text or socket.gethostname()


def _shard(text: str) -> int:
    """RTP_SHARD, else the ordinal a StatefulSet puts at the end of its pod names (POD_ID)."""
    if text:
        return _whole_number(text)
    ordinal = os.environ.get("POD_ID", "").rsplit("-", 1)[-1]
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
