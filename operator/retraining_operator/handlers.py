"""kopf wiring only: each handler is a few lines that call into workflow/.

Each policy has one async daemon (`policy_daemon`): it runs a reconcile pass in a worker
thread (blocking boto3 calls never block the event loop), then sleeps exactly until the
pass says something is due (its next poll, the next look at a job or rollout, maxWait; a
problem every `tick_seconds`) or until the spec or annotations change. So a policy never has
two passes at once, idle policies cost nothing between their polls, and a threshold crossing is
acted on at the poll that sees it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from retraining_operator import fencing, kube, metrics
from retraining_operator.api import API_GROUP, API_VERSION, PLURAL, RetrainingPolicyStatus
from retraining_operator.aws.session import (
    AssumedRole,
    AwsSession,
    CallBudget,
    ClientPool,
    ClientSettings,
    role_session_name,
)
from retraining_operator.config import OperatorConfig, namespace_call_rate
from retraining_operator.errors import NeedsAttention, RetryLater
from retraining_operator.policy_pass.context import Event, PolicyMemo, PolicyView
from retraining_operator.policy_pass.controller import Controller, Tenancy
from retraining_operator.policy_pass.quota import UsageIndex
from retraining_operator.policy_pass.tenancy import TenantIndex
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.sharding import shard_of
from retraining_operator.reconcile.status import merge_patch_body
from retraining_operator.runtime.event_hub import EventHub
from retraining_operator.tenancy_api import TENANT_PLURAL, TenancyMode

FINALIZER = f"{API_GROUP}/finalizer"
RESOURCE = (API_GROUP, API_VERSION, PLURAL)


@dataclass
class OperatorState:
    """Operator-wide state: set by `configure` (settings) and `startup` (the rest)."""

    config: OperatorConfig = field(default_factory=OperatorConfig)
    registered: bool = False
    budget: CallBudget | None = None
    controller: Controller | None = None
    executor: ThreadPoolExecutor | None = None
    # Scoped mode: the RetrainingTenants, from kopf's index (passes wait until it is loaded).
    tenants: TenantIndex = field(default_factory=lambda: TenantIndex(kube.namespace_labels))
    # Scoped mode: every policy's runs that count against a tenant quota, from kopf's index.
    usage: UsageIndex = field(default_factory=UsageIndex)
    events: EventHub | None = None  # the SQS consumers of event-driven ingest
    # AWS clients, one set per identity, shared by the policies that act as it.
    clients: ClientPool = field(default_factory=lambda: ClientPool(before_send=fencing.check))
    observer: metrics.MetricsObserver = field(default_factory=metrics.MetricsObserver)
    # Called when kopf begins to stop (the runner's stop: kopf's own stop flag is set, so no
    # kopf task waits on it for kopf's 5 s grace of hung tasks).
    on_stop: list[Callable[[], None]] = field(default_factory=list)

    def running(self) -> tuple[Controller, ThreadPoolExecutor]:
        if self.controller is None or self.executor is None:
            raise RuntimeError("the operator has not started (startup handler not run)")
        return self.controller, self.executor


@dataclass
class PolicyState:
    """Per policy, in kopf's per-object memo (kopf forgets it when the object is deleted)."""

    memo: PolicyMemo = field(default_factory=PolicyMemo)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Held by a policy's pass and by its finalizer: deletion never races a pass that is
    # submitting a training job.
    lock: threading.Lock = field(default_factory=threading.Lock)


_state = OperatorState()
_policies_lock = threading.Lock()


def _policy(memo: Any) -> PolicyState:
    """The policy's state in kopf's memo for this object (made on first use)."""
    with _policies_lock:
        state = memo.get("policy")
        if state is None:
            state = memo["policy"] = PolicyState()
        return cast(PolicyState, state)


def owned(uid: str, **_: Any) -> bool:
    """Whether this operator's shard serves the policy (every policy, unsharded)."""
    return shard_of(uid, _state.config.shards) == _state.config.shard


def configure(config: OperatorConfig) -> None:
    """Called by the runner before kopf starts: settings, the daemon and its wake-up."""
    _state.config = config
    if not _state.registered:
        # On deletion kopf stops the daemon (it exits within a pass) and re-checks every
        # second, not every 60 s, before the finalizer runs and is released.
        kopf.daemon(*RESOURCE, id="reconcile", cancellation_polling=1.0, when=owned)(policy_daemon)
        kopf.on.update(*RESOURCE, id="wake", when=owned)(wake_on_change)
        # Every policy, owned or not: kopf keeps a live copy of each object it watches.
        kopf.on.event(*RESOURCE, id=SLIM)(slim_live_body)
        logging.getLogger("kopf.objects").addFilter(_quiet_slim)
        if config.tenancy_mode is TenancyMode.SCOPED:
            kopf.index(API_GROUP, API_VERSION, TENANT_PLURAL, id=TENANT_INDEX)(index_tenant)
            kopf.index(*RESOURCE, id=USAGE_INDEX)(index_usage)
        _state.registered = True


