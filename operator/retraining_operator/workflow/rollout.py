"""Rollout workflow: what the controller calls on each reconcile pass of a deploying run.

* `advance_rollout` moves a run's rollout one step: describe first, decide (pure:
  `reconcile/rollout.py`, `reconcile/variant_shift.py`), make at most one changing call
  to the endpoint, and report. Safe to call again after a crash at any point: Models and
  EndpointConfigs have deterministic names and are adopted when they exist (describe
  first; "already exists" on create means adopt), and UpdateEndpoint is only sent when
  the endpoint is not busy and the run has not asked for that config before.
* `rollback_to` serves a model from the history again (`retraining.hitl.dev/rollback-to`),
  as a deploy-only run under the same guardrails.
* `cleanup` deletes older operator-made Models and EndpointConfigs of the policy beyond
  `deployment.retainPreviousModels`, never what serves and never what is not ours.

Errors: `RolloutError` (and `UnknownRollbackTarget`) when a person has to act (kopf
`PermanentError` + Degraded); `aws.errors.AwsError` subclasses from the gateways
(`Throttled`/`Unavailable` -> retry later; the others -> Degraded with AWS's message).
An endpoint that refuses an update because it is busy is not an error: the progress
says retry later.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from retraining_operator.api import (
    CurrentRun,
    HistoryEntry,
    RetrainingPolicySpec,
    RetrainingPolicyStatus,
    RunStage,
    ServingStatus,
    Strategy,
)
from retraining_operator.aws import cloudwatch
from retraining_operator.aws import endpoints as gateway
from retraining_operator.aws.endpoints import EndpointBusy
from retraining_operator.aws.errors import AlreadyExists
from retraining_operator.aws.images import ImageLookupError
from retraining_operator.reconcile.cleanup import OwnedResource, plan_cleanup
from retraining_operator.reconcile.naming import (
    MANAGED_BY_VALUE,
    TAG_MANAGED_BY,
    TAG_POLICY_UID,
    PolicyRef,
    model_name,
)
from retraining_operator.reconcile.rollout import (
    DEFAULT_POLL,
    AnalysisWindow,
    Decision,
    EndpointView,
    RolloutError,
    RolloutNames,
    RolloutResult,
    ShiftVariants,
    Step,
    create_endpoint_request,
    decide_update,
    drop_variant_request,
    endpoint_config_request,
    failed_configs,
    first_endpoint_config_request,
    history_entry,
    model_request,
    resolve_rollback_target,
    rollback_run,
    serving_status,
    shift_config_request,
    shift_variants,
    target_variant,
    update_endpoint_request,
)
from retraining_operator.reconcile.variant_shift import (
    METRIC_QUERIES,
    NAMESPACE,
    PERIOD_SECONDS,
    StepVerdict,
    analyse_step,
    decide_shift,
    sample,
)
from retraining_operator.workflow.training import training_image_uri

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import CreateEndpointConfigInputTypeDef

    from retraining_operator.aws.session import AwsSession


@dataclass(frozen=True)
class RolloutProgress:
    """What one pass did and what comes next.

    * `run`: the run with its new fields (model/config names, step, timestamps, message);
      patch it into `status.currentRun`.
    * `actions`: the AWS changes made in this pass, e.g. `UpdateEndpoint od-endpoint -> ...`
      (post each as an Event).
    * terminal when `result` is set: then `history_entry` goes to the history, and on
      SERVING `serving` replaces `status.serving` (on DEGRADED/FAILED the old model keeps
      serving: leave `status.serving` as it is, set Degraded with `reason`).
    * otherwise `retry_after`: look again after that delay (kopf `TemporaryError(delay=)`
      or the next timer tick).
    """

    run: CurrentRun
    message: str
    actions: tuple[str, ...] = ()
    result: RolloutResult | None = None
    reason: str | None = None
    retry_after: timedelta | None = None
    history_entry: HistoryEntry | None = None
    serving: ServingStatus | None = None

    @property
    def done(self) -> bool:
        return self.result is not None


@dataclass
class _Pass:
    """One reconcile pass over one run (the flat list of steps below share it)."""

    session: AwsSession
    policy: PolicyRef
    spec: RetrainingPolicySpec
    run: CurrentRun
    names: RolloutNames
    now: datetime
    poll: timedelta
    image: str | None
    actions: list[str] = field(default_factory=list)
    endpoint: EndpointView | None = None

    @property
    def sm(self) -> SageMakerClient:
        return self.session.sagemaker()

    @property
    def endpoint_name(self) -> str:
        name = self.spec.deployment.endpoint_name
        if name is None:
            raise RolloutError("deployment.endpointName is required to deploy")
        return name

    @property
    def shifting(self) -> bool:
        return self.spec.deployment.strategy is Strategy.VARIANT_SHIFT

    def image_uri(self) -> str:
        if self.image is not None:
            return self.image
        try:
            return training_image_uri(self.spec)
        except ImageLookupError as error:
            raise RolloutError(f"no image for the model: {error}") from error


def advance_rollout(
    session: AwsSession,
    policy: PolicyRef,
    spec: RetrainingPolicySpec,
    run: CurrentRun,
    now: datetime,
    *,
    history: Sequence[HistoryEntry] = (),
    image: str | None = None,
    poll: timedelta = DEFAULT_POLL,
) -> RolloutProgress:
    """Move the run's rollout one step (see the module docstring).

    `run.model_data_url` is the passed training job's `S3ModelArtifacts`. `history` lets
    the guard refuse a config whose update failed in an earlier run. `image` overrides the
    model's image (default: the policy's training image, which serves for the built-in
    object-detection algorithm). `now` is the clock (tests pass their own).
    """
    if spec.deployment.strategy is Strategy.NONE:
        return _finished(
            run, RolloutResult.SKIPPED, "strategy None: trained and gated, not deployed", now
        )
    names = RolloutNames.for_run(policy, run.id, model=run.model_name)
    run = run.model_copy(update={"model_name": names.model, "stage": RunStage.DEPLOYING})
    p = _Pass(session, policy, spec, run, names, now, poll, image)
    try:
        _reconcile_model(p)
        described = gateway.find_endpoint(p.sm, p.endpoint_name)
        p.endpoint = EndpointView.from_describe(described) if described else None
        decision = _decide_shift(p) if p.shifting else _decide_update(p, history)
        return _execute(p, decision)
    except EndpointBusy as busy:
        return _progress(p, f"endpoint refused the change while busy, waiting: {busy.message}")


def rollback_to(
    session: AwsSession,
    policy: PolicyRef,
    spec: RetrainingPolicySpec,
    *,
    target: str,
    history: Sequence[HistoryEntry],
    run: CurrentRun | None,
    now: datetime,
    image: str | None = None,
    poll: timedelta = DEFAULT_POLL,
) -> RolloutProgress:
    """Serve `target` (a run id or model name from `history`) again.

    First call with `run=None`: resolves the target (`UnknownRollbackTarget` when the
    history has no such model) and starts a deploy-only run (`rb<timestamp>`) that puts
    the history's Model back with the policy's strategy and guardrails. Keep the returned
    `progress.run` as the current run and pass it back on later calls, until `done`; then
    clear the annotation. A target that already serves finishes at once.
    """
    if spec.deployment.strategy is Strategy.NONE:
        raise RolloutError("deployment.strategy is None: the operator deploys nothing to roll back")
    if run is None:
        entry = resolve_rollback_target(history, target)
        run = rollback_run(entry, target=target, now=now)
        serving = _serving_model(session.sagemaker(), spec)
        if serving is not None and serving[1] == run.model_name:
            return _finished(
                run.model_copy(update={"endpoint_config_name": serving[0]}),
                RolloutResult.SERVING,
                f"{run.model_name} already serves on {spec.deployment.endpoint_name}",
                now,
            )
    return advance_rollout(session, policy, spec, run, now, history=history, image=image, poll=poll)


def _serving_model(sm: SageMakerClient, spec: RetrainingPolicySpec) -> tuple[str, str] | None:
    """(config, model of the target variant) the endpoint serves, when it is settled."""
    name = spec.deployment.endpoint_name
    described = gateway.find_endpoint(sm, name) if name else None
    if described is None:
        return None
    view = EndpointView.from_describe(described)
    if view.busy or view.config_name is None:
        return None
    config = gateway.find_endpoint_config(sm, view.config_name)
    if config is None:
        return None
    variant = target_variant(config, spec.deployment.variant_name)
    for v in config["ProductionVariants"]:
        if v["VariantName"] == variant:
            return view.config_name, str(v.get("ModelName", ""))
    return None  # pragma: no cover - target_variant found it


# ---------------------------------------------------------------------------------------
# The steps of one pass


def _reconcile_model(p: _Pass) -> None:
    """Describe the run's Model; create it when missing; adopt it when the name is taken."""
    existing = gateway.find_model(p.sm, p.names.model)
    wanted = p.run.model_data_url
    if existing is not None:
        found = existing.get("PrimaryContainer", {}).get("ModelDataUrl")
        if wanted and found and found != wanted:
            raise RolloutError(
                f"Model {p.names.model} exists with artifacts {found}, not the run's {wanted}; "
                "delete it or start a new run"
            )
        return
    if not wanted:
        raise RolloutError(
            f"run {p.run.id} has no model artifacts (modelDataUrl) to create {p.names.model}"
        )
    request = model_request(
        p.policy,
        p.spec,
        run_id=p.run.id,
        model_name=p.names.model,
        model_data_url=wanted,
        image=p.image_uri(),
    )
    try:
        gateway.create_model(p.sm, request)
        p.actions.append(f"CreateModel {p.names.model}")
    except AlreadyExists:
        pass  # made by a concurrent pass: adopt


