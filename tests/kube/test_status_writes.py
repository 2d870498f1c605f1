"""Status checkpoints against the real API server: conditional on what the pass saw.

Found by the reliability suite (docs/reliability.md, case 6): after an API server outage
the operator's passes ran on a stale cached object until the watch reconnected, and their
status writes went through unconditionally; a failed write waited kopf's 60 s backoff.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from retraining_operator import handlers
from retraining_operator import kube as gateway
from retraining_operator.api import API_GROUP, API_VERSION, PLURAL
from support.envtest import REPO_ROOT
from support.kube import KubeCluster

pytestmark = pytest.mark.kube

NAME = "status-writes"


@pytest.fixture
def custom(kube: KubeCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    api_client = kube.api_client()
    api = client.CustomObjectsApi(api_client)
    monkeypatch.setattr(gateway, "_clients", [api_client])
    yield api
    api_client.close()


@pytest.fixture
def policy(custom: Any, rtp_crd: Any, kube_namespace: str) -> dict[str, Any]:
    doc = yaml.safe_load((REPO_ROOT / "examples" / "train-only.yaml").read_text())
    doc["metadata"] = {"name": NAME, "namespace": kube_namespace}
    created: dict[str, Any] = custom.create_namespaced_custom_object(
        API_GROUP, API_VERSION, kube_namespace, PLURAL, doc
    )
    return created


def seen(obj: dict[str, Any]) -> gateway.Seen:
    meta = obj["metadata"]
    return gateway.Seen(meta["resourceVersion"], meta["generation"], dict(obj.get("status") or {}))


def get(custom: Any, namespace: str) -> dict[str, Any]:
    obj: dict[str, Any] = custom.get_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, PLURAL, NAME
    )
    return obj


def test_a_write_from_a_stale_view_is_refused(
    custom: Any, policy: dict[str, Any], kube_namespace: str
) -> None:
    stale = seen(policy)
    first = gateway.patch_status(kube_namespace, NAME, {"phase": "Collecting"}, seen=stale)
    assert first.status["phase"] == "Collecting"
    # A pass that still sees the object before that write must not overwrite it.
    with pytest.raises(gateway.StatusWriteFailed) as refused:
        gateway.patch_status(kube_namespace, NAME, {"phase": "Training"}, seen=stale)
    assert refused.value.conflict
    assert get(custom, kube_namespace)["status"]["phase"] == "Collecting"
    # The same pass continuing from its own write is fine.
    second = gateway.patch_status(kube_namespace, NAME, {"phase": "Training"}, seen=first)
    assert second.status["phase"] == "Training"


def test_a_spec_change_since_the_read_is_a_conflict(
    custom: Any, policy: dict[str, Any], kube_namespace: str
) -> None:
    before = seen(policy)
    patch = {"spec": {"dataset": {"minNewSamples": 7}}}
    custom.patch_namespaced_custom_object(
        API_GROUP, API_VERSION, kube_namespace, PLURAL, NAME, patch
    )
    with pytest.raises(gateway.StatusWriteFailed) as refused:
        gateway.patch_status(kube_namespace, NAME, {"phase": "Collecting"}, seen=before)
    assert refused.value.conflict
    assert "phase" not in (get(custom, kube_namespace).get("status") or {})


def test_metadata_only_changes_do_not_make_a_view_stale(
    custom: Any, policy: dict[str, Any], kube_namespace: str
) -> None:
    before = seen(policy)
    # kopf's own patches: finalizer and annotations (resourceVersion moves, generation not).
    patch = {"metadata": {"finalizers": [handlers.FINALIZER], "annotations": {"x": "y"}}}
    custom.patch_namespaced_custom_object(
        API_GROUP, API_VERSION, kube_namespace, PLURAL, NAME, patch
    )
    written = gateway.patch_status(kube_namespace, NAME, {"phase": "Collecting"}, seen=before)
    assert written.status["phase"] == "Collecting"
    assert written.resource_version != before.resource_version
    custom.patch_namespaced_custom_object(
        API_GROUP, API_VERSION, kube_namespace, PLURAL, NAME, {"metadata": {"finalizers": None}}
    )


def test_an_unreachable_api_server_is_a_retryable_write_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    configuration = client.Configuration()
    configuration.host = f"https://127.0.0.1:{port}"
    configuration.retries = 0
    monkeypatch.setattr(gateway, "_clients", [client.ApiClient(configuration)])
    with pytest.raises(gateway.StatusWriteFailed, match="unreachable") as failed:
        gateway.patch_status("ns", NAME, {"phase": "Collecting"})
    assert not failed.value.conflict


class _Stop:
    """Stands in for kopf's DaemonStopped flag (truthy once set)."""

    def __init__(self) -> None:
        self.set = False

    def __bool__(self) -> bool:
        return self.set

    async def wait(self, seconds: float | None = None) -> None:  # kopf's signature
        import asyncio

        deadline = asyncio.get_running_loop().time() + (seconds or 1e9)
        while not self.set and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_the_daemon_retries_a_failed_write_soon_and_wakes_on_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio
    import contextlib
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from retraining_operator.config import OperatorConfig

    stop = _Stop()
    passes: list[float] = []

    def fake_pass(*_: Any) -> float:
        passes.append(0.0)
        if len(passes) <= 2:
            raise gateway.StatusWriteFailed("ns/p changed since this pass read it", conflict=True)
        return 30.0  # nothing due for a long time ...

    monkeypatch.setattr(handlers, "reconcile", fake_pass)
    state = handlers.OperatorState(
        config=OperatorConfig(tick_seconds=0.2),
        controller=object(),  # type: ignore[arg-type]  # the pass is faked above
        executor=ThreadPoolExecutor(max_workers=1),
    )
    monkeypatch.setattr(handlers, "_state", state)
    memo: dict[str, Any] = {}  # kopf's per-object memo
    task = asyncio.create_task(
        handlers.policy_daemon(
            stopped=stop,
            body={},
            meta={},
            spec={},
            status={},
            uid="u-1",
            name="p",
            namespace="ns",
            memo=memo,
            logger=logging.getLogger("test"),
        )
    )
    for _ in range(100):  # two refused writes are retried after min(5 s, tick) = 0.2 s each
        if len(passes) >= 3:
            break
        await asyncio.sleep(0.05)
    assert len(passes) == 3
    await asyncio.sleep(0.3)
    assert len(passes) == 3  # ... so the daemon sleeps (tick 0.2 s is the cap only on errors)
    await handlers.wake_on_change(memo=memo)  # ... until the spec or annotations change
    for _ in range(100):
        if len(passes) >= 4:
            break
        await asyncio.sleep(0.05)
    assert len(passes) == 4
    stop.set = True  # kopf sets the flag, then cancels the daemon's task
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # The wake-up lives in the object's memo (kopf forgets it with the object), nowhere else.
    assert isinstance(memo["policy"], handlers.PolicyState)
    assert not any(isinstance(v, dict) and "u-1" in v for v in vars(handlers).values())


