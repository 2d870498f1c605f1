"""Tenant quotas at pass time: where the tenants' usage comes from, and the one place a run
reserves its share (thread-safe: passes of several policies run at once).

The usage of every policy comes from its own status (`reconcile/quota.py usage_of`), through a
kopf index of all policies (kopf holds every handler until the index is loaded, so a restarted
operator knows what runs before it starts anything). A run that starts is not in the index
until its status write comes back through the watch: `QuotaBook` keeps it as a reservation in
the meantime, so two policies of one tenant starting in the same second cannot both take the
last slot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from retraining_operator.api import RetrainingPolicyStatus
from retraining_operator.reconcile.quota import QuotaVerdict, RunUsage, judge, usage_of
from retraining_operator.reconcile.tenancy import covers
from retraining_operator.tenancy_api import Tenant

# A reservation the index has not shown for this long is dropped (its status write failed).
RESERVATION_TTL = timedelta(minutes=10)


class UsageSource(Protocol):
    """Every policy's runs, by namespace."""

    def namespaces(self) -> Iterable[str]: ...

    def usages(self, namespace: str) -> Sequence[RunUsage]: ...


class PassUsage:
    """A source kept by the passes themselves (a Controller without kopf: tests, benches):
    each pass records its policy's runs at its end."""

    def __init__(self) -> None:
        self._runs: dict[str, dict[str, tuple[RunUsage, ...]]] = {}
        self._lock = threading.Lock()

    def record(self, namespace: str, uid: str, status: RetrainingPolicyStatus) -> None:
        runs = tuple(usage_of(uid, status))
        with self._lock:
            if runs:
                self._runs.setdefault(namespace, {})[uid] = runs
            else:
                self._runs.get(namespace, {}).pop(uid, None)

    def namespaces(self) -> Iterable[str]:
        with self._lock:
            return list(self._runs)

    def usages(self, namespace: str) -> Sequence[RunUsage]:
        with self._lock:
            return [run for runs in self._runs.get(namespace, {}).values() for run in runs]


class UsageIndex:
    """The operator's source: kopf's index of RetrainingPolicies (namespace -> each policy's
    runs that count against a quota; policies without such runs contribute nothing)."""

    def __init__(self) -> None:
        self._index: Mapping[Any, Iterable[Any]] | None = None

    @staticmethod
    def entry(namespace: str, uid: str, status: Mapping[str, Any]) -> Any:
        try:
            runs = usage_of(uid, RetrainingPolicyStatus.model_validate(dict(status)))
        except ValueError:
            return None
        return {namespace: tuple(runs)} if runs else None

    def attach(self, index: Mapping[Any, Iterable[Any]] | None) -> None:
        if index is not None:
            self._index = index

    def namespaces(self) -> Iterable[str]:
        return [str(key) for key in list(self._index or {})]

    def usages(self, namespace: str) -> Sequence[RunUsage]:
        if self._index is None:
            return []
        return [run for runs in self._index.get(namespace, ()) for run in runs]


@dataclass(frozen=True)
class _Reservation:
    tenant: str
    usage: RunUsage


class QuotaBook:
    """Decides and records run starts against tenant quotas (one per operator)."""

    def __init__(
        self,
        source: UsageSource,
        namespace_labels: Callable[[str], Mapping[str, str] | None] = lambda _: None,
    ) -> None:
        self.source = source
        self.namespace_labels = namespace_labels
        self._reserved: dict[str, _Reservation] = {}  # policy uid -> its starting run
        self._lock = threading.Lock()

    def try_start(
        self, tenant: Tenant, uid: str, run_id: str, hours: float, now: datetime
    ) -> QuotaVerdict:
        """May this policy's run start now? When it may, it is reserved at once."""
        with self._lock:
            usages = self._usages_of(tenant, now)
            others = [u for u in usages if not (u.policy_uid == uid and u.run_id == run_id)]
            verdict = judge(tenant.spec.quota, tenant.name, others, hours, now)
            if verdict.allowed:
                usage = RunUsage(uid, run_id, now, hours, in_flight=True)
                self._reserved[uid] = _Reservation(tenant.name, usage)
            return verdict

    def _usages_of(self, tenant: Tenant, now: datetime) -> list[RunUsage]:
        needs_labels = tenant.spec.namespace_selector is not None
        usages: list[RunUsage] = []
        for namespace in self.source.namespaces():
            labels = self.namespace_labels(namespace) if needs_labels else None
            if covers(tenant, namespace, labels):
                usages.extend(self.source.usages(namespace))
        seen = {(u.policy_uid, u.run_id) for u in usages}
        for uid, reservation in list(self._reserved.items()):
            usage = reservation.usage
            if (uid, usage.run_id) in seen or now - usage.started > RESERVATION_TTL:
                del self._reserved[uid]  # the index shows it now (or it never started)
            elif reservation.tenant == tenant.name:
                usages.append(usage)
        return usages
