"""Tenancy at pass time: where the tenants come from, and the identity a tenant's policy
acts as. The decision itself is pure (`reconcile/tenancy.py`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import pydantic

from retraining_operator.aws.session import AssumedRole, role_session_name
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.tenancy_api import Tenant


class TenantDirectory(Protocol):
    """The RetrainingTenants the operator knows (a watch's cache) and namespace labels."""

    def tenants(self) -> Sequence[Tenant]: ...

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None: ...


class StaticTenants:
    """A fixed directory (tests, benches, the plan CLI)."""

    def __init__(
        self, tenants: Sequence[Tenant] = (), labels: Mapping[str, Mapping[str, str]] | None = None
    ) -> None:
        self._tenants = list(tenants)
        self._labels = dict(labels or {})

    def tenants(self) -> Sequence[Tenant]:
        return list(self._tenants)

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self._labels.get(namespace)


def tenant_identity(ref: PolicyRef, tenant: Tenant) -> AssumedRole:
    """The tenant's role, assumed for the policy's namespace: tagged with it (the role's
    policies can require it) and named uniquely in CloudTrail. Every policy of the namespace
    acts as the same session, so they share clients and credentials."""
    return AssumedRole(
        role_arn=tenant.spec.aws.role_arn,
        session_name=role_session_name(ref.namespace),
        external_id=tenant.spec.aws.external_id,
        tags=(("namespace", ref.namespace),),
    )


class TenantIndex:
    """The directory the operator uses in Scoped mode: tenants from kopf's index of
    RetrainingTenants (kopf holds back every handler until the index is loaded), namespace
    labels from the API server (read only when a tenant selects namespaces by label)."""

    def __init__(self, labels: Callable[[str], Mapping[str, str] | None]) -> None:
        self._index: Mapping[Any, Iterable[Any]] | None = None
        self._labels = labels

    @staticmethod
    def entry(body: dict[str, Any], name: str, logger: logging.Logger | Any) -> Any:
        """What the index keeps of one tenant: {name: Tenant}, or None (skipped) when its
        spec is invalid (it then covers nothing, so its namespaces are refused)."""
        try:
            return {name: Tenant.from_body(body)}
        except pydantic.ValidationError as error:
            logger.warning("RetrainingTenant %s is invalid and covers nothing: %s", name, error)
            return None

    def attach(self, index: Mapping[Any, Iterable[Any]] | None) -> None:
        if index is not None:
            self._index = index

    def tenants(self) -> Sequence[Tenant]:
        if self._index is None:
            return []
        found: list[Tenant] = []
        for key in list(self._index):
            found.extend(t for t in self._index.get(key, ()) if isinstance(t, Tenant))
        return found

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self._labels(namespace)
