"""kopf wiring only: each handler is a few lines that call into workflow/.

Work happens in one timer per policy (`reconcile`), every `tick_seconds`: polls, runs
and rollouts are due by their own intervals and only checked at that granularity, so a
policy never has two passes at once. Handlers are sync: kopf runs them in worker
threads, so blocking boto3 calls never block the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
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


def configure(config: OperatorConfig) -> None:
    """Called by the runner before kopf starts: settings and the timer's interval."""
    _state["config"] = config
    if not _state["registered"]:
        kopf.timer(*RESOURCE, id="reconcile", interval=config.tick_seconds)(reconcile)
        _state["registered"] = True


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


def _status_writer(namespace: str, name: str, stored: Any) -> Callable[[Any], None]:
    """A checkpoint that patches the status subresource only when the status changed
    (most passes change nothing: no write, no watch event, no load on the API server)."""
    last = {"body": merge_patch_body(RetrainingPolicyStatus.model_validate(dict(stored)))}

    def write(new: RetrainingPolicyStatus) -> None:
        body = merge_patch_body(new)
        if body != last["body"]:
            kube.patch_status(namespace, name, body)
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
    settings.peering.standalone = config.peering is None
    # Resources and namespaces are named explicitly: no CRD or namespace scanning, so the
    # chart's least-privilege RBAC needs neither (and startup is not delayed by retries).
    settings.scanning.disabled = True
    metrics.serve(config.metrics_port)
    _state["budget"] = CallBudget(config.aws_calls_per_second)
    _state["controller"] = Controller(config, _session)
    logger.info(
        "retraining operator starting: peering=%s tick=%ss workers=%s aws-budget=%s/s",
        config.peering or "off",
        config.tick_seconds,
        config.max_workers,
        config.aws_calls_per_second or "unlimited",
    )


def reconcile(
    body: Any,
    meta: Any,
    spec: Any,
    status: Any,
    patch: Any,
    uid: str,
    name: str,
    namespace: str | None,
    **_: Any,
) -> None:
    """One pass of the policy's state machine (registered as a timer by `configure`)."""
    if meta.get("deletionTimestamp"):
        return
    controller: Controller = _state["controller"]
    view = _view(meta, spec, status, uid, name, namespace)
    result = controller.reconcile(view, _status_writer(view.ref.namespace, name, status))
    _post(body, result.events)
    for key in result.clear_annotations:
        patch.metadata.annotations[key] = None


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
        events = controller.finalize(_view(meta, spec, status, uid, name, namespace))
    except (Throttled, Unavailable) as error:
        raise kopf.TemporaryError(f"AWS busy while stopping the job: {error}", delay=30) from error
    except AwsError as error:
        raise kopf.PermanentError(f"could not stop the training job: {error}") from error
    _post(body, events)
