"""Kubernetes gateway: the status subresource writes the controller checkpoints with.

kopf watches and posts Events; status writes go straight to the API server so a run id
is durable *before* the AWS call that depends on it (kopf's own patch lands only when a
handler returns).
"""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client, config

from retraining_operator.api import API_GROUP, API_VERSION, PLURAL


_lock = threading.Lock()
_api: list[client.CustomObjectsApi] = []


def _custom_objects() -> client.CustomObjectsApi:
    """Configured on first use: in-cluster credentials in a pod, else the kubeconfig."""
    with _lock:
        if not _api:
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config()  # type: ignore[no-untyped-call]
            _api.append(client.CustomObjectsApi())
        return _api[0]


def patch_status(namespace: str, name: str, status: dict[str, Any]) -> None:
    """Merge-patch `.status` through the status subresource."""
    _custom_objects().patch_namespaced_custom_object_status(
        API_GROUP, API_VERSION, namespace, PLURAL, name, {"status": status}
    )
