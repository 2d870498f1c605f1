"""kopf wiring only: each handler is a few lines that call into workflow/.

Each policy has one async daemon (`policy_daemon`): it runs a reconcile pass in a worker
thread (blocking boto3 calls never block the event loop), then sleeps exactly until the
pass says something is due (its next poll, the next look at a job or rollout, maxWait) —
at most `tick_seconds` — or until the spec or annotations change. So a policy never has two
passes at once, idle policies cost nothing between their polls, and a threshold crossing is
acted on at the poll that sees it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from retraining_operator import kube, metrics
from retraining_operator.api import API_GROUP, API_VERSION, PLURAL, RetrainingPolicyStatus
from retraining_operator.aws.errors import AwsError, Throttled, Unavailable
from retraining_operator.aws.session import AwsSession, CallBudget, role_session_name
from retraining_operator.config import OperatorConfig
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.status import merge_patch_body
from retraining_operator.workflow.controller import Controller, Event, PolicyView

FINALIZER = f"{API_GROUP}/finalizer"
RESOURCE = (API_GROUP, API_VERSION, PLURAL)

_state: dict[str, Any] = {"config": OperatorConfig(), "controller": None, "registered": False}
_sessions: dict[tuple[str, str, str | None], AwsSession] = {}
_sessions_lock = threading.Lock()


_wakeups: dict[str, asyncio.Event] = {}
# Held by a policy's pass and by its finalizer: deletion never races a pass that is
# submitting a training job.
_pass_locks: dict[str, threading.Lock] = {}


def configure(config: OperatorConfig) -> None:
    """Called by the runner before kopf starts: settings, the daemon and its wake-up."""
    _state["config"] = config
    if not _state["registered"]:
        # On deletion kopf stops the daemon (it exits within a pass) and re-checks every
        # second, not every 60 s, before the finalizer runs and is released.
        kopf.daemon(*RESOURCE, id="reconcile", cancellation_polling=1.0)(policy_daemon)
        kopf.on.update(*RESOURCE, id="wake")(wake_on_change)
        _state["registered"] = True


def _pass_lock(uid: str) -> threading.Lock:
    with _sessions_lock:
        return _pass_locks.setdefault(uid, threading.Lock())


def _session(ref: PolicyRef, spec: Any) -> AwsSession:
    key = (ref.uid, spec.aws.region, spec.aws.role_arn)
    with _sessions_lock:
        if key not in _sessions:
            config: OperatorConfig = _state["config"]
            _sessions[key] = AwsSession(
                spec.aws.region,
                role_arn=spec.aws.role_arn,
                session_name=role_session_name(ref.namespace, ref.name),
                pool=max(config.fetch_concurrency, 10),
                budget=_state["budget"],
                observer=metrics.MetricsObserver(),
            )
        return _sessions[key]


def _view(
    meta: Any, spec: Any, status: Any, uid: str, name: str, namespace: str | None
) -> PolicyView:
    return PolicyView(
        ref=PolicyRef(namespace=namespace or "", name=name, uid=uid),
        generation=meta.get("generation"),
        annotations=dict(meta.get("annotations") or {}),
        spec=dict(spec),
        status=dict(status),
    )


def _status_writer(namespace: str, name: str, meta: Any, stored: Any) -> Callable[[Any], None]:
    """A checkpoint that patches the status subresource only when the status changed
    (most passes change nothing: no write, no watch event, no load on the API server).

    Each write is conditional on the object as this pass saw it (then as its own last write
    left it): a pass that started from a stale view (the watch lagging, or reconnecting
    after an API server outage) stops at its first write instead of overwriting newer status.
    """
    last: dict[str, Any] = {
        "body": merge_patch_body(RetrainingPolicyStatus.model_validate(dict(stored))),
        "seen": kube.Seen(meta.get("resourceVersion"), meta.get("generation"), dict(stored)),
    }

    def write(new: RetrainingPolicyStatus) -> None:
        body = merge_patch_body(new)
        if body != last["body"]:
            last["seen"] = kube.patch_status(namespace, name, body, seen=last["seen"])
            last["body"] = body

    return write


def _post(body: Any, events: list[Event]) -> None:
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
    config: OperatorConfig = _state["config"]
    settings.persistence.finalizer = FINALIZER
    # Progress lives in annotations so the status subresource holds only our own, bounded status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.execution.max_workers = config.max_workers
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    # API requests (the watch's too) retry with these pauses; capped at 5 s, the watch is back
    # within 5 s of an API server's return after an outage (kopf's default grows to 21 s).
    settings.networking.error_backoffs = (1, 1, 2, 3, 5, 5, 5, 5, 5, 5, 5, 5)
    settings.peering.standalone = config.peering is None
    # Resources and namespaces are named explicitly: no CRD or namespace scanning, so the
    # chart's least-privilege RBAC needs neither (and startup is not delayed by retries).
    settings.scanning.disabled = True
    metrics.serve(config.metrics_port)
    _state["budget"] = CallBudget(config.aws_calls_per_second)
    _state["controller"] = Controller(config, _session)
    _state["executor"] = ThreadPoolExecutor(
        max_workers=config.max_workers, thread_name_prefix="reconcile"
    )
    logger.info(
        "retraining operator starting: peering=%s tick=%ss workers=%s aws-budget=%s/s",
        config.peering or "off",
        config.tick_seconds,
        config.max_workers,
        config.aws_calls_per_second or "unlimited",
    )


async def policy_daemon(
    stopped: kopf.DaemonStopped,
    body: Any,
    meta: Any,
    spec: Any,
    status: Any,
    uid: str,
    name: str,
    namespace: str | None,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """The policy's loop: a pass, then sleep until something is due or the object changes."""
    loop = asyncio.get_running_loop()
    wake = _wakeups.setdefault(uid, asyncio.Event())
    config: OperatorConfig = _state["config"]
    try:
        while not stopped and not meta.get("deletionTimestamp"):
            wake.clear()
            try:
                # kopf posts Events through context variables: carry them into the thread.
                context = contextvars.copy_context()
                delay = await loop.run_in_executor(
                    _state["executor"],
                    functools.partial(
                        context.run, reconcile, body, meta, spec, status, uid, name, namespace
                    ),
                )
            except kube.StatusWriteFailed as error:
                logger.warning("status not written (%s); retrying", error)
                delay = min(5.0, config.tick_seconds)
            except Exception:
                logger.exception("reconcile pass failed; retrying in %ss", config.tick_seconds)
                delay = config.tick_seconds
            await _sleep(stopped, wake, max(delay, 0.2))
    finally:
        if _wakeups.get(uid) is wake:
            del _wakeups[uid]


