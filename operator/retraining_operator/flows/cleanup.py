"""Cleanup: delete a policy's older Models and EndpointConfigs, never what serves.

`deployment.retainPreviousModels` = N keeps the N newest beyond what is in use; which
ones is decided by `reconcile/cleanup.py` (pure), from what this module lists and reads.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from retraining_operator.api import RetrainingPolicySpec, RetrainingPolicyStatus
from retraining_operator.aws import endpoints
from retraining_operator.reconcile.cleanup import OwnedResource, plan_cleanup
from retraining_operator.reconcile.naming import (
    MANAGED_BY_VALUE,
    TAG_MANAGED_BY,
    TAG_POLICY_UID,
    PolicyRef,
    model_name,
)
from retraining_operator.reconcile.rollout.endpoint import EndpointView
from retraining_operator.reconcile.rollout.requests import RolloutNames

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

    from retraining_operator.aws.session import AwsSession


@dataclass(frozen=True)
class CleanupReport:
    deleted_models: tuple[str, ...]
    deleted_configs: tuple[str, ...]
    kept_models: tuple[str, ...]
    kept_configs: tuple[str, ...]


def name_filter(policy: PolicyRef) -> str:
    """A NameContains filter matching every name the policy's runs produce (then check tags)."""
    probe_run = "r00000000-000000"
    probe = model_name(policy_name=policy.name, policy_uid=policy.uid, run_id=probe_run)
    head = probe.split(f"-{probe_run}-", 1)[0]
    return head[:20]


def cleanup(
    session: AwsSession,
    policy: PolicyRef,
    spec: RetrainingPolicySpec,
    *,
    status: RetrainingPolicyStatus | None = None,
    protect: Collection[str] = (),
) -> CleanupReport:
    """Delete this policy's older Models/EndpointConfigs beyond `retainPreviousModels`.

    Candidates are listed by name (NameContains) and confirmed by tags (managed by this
    operator, this policy's UID). Protected: the endpoint's current and pending configs
    and their Models, `status.serving` and `status.currentRun`'s resources, and `protect`.
    Configs are deleted before Models. Idempotent: an already deleted resource is skipped.
    """
    sm = session.sagemaker()
    required = {TAG_MANAGED_BY: MANAGED_BY_VALUE, TAG_POLICY_UID: policy.uid}
    prefix = name_filter(policy)
    models = endpoints.list_tagged(sm, endpoints.list_models(sm, name_contains=prefix), required)
    configs = endpoints.list_tagged(
        sm, endpoints.list_endpoint_configs(sm, name_contains=prefix), required
    )
    protected_configs, protected_models = _in_use(sm, policy, spec, status)
    protected_configs |= set(protect)
    protected_models |= set(protect)
    plan = plan_cleanup(
        models=[OwnedResource(m.name, m.created) for m in models],
        configs=[OwnedResource(c.name, c.created) for c in configs],
        protected_models=protected_models,
        protected_configs=protected_configs,
        retain=spec.deployment.retain_previous_models,
    )
    deleted_configs = tuple(
        n for n in plan.delete_configs if endpoints.delete_endpoint_config(sm, n)
    )
    deleted_models = tuple(n for n in plan.delete_models if endpoints.delete_model(sm, n))
    return CleanupReport(
        deleted_models=deleted_models,
        deleted_configs=deleted_configs,
        kept_models=plan.keep_models,
        kept_configs=plan.keep_configs,
    )


def _in_use(
    sm: SageMakerClient,
    policy: PolicyRef,
    spec: RetrainingPolicySpec,
    status: RetrainingPolicyStatus | None,
) -> tuple[set[str], set[str]]:
    configs: set[str] = set()
    models: set[str] = set()
    name = spec.deployment.endpoint_name
    described = endpoints.find_endpoint(sm, name) if name else None
    if described is not None:
        view = EndpointView.from_describe(described)
        configs |= {c for c in (view.config_name, view.pending_config_name) if c}
    if status is not None:
        for ref in (status.serving, status.current_run):
            if ref is not None:
                configs |= {ref.endpoint_config_name} if ref.endpoint_config_name else set()
                models |= {ref.model_name} if ref.model_name else set()
        if status.current_run is not None:
            run = status.current_run
            names = RolloutNames.for_run(policy, run.id, model=run.model_name)
            configs |= set(names.configs)
            models.add(names.model)
    for config_name in sorted(configs):
        config = endpoints.find_endpoint_config(sm, config_name)
        if config is not None:
            models |= {
                str(v["ModelName"]) for v in config["ProductionVariants"] if "ModelName" in v
            }
    return configs, models