def _created(config: Mapping[str, Any] | None) -> datetime | None:
    if config is None:
        return None
    created = config.get("CreationTime")
    if isinstance(created, datetime):
        return created if created.tzinfo else created.replace(tzinfo=UTC)
    return None


def _decide_update(p: _Pass, history: Sequence[HistoryEntry]) -> Decision:
    view = p.endpoint
    created = None
    if view is not None and not view.busy and view.config_name != p.names.config:
        created = _created(gateway.find_endpoint_config(p.sm, p.names.config))
    return decide_update(
        endpoint=view,
        config_name=p.names.config,
        run=p.run,
        now=p.now,
        config_created=created,
        failed=failed_configs(history),
        poll=p.poll,
    )


def _decide_shift(p: _Pass) -> Decision:
    view = p.endpoint
    variants: ShiftVariants | None = None
    created: datetime | None = None
    if view is not None and not view.busy:
        if view.config_name == p.names.config:
            config = gateway.find_endpoint_config(p.sm, p.names.config)
            if config is None:
                raise RolloutError(f"endpoint serves {p.names.config}, which cannot be described")
            variants = shift_variants(
                config, variant_name=p.spec.deployment.variant_name, model_name=p.names.model
            )
        elif view.config_name not in p.names.configs:
            created = _created(gateway.find_endpoint_config(p.sm, p.names.config))
    vs = p.spec.deployment.effective_variant_shift

    def decide(verdict: StepVerdict | None) -> Decision:
        return decide_shift(
            endpoint=view,
            names=p.names,
            variants=variants,
            run=p.run,
            spec=vs,
            now=p.now,
            verdict=verdict,
            config_created=created,
            poll=p.poll,
        )

    decision = decide(None)
    if decision.step is Step.ANALYSE:
        assert decision.window is not None
        assert variants is not None
        assert view is not None
        decision = decide(_analyse(p, view, variants, decision.window))
    return decision


