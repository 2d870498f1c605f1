"""`retraining-operator run`: start the operator."""

from __future__ import annotations

import argparse
import os

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
        help="kopf liveness endpoint URL; empty disables [RTP_LIVENESS]",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("RTP_METRICS_PORT", "9090")),
        help="Prometheus /metrics port, 0 disables [RTP_METRICS_PORT]",
    )
    run.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=os.environ.get("RTP_LOG_FORMAT", "text"),
        help="log line format [RTP_LOG_FORMAT]",
    )
    run.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from retraining_operator.runner import run_operator

    return run_operator(args)