TENANT_INDEX = "retraining_tenants"
USAGE_INDEX = "retraining_usage"


def index_usage(namespace: str | None, uid: str, status: Any, **_: Any) -> Any:
    """Scoped mode: the policy's runs that count against its tenant's quota (every policy,
    whichever shard serves it: quotas are per tenant)."""
    return UsageIndex.entry(namespace or "", uid, dict(status))


def index_tenant(body: Any, name: str, logger: kopf.Logger, **_: Any) -> Any:
    """Scoped mode: every RetrainingTenant, parsed (an invalid one covers nothing)."""
    return TenantIndex.entry(dict(body), name, logger)


def _session(ref: PolicyRef, spec: Any) -> AwsSession:
    config = _state.config
    return AwsSession(
        spec.aws.region,
        assumed=AssumedRole.of(spec.aws.role_arn, role_session_name(ref.namespace)),
        clients=_state.clients,
        settings=ClientSettings(
            pool=max(config.fetch_concurrency, 10),
            budget=_budget(ref.namespace),
            observer=_state.observer,
        ),
    )


def _budget(namespace: str) -> CallBudget | None:
    budget = _state.budget
    return budget.share(namespace, namespace_call_rate(_state.config)) if budget else None


def _tenant_session(
    ref: PolicyRef, spec: Any, assumed: AssumedRole, expected_owner: str | None
) -> AwsSession:
    config = _state.config
    return AwsSession(
        spec.aws.region,
        assumed=assumed,
        expected_bucket_owner=expected_owner,
        clients=_state.clients,
        settings=ClientSettings(
            pool=max(config.fetch_concurrency, 10),
            budget=_budget(ref.namespace),
            observer=_state.observer,
        ),
    )


@dataclass(frozen=True)
class Snapshot:
    """One read of the object: what the pass decides on (`view`) and the version its status
    writes are conditional on (`seen`), taken together on the event loop, where no watch
    event can land between the two (kopf replaces the live body's parts as events arrive)."""

    view: PolicyView
    seen: kube.Seen


def snapshot(
    meta: Any, spec: Any, status: Any, uid: str, name: str, namespace: str | None
) -> Snapshot:
    stored = dict(status)
    view = PolicyView(
        ref=PolicyRef(namespace=namespace or "", name=name, uid=uid),
        generation=meta.get("generation"),
        annotations=dict(meta.get("annotations") or {}),
        spec=dict(spec),
        status=stored,
    )
    return Snapshot(view, kube.Seen(meta.get("resourceVersion"), view.generation, stored))


