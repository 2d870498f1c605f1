"""Tenancy: may this policy act, and as whom? (pure; decided on every pass)

Two modes, chosen at install (`--tenancy-mode`):

- `Single`: one team owns the operator. The operator's identity (or spec.aws.roleArn) acts;
  every role in the spec (spec.aws.roleArn and spec.training.roleArn) must match the
  operator-wide `--allowed-role-pattern` list (fnmatch) when one is set.
- `Scoped`: each namespace belongs to exactly one `RetrainingTenant`. The operator always
  assumes that tenant's role for the policy (never its own identity), and every AWS
  resource the spec names must be on the tenant's allow-lists.

In both modes `gate.minimum` is never below 0 (a negative bar opens the gate to any model).

The same rules run at admission (the chart's ValidatingAdmissionPolicy, in CEL); this copy
runs on every pass, because admission can be bypassed (installed later, removed, or the
tenant changed after the policy was admitted). A refusal happens before any AWS call.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["glob_match", "instance_hours", "s3_within"]

from retraining_operator.api import API_GROUP, RetrainingPolicySpec
from retraining_operator.reconcile import governance
from retraining_operator.reconcile.governance import glob_match, instance_hours, s3_within
from retraining_operator.tenancy_api import ADOPT_ENDPOINT_ANNOTATION, TenancyMode, Tenant

GATE_MINIMUM_FLOOR = 0.0

# The endpoint tag naming the policy (UID) that owns an endpoint: set on the first roll.
TAG_ENDPOINT_OWNER = f"{API_GROUP}/endpoint-owner"


@dataclass(frozen=True)
class Refusal:
    """Why a policy may not act: a CamelCase reason and a message naming the field(s)."""

    reason: str
    message: str


@dataclass(frozen=True)
class Admission:
    """The policy may act; in Scoped mode, as `tenant` (whose role the operator assumes)."""

    tenant: Tenant | None = None


def covers(tenant: Tenant, namespace: str, labels: Mapping[str, str] | None) -> bool:
    spec = tenant.spec
    if spec.namespaces and namespace in spec.namespaces:
        return True
    if spec.namespace_selector is not None and labels is not None:
        wanted = spec.namespace_selector.match_labels
        return all(labels.get(key) == value for key, value in wanted.items())
    return False


def admit(
    spec: RetrainingPolicySpec,
    *,
    mode: TenancyMode,
    namespace: str,
    tenants: Sequence[Tenant] = (),
    namespace_labels: Callable[[], Mapping[str, str] | None] = lambda: None,
    allowed_role_patterns: Sequence[str] = (),
) -> Admission | Refusal:
    """The tenancy verdict for one policy (see the module docstring)."""
    gate = _gate_problem(spec, None)
    if mode is TenancyMode.SINGLE:
        roles = single_role_problems(spec, allowed_role_patterns)
        if roles:
            return Refusal("RoleNotAllowed", "; ".join(roles))
        if gate:
            return Refusal("OutOfScope", gate)
        return Admission()
    tenant = covering_tenant(tenants, namespace, namespace_labels)
    if isinstance(tenant, Refusal):
        return tenant
    problems = scope_problems(spec, tenant)
    if problems:
        return Refusal(
            "OutOfScope",
            f"outside RetrainingTenant {tenant.name}: " + "; ".join(problems),
        )
    return Admission(tenant=tenant)


def covering_tenant(
    tenants: Sequence[Tenant],
    namespace: str,
    namespace_labels: Callable[[], Mapping[str, str] | None],
) -> Tenant | Refusal:
    """Scoped mode: the one RetrainingTenant covering `namespace` (the identity the operator
    acts as there), or why there is none."""
    labels: Mapping[str, str] | None = None
    if any(t.spec.namespace_selector is not None for t in tenants):
        labels = namespace_labels()
    covering = sorted((t for t in tenants if covers(t, namespace, labels)), key=lambda t: t.name)
    if not covering:
        return Refusal(
            "TenantMissing",
            f"no RetrainingTenant covers namespace {namespace}: this operator runs in Scoped "
            "mode and acts only for namespaces a cluster admin assigned to a tenant",
        )
    if len(covering) > 1:
        names = ", ".join(t.name for t in covering)
        return Refusal(
            "TenantAmbiguous",
            f"namespace {namespace} is covered by several RetrainingTenants ({names}); "
            "a cluster admin must leave exactly one",
        )
    return covering[0]


def acting_identity(
    spec: RetrainingPolicySpec,
    *,
    mode: TenancyMode,
    namespace: str,
    tenants: Sequence[Tenant] = (),
    namespace_labels: Callable[[], Mapping[str, str] | None] = lambda: None,
    allowed_role_patterns: Sequence[str] = (),
) -> Admission | Refusal:
    """Who the operator may act as for the policy's clean-up, from `spec.aws` alone (the
    rest of the spec may be invalid by now): Scoped, the covering tenant; Single, the
    spec's role when the allow-list admits it."""
    if mode is TenancyMode.SINGLE:
        problem = _role_problem("spec.aws.roleArn", spec.aws.role_arn, allowed_role_patterns)
        return Refusal("RoleNotAllowed", problem) if problem else Admission()
    tenant = covering_tenant(tenants, namespace, namespace_labels)
    return tenant if isinstance(tenant, Refusal) else Admission(tenant=tenant)


