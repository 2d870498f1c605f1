"""Leader election on a real Lease (kube-apiserver), and the fence it drives.

Timings are scaled down (lease 3 s, renew deadline 2 s, retry 0.25 s) so the cases run in
seconds; the code is the same as with controller-runtime's 15/10/2.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kubernetes import client

from retraining_operator import fencing
from retraining_operator.aws.session import AwsSession, ClientPool, ClientSettings
from retraining_operator.leader import LeaderElector, LeaseTiming
from support.kube import KubeCluster

pytestmark = pytest.mark.kube

TIMING = LeaseTiming(duration=3.0, renew_deadline=2.0, retry_period=0.25)


def _elector(api: Any, namespace: str, identity: str, **kwargs: Any) -> LeaderElector:
    return LeaderElector(
        "rtp-leader",
        namespace,
        identity,
        timing=TIMING,
        api=client.CoordinationV1Api(api),
        **kwargs,
    )


def _wait(predicate: Any, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError("not reached in time")


def test_one_leader_and_a_takeover_after_the_lease_expires(
    kube: KubeCluster, kube_api: Any, kube_namespace: str
) -> None:
    a = _elector(kube_api, kube_namespace, "pod-a")
    b = _elector(kube_api, kube_namespace, "pod-b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # held: the standby waits
    assert a.holds()
    assert not b.holds()
    lease = kube.kubectl_json("get", "lease", "rtp-leader", namespace=kube_namespace)
    assert lease["spec"]["holderIdentity"] == "pod-a"
    assert lease["spec"]["leaseDurationSeconds"] == 3

    # pod-a dies (renews no more). pod-b takes over once the record has not changed for a
    # whole lease duration by its own clock: never sooner, and promptly after.
    stop = threading.Event()
    got: list[bool] = []
    started = time.monotonic()
    waiter = threading.Thread(target=lambda: got.append(b.acquire(stop)))
    waiter.start()
    waiter.join(timeout=10)
    waited = time.monotonic() - started
    assert got == [True]
    assert TIMING.duration - 0.5 <= waited <= TIMING.duration + 2 * TIMING.retry_period + 1.0
    lease = kube.kubectl_json("get", "lease", "rtp-leader", namespace=kube_namespace)
    assert lease["spec"]["holderIdentity"] == "pod-b"
    assert lease["spec"]["leaseTransitions"] == 1

    # pod-a resumes: by its own clock its last renewal is too old, so the fence is shut
    # before it has even asked the API server; and it cannot take the Lease back.
    assert not a.holds()
    assert not a.try_acquire_or_renew()


def test_a_leader_that_cannot_renew_gives_up_within_the_renew_deadline(
    kube_api: Any, kube_namespace: str
) -> None:
    a = _elector(kube_api, kube_namespace, "pod-a")
    assert a.try_acquire_or_renew()
    stop = threading.Event()
    lost = threading.Event()
    a.keep(stop, on_lost=lost.set)
    try:
        time.sleep(1.0)
        assert a.holds()
        assert not lost.is_set()  # renewing keeps it
        # Someone else takes the Lease (an admin, or the other side of a healed partition):
        # pod-a cannot renew any more and must stop acting within the renew deadline.
        leases = client.CoordinationV1Api(kube_api)
        lease = leases.read_namespaced_lease("rtp-leader", kube_namespace)
        lease.spec.holder_identity = "pod-b"
        leases.replace_namespaced_lease("rtp-leader", kube_namespace, lease)
        gave_up = _wait(lost.is_set, timeout=TIMING.renew_deadline + 1.5)
        assert gave_up <= TIMING.renew_deadline + 1.0
        assert not a.holds()
    finally:
        stop.set()


def test_a_released_lease_is_taken_at_once(kube_api: Any, kube_namespace: str) -> None:
    a = _elector(kube_api, kube_namespace, "pod-a")
    b = _elector(kube_api, kube_namespace, "pod-b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()  # a clean shutdown (rolling update)
    assert not a.holds()
    assert b.try_acquire_or_renew()  # no need to wait for expiry


def test_two_candidates_never_both_win(kube_api: Any, kube_namespace: str) -> None:
    candidates = [_elector(kube_api, kube_namespace, f"pod-{i}") for i in range(4)]
    results: list[bool] = []
    barrier = threading.Barrier(len(candidates))

    def race(elector: LeaderElector) -> None:
        barrier.wait()
        results.append(elector.try_acquire_or_renew())

    threads = [threading.Thread(target=race, args=(e,)) for e in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    assert sum(e.holds() for e in candidates) == 1


def test_the_fence_stops_aws_calls_before_they_are_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sent: list[str] = []
    # The operator's pool takes the fence as its guard (handlers.OperatorState).
    session = AwsSession(
        "us-east-1",
        clients=ClientPool(before_send=fencing.check),
        settings=ClientSettings(max_attempts=1),
    )
    sm = session.sagemaker()
    sm.meta.events.register("before-send", lambda request, **_: sent.append(request.url))
    holds = {"now": False}
    fencing.install(lambda: holds["now"])
    try:
        with pytest.raises(fencing.NotLeader, match="does not hold the leader lease"):
            sm.list_endpoints()
        assert sent == []  # refused before any byte left the process
    finally:
        fencing.reset()
