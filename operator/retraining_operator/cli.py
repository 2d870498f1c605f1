"""Command line: `retraining-operator run|...`.

Subcommands import their heavy dependencies lazily so `--help` stays fast and
`run` never loads the test-only stand-ins.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from retraining_operator import __version__


def _env_list(name: str) -> list[str]:
    raw = os.environ.get(name, "")
    return [item.strip() for item in raw.split(",") if item.strip()]


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        help="kopf liveness endpoint URL [RTP_LIVENESS]",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retraining-operator",
        description="Kubernetes operator that turns Amazon A2I human reviews into incremental "
        "SageMaker training runs and gated, zero-downtime endpoint rollouts.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "run":
        from retraining_operator.runner import run_operator

        return run_operator(args)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse exits first
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
