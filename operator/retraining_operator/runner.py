"""Starts kopf with the operator's handlers and settings (the `run` subcommand)."""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import logging
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retraining_operator.config import OperatorConfig
from retraining_operator.leader import LeaderElector, LeaseTiming
from retraining_operator.reconcile.provenance import CURRENT_KEY, Keyring, SealKey
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

    from retraining_operator import fencing, handlers, heap, metrics

    configure_logging(args.log_format, args.verbose)
    namespaces = list(args.namespace or [])
    try:
        keyring = ledger_keyring(args)
    except Exception as error:  # without its key the operator cannot trust any ledger: stop
        logging.getLogger(__name__).error(
            "cannot load the ledger key (%s/%s): %s", args.ledger_key_namespace,
            args.ledger_key_secret, error,
        )  # fmt: skip
        return 1
    config = OperatorConfig(
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
        shards=args.shards,
        shard=args.shard,
        tenancy_mode=TenancyMode(args.tenancy_mode),
        namespace_calls_per_second=args.namespace_calls_per_second,
        max_fetches_per_poll=args.max_fetches_per_poll,
        ledger_keyring=keyring,
        allow_endpoint_adoption=args.allow_endpoint_adoption,
    )
    handlers.configure(config)
    # Served by the standby too: its liveness and its `rtp_leader 0` are worth scraping.
    metrics.serve(config.metrics_port, config.metrics_bind_address)
    stop = threading.Event()
    elector = _elector(args) if args.leader_election else None
    if elector is not None:
        fencing.install(elector.holds)
        with _standby_liveness(args.liveness):
            if not elector.acquire(stop):
                return 0
        elector.keep(stop, on_lost=stop.set)
    metrics.LEADER.set(1)
    try:
        with heap.trimmed():
            kopf.run(
                standalone=args.peering is None,
                peering_name=args.peering,
                namespaces=namespaces,
                clusterwide=not namespaces,
                liveness_endpoint=args.liveness or None,
                stop_flag=stop,
            )
    finally:
        metrics.LEADER.set(0)
        if elector is not None:
            lost = stop.is_set() and not elector.holds()
            elector.release()
    if elector is not None and lost:
        # A lost lease ends the process (as controller-runtime's manager does): the pod
        # restarts as a standby, with nothing of the old leadership left in memory.
        logging.getLogger(__name__).error("leadership lost: exiting")
        return 1
    return 0


def ledger_keyring(args: argparse.Namespace) -> Keyring:
    """The keys that seal the ledgers: from `--ledger-key-file`, else the Secret (created
    with a random key on the first start)."""
    if args.ledger_key_file:
        data = _key_files(Path(args.ledger_key_file))
    else:
        from retraining_operator import kube

        data = kube.ledger_key_secret(
            args.ledger_key_namespace, args.ledger_key_secret, lambda: SealKey.generate().secret
        )
    current = data.pop(CURRENT_KEY, None)
    if current is None:
        raise ValueError(f"no `{CURRENT_KEY}` key")
    return Keyring(SealKey(current), tuple(SealKey(value) for _, value in sorted(data.items())))


def _key_files(path: Path) -> dict[str, bytes]:
    if path.is_dir():  # a mounted Secret: one file per key (skip Kubernetes' ..data links)
        return {
            f.name: f.read_bytes()
            for f in path.iterdir()
            if f.is_file() and not f.name.startswith(".")
        }
    return {CURRENT_KEY: path.read_bytes()}


def _elector(args: argparse.Namespace) -> LeaderElector:
    name = args.lease_name if args.shards <= 1 else f"{args.lease_name}-{args.shard}"
    timing = LeaseTiming(args.lease_duration, args.renew_deadline, args.retry_period)
    return LeaderElector(name, args.lease_namespace, args.identity, timing=timing)


@contextlib.contextmanager
def _standby_liveness(url: str) -> Iterator[None]:
    """While waiting for the Lease, answer the liveness probe kopf answers once leading (a
    standby is healthy; the kubelet must not restart it)."""
    if not url:
        yield
        return
    parsed = urllib.parse.urlsplit(url)
    path = parsed.path or "/"

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path.split("?")[0] == path else 404)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:  # probes are not news
            return

    host = (parsed.hostname or "0.0.0.0").strip("[]")  # noqa: S104 - kopf's own default
    server = http.server.ThreadingHTTPServer((host, parsed.port or 80), Health)
    thread = threading.Thread(target=server.serve_forever, name="standby-liveness", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
