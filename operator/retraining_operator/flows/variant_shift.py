"""Variant shift, the I/O half: read the shift config, fetch the numbers a step is judged
on, derive the configs that remove a variant, and keep the endpoint autoscaled. The
decisions are `reconcile/rollout/variant_shift/`; `flows/rollout.py` carries them out.

Autoscaling: Application Auto Scaling registers a *variant*, so a shift to a variant of
another name would silently drop it. Once the new variant serves beside the old one (and
before any weight moves), it is registered with the old target's min/max and a copy of
each of its scaling policies (`keep_new_variant_scaled`); before a variant is removed
its target is deregistered (`before_removal`): the old one when the shift succeeds, the
new one when it is rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from retraining_operator.aws import autoscaling, cloudwatch, endpoints
from retraining_operator.flows.rollout_pass import RolloutPass, config_created
from retraining_operator.reconcile.rollout.decision import Action, Analyse
from retraining_operator.reconcile.rollout.errors import RolloutError
from retraining_operator.reconcile.rollout.variant_shift.analysis import (
    METRIC_QUERIES,
    NAMESPACE,
    PERIOD_SECONDS,
    StepVerdict,
    analyse_step,
    sample,
)
from retraining_operator.reconcile.rollout.variant_shift.configs import (
    ShiftVariants,
    drop_variant_request,
    shift_variants,
)
from retraining_operator.reconcile.rollout.variant_shift.steps import ShiftFacts, decide_shift

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateEndpointConfigInputTypeDef


def next_shift_action(p: RolloutPass) -> Action:
    """The variant shift's next step, with the step judged first when that is due."""
    view = p.endpoint
    variants: ShiftVariants | None = None
    created: datetime | None = None
    if view is not None and not view.busy:
        if view.config_name == p.names.config:
            config = endpoints.find_endpoint_config(p.sm, p.names.config)
            if config is None:
                raise RolloutError(f"endpoint serves {p.names.config}, which cannot be described")
            variants = shift_variants(
                config, variant_name=p.spec.deployment.variant_name, model_name=p.names.model
            )
            keep_new_variant_scaled(p, variants)
        elif view.config_name not in p.names.configs:
            created = config_created(endpoints.find_endpoint_config(p.sm, p.names.config))
    facts = ShiftFacts(
        endpoint=view,
        names=p.names,
        variants=variants,
        run=p.run,
        spec=p.spec.deployment.effective_variant_shift,
        now=p.now,
        config_created=created,
        poll=p.poll,
    )
    decision = decide_shift(facts)
    if not isinstance(decision, Analyse):
        return decision
    return decide_shift(facts, _analyse(p, decision))


def _analyse(p: RolloutPass, analyse: Analyse) -> StepVerdict:
    """Fetch what the step is judged on: alarms always, metrics when the bake is over."""
    cw = p.session.cloudwatch()
    alarms = p.spec.deployment.auto_rollback_alarms
    firing = cloudwatch.firing_alarms(cw, alarms) if alarms else []
    vs = p.spec.deployment.effective_variant_shift
    window = analyse.window
    if not window.full:
        return analyse_step(new=None, old=None, firing_alarms=firing, spec=vs)
    end = max(window.until, window.baseline_since + timedelta(seconds=1))
    series = cloudwatch.variant_series(
        cw,
        namespace=NAMESPACE,
        endpoint_name=analyse.endpoint_name,
        variants=[analyse.old_variant, analyse.new_variant],
        queries=[cloudwatch.MetricQuery(key, metric, stat) for key, metric, stat in METRIC_QUERIES],
        start=window.baseline_since,
        end=end,
        period=PERIOD_SECONDS,
    )
    return analyse_step(
        new=sample(series[analyse.new_variant], window.new_since),
        old=sample(series[analyse.old_variant], window.baseline_since),
        firing_alarms=firing,
        spec=vs,
    )


def keep_new_variant_scaled(p: RolloutPass, variants: ShiftVariants) -> None:
    """Register the new variant like the old one when the old one is autoscaled (idempotent:
    nothing to do once the new variant is registered, or when the old one is not)."""
    if variants.old is None:
        return
    client = p.session.autoscaling()
    if autoscaling.is_registered(client, p.endpoint_name, variants.new):
        return
    template = autoscaling.find_target(client, p.endpoint_name, variants.old)
    if template is None:
        return
    autoscaling.register_like(client, template, p.endpoint_name, variants.new)
    p.actions.append(
        f"RegisterScalableTarget {variants.new} like {variants.old} (min "
        f"{template.min_capacity}, max {template.max_capacity}, "
        f"{len(template.policies)} scaling policies)"
    )


def before_removal(p: RolloutPass, config_name: str) -> None:
    """Deregister the variant `config_name` removes (its policies go with it)."""
    if config_name not in (p.names.final_config, p.names.rollback_config):
        return
    _, drop, _ = _removal(p, config_name)
    if autoscaling.deregister(p.session.autoscaling(), p.endpoint_name, drop):
        p.actions.append(f"DeregisterScalableTarget {drop} (removed by {config_name})")


def _removal(p: RolloutPass, config_name: str) -> tuple[Mapping[str, Any], str, str]:
    """The shift config, and the variants a removal config drops and keeps."""
    names = p.names
    shift = endpoints.find_endpoint_config(p.sm, names.config)
    if shift is None:
        raise RolloutError(f"{names.config} is gone; cannot derive {config_name} from it")
    pair = shift_variants(
        shift, variant_name=p.spec.deployment.variant_name, model_name=names.model
    )
    if pair.old is None:
        raise RolloutError(f"{names.config} has no old variant beside {pair.new}")
    drop, keep = (pair.old, pair.new) if config_name == names.final_config else (pair.new, pair.old)
    return shift, drop, keep


def removal_config_request(p: RolloutPass, config_name: str) -> CreateEndpointConfigInputTypeDef:
    """The shift config without one variant: the old (final config) or the new (rollback)."""
    shift, drop, keep = _removal(p, config_name)
    return drop_variant_request(
        p.policy,
        run_id=p.run.id,
        config_name=config_name,
        current=shift,
        drop=drop,
        keep=keep,
        current_tags=endpoints.list_tags(p.sm, shift["EndpointConfigArn"]),
    )
