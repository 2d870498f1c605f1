"""One reconcile pass over one RetrainingPolicy: ingest, run stages, status, Events.

The pass is a flat list of small steps that may return early (Argo Rollouts' style).
Every side effect keyed by a run id happens only after that run id is durable in the
resource's status (`checkpoint`), and every side effect is idempotent for its run id:
so a crash anywhere, followed by a new pass, resumes instead of repeating.

Stages of a run: Preparing (dataset) -> Training (job) -> Evaluating (gate) ->
Deploying (rollout) -> history. Polling A2I goes on during a run; samples that arrive
meanwhile wait for the next run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic

from retraining_operator import metrics
from retraining_operator.api import (
    RETRAIN_NOW_ANNOTATION,
    ROLLBACK_TO_ANNOTATION,
    ConditionType,
    CurrentRun,
    HistoryEntry,
    Outcome,
    RetrainingPolicySpec,
    RetrainingPolicyStatus,
    RunSamples,
    RunStage,
    parse_duration,
)
from retraining_operator.aws.errors import AwsError, NotFound, Throttled, Unavailable
from retraining_operator.aws.session import AwsSession
from retraining_operator.config import OperatorConfig
from retraining_operator.reconcile import schedule
from retraining_operator.reconcile import status as st
from retraining_operator.reconcile.gate import (
    evaluate_gate,
    rejection_history_entry,
    serving_metric_value,
)
from retraining_operator.reconcile.ingest import should_train
from retraining_operator.reconcile.naming import PolicyRef, run_id_for
from retraining_operator.reconcile.rollout import (
    RolloutError,
    RolloutResult,
    UnknownRollbackTarget,
)
from retraining_operator.reconcile.training_request import TrainingData
from retraining_operator.reconcile.training_status import (
    JobKind,
    JobRef,
    TrainingObservation,
    failure_history_entry,
)
from retraining_operator.workflow import dataset, ingest, rollout, training

log = logging.getLogger(__name__)

# Sustained AWS throttling is reported as an Event at most this often per policy.
THROTTLE_REPORT_SECONDS = 60.0

SessionFactory = Callable[[PolicyRef, RetrainingPolicySpec], AwsSession]
Checkpoint = Callable[[RetrainingPolicyStatus], None]


@dataclass(frozen=True)
class PolicyView:
    """What the handler saw of the object."""

    ref: PolicyRef
    generation: int | None
    annotations: Mapping[str, str]
    spec: Mapping[str, Any]
    status: Mapping[str, Any]


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class PassResult:
    status: RetrainingPolicyStatus
    events: list[Event] = field(default_factory=list)
    clear_annotations: list[str] = field(default_factory=list)
    spec_error: str | None = None
    # Seconds until something is due (a poll, an observation, maxWait): when to pass again.
    requeue_after: float | None = None
    due: list[float] = field(default_factory=list)

    def due_in(self, seconds: float) -> None:
        self.due.append(max(0.0, seconds))


class _Retry(Exception):
    """Stop this pass here; the next tick carries on (AWS busy or throttled)."""


def _spec_problem(error: pydantic.ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "spec"
        parts.append(f"spec.{where}: {item['msg']}")
    return "; ".join(parts)


class Controller:
    """Reconciles policies; one instance per operator process (thread-safe per policy)."""

    def __init__(
        self,
        config: OperatorConfig,
        sessions: SessionFactory,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        started_at: datetime | None = None,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.clock = clock
        self.started_at = started_at or clock()
        # When each policy's in-flight job/rollout was last described (memory only: after a
        # restart the first pass looks at once).
        self._last_observed: dict[str, float] = {}
        # When each policy last polled A2I. Status holds it too, but a pass may see a stale
        # status (the watch lags, or the API server refused the last status write): memory
        # keeps polls to one per pollInterval anyway.
        self._last_polled: dict[str, datetime] = {}
        # When sustained AWS throttling was last reported per policy (monotonic seconds).
        self._throttle_reported: dict[str, float] = {}

    # -- the pass ---------------------------------------------------------------------

    def reconcile(self, view: PolicyView, checkpoint: Checkpoint) -> PassResult:
        now = self.clock()
        status = RetrainingPolicyStatus.model_validate(dict(view.status))
        result = PassResult(status=status)
        ns, name = view.ref.namespace, view.ref.name
        try:
            spec = RetrainingPolicySpec.model_validate(dict(view.spec))
        except pydantic.ValidationError as error:
            problem = _spec_problem(error)
            self._degrade(result, view, now, "InvalidSpec", problem, spec_error=True)
            result.spec_error = problem
            checkpoint(result.status)
            return result

        if not self.config.role_allowed(spec.aws.role_arn):
            problem = (
                f"spec.aws.roleArn {spec.aws.role_arn} is not allowed by this operator "
                "(allowed patterns: " + ", ".join(self.config.allowed_role_patterns) + "); "
                "use an allowed role or ask the operator's admin to allow it"
            )
            self._degrade(result, view, now, "RoleNotAllowed", problem, spec_error=True)
            checkpoint(result.status)
            return result

        session = self.sessions(view.ref, spec)
        degraded: tuple[str, str] | None = None
        try:
            self._poll_if_due(session, spec, view, result, now)
            if spec.suspend:
                self._suspend(session, spec, view, result, now, checkpoint)
            else:
                self._start_run_if_triggered(spec, view, result, now, checkpoint)
            self._advance_run(session, spec, view, result, now, checkpoint)
            if not spec.suspend:
                self._rollback_if_asked(session, spec, view, result, now, checkpoint)
        except _Retry:
            pass
        except training.BaseModelUnavailable as error:
            degraded = (error.reason, error.message)
            self._event(result, "Warning", error.reason, error.message, ns, name)
        except (Throttled, Unavailable) as error:
            # botocore already retried with backoff; wait for the next tick, not Degraded.
            self._event(result, "Warning", "AwsBusy", f"{error.operation}: {error}", ns, name)
        except UnknownRollbackTarget as error:
            degraded = ("RollbackTargetUnknown", str(error))
            self._event(result, "Warning", degraded[0], str(error), ns, name)
        except RolloutError as error:
            degraded = ("RolloutBlocked", str(error))
            self._event(result, "Warning", degraded[0], str(error), ns, name)
        except dataset.DatasetError as error:
            degraded = ("DatasetUnavailable", str(error))
            self._event(result, "Warning", degraded[0], str(error), ns, name)
        except ingest.IngestError as error:
            degraded = ("IngestFailed", str(error))
            self._event(result, "Warning", degraded[0], str(error), ns, name)
        except AwsError as error:
            degraded = (error.code or type(error).__name__, f"{error.operation}: {error}")
            self._event(result, "Warning", "AwsError", degraded[1], ns, name)

        self._report_throttling(session, view, result)
        self._finish(result, view, spec, now, degraded)
        checkpoint(result.status)
        if result.status.current_run is not None:
            result.due_in(self.config.observe_seconds)
        result.requeue_after = min([*result.due, self.config.tick_seconds])
        return result

    def finalize(self, view: PolicyView) -> list[Event]:
        """Deletion: stop the in-flight training job (idempotent); leave endpoints alone."""
        status = RetrainingPolicyStatus.model_validate(dict(view.status))
        run = status.current_run
        job = JobRef.from_run(run) if run is not None else None
        if job is None:
            return []
        try:
            spec = RetrainingPolicySpec.model_validate(dict(view.spec))
        except pydantic.ValidationError:
            return [Event("Warning", "CleanupSkipped", f"cannot stop {job.name}: invalid spec")]
        session = self.sessions(view.ref, spec)
        stopped = training.stop_training(session, job)
        if stopped:
            return [Event("Normal", "TrainingStopped", f"stopped {job.kind} {job.name}")]
        return []

    # -- steps ------------------------------------------------------------------------

    def _poll_if_due(
        self,
        session: AwsSession,
        spec: RetrainingPolicySpec,
        view: PolicyView,
        result: PassResult,
        now: datetime,
    ) -> None:
        status = result.status
        last_poll = max(
            (t for t in (status.ingest.last_poll_time, self._last_polled.get(view.ref.uid)) if t),
            default=None,
        )
        interval = parse_duration(spec.human_loops.poll_interval)
        next_poll = schedule.next_poll_at(
            last_poll=last_poll,
            interval=interval,
            uid=view.ref.uid,
            operator_started=self.started_at,
            spread=timedelta(seconds=self.config.poll_spread_seconds),
        )
        if spec.suspend:
            return
        if now < next_poll:
            result.due_in((next_poll - now).total_seconds())
            return
        result.due_in(interval.total_seconds())
        try:
            polled = ingest.poll(
                session, spec, clock=self.clock, concurrency=self.config.fetch_concurrency
            )
        except ingest.IngestError as error:
            if error.retryable:
                self._event(result, "Warning", "PollFailed", f"{error} (retrying)", *self._nn(view))
                return
            raise
        status.ingest = polled.status
        if polled.status.last_poll_time is not None:
            self._last_polled[view.ref.uid] = polled.status.last_poll_time
        labels = (view.ref.namespace, view.ref.name)
        metrics.LOOPS_INGESTED.labels(*labels).inc(polled.new_samples)
        metrics.PENDING_SAMPLES.labels(*labels).set(polled.status.pending_samples)
        for reason, count in polled.quarantined_by_reason.items():
            metrics.LOOPS_QUARANTINED.labels(*labels, reason).inc(count)
        if polled.new_samples:
            self._event(
                result,
                "Normal",
                "SamplesIngested",
                f"{polled.new_samples} new samples from A2I "
                f"({polled.status.pending_samples} pending)",
                *self._nn(view),
            )
        message = polled.event_message()
        if message:
            self._event(result, "Warning", "SamplesQuarantined", message, *self._nn(view))

    def _start_run_if_triggered(
        self,
        spec: RetrainingPolicySpec,
        view: PolicyView,
        result: PassResult,
        now: datetime,
        checkpoint: Checkpoint,
    ) -> None:
        status = result.status
        if status.current_run is not None:
            return
        forced = RETRAIN_NOW_ANNOTATION in view.annotations
        decision = should_train(
            status.ingest.pending_samples,
            status.ingest.oldest_pending_time,
            now,
            spec.dataset,
            force=forced,
        )
        if forced:
            result.clear_annotations.append(RETRAIN_NOW_ANNOTATION)
        if not decision.train:
            if forced:
                self._event(
                    result, "Warning", "RetrainNowIgnored", decision.message, *self._nn(view)
                )
            if decision.due_in is not None:
                result.due_in(decision.due_in.total_seconds())
            return
        run_id = run_id_for(now)
        if any(h.run_id == run_id for h in status.history):  # two runs in one second
            return
        status.current_run = CurrentRun(
            id=run_id,
            stage=RunStage.PREPARING,
            trigger=str(decision.reason),
            started_at=now,
            message=decision.message,
        )
        self._set_phase(status, spec, view, now)
        # The run id must be durable before anything is written under it.
        checkpoint(status)
        self._event(
            result, "Normal", "RunStarted", f"run {run_id}: {decision.message}", *self._nn(view)
        )

    def _advance_run(
        self,
        session: AwsSession,
        spec: RetrainingPolicySpec,
        view: PolicyView,
        result: PassResult,
        now: datetime,
        checkpoint: Checkpoint,
    ) -> None:
        status = result.status
        run = status.current_run
        if run is None or run.id.startswith("rb"):
            return
        if run.stage is RunStage.PREPARING:
            if spec.suspend:
                return
            self._prepare(session, spec, view, result, now, checkpoint)
        run = status.current_run
        if run is not None and run.stage is RunStage.TRAINING:
            self._train(session, spec, view, result, now, checkpoint)
        run = status.current_run
        if run is not None and run.stage is RunStage.EVALUATING:
            self._evaluate(session, spec, view, result, now, checkpoint)
        run = status.current_run
        if run is not None and run.stage is RunStage.DEPLOYING:
            self._deploy(session, spec, view, result, now)

    def _prepare(
        self,
        session: AwsSession,
        spec: RetrainingPolicySpec,
        view: PolicyView,
        result: PassResult,
        now: datetime,
        checkpoint: Checkpoint,
    ) -> None:
        status = result.status
        run = status.current_run
        assert run is not None
        try:
            built = dataset.assemble_run_dataset(session, spec, run.id, clock=self.clock)
        except dataset.NothingToTrain as error:
            status.current_run = None
            self._event(result, "Normal", "RunSkipped", f"run {run.id}: {error}", *self._nn(view))
            return
        except dataset.DatasetError as error:
            if error.retryable:
                self._event(result, "Warning", "DatasetRetry", str(error), *self._nn(view))
                raise _Retry from error
            raise
        run = run.model_copy(
            update={
                "manifest_s3_uri": built.train_manifest_s3_uri,
                "validation_manifest_s3_uri": built.validation_manifest_s3_uri,
                "samples": RunSamples.model_validate(built.samples.model_dump()),
                "message": f"dataset: {built.samples.train} train / "
                f"{built.samples.validation} validation lines",
            }
        )
        status.current_run = run
        self._event(
            result,
            "Normal",
            "DatasetWritten",
            f"run {run.id}: {built.samples.new} new + {built.samples.replay} replay samples -> "
            f"{built.train_manifest_s3_uri}",
            *self._nn(view),
        )
        # The job request depends on the manifests: record them before submitting.
        base = training.resolve_base_model(session, spec)
        run = run.model_copy(update={"base_model_data_url": base, "stage": RunStage.TRAINING})
        status.current_run = run
        self._set_phase(status, spec, view, now)
        checkpoint(status)

    def _train(
        self,
        session: AwsSession,
        spec: RetrainingPolicySpec,
        view: PolicyView,
        result: PassResult,
        now: datetime,
        checkpoint: Checkpoint,
    ) -> None:
        status = result.status
        run = status.current_run
        assert run is not None
        job = JobRef.from_run(run)
        if job is None:
            if spec.suspend:
                return
            submission = training.ensure_training(
                session, view.ref, spec, run.id, TrainingData.from_run(run)
            )
            job = submission.job
            names = (
                {"tuning_job_name": job.name}
                if job.kind is JobKind.TUNING
                else {"training_job_name": job.name}
            )
            status.current_run = run = run.model_copy(
                update={**names, "message": f"{job.kind} {job.name} submitted"}
            )
            status.last_training_job_name = job.name
            self._set_phase(status, spec, view, now)
            checkpoint(status)
            verb = "submitted" if submission.created else "adopted"
            self._event(
                result,
                "Normal",
                "TrainingSubmitted",
                f"run {run.id}: {verb} {job.name}",
                *self._nn(view),
            )
            self._last_observed[view.ref.uid] = time.monotonic()
            return
        if not self._observe_due(view.ref.uid):
            return
        try:
            seen = training.observe_training(session, job)
        except NotFound:
            # The job vanished (or a crash hit before create): submit again, same name.
            status.current_run = run.model_copy(
                update={"training_job_name": None, "tuning_job_name": None}
            )
            return
        if not seen.finished:
            status.current_run = run.model_copy(
                update={
                    "training_job_status": seen.status,
                    "secondary_status": seen.secondary_status,
                    "message": f"{job.name}: {seen.status}"
                    + (f" ({seen.secondary_status})" if seen.secondary_status else "")
                    + (f"; {seen.spot_interruption}" if seen.spot_interruption else ""),
                }
            )
            return
        if not seen.succeeded:
            entry = failure_history_entry(run, seen, finished_at=now)
            self._end_run(result, view, entry)
            self._event(result, "Warning", "TrainingFailed", entry.reason or "", *self._nn(view))
            return
        status.current_run = run.model_copy(
            update={
                "stage": RunStage.EVALUATING,
                "training_job_status": seen.status,
                "secondary_status": seen.secondary_status,
                "model_data_url": seen.model_data_url,
                "message": f"{seen.training_job_name or job.name} completed",
            }
        )
        if seen.training_job_name and seen.training_job_name != job.name:
            status.current_run = status.current_run.model_copy(
                update={"training_job_name": seen.training_job_name}
            )
        metrics.TRAINING_SECONDS.labels(*self._nn(view)).observe(
            (now - run.started_at).total_seconds()
        )
        self._evaluate_observation(spec, view, result, now, seen.final_metrics, seen)
        checkpoint(status)

    def _evaluate(
        self,
        session: AwsSession,
        spec: RetrainingPolicySpec,
        view: PolicyView,
        result: PassResult,
        now: datetime,
        checkpoint: Checkpoint,
    ) -> None:
        run = result.status.current_run
        assert run is not None
        job = JobRef.from_run(run)
        if job is None:  # pragma: no cover - evaluating implies a job
            raise _Retry
        seen = training.observe_training(session, job)
        self._evaluate_observation(spec, view, result, now, seen.final_metrics, seen)
        checkpoint(result.status)

    def _evaluate_observation(
        self,
        spec: RetrainingPolicySpec,
        view: PolicyView,
        result: PassResult,
        now: datetime,
        final_metrics: Mapping[str, float],
        seen: TrainingObservation,
    ) -> None:
        status = result.status
        run = status.current_run
        assert run is not None
        decision = evaluate_gate(
            spec.gate,
            final_metrics,
            serving_value=serving_metric_value(status),
            job_name=seen.training_job_name or seen.job.name,
        )
        if not decision.passed:
            entry = rejection_history_entry(
                run,
                decision,
                training_job_name=seen.training_job_name or seen.job.name,
                model_data_url=seen.model_data_url,
                finished_at=now,
            )
            self._end_run(result, view, entry)
            self._event(result, "Warning", "GateRejected", decision.reason, *self._nn(view))
            return
        self._event(result, "Normal", "GatePassed", decision.reason, *self._nn(view))
        status.current_run = run.model_copy(
            update={
                "stage": RunStage.DEPLOYING,
                "metric_value": decision.value,
                "message": decision.reason,
            }
        )
        self._set_phase(status, spec, view, now)

    def _deploy(
        self,
        session: AwsSession,
        spec: RetrainingPolicySpec,
        view: PolicyView,
        result: PassResult,
        now: datetime,
    ) -> None:
        status = result.status
        run = status.current_run
        assert run is not None
        progress = rollout.advance_rollout(
            session,
            view.ref,
            spec,
            run,
            now,
            history=status.history,
            poll=timedelta(seconds=self.config.observe_seconds),
        )
        self._apply_rollout(progress, spec, view, result, now, session)

    def _rollback_if_asked(
        self,
        session: AwsSession,
        spec: RetrainingPolicySpec,
        view: PolicyView,
        result: PassResult,
        now: datetime,
        checkpoint: Checkpoint,
    ) -> None:
        status = result.status
        target = view.annotations.get(ROLLBACK_TO_ANNOTATION)
        run = status.current_run
        if not target or (run is not None and not run.id.startswith("rb")):
            return
        try:
            progress = rollout.rollback_to(
                session,
                view.ref,
                spec,
                target=target,
                history=status.history,
                run=run,
                now=now,
                poll=timedelta(seconds=self.config.observe_seconds),
            )
        except UnknownRollbackTarget as error:
            result.clear_annotations.append(ROLLBACK_TO_ANNOTATION)
            self._event(result, "Warning", "RollbackRefused", str(error), *self._nn(view))
            return
        if run is None:
            status.current_run = progress.run
            checkpoint(status)
        self._apply_rollout(progress, spec, view, result, now, session)
        if progress.done:
            result.clear_annotations.append(ROLLBACK_TO_ANNOTATION)

    def _apply_rollout(
        self,
        progress: rollout.RolloutProgress,
        spec: RetrainingPolicySpec,
        view: PolicyView,
        result: PassResult,
        now: datetime,
        session: AwsSession,
    ) -> None:
        status = result.status
        for action in progress.actions:
            self._event(result, "Normal", "RolloutStep", action, *self._nn(view))
        if not progress.done:
            status.current_run = progress.run.model_copy(update={"message": progress.message})
            return
        run = progress.run
        entry = progress.history_entry or HistoryEntry(
            run_id=run.id, outcome=Outcome.FAILED, reason=progress.reason
        )
        if progress.result is RolloutResult.SERVING and progress.serving is not None:
            status.serving = progress.serving
            metrics.ROLLOUT_SECONDS.labels(*self._nn(view)).observe(
                (now - (run.deploy_step_started_at or run.started_at)).total_seconds()
            )
            self._event(
                result,
                "Normal",
                "Serving",
                f"run {run.id}: endpoint serves model {progress.serving.model_name}",
                *self._nn(view),
            )
            self._cleanup(session, spec, view, result)
        elif progress.result is RolloutResult.SKIPPED:
            self._event(result, "Normal", "Trained", progress.message, *self._nn(view))
        else:
            self._event(
                result,
                "Warning",
                "RolledBack" if progress.result is RolloutResult.DEGRADED else "RolloutFailed",
                progress.reason or progress.message,
                *self._nn(view),
            )
        self._end_run(result, view, entry)

    def _cleanup(
        self,
        session: AwsSession,
        spec: RetrainingPolicySpec,
        view: PolicyView,
        result: PassResult,
    ) -> None:
        try:
            report = rollout.cleanup(session, view.ref, spec, status=result.status)
        except AwsError as error:  # cleanup is best effort; the next success retries it
            self._event(result, "Warning", "CleanupFailed", str(error), *self._nn(view))
            return
        deleted = [*report.deleted_models, *report.deleted_configs]
        if deleted:
            self._event(
                result, "Normal", "CleanedUp", "deleted " + ", ".join(deleted), *self._nn(view)
            )

    def _suspend(
        self,
        session: AwsSession,
        spec: RetrainingPolicySpec,
        view: PolicyView,
        result: PassResult,
        now: datetime,
        checkpoint: Checkpoint,
    ) -> None:
        """Suspended: no new polls or runs; an in-flight training job is stopped (it
        would only cost money); a rollout already under way is let finish."""
        status = result.status
        run = status.current_run
        if run is None or run.stage is RunStage.DEPLOYING:
            return
        job = JobRef.from_run(run)
        if job is not None and run.stage is RunStage.TRAINING:
            if training.stop_training(session, job):
                self._event(
                    result,
                    "Normal",
                    "TrainingStopped",
                    f"suspended: stopped {job.name}",
                    *self._nn(view),
                )
            return  # the next observation records it as Stopped
        if run.stage is RunStage.PREPARING and job is None:
            return  # resumes when unsuspended; its claimed samples stay with it

    # -- bookkeeping --------------------------------------------------------------------

    def _end_run(self, result: PassResult, view: PolicyView, entry: HistoryEntry) -> None:
        status = result.status
        status.history = st.push_history(status.history, entry)
        status.current_run = None
        metrics.RUNS.labels(*self._nn(view), entry.outcome.value).inc()
        if entry.outcome in (Outcome.DEPLOYED, Outcome.TRAINED):
            metrics.LAST_SUCCESS.labels(*self._nn(view)).set(time.time())
        self._last_observed.pop(view.ref.uid, None)

    def _report_throttling(self, session: AwsSession, view: PolicyView, result: PassResult) -> None:
        """A Warning Event when AWS throttled this policy's calls, at most one per
        THROTTLE_REPORT_SECONDS (the count accumulates in between). botocore retries
        throttled calls with backoff, so this is news about speed, not about failure."""
        uid = view.ref.uid
        last = self._throttle_reported.get(uid)
        now = time.monotonic()
        if last is not None and now - last < THROTTLE_REPORT_SECONDS:
            return
        count = session.take_throttled()
        if not count:
            return
        self._throttle_reported[uid] = now
        budget = self.config.aws_calls_per_second
        self._event(
            result,
            "Warning",
            "AwsThrottled",
            f"AWS throttled {count} request(s) of this policy"
            + (" since the last report" if last is not None else "")
            + "; retrying with exponential backoff"
            + (f" within the operator's budget of {budget:g} calls/s" if budget else ""),
            *self._nn(view),
        )

    def _observe_due(self, uid: str) -> bool:
        last = self._last_observed.get(uid)
        now = time.monotonic()
        if last is not None and now - last < self.config.observe_seconds:
            return False
        self._last_observed[uid] = now
        return True

    def _set_phase(
        self,
        status: RetrainingPolicyStatus,
        spec: RetrainingPolicySpec,
        view: PolicyView,
        now: datetime,
    ) -> None:
        status.phase = st.derive_phase(
            suspended=spec.suspend,
            spec_error=False,
            current_run=status.current_run,
            serving=status.serving is not None,
        )
        status.observed_generation = view.generation

    def _finish(
        self,
        result: PassResult,
        view: PolicyView,
        spec: RetrainingPolicySpec,
        now: datetime,
        degraded: tuple[str, str] | None,
    ) -> None:
        status = result.status
        before = status.phase
        self._set_phase(status, spec, view, now)
        status.conditions = st.refresh_conditions(
            status, now=now, generation=view.generation, degraded=degraded
        )
        if before is not None and status.phase is not None and before is not status.phase:
            self._event(
                result,
                "Normal",
                "PhaseChanged",
                f"{before.value} -> {status.phase.value}",
                *self._nn(view),
            )

    def _degrade(
        self,
        result: PassResult,
        view: PolicyView,
        now: datetime,
        reason: str,
        message: str,
        *,
        spec_error: bool,
    ) -> None:
        status = result.status
        before = st.get_condition(status.conditions, ConditionType.DEGRADED)
        status.phase = st.derive_phase(
            suspended=False, spec_error=spec_error, current_run=None, serving=False
        )
        status.observed_generation = view.generation
        status.conditions = st.refresh_conditions(
            status, now=now, generation=view.generation, degraded=(reason, message)
        )
        if before is None or before.reason != reason or before.message != message:
            self._event(result, "Warning", reason, message, *self._nn(view))

    @staticmethod
    def _nn(view: PolicyView) -> tuple[str, str]:
        return view.ref.namespace, view.ref.name

    @staticmethod
    def _event(
        result: PassResult, type: str, reason: str, message: str, namespace: str, name: str
    ) -> None:
        log.log(
            logging.WARNING if type == "Warning" else logging.INFO,
            "%s/%s %s: %s",
            namespace,
            name,
            reason,
            message,
        )
        result.events.append(Event(type, reason, message[:1000]))