async def _sleep(stopped: kopf.DaemonStopped, wake: asyncio.Event, seconds: float) -> None:
    """Until `seconds` pass, the object changes (`wake`) or kopf stops the daemon."""
    woken = asyncio.ensure_future(wake.wait())
    halted = asyncio.ensure_future(stopped.wait(seconds))  # returns after `seconds` at most
    try:
        await asyncio.wait({woken, halted}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (woken, halted):
            task.cancel()


async def wake_on_change(uid: str, **_: Any) -> None:
    """Spec or annotations changed (retrain-now, rollback-to, suspend): pass now."""
    wake = _wakeups.get(uid)
    if wake is not None:
        wake.set()


def reconcile(
    body: Any,
    meta: Any,
    spec: Any,
    status: Any,
    uid: str,
    name: str,
    namespace: str | None,
) -> float:
    """One pass of the policy's state machine; returns seconds until the next one is due."""
    controller: Controller = _state["controller"]
    view = _view(meta, spec, status, uid, name, namespace)
    writer = _status_writer(view.ref.namespace, name, meta, status)
    with _pass_lock(uid):
        result = controller.reconcile(view, writer)
    _post(body, result.events)
    if result.clear_annotations:
        kube.clear_annotations(view.ref.namespace, name, result.clear_annotations)
    config: OperatorConfig = _state["config"]
    return result.requeue_after if result.requeue_after is not None else config.tick_seconds


@kopf.on.delete(*RESOURCE)
def policy_deleted(
    body: Any,
    meta: Any,
    spec: Any,
    status: Any,
    uid: str,
    name: str,
    namespace: str | None,
    **_: Any,
) -> None:
    """The finalizer: stop the policy's in-flight training job, once; endpoints stay."""
    controller: Controller = _state["controller"]
    try:
        with _pass_lock(uid):
            events = controller.finalize(_view(meta, spec, status, uid, name, namespace))
    except (Throttled, Unavailable) as error:
        raise kopf.TemporaryError(f"AWS busy while stopping the job: {error}", delay=30) from error
    except AwsError as error:
        raise kopf.PermanentError(f"could not stop the training job: {error}") from error
    _post(body, events)
    _forget(uid)


def _forget(uid: str) -> None:
    """A deleted policy's AWS sessions and pass lock go with it."""
    with _sessions_lock:
        for key in [k for k in _sessions if k[0] == uid]:
            del _sessions[key]
        _pass_locks.pop(uid, None)