# ---------------------------------------------------------------------------------------
# Issue 29: an annotation is cleared only if it still says what the pass acted on, and
# never by a process that does not hold the Lease; a pass's writes are conditional on the
# object as its view was read, whatever watch event lands meanwhile.


def annotate(custom: Any, namespace: str, annotations: dict[str, str | None]) -> None:
    custom.patch_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, PLURAL, NAME, {"metadata": {"annotations": annotations}}
    )


def test_an_annotation_changed_since_the_pass_read_it_is_kept(
    custom: Any, policy: dict[str, Any], kube_namespace: str
) -> None:
    rollback = "retraining.hitl.dev/rollback-to"
    annotate(custom, kube_namespace, {rollback: "r20261101-000000", "team": "vision"})
    # The pass acted on A; a person has set B since.
    annotate(custom, kube_namespace, {rollback: "r20261102-000000"})
    cleared = gateway.clear_annotations(kube_namespace, NAME, [(rollback, "r20261101-000000")])
    assert cleared == []
    annotations = get(custom, kube_namespace)["metadata"]["annotations"]
    assert annotations[rollback] == "r20261102-000000"
    # Acted on B: cleared, and nothing else is touched.
    cleared = gateway.clear_annotations(kube_namespace, NAME, [(rollback, "r20261102-000000")])
    assert cleared == [rollback]
    annotations = get(custom, kube_namespace)["metadata"]["annotations"]
    assert rollback not in annotations
    assert annotations["team"] == "vision"


def test_a_process_without_the_lease_clears_no_annotation(
    custom: Any, policy: dict[str, Any], kube_namespace: str
) -> None:
    from retraining_operator import fencing

    approve = "retraining.hitl.dev/approve"
    annotate(custom, kube_namespace, {approve: "r20261101-000000"})
    fencing.install(lambda: False)
    try:
        with pytest.raises(fencing.NotLeader):
            gateway.clear_annotations(kube_namespace, NAME, [(approve, "r20261101-000000")])
    finally:
        fencing.reset()
    assert get(custom, kube_namespace)["metadata"]["annotations"][approve] == "r20261101-000000"


def test_a_watch_event_after_the_snapshot_does_not_move_the_writes_version(
    custom: Any, policy: dict[str, Any], kube_namespace: str
) -> None:
    # kopf's live body: the daemon reads it, then a watch event replaces its parts.
    meta, spec, status = dict(policy["metadata"]), dict(policy["spec"]), {}
    seen = handlers.snapshot(meta, spec, status, meta["uid"], NAME, kube_namespace)
    newer = gateway.patch_status(kube_namespace, NAME, {"phase": "Collecting"}, seen=seen.seen)
    meta["resourceVersion"] = newer.resource_version  # the event lands in the live body
    status.update(newer.status)
    writer = handlers._status_writer(kube_namespace, NAME, seen.seen)
    from retraining_operator.api import RetrainingPolicyStatus

    stale = RetrainingPolicyStatus.model_validate(seen.view.status).model_copy(
        update={"last_training_job_name": "from-a-stale-view"}
    )
    with pytest.raises(gateway.StatusWriteFailed) as refused:
        writer(stale)
    assert refused.value.conflict
    assert get(custom, kube_namespace)["status"] == {"phase": "Collecting"}
