"""The gate's evaluation flow: both models predict the same held-out images with SageMaker
Batch Transform, and the operator scores them (`reconcile/evaluation/`).

`advance_evaluation` moves a run's evaluation one step per pass, resumable at any point:

1. **Begin** (once per run): the held-out set (every run's holdout so far, or the fixed
   validation manifest), the anchor manifest's size, the candidate's Model (the rollout's own
   deterministic name) and the serving model's name. Recorded in `currentRun.evaluation`
   before any job is submitted.
2. **Predict**: the candidate's transform job over every image; the serving model's over the
   images it has no cached prediction for (none, usually: its predictions are kept per model
   while it serves). Jobs are named by run id, described first and adopted when they exist.
3. **Judge** when both are done: read the predictions (bounded reads), mAP of each model on
   the held-out images, the paired bootstrap of the difference, the anchor set; the verdict is
   `reconcile/evaluation/decision.judge`.

A job that fails, is stopped, or runs past `gate.evaluation.maxRuntime` (then it is stopped)
ends the evaluation with `failed` (the run ends Failed; nothing is deployed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from retraining_operator.api import (
    Comparison,
    CurrentRun,
    EvaluationRun,
    HeldOutSet,
    RetrainingPolicySpec,
)
from retraining_operator.aws import training as gateway
from retraining_operator.aws.errors import AlreadyExists, NotFound
from retraining_operator.aws.s3 import S3, ObjectTooLarge, S3Location
from retraining_operator.aws.session import AwsSession
from retraining_operator.flows.rollout import steps as rollout_steps
from retraining_operator.flows.rollout.context import RolloutContext
from retraining_operator.flows.serving import NotServing, serving
from retraining_operator.reconcile.evaluation.average_precision import scores
from retraining_operator.reconcile.evaluation.bootstrap import paired_difference, seed_of
from retraining_operator.reconcile.evaluation.boxes import LabelledImage
from retraining_operator.reconcile.evaluation.decision import Measured, judge
from retraining_operator.reconcile.evaluation.held_out import answered, held_out, label_attribute
from retraining_operator.reconcile.evaluation.transform import (
    EvaluationInputError,
    Role,
    TransformTarget,
    evaluation_root,
    input_manifest_uri,
    manifest_body,
    prediction_uri,
    predictions_prefix,
    transform_job_name,
    transform_request,
)
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.rollout.errors import VariantNotFound
from retraining_operator.reconcile.rollout.requests import RolloutNames

MAX_PREDICTION_BYTES = 4 * 1024 * 1024
READ_CONCURRENCY = 16
_RUNNING = ("InProgress", "Stopping")


@dataclass(frozen=True)
class EvaluationSubject:
    """A run in Evaluating: the policy, its spec, the run (its trained artifacts known) and
    the held-out set before this run (`status.heldOut`)."""

    policy: PolicyRef
    spec: RetrainingPolicySpec
    run: CurrentRun
    held_out: HeldOutSet | None
    now: datetime


@dataclass(frozen=True)
class EvaluationStep:
    """What one pass did: the run (its `evaluation` record), a new held-out set to record,
    the verdict when judged, or why the evaluation cannot finish (`failed`)."""

    run: CurrentRun
    held_out: HeldOutSet | None = None
    comparison: Comparison | None = None
    failed: str | None = None
    retry_after: timedelta | None = None
    actions: tuple[str, ...] = ()
    instance_hours: float = 0.0


class EvaluationFailed(Exception):
    """The evaluation cannot finish; the message says why (the run ends Failed)."""


def advance_evaluation(
    session: AwsSession, subject: EvaluationSubject, *, poll: timedelta
) -> EvaluationStep:
    """One step of the run's evaluation (see the module docstring)."""
    try:
        if subject.run.evaluation is None:
            return _begin(session, subject)
        return _Evaluation(session, subject, poll).advance()
    except (EvaluationFailed, EvaluationInputError) as error:
        return EvaluationStep(run=subject.run, failed=str(error))


# ---------------------------------------------------------------------------------------
# Begin: what to judge on, and which models


