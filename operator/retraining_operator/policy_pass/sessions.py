"""The AWS session a pass acts with, remembered in the policy's memo.

Single mode: the operator's identity, or `spec.aws.roleArn`. Scoped mode: always the
tenant's role (with its session tags, ExternalId and expected bucket owner); the operator's
own identity never acts for a tenant. A session is made again only when what it is made
of changes; the session it replaces gives its clients back.
"""

from __future__ import annotations

from collections.abc import Callable

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.aws.session import AssumedRole, AwsSession
from retraining_operator.policy_pass.context import PolicyMemo
from retraining_operator.policy_pass.tenancy import tenant_identity
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.tenancy_api import Tenant

SessionFactory = Callable[[PolicyRef, RetrainingPolicySpec], AwsSession]
# Scoped mode: a session as the tenant's role, with its expected bucket owner.
TenantSessionFactory = Callable[
    [PolicyRef, RetrainingPolicySpec, AssumedRole, str | None], AwsSession
]


def tenant_session(
    ref: PolicyRef, spec: RetrainingPolicySpec, assumed: AssumedRole, owner: str | None
) -> AwsSession:
    return AwsSession(spec.aws.region, assumed=assumed, expected_bucket_owner=owner)


def policy_session(
    ref: PolicyRef,
    spec: RetrainingPolicySpec,
    memo: PolicyMemo,
    tenant: Tenant | None,
    *,
    sessions: SessionFactory,
    tenant_sessions: TenantSessionFactory,
) -> AwsSession:
    if tenant is None:
        key: tuple[str | None, ...] = (spec.aws.region, spec.aws.role_arn)
        if memo.session is None or memo.session_key != key:
            memo.drop_session()
            memo.session, memo.session_key = sessions(ref, spec), key
        return memo.session
    owner = tenant.spec.expected_bucket_owner
    identity = tenant_identity(ref, tenant)
    key = (spec.aws.region, tenant.uid, identity.role_arn, identity.external_id, owner)
    if memo.session is None or memo.session_key != key:
        memo.drop_session()
        memo.session = tenant_sessions(ref, spec, identity, owner)
        memo.session_key = key
    return memo.session
