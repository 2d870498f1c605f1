"""Starts kopf with the operator's handlers and settings (the `run` subcommand)."""

from __future__ import annotations

import argparse
import json
import logging

from retraining_operator.config import OperatorConfig
from retraining_operator.tenancy_api import TenancyMode


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload)


def configure_logging(log_format: str, verbose: bool) -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # botocore at DEBUG prints request headers (signatures); keep it quiet even in verbose mode.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def run_operator(args: argparse.Namespace) -> int:
    import kopf

    from retraining_operator import handlers

    configure_logging(args.log_format, args.verbose)
    namespaces = list(args.namespace or [])
    handlers.configure(
        OperatorConfig(
            namespaces=tuple(namespaces),
            peering=args.peering,
            metrics_port=args.metrics_port,
            metrics_bind_address=args.metrics_bind_address,
            tick_seconds=args.tick_seconds,
            observe_seconds=args.observe_seconds,
            max_workers=args.max_workers,
            fetch_concurrency=args.fetch_concurrency,
            aws_calls_per_second=args.aws_calls_per_second,
            allowed_role_patterns=tuple(args.allowed_role_pattern or ()),
            tenancy_mode=TenancyMode(args.tenancy_mode),
            namespace_calls_per_second=args.namespace_calls_per_second,
            max_fetches_per_poll=args.max_fetches_per_poll,
        )
    )
    kopf.run(
        standalone=args.peering is None,
        peering_name=args.peering,
        namespaces=namespaces,
        clusterwide=not namespaces,
        liveness_endpoint=args.liveness or None,
    )
    return 0
