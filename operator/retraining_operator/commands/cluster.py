"""The command line's Kubernetes gateway: what `status` and `kubectl rtp` read and write.

Configured the way kubectl is: `--kubeconfig`, else KUBECONFIG, else ~/.kube/config, with
`--context`; in a pod without a kubeconfig, the pod's service account. Each command gets its
own ApiClient; the process-wide default configuration belongs to the operator (kube.py).

Every failure is a `ClusterError` whose message is one line for a person (`PolicyNotFound`
when the policy does not exist): the commands print it and exit 1, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import urllib3
from kubernetes import client, config, watch

from retraining_operator.api import API_GROUP, API_VERSION, KIND, PLURAL

RESOURCE = f"{PLURAL}.{API_GROUP}"
DEFAULT_KUBECONFIG = "~/.kube/config"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# The API server ends a watch after this long; the watch then resumes where it stopped.
WATCH_SECONDS = 300


class ClusterError(Exception):
    """A one-line reason the command could not do its work (exit code 1)."""


class PolicyNotFound(ClusterError):
    pass


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


@dataclass(frozen=True)
class Cluster:
    """One API server, as one kubeconfig context (or the pod's service account) reaches it."""

    api: client.ApiClient
    namespace: str  # the context's namespace, else "default"

    @classmethod
    def connect(cls, kubeconfig: str | None = None, context: str | None = None) -> Cluster:
        """Raises `ClusterError` when there is no kubeconfig (and no pod to fall back on), or
        the kubeconfig cannot be used."""
        files = kubeconfig or os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
        found = [p for p in files.split(os.pathsep) if p and Path(p).expanduser().is_file()]
        if not found:
            if kubeconfig is None and context is None and "KUBERNETES_SERVICE_HOST" in os.environ:
                return cls._in_cluster()
            raise ClusterError(
                f"no kubeconfig: {files} does not exist (set KUBECONFIG or pass --kubeconfig)"
            )
        configuration = client.Configuration()
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=files, context=context, client_configuration=configuration
            )
            contexts, active = config.list_kube_config_contexts(config_file=files)  # type: ignore[no-untyped-call]
        except (config.ConfigException, OSError, ValueError) as error:
            raise ClusterError(f"kubeconfig {files}: {_one_line(error)}") from error
        if context is not None:
            active = next((c for c in contexts if c.get("name") == context), active)
        namespace = ((active or {}).get("context") or {}).get("namespace") or "default"
        return cls(client.ApiClient(configuration), str(namespace))

    @classmethod
    def _in_cluster(cls) -> Cluster:
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException as error:
            raise ClusterError(f"no kubeconfig, and no pod credentials: {error}") from error
        try:
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
        except OSError:
            namespace = "default"
        return cls(client.ApiClient(configuration), namespace)

    @property
    def _custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def policy(self, namespace: str, name: str) -> dict[str, Any]:
        with _answers(f"retrainingpolicy {namespace}/{name}"):
            return cast(
                "dict[str, Any]",
                self._custom.get_namespaced_custom_object(
                    API_GROUP, API_VERSION, namespace, PLURAL, name
                ),
            )

    def policies(self, namespace: str | None) -> list[dict[str, Any]]:
        """The policies of one namespace, or of all (None), sorted by namespace and name."""
        listing = self._list(namespace, None)
        items = cast("list[dict[str, Any]]", listing.get("items") or [])
        return sorted(items, key=_key)

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.kind={KIND},involvedObject.name={name}"
        with _answers(f"the Events of retrainingpolicy {namespace}/{name}"):
            found = client.CoreV1Api(self.api).list_namespaced_event(
                namespace, field_selector=selector
            )
            return cast("list[dict[str, Any]]", found.to_dict()["items"])

    def annotate(self, namespace: str, name: str, key: str, value: str) -> dict[str, Any]:
        """Set one annotation (a merge patch: other annotations are left as they are)."""
        return self._merge(namespace, name, {"metadata": {"annotations": {key: value}}})

    def patch_spec(self, namespace: str, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        return self._merge(namespace, name, {"spec": fields})

    def watch(
        self, namespace: str | None, name: str | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """The policies as listed now (one list), then each one again whenever it changes
        (a list of one; with the key `_deleted` when it is gone), until the caller stops.
        Resumes where it was when the server ends the watch; lists again (a full list) when
        that version is too old (410 Gone)."""
        selector = f"metadata.name={name}" if name else None
        while True:
            listing = self._list(namespace, selector)
            yield sorted(listing.get("items") or [], key=_key)
            version = (listing.get("metadata") or {}).get("resourceVersion")
            for changed in self._changes(namespace, selector, version):
                yield [changed]

    def _changes(
        self, namespace: str | None, selector: str | None, version: str | None
    ) -> Iterator[dict[str, Any]]:
        custom = self._custom
        if namespace is None:
            list_call: Any = custom.list_cluster_custom_object
            args: tuple[str, ...] = (API_GROUP, API_VERSION, PLURAL)
        else:
            list_call = custom.list_namespaced_custom_object
            args = (API_GROUP, API_VERSION, namespace, PLURAL)
        while True:
            with _answers(f"watching {RESOURCE}"):
                changes = watch.Watch().stream(  # type: ignore[no-untyped-call]
                    list_call, *args, field_selector=selector, resource_version=version,
                    timeout_seconds=WATCH_SECONDS, allow_watch_bookmarks=True,
                )  # fmt: skip
                try:
                    for event in changes:
                        obj = cast("dict[str, Any]", event["raw_object"])
                        version = (obj.get("metadata") or {}).get("resourceVersion", version)
                        if event["type"] == "DELETED":
                            yield {**obj, "_deleted": True}
                        elif event["type"] in ("ADDED", "MODIFIED"):
                            yield obj
                except client.ApiException as error:
                    if error.status != 410:
                        raise
                    return  # too old to resume from: list again

    def _list(self, namespace: str | None, selector: str | None) -> dict[str, Any]:
        custom = self._custom
        where = f"in namespace {namespace}" if namespace else "in all namespaces"
        with _answers(f"listing {RESOURCE} {where}"):
            if namespace is None:
                found = custom.list_cluster_custom_object(
                    API_GROUP, API_VERSION, PLURAL, field_selector=selector
                )
            else:
                found = custom.list_namespaced_custom_object(
                    API_GROUP, API_VERSION, namespace, PLURAL, field_selector=selector
                )
            return cast("dict[str, Any]", found)

    def _merge(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        with _answers(f"retrainingpolicy {namespace}/{name}"):
            return cast(
                "dict[str, Any]",
                self._custom.patch_namespaced_custom_object(
                    API_GROUP, API_VERSION, namespace, PLURAL, name, body,
                    _content_type="application/merge-patch+json",
                ),
            )  # fmt: skip


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


@contextmanager
def _answers(what: str) -> Iterator[None]:
    """Turns what the API server (or the network) says into a `ClusterError` about `what`."""
    try:
        yield
    except client.ApiException as error:
        raise _refused(error, what) from error
    except urllib3.exceptions.HTTPError as error:
        reason = getattr(error, "reason", None) or error
        raise ClusterError(f"cannot reach the API server: {_one_line(reason)}") from error


def _refused(error: client.ApiException, what: str) -> ClusterError:
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    details = body.get("details") or {} if isinstance(body, dict) else {}
    if error.status == 404 and what.startswith("retrainingpolicy ") and details.get("name"):
        return PolicyNotFound(f"{what} not found")
    if error.status == 404:
        return ClusterError(
            f"{what}: the API server does not serve {RESOURCE} (is the CRD installed?)"
        )
    message = body.get("message") if isinstance(body, dict) else None
    said = _one_line(message or error.reason or "")
    return ClusterError(f"{what}: the API server answered {error.status}: {said}")


def exit_code(work: Callable[[], int]) -> int:
    """Run a command's work and turn how it ended into its exit code, with one line on stderr
    for a `ClusterError` (1). Ctrl-C ends a watch (0); a reader that closed the pipe
    (`| head -1`) ends the output quietly (0)."""
    try:
        code = work()
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that says nothing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
