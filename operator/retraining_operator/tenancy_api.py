"""Typed models of the RetrainingTenant API (cluster-scoped, admin-owned), mirroring
`crds/retrainingtenants.yaml` field for field (tests/unit/test_tenancy.py walks both).

A tenant says which namespaces belong to one team, which IAM role the operator assumes for
that team's policies, and what AWS resources those policies may name. The decisions made
with it are pure and live in `reconcile/tenancy.py`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from retraining_operator.api import API_GROUP, IAM_ROLE_ARN_PATTERN, S3_URI_PATTERN

TENANT_KIND = "RetrainingTenant"
TENANT_PLURAL = "retrainingtenants"

# A policy carrying this annotation ("true") may take over an endpoint another policy
# rolled, when its tenant allows adoption (`adoptEndpoints`).
ADOPT_ENDPOINT_ANNOTATION = f"{API_GROUP}/adopt-endpoint"

# `*` matches any run of characters; every other character of a pattern matches itself.
ALLOW_PATTERN = r"^[A-Za-z0-9:/._=,@+*\-]+$"
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
EXTERNAL_ID_PATTERN = r"^[\w+=,.@:/\-]+$"
ACCOUNT_PATTERN = r"^[0-9]{12}$"


class TenancyMode(StrEnum):
    """Chosen at install (`--tenancy-mode`, chart value `tenancy.mode`)."""

    SINGLE = "Single"  # one team: the operator's identity, operator-wide role allow-list
    SCOPED = "Scoped"  # many teams: every policy needs exactly one RetrainingTenant


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


Pattern = Annotated[str, Field(min_length=1, max_length=512, pattern=ALLOW_PATTERN)]
Patterns = Annotated[list[Pattern], Field(max_length=20)]
S3Prefixes = Annotated[
    list[Annotated[str, Field(pattern=S3_URI_PATTERN, max_length=1024)]], Field(max_length=20)
]


class NamespaceSelector(_Model):
    match_labels: Annotated[
        dict[str, Annotated[str, Field(max_length=63)]], Field(min_length=1, max_length=10)
    ]


class TenantAws(_Model):
    role_arn: Annotated[str, Field(pattern=IAM_ROLE_ARN_PATTERN, max_length=2048)]
    external_id: (
        Annotated[str, Field(min_length=2, max_length=1224, pattern=EXTERNAL_ID_PATTERN)] | None
    ) = None


class S3Allow(_Model):
    read: S3Prefixes = []
    write: S3Prefixes = []


class TenantAllow(_Model):
    """Allow-lists (the rows of reconcile/governance.py): empty allows nothing."""

    training_role_arns: Patterns = []
    flow_definition_arns: Patterns = []
    sqs_queue_urls: Patterns = []
    endpoint_names: Patterns = []
    model_package_groups: Patterns = []
    images: Patterns = []
    instance_types: Patterns = []
    alarm_names: Patterns = []
    subnets: Patterns = []
    security_group_ids: Patterns = []
    kms_keys: Patterns = []
    disable_network_isolation: bool = False
    s3: S3Allow = S3Allow()


class TenantQuota(_Model):
    """What all the tenant's policies together may run (reconcile/quota.py)."""

    concurrent_jobs: Annotated[int, Field(ge=0, le=1000)] = 2
    instance_hours: Annotated[int, Field(ge=0, le=10_000_000)] = 96
    window: Annotated[
        str, Field(pattern=r"^([0-9]+h)?([0-9]+m)?$", min_length=2, max_length=16)
    ] = "24h"


class TenantLimits(_Model):
    max_instance_hours: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_serving_instances: Annotated[int, Field(ge=1, le=100)] | None = None
    max_parallel_jobs: Annotated[int, Field(ge=1, le=100)] | None = None
    gate_minimum_floor: Annotated[float, Field(ge=0)] | None = None


class RetrainingTenantSpec(_Model):
    namespaces: (
        Annotated[
            list[Annotated[str, Field(max_length=63, pattern=NAMESPACE_PATTERN)]],
            Field(max_length=100),
        ]
        | None
    ) = None
    namespace_selector: NamespaceSelector | None = None
    aws: TenantAws
    allow: TenantAllow = TenantAllow()
    limits: TenantLimits = TenantLimits()
    quota: TenantQuota = TenantQuota()
    expected_bucket_owner: Annotated[str, Field(pattern=ACCOUNT_PATTERN)] | None = None
    adopt_endpoints: bool = False

    @model_validator(mode="after")
    def _covers_something(self) -> RetrainingTenantSpec:
        if self.namespaces is None and self.namespace_selector is None:
            raise ValueError("a tenant needs namespaces or a namespaceSelector")
        return self


class Tenant(BaseModel):
    """One RetrainingTenant as the operator reads it: its name, uid and (parsed) spec."""

    model_config = ConfigDict(frozen=True)

    name: str
    uid: str
    spec: RetrainingTenantSpec

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Tenant:
        meta = body.get("metadata") or {}
        return cls(
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            spec=RetrainingTenantSpec.model_validate(body.get("spec") or {}),
        )
