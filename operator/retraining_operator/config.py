"""Operator-wide configuration (flags and environment), shared by the runner and handlers."""

from __future__ import annotations

import fnmatch
import functools
import os
from dataclasses import dataclass, field

from retraining_operator.reconcile.provenance import Keyring, SealKey
from retraining_operator.tenancy_api import TenancyMode


@functools.cache
def _process_keyring() -> Keyring:
    """The ledger key of code that runs without the operator's Secret (tests, benches, the
    plan CLI): `RTP_PROCESS_LEDGER_KEY` (hex) when set, so that several such processes agree,
    else a random key that lives as long as this process. `retraining-operator run` never uses
    it: it loads the ledger key from its Secret (or --ledger-key-file) or refuses to start."""
    shared = os.environ.get("RTP_PROCESS_LEDGER_KEY")
    return Keyring(SealKey(bytes.fromhex(shared) if shared else SealKey.generate().secret))


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...] = ()
    peering: str | None = None
    metrics_port: int = 0  # the CLI defaults to 9090; 0 = no /metrics server
    # The address /metrics listens on: every interface by default; 127.0.0.1 when a sidecar
    # (e.g. kube-rbac-proxy) fronts it.
    metrics_bind_address: str = "0.0.0.0"  # noqa: S104
    # The longest a policy waits between passes. A pass comes earlier when a poll, an
    # observation or maxWait is due (the pass says when), or when spec/annotations change.
    tick_seconds: float = 30.0
    # A fresh operator spreads policies' first polls over this many seconds.
    poll_spread_seconds: float = 30.0
    # How often an in-flight training job or rollout is described at most.
    observe_seconds: float = 30.0
    # Worker threads for (blocking) handlers: how many policies reconcile at once.
    max_workers: int = 16
    # Threads per poll that read A2I outputs from S3.
    fetch_concurrency: int = 16
    # Upper bound on AWS calls per second, all policies together (0 = unlimited).
    aws_calls_per_second: float = 20.0
    # Sharding: this operator serves the policies of shard `shard` out of `shards`.
    shards: int = 1
    shard: int = 0
    # An optional hard cap per namespace, under the one above (0: none). Without it the budget
    # is still shared fairly between namespaces (aws/budget.py): a quiet namespace is served
    # at the next token however many are busy.
    namespace_calls_per_second: float = 0.0
    # The most loop outputs one poll reads; the rest wait for the next poll, which comes at
    # once (a long backlog is read in slices, each pass giving the worker thread back).
    max_fetches_per_poll: int = 1000
    # fnmatch patterns of role ARNs policies may assume; empty = any.
    allowed_role_patterns: tuple[str, ...] = field(default_factory=tuple)
    # Single: one team, the operator's identity; Scoped: every policy acts for exactly one
    # RetrainingTenant, as its role (docs/tenancy.md).
    tenancy_mode: TenancyMode = TenancyMode.SINGLE
    # Single mode: whether the adopt-endpoint annotation may take over an endpoint another
    # policy rolled (Scoped mode: the tenant's adoptEndpoints decides).
    allow_endpoint_adoption: bool = False
    # The keys that seal every policy's ingest ledger (docs/tenancy.md, threat model).
    ledger_keyring: Keyring | None = None

    @property
    def keyring(self) -> Keyring:
        return self.ledger_keyring or _process_keyring()

    def role_allowed(self, role_arn: str | None) -> bool:
        if role_arn is None or not self.allowed_role_patterns:
            return True
        return any(fnmatch.fnmatchcase(role_arn, p) for p in self.allowed_role_patterns)


def namespace_call_rate(config: OperatorConfig) -> float:
    """The per-namespace hard cap on AWS calls per second (0: none; fair sharing of the
    operator-wide budget applies either way)."""
    return max(0.0, config.namespace_calls_per_second)