def _status_writer(namespace: str, name: str, seen: kube.Seen) -> Callable[[Any], None]:
    """A checkpoint that patches the status subresource only when the status changed
    (most passes change nothing: no write, no watch event, no load on the API server).

    Each write is conditional on the object as this pass saw it (then as its own last write
    left it): a pass that started from a stale view (the watch lagging, or reconnecting
    after an API server outage) stops at its first write instead of overwriting newer status.
    """
    last: dict[str, Any] = {
        "body": merge_patch_body(RetrainingPolicyStatus.model_validate(seen.status)),
        "seen": seen,
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
    config = _state.config
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
    _state.budget = CallBudget(config.aws_calls_per_second)
    metrics.watch_client_pool(_state.clients)
    _state.controller = Controller(
        config,
        _session,
        tenancy=Tenancy(
            tenants=_state.tenants,
            sessions=_tenant_session,
            usage=_state.usage if config.tenancy_mode is TenancyMode.SCOPED else None,
        ),
    )
    _state.executor = ThreadPoolExecutor(
        max_workers=config.max_workers, thread_name_prefix="reconcile"
    )
    _state.events = EventHub()
    logger.info(
        "retraining operator starting: tenancy=%s peering=%s tick=%ss workers=%s aws-budget=%s/s",
        config.tenancy_mode,
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
    memo: Any,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """The policy's loop: a pass, then sleep until something is due or the object changes."""
    loop = asyncio.get_running_loop()
    policy = _policy(memo)
    _state.tenants.attach(_.get(TENANT_INDEX))
    _state.usage.attach(_.get(USAGE_INDEX))
    executor = _state.running()[1]
    tick = _state.config.tick_seconds
    # The SQS consumer wakes the daemon from its thread when an event for the policy arrives.
    policy.memo.event_hub = _state.events
    policy.memo.wake = functools.partial(loop.call_soon_threadsafe, policy.wake.set)
    while not stopped and not meta.get("deletionTimestamp"):
        policy.wake.clear()
        try:
            # kopf posts Events through context variables: carry them into the thread.
            context = contextvars.copy_context()
            seen = snapshot(meta, spec, status, uid, name, namespace)  # here, on the loop
            running = loop.run_in_executor(
                executor, functools.partial(context.run, reconcile, body, seen, policy)
            )
            if not await _finished_before_stop(running, stopped):
                break  # stopping: the pass is abandoned, not awaited (idempotent by run id)
            delay = running.result()
        except kube.StatusWriteFailed as error:
            logger.warning("status not written (%s); retrying", error)
            delay = min(5.0, tick)
        except Exception:
            # The pass has its own last-resort catch; this is the status write or Events.
            logger.exception("reconcile pass failed; retrying in %ss", tick)
            delay = tick
        await _sleep(stopped, policy.wake, max(delay, 0.2))
    if _state.events is not None:
        _state.events.unsubscribe(uid)  # deleted or stopping: its messages go back to SQS
    # Deleted, stopping, or now another shard's: nothing of it stays in the client pool (a
    # pass or finalizer still holding the handle keeps working; it is no longer shared).
    policy.memo.drop_session()


SLIM = "slim"


def _quiet_slim(record: logging.LogRecord) -> bool:
    """kopf logs each event handler's success at INFO; this one runs on every watch event
    (every status write), and an idle operator logs nothing per poll."""
    return record.levelno != logging.INFO or record.getMessage() != f"Handler '{SLIM}' succeeded."


# Never read by the operator (it writes merge patches, not server-side apply) nor by kopf
# (its diff base is its own annotation, `<API_GROUP>/last-handled-configuration`).
_UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


async def slim_live_body(event: Any, **_: Any) -> None:
    """On every watch event, kopf's live copy of the object (the event's `object`, which the
    daemon reads until the next event) loses what nothing reads, as controller-runtime's
    TransformStripManagedFields does for its cache, and shares the strings every policy's
    body repeats (issue 18: memory per policy).

    kopf runs event handlers after it has compared the object with its diff base and before
    the daemon or the update handlers see it, and the next event brings a whole new body, so
    this runs once per body. Shedding at each daemon pass instead did not hold: the watch
    event of the pass's own status write (the first pass always writes one) brought
    managedFields back until the next pass, a pollInterval later."""
    raw = event.get("object")
    if not isinstance(raw, dict):
        return
    _shed_unread(raw)
    for part in ("metadata", "spec", "status"):
        if isinstance(raw.get(part), dict):
            # One assignment per part: a pass reading the body in its worker thread sees
            # the old part or the new one, never one being rebuilt.
            raw[part] = _shared(raw[part])


def _shed_unread(raw: dict[str, Any]) -> None:
    metadata = raw.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict):
            for key in _UNREAD_ANNOTATIONS:
                annotations.pop(key, None)


# Longer strings are mostly unique (the diff base, ARNs, URIs): interning them saves nothing.
_SHARED_MAX_LENGTH = 64


def _shared(value: Any) -> Any:
    """A copy of `value` whose dict keys and short strings are interned. Parsed from JSON,
    each of 1,000 bodies holds its own copy of every key and of values such as the label
    classes or the region; interned, all share one. An idle policy's body: 15.5 -> 7.0 KiB
    as Python objects, for about 25 µs per event."""
    if isinstance(value, dict):
        return {sys.intern(key): _shared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shared(item) for item in value]
    if isinstance(value, str) and len(value) <= _SHARED_MAX_LENGTH:
        return sys.intern(value)
    return value


@kopf.on.cleanup()
def cleanup(**_: Any) -> None:
    """The operator stops: no pass starts any more, and the SQS consumers stop receiving
    (in-flight messages are redelivered after their visibility timeout; the ledger makes that
    harmless). Passes already running are not awaited (the process exits; each step is
    idempotent by run id)."""
    if _state.executor is not None:
        _state.executor.shutdown(wait=False, cancel_futures=True)
    if _state.events is not None:
        _state.events.stop()
    for stop in _state.on_stop:
        stop()


def on_stop(callback: Callable[[], None]) -> None:
    """`callback()` runs when kopf begins to stop (the runner releases kopf's stop flag)."""
    _state.on_stop.append(callback)


async def _finished_before_stop(running: asyncio.Future[Any], stopped: kopf.DaemonStopped) -> bool:
    """Wait for a pass, or for kopf to stop the daemon, whichever comes first: a pass in the
    middle of an AWS call must not hold the operator's shutdown (issue 29: stop in seconds)."""
    halted = asyncio.ensure_future(stopped.wait())
    try:
        done, _ = await asyncio.wait({running, halted}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        halted.cancel()
    if running in done:
        return True
    # Its outcome is no longer anyone's business; retrieve it so asyncio does not complain.
    running.add_done_callback(lambda future: future.cancelled() or future.exception())
    return False


async def _sleep(stopped: kopf.DaemonStopped, wake: asyncio.Event, seconds: float) -> None:
    """Until `seconds` pass, the object changes (`wake`) or kopf stops the daemon."""
    woken = asyncio.ensure_future(wake.wait())
    halted = asyncio.ensure_future(stopped.wait(seconds))  # returns after `seconds` at most
    try:
        await asyncio.wait({woken, halted}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (woken, halted):
            task.cancel()


async def wake_on_change(memo: Any, **_: Any) -> None:
    """Spec or annotations changed (retrain-now, rollback-to, suspend): pass now."""
    _policy(memo).wake.set()


def reconcile(body: Any, seen: Snapshot, policy: PolicyState) -> float:
    """One pass of the policy's state machine over one snapshot of the object; returns
    seconds until the next one is due."""
    controller = _state.running()[0]
    ref = seen.view.ref
    writer = _status_writer(ref.namespace, ref.name, seen.seen)
    with policy.lock:
        result = controller.reconcile(seen.view, writer, policy.memo)
    _post(body, result.events)
    if result.clear_annotations:
        kube.clear_annotations(ref.namespace, ref.name, result.clear_annotations)
    if result.requeue_after is not None:
        return result.requeue_after
    return _state.config.tick_seconds


@kopf.on.delete(*RESOURCE, when=owned)
def policy_deleted(
    body: Any,
    meta: Any,
    spec: Any,
    status: Any,
    uid: str,
    name: str,
    namespace: str | None,
    memo: Any,
    **_: Any,
) -> None:
    """The finalizer: stop the run's job, undo a variant shift in flight, release the
    endpoint (`policy_pass/finalize.py`); endpoints and models stay. Called again (kopf's
    retry) while an undo is under way. Everything the operator remembers of the policy is
    in kopf's memo, forgotten with it, and in its metric series, dropped here."""
    controller = _state.running()[0]
    policy = _policy(memo)
    retried = False
    ref = PolicyRef(namespace=namespace or "", name=name, uid=uid)
    try:
        with policy.lock:
            # The object as it is now: a pass may have started a run or submitted its job
            # after the deletion event this handler was called with.
            fresh = kube.read_policy(ref.namespace, name) or {
                "metadata": dict(meta),
                "spec": dict(spec),
                "status": dict(status),
            }
            seen = _snapshot_of(fresh, ref)
            finalized = controller.finalize(seen.view, policy.memo)
            if finalized.status is not None:
                kube.patch_status(
                    ref.namespace, name, merge_patch_body(finalized.status), seen=seen.seen
                )
        _post(body, finalized.events)
        if not finalized.done:
            retried = True
            raise kopf.TemporaryError("undoing the rollout in flight", delay=UNDO_RETRY_SECONDS)
    except (RetryLater, kube.StatusWriteFailed) as error:
        retried = True
        raise kopf.TemporaryError(f"clean-up to be retried: {error}", delay=30) from error
    except NeedsAttention as error:
        raise kopf.PermanentError(f"clean-up failed: {error}") from error
    finally:
        with policy.lock:
            policy.memo.drop_session()  # the identity's clients go when its last policy does
        if not retried:  # the finalizer is released: the policy is gone
            metrics.forget_policy(ref.namespace, name)


# How soon the finalizer looks again at a variant shift it is rolling back.
UNDO_RETRY_SECONDS = 15


def _snapshot_of(obj: Mapping[str, Any], ref: PolicyRef) -> Snapshot:
    return snapshot(
        obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {},
        ref.uid, ref.name, ref.namespace,
    )  # fmt: skip
