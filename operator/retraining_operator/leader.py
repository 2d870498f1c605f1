"""Leader election on a `coordination.k8s.io` Lease, the Kubernetes convention.

Two operator pods run; one holds the Lease and runs kopf, the other waits. The timings are
controller-runtime's: the Lease lasts 15 s, the leader renews it every 2 s and gives up if
it could not renew for 10 s; a candidate retries every 2 s. So after the leader dies the
standby acquires the Lease within 15 s + 2 s of the last renewal, and starts kopf.

Expiry is judged by the candidate's own clock, as client-go does: the Lease is free when
its record (holder, renew time) has not changed for a whole lease duration since this
process first saw it — clocks of different nodes are never compared. Every write to the
Lease is conditional on its resourceVersion, so two candidates never both win.

`holds()` is the fence (`fencing.py`): true only while the last renewal is less than the
renew deadline old, by this process's monotonic clock. A leader paused past that and
resumed writes nothing, even before its renew loop learns the Lease has moved on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from retraining_operator import kube

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseTiming:
    duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


class LeaderElector:
    def __init__(
        self,
        name: str,
        namespace: str,
        identity: str,
        *,
        timing: LeaseTiming = LeaseTiming(),
        api: client.CoordinationV1Api | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.timing = timing
        self._api = api
        self._monotonic = monotonic
        self._renewed_at: float | None = None  # monotonic time of the last own renewal
        self._observed: tuple[str | None, Any] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0

    @property
    def api(self) -> client.CoordinationV1Api:
        if self._api is None:
            self._api = kube.coordination()
        return self._api

    def holds(self) -> bool:
        """Whether this process may act now (the fence)."""
        renewed = self._renewed_at
        return renewed is not None and self._monotonic() - renewed < self.timing.renew_deadline

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this process holds the Lease (True) or `stop` is set (False)."""
        waiting_logged = False
        while not stop.is_set():
            if self.try_acquire_or_renew():
                log.info(
                    "leader lease %s/%s acquired by %s", self.namespace, self.name, self.identity
                )
                return True
            if not waiting_logged:
                log.info(
                    "standby: lease %s/%s is held by %s", self.namespace, self.name, self._holder()
                )
                waiting_logged = True
            stop.wait(self.timing.retry_period)
        return False

    def keep(self, stop: threading.Event, on_lost: Callable[[], None]) -> threading.Thread:
        """Renew in a daemon thread until `stop`; `on_lost()` once the Lease is lost."""

        def renew() -> None:
            while not stop.wait(self.timing.retry_period):
                if self.try_acquire_or_renew():
                    continue
                if not self.holds():
                    log.error("leader lease %s/%s lost; stopping", self.namespace, self.name)
                    on_lost()
                    return

        thread = threading.Thread(target=renew, name="leader-lease", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """On a clean exit: give the Lease up, so the standby need not wait for it to expire."""
        if not self.holds():
            return
        self._renewed_at = None
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.renew_time = None
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)
            log.info("leader lease %s/%s released", self.namespace, self.name)
        except client.ApiException as error:
            log.warning("leader lease not released (%s); it expires by itself", error.reason)

    def try_acquire_or_renew(self) -> bool:
        """One attempt: True when this process holds the Lease afterwards."""
        now_wall = datetime.now(UTC)
        now = self._monotonic()
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except client.ApiException as error:
            if error.status != 404:
                log.warning("leader lease unreadable: HTTP %s %s", error.status, error.reason)
                return False
            return self._create(now_wall, now)
        except Exception as error:  # the API server unreachable: try again later
            log.warning("leader lease unreadable: %s", type(error).__name__)
            return False
        spec = lease.spec or client.V1LeaseSpec()
        record = (spec.holder_identity, spec.renew_time)
        if record != self._observed:
            self._observed, self._observed_at = record, now
        held_by_other = spec.holder_identity not in (None, "", self.identity)
        duration = spec.lease_duration_seconds or self.timing.duration
        if held_by_other and now - self._observed_at < duration:
            return False
        if spec.holder_identity != self.identity:
            spec.acquire_time = now_wall
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = int(self.timing.duration)
        spec.renew_time = now_wall
        lease.spec = spec
        try:  # conditional on the resourceVersion read above
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except client.ApiException as error:
            if error.status != 409:
                log.warning("leader lease not renewed: HTTP %s %s", error.status, error.reason)
            return False
        except Exception as error:
            log.warning("leader lease not renewed: %s", type(error).__name__)
            return False
        self._renewed_at = now
        self._observed, self._observed_at = (spec.holder_identity, spec.renew_time), now
        return True

    def _create(self, now_wall: datetime, now: float) -> bool:
        lease = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=int(self.timing.duration),
                acquire_time=now_wall,
                renew_time=now_wall,
                lease_transitions=0,
            ),
        )
        try:
            self.api.create_namespaced_lease(self.namespace, lease)
        except client.ApiException as error:
            if error.status != 409:  # 409: another candidate created it first
                log.warning("leader lease not created: HTTP %s %s", error.status, error.reason)
            return False
        self._renewed_at = now
        return True

    def _holder(self) -> str:
        return str(self._observed[0]) if self._observed else "?"