def _analyse(
    p: _Pass, view: EndpointView, variants: ShiftVariants, window: AnalysisWindow
) -> StepVerdict:
    """Fetch what the step is judged on: alarms always, metrics when the bake is over."""
    cw = p.session.cloudwatch()
    alarms = p.spec.deployment.auto_rollback_alarms
    firing = cloudwatch.firing_alarms(cw, alarms) if alarms else []
    vs = p.spec.deployment.effective_variant_shift
    if not window.full or variants.old is None:
        return analyse_step(new=None, old=None, firing_alarms=firing, spec=vs)
    end = max(window.until, window.baseline_since + timedelta(seconds=1))
    series = cloudwatch.variant_series(
        cw,
        namespace=NAMESPACE,
        endpoint_name=view.name,
        variants=[variants.old, variants.new],
        queries=[cloudwatch.MetricQuery(key, metric, stat) for key, metric, stat in METRIC_QUERIES],
        start=window.baseline_since,
        end=end,
        period=PERIOD_SECONDS,
    )
    return analyse_step(
        new=sample(series[variants.new], window.new_since),
        old=sample(series[variants.old], window.baseline_since),
        firing_alarms=firing,
        spec=vs,
    )


def _execute(p: _Pass, decision: Decision) -> RolloutProgress:
    if decision.step is Step.FINISH:
        assert decision.result is not None
        run = p.run.model_copy(update=dict(decision.run_updates))
        if decision.result is RolloutResult.SERVING and p.endpoint is not None:
            run = run.model_copy(update={"endpoint_config_name": p.endpoint.config_name})
        elif run.endpoint_config_name is None:
            run = run.model_copy(update={"endpoint_config_name": p.names.config})
        return _finished(
            run,
            decision.result,
            decision.message,
            p.now,
            reason=decision.reason,
            actions=p.actions,
        )
    if decision.step is Step.WAIT:
        p.run = p.run.model_copy(update=dict(decision.run_updates))
        return _progress(p, decision.message, delay=decision.delay)
    if decision.step is Step.CREATE_ENDPOINT:
        assert decision.config_name is not None
        _ensure_config(p, decision.config_name)
        request = create_endpoint_request(
            p.policy, p.spec, run_id=p.run.id, config_name=decision.config_name
        )
        try:
            gateway.create_endpoint(p.sm, request)
            p.actions.append(f"CreateEndpoint {p.endpoint_name} with {decision.config_name}")
        except AlreadyExists:
            pass  # created meanwhile (another pass); the next describe sees it
    elif decision.step is Step.UPDATE_ENDPOINT:
        assert decision.config_name is not None
        _ensure_config(p, decision.config_name)
        guarded = not p.shifting
        gateway.update_endpoint(
            p.sm,
            update_endpoint_request(p.spec, config_name=decision.config_name, guarded=guarded),
        )
        p.actions.append(f"UpdateEndpoint {p.endpoint_name} -> {decision.config_name}")
    elif decision.step is Step.SET_WEIGHTS:
        gateway.update_weights(
            p.sm,
            {
                "EndpointName": p.endpoint_name,
                "DesiredWeightsAndCapacities": [
                    {"VariantName": variant, "DesiredWeight": weight}
                    for variant, weight in decision.weights
                ],
            },
        )
        shares = ", ".join(f"{v}={w:g}" for v, w in decision.weights)
        p.actions.append(f"UpdateEndpointWeightsAndCapacities {p.endpoint_name}: {shares}")
    else:  # pragma: no cover - ANALYSE is resolved in _decide_shift
        raise AssertionError(f"unexpected step {decision.step}")
    p.run = p.run.model_copy(update=dict(decision.run_updates))
    return _progress(p, decision.message)