def _begin(session: AwsSession, subject: EvaluationSubject) -> EvaluationStep:
    spec, run = subject.spec, subject.run
    evaluation = spec.gate.evaluation
    assert evaluation is not None
    s3 = S3(session.s3())
    held = _held_out_set(s3, subject)
    if held.images < evaluation.min_images:
        raise EvaluationFailed(
            f"the held-out set has {held.images} images, fewer than gate.evaluation.minImages "
            f"{evaluation.min_images}"
        )
    anchor = evaluation.anchor_manifest_s3_uri
    anchor_images = len(_manifest_images(s3, anchor, spec)) if anchor else 0
    actions: list[str] = []
    candidate = _candidate_model(session, subject, actions)
    record = EvaluationRun(
        held_out_manifest_s3_uri=held.manifest_s3_uri,
        held_out_version=held.version,
        images=held.images,
        anchor_images=anchor_images,
        serving_model=_serving_model(session, spec),
        candidate_model=candidate,
        started_at=subject.now,
    )
    return EvaluationStep(
        run=run.model_copy(update={"evaluation": record}),
        held_out=held if held != subject.held_out else None,
        actions=tuple(actions),
        retry_after=timedelta(0),
    )


def _candidate_model(session: AwsSession, subject: EvaluationSubject, actions: list[str]) -> str:
    """The candidate's Model under the name the rollout will use (it adopts it)."""
    run = subject.run
    names = RolloutNames.for_run(subject.policy, run.id, model=run.model_name)
    ctx = RolloutContext(
        session, subject.policy, subject.spec, run, names, subject.now, timedelta(0)
    )
    rollout_steps.reconcile_model(ctx)
    actions.extend(ctx.actions)
    return names.model


def _serving_model(session: AwsSession, spec: RetrainingPolicySpec) -> str | None:
    if not spec.deployment.endpoint_name:
        return None
    try:
        return serving(session, spec).variant.model_name
    except (NotServing, VariantNotFound):
        return None  # nothing serves yet: a first deployment has nothing to compare with


def _held_out_set(s3: S3, subject: EvaluationSubject) -> HeldOutSet:
    """The images the gate judges on: the fixed validation manifest, or every run's holdout
    so far with this run's added (a newer review of an image replaces the older one), at
    most `maxImages` (the most recent), as one content-addressed manifest."""
    spec, previous, run = subject.spec, subject.held_out, subject.run
    evaluation = spec.gate.evaluation
    assert evaluation is not None
    fixed = spec.dataset.validation.manifest_s3_uri
    if fixed:
        count = len(_manifest_images(s3, fixed, spec))
        same = previous is not None and previous.manifest_s3_uri == fixed
        version = (
            previous.version if same and previous else (previous.version + 1 if previous else 1)
        )
        return HeldOutSet(
            manifest_s3_uri=fixed, images=count, version=version, updated_at=subject.now
        )
    lines: dict[str, bytes] = {}
    sources = [previous.manifest_s3_uri] if previous is not None else []
    if run.validation_manifest_s3_uri and run.validation_manifest_s3_uri != run.manifest_s3_uri:
        sources.append(run.validation_manifest_s3_uri)  # this run's holdout (never trained)
    for uri in sources:
        for line in s3.iter_lines(S3Location.parse(uri)):
            ref = _source_ref(line)
            if ref is not None:
                lines.pop(ref, None)
                lines[ref] = line
    kept = list(lines.values())[-evaluation.max_images :]
    body = b"".join(line.rstrip(b"\n") + b"\n" for line in kept)
    digest = hashlib.sha256(body).hexdigest()
    location = S3Location.parse(f"{evaluation_root(spec)}/held-out/{digest}.jsonl")
    s3.put_if_absent(location, body, content_type="application/jsonl")
    if previous is not None and previous.manifest_s3_uri == location.uri:
        return previous
    version = previous.version + 1 if previous is not None else 1
    return HeldOutSet(
        manifest_s3_uri=location.uri, images=len(kept), version=version, updated_at=subject.now
    )


def _source_ref(line: bytes) -> str | None:
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    ref = parsed.get("source-ref") if isinstance(parsed, dict) else None
    return ref if isinstance(ref, str) else None


