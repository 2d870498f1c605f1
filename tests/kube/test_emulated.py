"""Fast lane: the operator's kopf wiring on kmock's ``KubernetesEmulator`` (no envtest needed).

Why the emulator suffices here: these tests check only that the operator's handlers, run by
kopf in-process, discover RetrainingPolicies, list and watch them cluster-wide, and patch
their finalizer in and out. That is plain list/watch/patch/delete traffic, which kmock serves
from memory faithfully. Nothing here depends on what kmock does not do — schema validation,
defaulting, pruning, the status subresource, resourceVersion semantics or selectors — so these
tests need no API server and run in well under a second each (with looptime compressing kopf's
timers). Those Kubernetes semantics are proven on the real kube-apiserver in ``test_crd.py``
and ``test_operator.py`` (marker ``kube``); this module is deliberately not marked ``kube``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from kmock import KubernetesEmulator, ResourceInfo

from retraining_operator import handlers, kube  # registers the operator's handlers with kopf

RESOURCE = "retraining.hitl.dev/v1alpha1/retrainingpolicies"
NAMESPACE = "fast-lane"
NAME = "emulated"
URL = f"/apis/retraining.hitl.dev/v1alpha1/namespaces/{NAMESPACE}/retrainingpolicies/{NAME}"


@kopf.on.login()
def _login_to_kmock(memo: Any, logger: Any, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """One login handler for kopf's global registry (handlers live there, see DESIGN.md §4).

    In-process operators started by these tests pass kmock's URL in ``memo``; any other
    in-process kopf run in the same session falls back to kopf's usual kubeconfig login.
    """
    url = memo.get("kmock_url") if hasattr(memo, "get") else None
    if url is None:
        return kopf.login_via_client(logger=logger, **kwargs)
    return kopf.ConnectionInfo(server=url, insecure=True)


@pytest.fixture
def emulator(kmock: KubernetesEmulator) -> KubernetesEmulator:
    # kopf waits for namespaces in discovery before it watches anything; events are posted.
    kmock.resources["v1/namespaces"] = ResourceInfo(
        kind="Namespace", namespaced=False, verbs={"list", "watch", "get"}
    )
    kmock.resources["v1/events"] = ResourceInfo(
        kind="Event", namespaced=True, verbs={"create", "list", "watch"}
    )
    kmock.resources[RESOURCE] = ResourceInfo(
        kind="RetrainingPolicy",
        singular="retrainingpolicy",
        namespaced=True,
        shortnames={"rtp"},
        verbs={"get", "list", "watch", "patch", "update", "create", "delete"},
        subresources={"status"},
    )
    kmock.objects[RESOURCE, NAMESPACE, NAME] = {
        "apiVersion": "retraining.hitl.dev/v1alpha1",
        "kind": "RetrainingPolicy",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "uid": "0b9e0d1c-0000-4000-8000-000000000001",
            "resourceVersion": "1",
            "generation": 1,
        },
        "spec": {"aws": {"region": "us-east-1"}},
    }
    return kmock


@contextlib.asynccontextmanager
async def operator(emulator: KubernetesEmulator) -> AsyncIterator[asyncio.Task[None]]:
    settings = kopf.OperatorSettings()
    # Never cancel kopf's task to stop it: a stop without the stop-flag arms kopf's "ultimate
    # exiting" timer (SIGKILL to the thread after 10 min), and looptime fast-forwards the loop
    # to it while pytest tears down - killing pytest itself. Stop with the flag; disarm anyway.
    settings.process.ultimate_exiting_timeout = None
    stop_flag: asyncio.Event = asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            # Cluster-wide: a namespaced kopf lists /api/v1/namespaces, a path kmock 0.8
            # cannot parse (it expects a namespace name after `namespaces/`).
            clusterwide=True,
            standalone=True,
            settings=settings,
            stop_flag=stop_flag,
            memo=kopf.Memo(kmock_url=str(emulator.url).rstrip("/")),
        )
    )
    try:
        yield task
    finally:
        stop_flag.set()
        try:
            await asyncio.wait_for(task, timeout=60)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _finalizers(emulator: KubernetesEmulator) -> list[str]:
    obj = emulator.objects[RESOURCE, NAMESPACE, NAME]
    if obj.deleted:
        return []
    return list(obj.get("metadata", {}).get("finalizers", []))


def _adds_finalizer(patch: Any) -> bool:
    """Does this PATCH body (JSON patch or merge patch) put our finalizer on the object?"""
    if isinstance(patch, list):  # kopf sends finalizers as a JSON patch guarded by `test`
        return any(
            op.get("op") in {"add", "replace"}
            and op.get("path", "").startswith("/metadata/finalizers")
            and handlers.FINALIZER in json.dumps(op.get("value"))
            for op in patch
        )
    return handlers.FINALIZER in (patch or {}).get("metadata", {}).get("finalizers", [])


@pytest.mark.looptime
async def test_finalizer_added_on_list_watch(emulator: KubernetesEmulator) -> None:
    async with operator(emulator) as task:
        for _ in range(30):  # coarse steps: looptime fast-forwards kopf's timers
            if handlers.FINALIZER in _finalizers(emulator):
                break
            await asyncio.sleep(10)
        assert not task.done(), task
    assert handlers.FINALIZER in _finalizers(emulator)
    # ...and it got there through a PATCH of the object by the operator.
    patches = [req.data for req in emulator[f"patch {URL}"]]
    assert any(_adds_finalizer(patch) for patch in patches), patches


@pytest.mark.looptime
async def test_delete_releases_finalizer(
    emulator: KubernetesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only kopf talks to the emulator; the operator's own client (the finalizer's fresh read
    # of the object) is not pointed at it: the finalizer works from the event's body.
    monkeypatch.setattr(kube, "read_policy", lambda namespace, name: None)
    async with operator(emulator):
        for _ in range(30):
            if handlers.FINALIZER in _finalizers(emulator):
                break
            await asyncio.sleep(10)
        assert handlers.FINALIZER in _finalizers(emulator)

        # The finalizer turns DELETE into a deletionTimestamp; kopf must run the delete
        # handler and patch the finalizer away, after which the emulator drops the object.
        async with emulator.delete(URL) as response:
            assert response.status == 200
        assert not emulator.objects[RESOURCE, NAMESPACE, NAME].deleted
        for _ in range(30):
            if emulator.objects[RESOURCE, NAMESPACE, NAME].deleted:
                break
            await asyncio.sleep(10)
    assert emulator.objects[RESOURCE, NAMESPACE, NAME].deleted
