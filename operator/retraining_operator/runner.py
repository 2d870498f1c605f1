"""Starts kopf with the operator's handlers and settings (the `run` subcommand)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.server
import json
import logging
import os
import signal
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

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
    """Run until told to stop (SIGTERM, SIGINT) or the Lease is lost; 0 on a clean stop."""
    from retraining_operator import handlers, metrics

    configure_logging(args.log_format, args.verbose)
    try:
        keyring = ledger_keyring(args)
    except Exception as error:  # without its key the operator cannot trust any ledger: stop
        logging.getLogger(__name__).error(
            "cannot load the ledger key (%s/%s): %s", args.ledger_key_namespace,
            args.ledger_key_secret, error,
        )  # fmt: skip
        return 1
    config = _config(args, keyring)
    handlers.configure(config)
    # Served by the standby too: its liveness and its `rtp_leader 0` are worth scraping.
    metrics.serve(config.metrics_port, config.metrics_bind_address)
    lifecycle = _Lifecycle(args)
    handlers.on_stop(lifecycle.stop_all)
    return lifecycle.run()


def exit_now(code: int) -> NoReturn:
    """End the process now: a pass still in a worker thread (an AWS call in flight) is
    abandoned, not awaited. Every step is idempotent by run id, and a leader has released
    its Lease only after fencing itself (no write follows the hand-over)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _config(args: argparse.Namespace, keyring: Keyring) -> OperatorConfig:
    return OperatorConfig(
        namespaces=tuple(args.namespace or ()),
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


class _Lifecycle:
    """Standby, leading, stopping. A stop comes from SIGTERM/SIGINT (kopf's own handlers while
    kopf runs, ours while standing by) or from a lost Lease.

    kopf runs on a loop of ours and waits on an asyncio future of that loop: a threading.Event
    (or a concurrent future) as kopf's stop flag is waited for in a thread of asyncio's default
    executor, which never returns after a SIGTERM, and closing the loop then waits for that
    thread forever (the operator stayed up after "Operator is stopping": issue 29). The loop is
    not closed afterwards: the process exits (`exit_now`)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stop = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.kopf_stop: asyncio.Future[None] = self.loop.create_future()
        self.elector = _elector(args) if args.leader_election else None
        self.lost = False

    def stop_all(self) -> None:
        self.stop.set()

        def release_kopf() -> None:
            if not self.kopf_stop.done():
                self.kopf_stop.set_result(None)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to stop
            self.loop.call_soon_threadsafe(release_kopf)

    def run(self) -> int:
        from retraining_operator import fencing, metrics

        elector = self.elector
        if elector is not None:
            fencing.install(elector.holds)
            with _standby_liveness(self.args.liveness), _signals_stop(self.stop_all):
                if not elector.acquire(self.stop):
                    return 0  # told to stop while standing by
            elector.keep(self.stop, on_lost=self._lost)
        metrics.LEADER.set(1)
        try:
            self._kopf()
        finally:
            metrics.LEADER.set(0)
            self.stop_all()
            if elector is not None:
                elector.release()  # fences this process first: no write after the hand-over
        if self.lost:
            # A lost lease ends the process (as controller-runtime's manager does): the pod
            # restarts as a standby, with nothing of the old leadership left in memory.
            logging.getLogger(__name__).error("leadership lost: exiting")
            return 1
        return 0

    def _lost(self) -> None:
        self.lost = True
        self.stop_all()

    def _kopf(self) -> None:
        import kopf

        from retraining_operator import heap

        namespaces = list(self.args.namespace or [])
        asyncio.set_event_loop(self.loop)
        with heap.trimmed():
            kopf.run(
                loop=self.loop,
                standalone=self.args.peering is None,
                peering_name=self.args.peering,
                namespaces=namespaces,
                clusterwide=not namespaces,
                liveness_endpoint=self.args.liveness or None,
                stop_flag=self.kopf_stop,
            )


@contextlib.contextmanager
def _signals_stop(stop: Callable[[], None]) -> Iterator[None]:
    """While standing by (before kopf installs its own), SIGTERM and SIGINT stop the process
    cleanly (exit 0) instead of killing it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = (signal.SIGTERM, signal.SIGINT)
    before = {sig: signal.getsignal(sig) for sig in handled}
    for sig in handled:
        signal.signal(sig, lambda *_: stop())
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


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
