"""Kubernetes gateway: the status subresource writes the controller checkpoints with.

kopf watches and posts Events; status writes go straight to the API server so a run id
is durable *before* the AWS call that depends on it (kopf's own patch lands only when a
handler returns).

A write is conditional on the resourceVersion the pass read the object at: the API server
refuses it (409) if the object changed since, so a pass that worked from a stale view (the
watch lagging, or reconnecting after an API server outage) never overwrites newer status.
Refusals and an unreachable API server raise `StatusWriteFailed` (retry on a later pass).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import urllib3
from kubernetes import client, config

from retraining_operator import fencing
from retraining_operator.api import API_GROUP, API_VERSION, PLURAL
from retraining_operator.reconcile.provenance import CURRENT_KEY

_lock = threading.Lock()
_clients: list[client.ApiClient] = []


def _api_client() -> client.ApiClient:
    """Configured on first use: in-cluster credentials in a pod, else the kubeconfig."""
    with _lock:
        if not _clients:
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config()  # type: ignore[no-untyped-call]
            _clients.append(client.ApiClient())
        return _clients[0]


def _custom_objects() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(_api_client())


def coordination() -> client.CoordinationV1Api:
    """The Lease API (leader election)."""
    return client.CoordinationV1Api(_api_client())


class StatusWriteFailed(Exception):
    """The status was not written: the object changed since it was read (`conflict`), or
    the API server is unreachable or overloaded. Either way: try again on a later pass."""

    def __init__(self, message: str, *, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


@dataclass(frozen=True)
class Seen:
    """The object as a pass saw it: the version, and what a status write depends on."""

    resource_version: str | None
    generation: int | None
    status: dict[str, Any]


def read_policy(namespace: str, name: str) -> dict[str, Any] | None:
    """The policy as the API server has it now (None: gone)."""
    try:
        return cast(
            "dict[str, Any]",
            _custom_objects().get_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, PLURAL, name
            ),
        )
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def patch_status(
    namespace: str, name: str, status: dict[str, Any], *, seen: Seen | None = None
) -> Seen:
    """Merge-patch `.status` through the status subresource; returns the object as written.

    With `seen`, the write is conditional on `seen.resource_version`. If the object moved on
    by metadata alone (kopf's own finalizer and annotation patches: same generation, same
    status as `seen`), the write is repeated once at the current version; any other change
    means the caller worked from a stale view: `StatusWriteFailed(conflict=True)`.
    """
    fencing.check(f"status write of {namespace}/{name}")
    api = _custom_objects()
    body: dict[str, Any] = {"status": status}
    if seen is not None and seen.resource_version:
        body["metadata"] = {"resourceVersion": seen.resource_version}
    try:
        try:
            written = api.patch_namespaced_custom_object_status(
                API_GROUP, API_VERSION, namespace, PLURAL, name, body
            )
        except client.ApiException as error:
            if error.status != 409 or seen is None:
                raise
            current = cast(
                "dict[str, Any]",
                api.get_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, name),
            )
            meta = current.get("metadata") or {}
            if (
                meta.get("generation") != seen.generation
                or (current.get("status") or {}) != seen.status
            ):
                raise StatusWriteFailed(
                    f"{namespace}/{name} changed since this pass read it (resourceVersion "
                    f"{seen.resource_version}, now {meta.get('resourceVersion')})",
                    conflict=True,
                ) from error
            body["metadata"] = {"resourceVersion": meta.get("resourceVersion")}
            written = api.patch_namespaced_custom_object_status(
                API_GROUP, API_VERSION, namespace, PLURAL, name, body
            )
    except client.ApiException as error:
        if error.status == 409:
            raise StatusWriteFailed(
                f"{namespace}/{name} changed while this pass wrote its status", conflict=True
            ) from error
        if error.status == 429 or (error.status or 0) >= 500:
            raise StatusWriteFailed(f"API server answered {error.status} {error.reason}") from error
        raise
    except urllib3.exceptions.HTTPError as error:
        raise StatusWriteFailed(f"API server unreachable: {error}") from error
    obj = cast("dict[str, Any]", written)
    meta = obj.get("metadata") or {}
    return Seen(
        resource_version=meta.get("resourceVersion"),
        generation=meta.get("generation"),
        status=dict(obj.get("status") or {}),
    )


def clear_annotations(namespace: str, name: str, seen: Sequence[tuple[str, str]]) -> list[str]:
    """Remove annotations the operator has acted on (retrain-now, rollback-to, approve), each
    only if it still has the value the pass acted on: a JSON patch `test` then `remove`, so a
    person who changed it meanwhile (rollback-to A -> B) keeps the new instruction. Fenced like
    every other write. Returns the keys it removed."""
    fencing.check(f"annotation clear on {namespace}/{name}")
    api = _custom_objects()
    cleared = []
    for key, value in seen:
        path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
        body = [{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}]
        try:
            api.patch_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, PLURAL, name, body,
                _content_type="application/json-patch+json",
            )  # fmt: skip
        except client.ApiException as error:
            if error.status in (404, 409, 422):  # gone, or changed since: keep the new one
                continue
            raise StatusWriteFailed(f"annotation {key} not cleared: HTTP {error.status}") from error
        cleared.append(key)
    return cleared


_NAMESPACE_LABELS_TTL = 30.0
_namespace_labels: dict[str, tuple[float, dict[str, str] | None]] = {}


def namespace_labels(namespace: str) -> Mapping[str, str] | None:
    """A namespace's labels (cached 30 s), for tenants that select namespaces by label; None
    when it cannot be read (then no selector covers it: the policy is refused, not admitted)."""
    now = time.monotonic()
    cached = _namespace_labels.get(namespace)
    if cached is not None and now - cached[0] < _NAMESPACE_LABELS_TTL:
        return cached[1]
    _custom_objects()  # loads the configuration
    labels: dict[str, str] | None
    try:
        found = client.CoreV1Api().read_namespace(namespace)
        labels = dict((found.metadata.labels if found.metadata else None) or {})
    except (client.ApiException, urllib3.exceptions.HTTPError):
        labels = None
    _namespace_labels[namespace] = (now, labels)
    return labels


def ledger_key_secret(namespace: str, name: str, generate: Callable[[], bytes]) -> dict[str, bytes]:
    """The ledger key Secret's data, created with `generate()` as its `current` key when it
    does not exist yet (a second replica racing to create it reads the winner's)."""
    core = client.CoreV1Api(_api_client())
    try:
        secret = core.read_namespaced_secret(name, namespace)
    except client.ApiException as error:
        if error.status != 404:
            raise
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=name,
                labels={"app.kubernetes.io/part-of": "a2i-retraining-operator"},
                annotations={
                    f"{API_GROUP}/purpose": "seals every RetrainingPolicy's ingest ledger; "
                    "losing it makes every ledger unverifiable (docs/tenancy.md)"
                },
            ),
            type="Opaque",
            data={CURRENT_KEY: base64.b64encode(generate()).decode()},
        )
        try:
            core.create_namespaced_secret(namespace, body)
        except client.ApiException as created:
            if created.status != 409:
                raise
        secret = core.read_namespaced_secret(name, namespace)
    return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}
