"""Variant shift, the I/O half: read the shift config, fetch the numbers a step is judged
on, derive the configs that remove a variant, and keep the endpoint autoscaled. The
decisions are `reconcile/rollout/variant_shift/`; `steps.py` carries them out.

Autoscaling: Application Auto Scaling registers a *variant*, so a shift to a variant of
another name would silently drop it. While the endpoint serves the shift config (both
variants), each of the two is kept registered like the other (`keep_variants_scaled`):
the new one as soon as it serves beside the old one (before any weight moves), and
either one again after SageMaker rolled back an update that would have removed it.
Before a variant is removed its target is deregistered (`before_update`): the old one
when the shift succeeds, the new one when it is rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from retraining_operator.api import HistoryEntry
from retraining_operator.aws import autoscaling, cloudwatch
from retraining_operator.flows.rollout.context import RolloutContext, config_created
from retraining_operator.reconcile.rollout import variant_shift
from retraining_operator.reconcile.rollout.decision import Action, Analyse
from retraining_operator.reconcile.rollout.errors import RolloutError
from retraining_operator.reconcile.rollout.requests import LiveConfig
from retraining_operator.reconcile.rollout.strategy import StrategyRules
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


class VariantShift:
    """The `RolloutStrategy` that moves the traffic itself, step by step."""

    rules: StrategyRules = variant_shift.RULES

    def decide(self, ctx: RolloutContext, history: Sequence[HistoryEntry]) -> Action:
        """The variant shift's next step, with the step judged first when that is due."""
        view = ctx.endpoint
        variants: ShiftVariants | None = None
        created: datetime | None = None
        if view is not None and not view.busy:
            if view.config_name == ctx.names.config:
                config = ctx.config(ctx.names.config)
                if config is None:
                    raise RolloutError(
                        f"endpoint serves {ctx.names.config}, which cannot be described"
                    )
                variants = shift_variants(
                    config,
                    variant_name=ctx.spec.deployment.variant_name,
                    model_name=ctx.names.model,
                )
                keep_variants_scaled(ctx, variants)
            elif view.config_name not in ctx.names.configs:
                created = config_created(ctx.config(ctx.names.config))
        facts = ShiftFacts(
            endpoint=view,
            names=ctx.names,
            variants=variants,
            run=ctx.run,
            spec=ctx.spec.deployment.effective_variant_shift,
            now=ctx.now,
            config_created=created,
            poll=ctx.poll,
        )
        decision = decide_shift(facts)
        if not isinstance(decision, Analyse):
            return decision
        return decide_shift(facts, _analyse(ctx, decision))

    def config_request(
        self, ctx: RolloutContext, config_name: str
    ) -> CreateEndpointConfigInputTypeDef:
        if config_name == ctx.names.config:
            return self.rules.config_request(ctx.target(config_name), ctx.spec, ctx.live())
        shift, drop, keep = _removal(ctx, config_name)
        live = LiveConfig(shift, ctx.tags(str(shift["EndpointConfigArn"])))
        return drop_variant_request(ctx.target(config_name), live, drop=drop, keep=keep)

    def before_update(self, ctx: RolloutContext, config_name: str) -> None:
        """Deregister the variant `config_name` removes (its policies go with it)."""
        if config_name not in (ctx.names.final_config, ctx.names.rollback_config):
            return
        _, drop, _ = _removal(ctx, config_name)
        if autoscaling.deregister(ctx.session.autoscaling(), ctx.endpoint_name, drop):
            ctx.actions.append(f"DeregisterScalableTarget {drop} (removed by {config_name})")

    def keeps_message(self, ctx: RolloutContext) -> bool:
        return ctx.run.endpoint_config_name == ctx.names.rollback_config


def _analyse(ctx: RolloutContext, analyse: Analyse) -> StepVerdict:
    """Fetch what the step is judged on: alarms always, metrics when the bake is over."""
    cw = ctx.session.cloudwatch()
    alarms = ctx.spec.deployment.auto_rollback_alarms
    firing = cloudwatch.firing_alarms(cw, alarms) if alarms else []
    vs = ctx.spec.deployment.effective_variant_shift
    window = analyse.window
    if not window.full:
        return analyse_step(new=None, old=None, firing_alarms=firing, spec=vs)
    end = max(window.until, window.baseline_since + timedelta(seconds=1))
    request = cloudwatch.SeriesRequest(
        namespace=NAMESPACE,
        endpoint_name=analyse.endpoint_name,
        variants=[analyse.old_variant, analyse.new_variant],
        queries=[cloudwatch.MetricQuery(key, metric, stat) for key, metric, stat in METRIC_QUERIES],
        start=window.baseline_since,
        end=end,
        period=PERIOD_SECONDS,
    )
    series = cloudwatch.variant_series(cw, request)
    return analyse_step(
        new=sample(series[analyse.new_variant], window.new_since),
        old=sample(series[analyse.old_variant], window.baseline_since),
        firing_alarms=firing,
        spec=vs,
    )


def keep_variants_scaled(ctx: RolloutContext, variants: ShiftVariants) -> None:
    """While both variants serve, register whichever is not like the one that is.

    Idempotent: nothing to do when both are registered or neither is (an endpoint that was
    never autoscaled). Covers the new variant joining, and a variant whose removal
    SageMaker rolled back after `before_update` had deregistered it."""
    if variants.old is None:
        return
    client = ctx.session.autoscaling()
    endpoint = ctx.endpoint_name
    registered = {
        v for v in (variants.old, variants.new) if autoscaling.is_registered(client, endpoint, v)
    }
    if len(registered) != 1:
        return
    (model,) = registered
    missing = variants.new if model == variants.old else variants.old
    template = autoscaling.find_target(client, endpoint, model)
    if template is None:
        return
    autoscaling.register_like(client, template, endpoint, missing)
    ctx.actions.append(
        f"RegisterScalableTarget {missing} like {model} (min {template.min_capacity}, max "
        f"{template.max_capacity}, {len(template.policies)} scaling policies)"
    )


def _removal(ctx: RolloutContext, config_name: str) -> tuple[Mapping[str, Any], str, str]:
    """The shift config, and the variants a removal config drops and keeps."""
    names = ctx.names
    shift = ctx.config(names.config)
    if shift is None:
        raise RolloutError(f"{names.config} is gone; cannot derive {config_name} from it")
    pair = shift_variants(
        shift, variant_name=ctx.spec.deployment.variant_name, model_name=names.model
    )
    if pair.old is None:
        raise RolloutError(f"{names.config} has no old variant beside {pair.new}")
    drop, keep = (pair.old, pair.new) if config_name == names.final_config else (pair.new, pair.old)
    return shift, drop, keep