def _ensure_config(p: _Pass, config_name: str) -> None:
    """Describe `config_name`; build and create it when missing (adopt on "already exists")."""
    if gateway.find_endpoint_config(p.sm, config_name) is not None:
        return
    request = _config_request(p, config_name)
    try:
        gateway.create_endpoint_config(p.sm, request)
        p.actions.append(f"CreateEndpointConfig {config_name}")
    except AlreadyExists:
        pass


def _config_request(p: _Pass, config_name: str) -> CreateEndpointConfigInputTypeDef:
    names, run_id = p.names, p.run.id
    if config_name == names.config:
        if p.endpoint is None:
            return first_endpoint_config_request(
                p.policy, p.spec, run_id=run_id, config_name=config_name, model_name=names.model
            )
        current_name = p.endpoint.config_name
        current = gateway.find_endpoint_config(p.sm, current_name) if current_name else None
        if current is None:
            raise RolloutError(
                f"endpoint {p.endpoint.name} has no describable config ({current_name!r})"
            )
        tags = gateway.list_tags(p.sm, current["EndpointConfigArn"])
        build = shift_config_request if p.shifting else endpoint_config_request
        return build(
            p.policy,
            p.spec,
            run_id=run_id,
            config_name=config_name,
            model_name=names.model,
            current=current,
            current_tags=tags,
        )
    shift = gateway.find_endpoint_config(p.sm, names.config)
    if shift is None:
        raise RolloutError(f"{names.config} is gone; cannot derive {config_name} from it")
    pair = shift_variants(
        shift, variant_name=p.spec.deployment.variant_name, model_name=names.model
    )
    if pair.old is None:
        raise RolloutError(f"{names.config} has no old variant beside {pair.new}")
    drop, keep = (pair.old, pair.new) if config_name == names.final_config else (pair.new, pair.old)
    return drop_variant_request(
        p.policy,
        run_id=run_id,
        config_name=config_name,
        current=shift,
        drop=drop,
        keep=keep,
        current_tags=gateway.list_tags(p.sm, shift["EndpointConfigArn"]),
    )