def single_role_problems(spec: RetrainingPolicySpec, patterns: Sequence[str]) -> list[str]:
    roles = (
        ("spec.aws.roleArn", spec.aws.role_arn),
        ("spec.training.roleArn", spec.training.role_arn),
    )
    return [p for field, role in roles if (p := _role_problem(field, role, patterns))]


def _role_problem(field: str, role: str | None, patterns: Sequence[str]) -> str | None:
    if not patterns or role is None or any(fnmatch.fnmatchcase(role, p) for p in patterns):
        return None
    return (
        f"{field} {role} is not allowed by this operator (allowed patterns: "
        f"{', '.join(patterns)}); use an allowed role or ask the operator's admin to allow it"
    )


def _gate_problem(spec: RetrainingPolicySpec, floor: float | None) -> str | None:
    minimum = spec.gate.minimum
    bar = max(GATE_MINIMUM_FLOOR, floor or 0.0)
    if floor is not None and minimum is None:
        return f"spec.gate.minimum is required (at least {bar:g})"
    if minimum is not None and minimum < bar:
        return f"spec.gate.minimum {minimum:g} is below {bar:g}"
    return None


def scope_problems(spec: RetrainingPolicySpec, tenant: Tenant) -> list[str]:
    """Every field of `spec` outside `tenant`'s allow-lists and limits, named (empty: all
    within): the governance table (reconcile/governance.py), the tenant's role, the gate."""
    problems: list[str] = []
    if spec.aws.role_arn is not None and spec.aws.role_arn != tenant.spec.aws.role_arn:
        problems.append(
            f"spec.aws.roleArn {spec.aws.role_arn} is not the tenant's role (leave it unset: "
            "the operator assumes the tenant's role)"
        )
    problems += governance.problems(spec, tenant)
    gate = _gate_problem(spec, tenant.spec.limits.gate_minimum_floor)
    if gate:
        problems.append(gate)
    return problems


def s3_readable(tenant: Tenant | None, s3_uri: str) -> bool:
    """May a policy of `tenant` read `s3_uri` (found at run time, e.g. a flow definition's
    output path)? Without a tenant (Single mode) everything is."""
    if tenant is None:
        return True
    allow = tenant.spec.allow.s3
    return any(s3_within(s3_uri, prefix) for prefix in [*allow.read, *allow.write])


def adopt_requested(
    annotations: Mapping[str, str], tenant: Tenant | None, *, single_mode_allows: bool = False
) -> bool:
    """The policy asks to take over an endpoint another policy rolled, and may. Adoption is an
    admin's decision: the annotation alone never suffices; Scoped mode also needs the tenant's
    `adoptEndpoints`, Single mode the install's `--allow-endpoint-adoption`."""
    asked = annotations.get(ADOPT_ENDPOINT_ANNOTATION, "").strip().lower() == "true"
    allowed = single_mode_allows if tenant is None else tenant.spec.adopt_endpoints
    return asked and allowed


def endpoint_owner_problem(
    owner: str | None, policy_uid: str, *, endpoint: str, adopt: bool
) -> str | None:
    """None when this policy may change `endpoint` (it owns it, nobody does, or it adopts
    it); else why not (the policy goes Degraded EndpointOwnedElsewhere)."""
    if owner is None or owner == policy_uid or adopt:
        return None
    return (
        f"endpoint {endpoint} is owned by another RetrainingPolicy (uid {owner}, tag "
        f"{TAG_ENDPOINT_OWNER}); two policies must not roll one endpoint. Use another "
        f'endpoint, or set the annotation {ADOPT_ENDPOINT_ANNOTATION}: "true" to take it '
        "over, which an admin must allow (Scoped mode: the tenant's adoptEndpoints; Single "
        "mode: the install's --allow-endpoint-adoption)"
    )