def _manifest_images(s3: S3, uri: str, spec: RetrainingPolicySpec) -> list[LabelledImage]:
    """The images of an augmented manifest (bad lines left out)."""
    parsed: list[tuple[str, Mapping[str, Any]]] = []
    for number, line in enumerate(s3.iter_lines(S3Location.parse(uri)), start=1):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            parsed.append((f"{uri}:{number}", value))
    attribute = spec.labels.attribute_name
    if parsed and attribute not in parsed[0][1]:
        attribute = label_attribute(parsed[0][1]) or attribute
    return held_out(parsed, attribute).images


# ---------------------------------------------------------------------------------------
# Predict and judge


@dataclass
class _Evaluation:
    session: AwsSession
    subject: EvaluationSubject
    poll: timedelta
    actions: list[str] = field(default_factory=list)

    @property
    def record(self) -> EvaluationRun:
        assert self.subject.run.evaluation is not None
        return self.subject.run.evaluation

    def advance(self) -> EvaluationStep:
        spec, record = self.subject.spec, self.record
        s3 = S3(self.session.s3())
        held = _manifest_images(s3, record.held_out_manifest_s3_uri, spec)
        anchor_uri = spec.gate.evaluation.anchor_manifest_s3_uri if spec.gate.evaluation else None
        anchor = _manifest_images(s3, anchor_uri, spec) if anchor_uri else []
        refs = list(dict.fromkeys(image.source_ref for image in [*held, *anchor]))
        assert record.candidate_model is not None
        jobs = {"candidate": self._job(s3, "candidate", record.candidate_model, refs)}
        if record.serving_model is not None:
            missing = self._uncached(s3, record.serving_model, refs)
            if missing:
                jobs["serving"] = self._job(s3, "serving", record.serving_model, missing)
        run = self._with_jobs(jobs)
        waiting = [name for name, job in jobs.items() if job["TransformJobStatus"] in _RUNNING]
        for role, job in jobs.items():
            self._check_job(role, job)
        if waiting:
            return EvaluationStep(run=run, actions=tuple(self.actions), retry_after=self.poll)
        comparison = self._judge(s3, held, anchor)
        hours = sum(_billed_hours(job) for job in jobs.values())
        return EvaluationStep(
            run=run, comparison=comparison, actions=tuple(self.actions), instance_hours=hours
        )

    def _job(self, s3: S3, role: Role, model: str, refs: Sequence[str]) -> Mapping[str, Any]:
        """The role's transform job: described, or submitted over `refs` (adopted when the
        name is taken)."""
        subject = self.subject
        name = transform_job_name(subject.policy, subject.run.id, role)
        try:
            return gateway.describe_transform_job(self.session.sagemaker(), name)
        except NotFound:
            pass
        target = TransformTarget(
            job_name=name,
            model_name=model,
            input_manifest=input_manifest_uri(subject.spec, subject.run.id, role),
            output_prefix=predictions_prefix(subject.spec, model),
        )
        s3.put_if_absent(S3Location.parse(target.input_manifest), manifest_body(refs))
        request = transform_request(subject.policy, subject.spec, subject.run.id, target)
        try:
            gateway.create_transform_job(self.session.sagemaker(), request)
            self.actions.append(f"CreateTransformJob {name} ({model}, {len(refs)} images)")
        except AlreadyExists:
            pass
        return gateway.describe_transform_job(self.session.sagemaker(), name)

    def _uncached(self, s3: S3, model: str, refs: Sequence[str]) -> list[str]:
        """The images the model has no prediction for yet (one listing of its cache)."""
        prefix = predictions_prefix(self.subject.spec, model)
        have = {location.uri for location in s3.list(S3Location.parse(prefix))}
        return [ref for ref in refs if prediction_uri(prefix, ref) not in have]

    def _with_jobs(self, jobs: Mapping[str, Mapping[str, Any]]) -> CurrentRun:
        update = {f"{role}_job": str(job["TransformJobName"]) for role, job in jobs.items()}
        evaluation = self.record.model_copy(update=update)
        return self.subject.run.model_copy(update={"evaluation": evaluation})

    def _check_job(self, role: str, job: Mapping[str, Any]) -> None:
        status, name = job["TransformJobStatus"], job["TransformJobName"]
        if status in ("Failed", "Stopped"):
            reason = job.get("FailureReason") or status
            raise EvaluationFailed(
                f"the {role} model's transform job {name} ended {status}: {reason}"
            )
        if status not in _RUNNING:
            return
        started = job.get("TransformStartTime") or job.get("CreationTime")
        limit = _max_runtime(self.subject.spec)
        if isinstance(started, datetime) and self.subject.now - _utc(started) > limit:
            gateway.stop_transform_job(self.session.sagemaker(), str(name))
            raise EvaluationFailed(
                f"the {role} model's transform job {name} ran longer than "
                "gate.evaluation.maxRuntime: stopped"
            )

    def _judge(self, s3: S3, held: list[LabelledImage], anchor: list[LabelledImage]) -> Comparison:
        spec, record, run = self.subject.spec, self.record, self.subject.run
        evaluation = spec.gate.evaluation
        assert evaluation is not None
        assert record.candidate_model is not None
        refs = [image.source_ref for image in [*held, *anchor]]
        candidate = _predictions(s3, predictions_prefix(spec, record.candidate_model), refs)
        serving_answers = (
            _predictions(s3, predictions_prefix(spec, record.serving_model), refs)
            if record.serving_model
            else None
        )
        measured = _measure(held, anchor, candidate, serving_answers)
        if measured.serving is not None:
            a, b = answered(held, candidate).matched, answered(held, serving_answers or {}).matched
            difference = paired_difference(
                a,
                b,
                samples=evaluation.bootstrap_samples,
                confidence=evaluation.confidence,
                seed=seed_of(run.id),
            )
            measured = replace(measured, difference=difference)
        measured = replace(measured, held_out_version=record.held_out_version)
        return judge(evaluation, measured)