def _progress(p: _Pass, message: str, *, delay: timedelta | None = None) -> RolloutProgress:
    # While a variant shift heads for its rollback config, the run's message keeps the reason.
    sticky = p.shifting and p.run.endpoint_config_name == p.names.rollback_config
    run = p.run if sticky else p.run.model_copy(update={"message": message})
    return RolloutProgress(
        run=run, message=message, actions=tuple(p.actions), retry_after=delay or p.poll
    )


def _finished(
    run: CurrentRun,
    result: RolloutResult,
    message: str,
    now: datetime,
    *,
    reason: str | None = None,
    actions: Sequence[str] = (),
) -> RolloutProgress:
    text = f"{message}: {reason}" if reason and reason not in message else message
    run = run.model_copy(update={"stage": RunStage.DONE, "message": text})
    return RolloutProgress(
        run=run,
        message=text,
        actions=tuple(actions),
        result=result,
        reason=reason,
        history_entry=history_entry(run, result=result, now=now, reason=reason or message),
        serving=serving_status(run, now=now) if result is RolloutResult.SERVING else None,
    )


# ---------------------------------------------------------------------------------------
# Cleanup


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
    models = gateway.list_tagged(sm, gateway.list_models(sm, name_contains=prefix), required)
    configs = gateway.list_tagged(
        sm, gateway.list_endpoint_configs(sm, name_contains=prefix), required
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
    deleted_configs = tuple(n for n in plan.delete_configs if gateway.delete_endpoint_config(sm, n))
    deleted_models = tuple(n for n in plan.delete_models if gateway.delete_model(sm, n))
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
    described = gateway.find_endpoint(sm, name) if name else None
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
        config = gateway.find_endpoint_config(sm, config_name)
        if config is not None:
            models |= {
                str(v["ModelName"]) for v in config["ProductionVariants"] if "ModelName" in v
            }
    return configs, models