def _measure(
    held: list[LabelledImage],
    anchor: list[LabelledImage],
    candidate: Mapping[str, Mapping[str, Any]],
    serving_answers: Mapping[str, Mapping[str, Any]] | None,
) -> Measured:
    def score(images: list[LabelledImage], answers: Mapping[str, Mapping[str, Any]]) -> Any:
        return scores(answered(images, answers).matched)

    return Measured(
        candidate=score(held, candidate),
        serving=score(held, serving_answers) if serving_answers is not None else None,
        anchor_candidate=score(anchor, candidate) if anchor else None,
        anchor_serving=score(anchor, serving_answers)
        if anchor and serving_answers is not None
        else None,
    )


def _predictions(s3: S3, prefix: str, refs: Sequence[str]) -> dict[str, Mapping[str, Any]]:
    """The model's answers for `refs` from its `.out` objects (bounded reads, in parallel);
    an image whose answer is missing or unreadable has none (it counts as nothing found)."""

    def read(ref: str) -> tuple[str, Mapping[str, Any] | None]:
        location = S3Location.parse(prediction_uri(prefix, ref))
        try:
            found = s3.get_with_etag(location, limit=MAX_PREDICTION_BYTES)
        except ObjectTooLarge:
            return ref, None
        if found is None:
            return ref, None
        try:
            value = json.loads(found[0])
        except ValueError:
            return ref, None
        return ref, value if isinstance(value, dict) else None

    with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as pool:
        results: Iterator[tuple[str, Mapping[str, Any] | None]] = pool.map(read, refs)
        return {ref: answer for ref, answer in results if answer is not None}


def _max_runtime(spec: RetrainingPolicySpec) -> timedelta:
    from retraining_operator.reconcile.evaluation.transform import max_runtime_seconds

    return timedelta(seconds=max_runtime_seconds(spec))


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _billed_hours(job: Mapping[str, Any]) -> float:
    start, end = job.get("TransformStartTime"), job.get("TransformEndTime")
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return 0.0
    count = int(job.get("TransformResources", {}).get("InstanceCount", 1))
    return max(0.0, (_utc(end) - _utc(start)).total_seconds()) / 3600 * count


def stop_evaluation(session: AwsSession, policy: PolicyRef, run_id: str) -> list[str]:
    """Stop the run's transform jobs (suspend, deletion); the names of those stopped."""
    stopped = []
    for role in ("candidate", "serving"):
        name = transform_job_name(policy, run_id, role)
        if gateway.stop_transform_job(session.sagemaker(), name):
            stopped.append(name)
    return stopped
