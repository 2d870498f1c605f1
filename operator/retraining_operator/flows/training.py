"""Training workflow: submit a run's job crash-safely, watch it, stop it.

`ensure_training` is idempotent. The job name is a pure function of (policy UID, run
id), and submission is describe-first: if the job exists (the operator crashed after
CreateTrainingJob, before status recorded it) it is adopted, never submitted again. A
create that races another replica gets `ResourceInUse` and adopts too. So it is safe
to call it again whenever the run's status lacks the job name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.aws import training as gateway
from retraining_operator.aws.errors import AlreadyExists, NotFound
from retraining_operator.aws.images import algorithm_image_uri
from retraining_operator.errors import NeedsAttention
from retraining_operator.flows.serving import NotServing, served_model_data_url, serving
from retraining_operator.reconcile.naming import PolicyRef
from retraining_operator.reconcile.rollout.errors import VariantNotFound
from retraining_operator.reconcile.training_request import (
    TrainingData,
    training_job_request,
    tuning_job_request,
)
from retraining_operator.reconcile.training_status import (
    JobKind,
    JobRef,
    JobState,
    TrainingObservation,
    best_training_job_name,
    observe_training_job,
    observe_tuning_job,
)

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

    from retraining_operator.aws.session import AwsSession


class BaseModelUnavailable(NeedsAttention):
    """`training.baseModel.fromEndpoint` cannot name a model to continue training from.

    `reason` names the missing link (EndpointNotFound, EndpointConfigNotFound,
    VariantNotFound, ModelNotFound, NoModelData); the message says what to do. The policy
    is Degraded until the endpoint serves a model (or `baseModel.s3Uri` is set).
    """


@dataclass(frozen=True)
class Submission:
    """What `ensure_training` did. Record `job` in the run (training or tuning name)."""

    job: JobRef
    created: bool  # False: an existing job of this run was adopted
    base_model_s3_uri: str | None  # the model channel (None if adopted and not reported)


def training_image_uri(spec: RetrainingPolicySpec) -> str:
    """`training.image` if set, else the built-in algorithm's image for `aws.region`."""
    training = spec.training
    if training.image:
        return training.image
    algorithm = training.algorithm or "object-detection"
    return algorithm_image_uri(algorithm, spec.aws.region, training.algorithm_version)


# What to do about each missing link, appended to the walk's own message.
_BASE_MODEL_HINTS = {
    "EndpointNotFound": (
        "training.baseModel.fromEndpoint has no model to continue from: for the first run on "
        "a new endpoint set training.baseModel.s3Uri to the initial model.tar.gz (or create "
        "the endpoint)"
    ),
    "VariantNotFound": "or set training.baseModel.s3Uri",
}
_DEFAULT_HINT = "set training.baseModel.s3Uri"


def resolve_base_model(session: AwsSession, spec: RetrainingPolicySpec) -> str:
    """The `model` channel: `baseModel.s3Uri`, or the artifacts of the model the policy's
    endpoint serves (`flows/serving.py`: endpoint -> config -> served variant -> model).

    Raises `BaseModelUnavailable` with an actionable message.
    """
    base = spec.training.base_model
    if base.s3_uri:
        return base.s3_uri
    if not spec.deployment.endpoint_name:
        raise BaseModelUnavailable(
            "EndpointNotFound",
            "training.baseModel.fromEndpoint needs deployment.endpointName",
        )
    try:
        return served_model_data_url(session, serving(session, spec))
    except (NotServing, VariantNotFound) as error:
        hint = _BASE_MODEL_HINTS.get(error.reason, _DEFAULT_HINT)
        raise BaseModelUnavailable(error.reason, f"{error.message}; {hint}") from error


def planned_job(spec: RetrainingPolicySpec, policy: PolicyRef, run_id: str) -> JobRef:
    """The job a run submits (its name is known before anything is called)."""
    if spec.training.tuning is not None:
        return JobRef(JobKind.TUNING, policy.tuning_job_name(run_id))
    return JobRef(JobKind.TRAINING, policy.training_job_name(run_id))


def run_jobs(policy: PolicyRef, run_id: str) -> tuple[JobRef, JobRef]:
    """Every job a run may have submitted, named from its run id alone (the finalizer stops
    them whether or not the status recorded a name yet, whatever the spec says now)."""
    return (
        JobRef(JobKind.TRAINING, policy.training_job_name(run_id)),
        JobRef(JobKind.TUNING, policy.tuning_job_name(run_id)),
    )


def _observe(sm: SageMakerClient, job: JobRef) -> TrainingObservation:
    if job.kind is JobKind.TRAINING:
        return observe_training_job(gateway.describe_training_job(sm, job.name))
    tuning = gateway.describe_tuning_job(sm, job.name)
    best_name = best_training_job_name(tuning)
    if tuning.get("HyperParameterTuningJobStatus") == JobState.COMPLETED.value and best_name:
        return observe_tuning_job(tuning, gateway.describe_training_job(sm, best_name))
    return observe_tuning_job(tuning)


def _existing(sm: SageMakerClient, job: JobRef) -> TrainingObservation | None:
    try:
        return _observe(sm, job)
    except NotFound:
        return None


def ensure_training(
    session: AwsSession,
    policy: PolicyRef,
    spec: RetrainingPolicySpec,
    run_id: str,
    data: TrainingData,
) -> Submission:
    """Make sure the run's training (or tuning) job exists; submit it at most once.

    Describe first (adopt if present); else resolve the base model (if `data` has
    none), build the request and create; `AlreadyExists` on create means adopt.
    Raises `BaseModelUnavailable`, `TrainingSpecError`, `ImageLookupError`, `AwsError`.
    """
    sm = session.sagemaker()
    job = planned_job(spec, policy, run_id)
    found = _existing(sm, job)
    if found is not None:
        return Submission(job=job, created=False, base_model_s3_uri=found.base_model_s3_uri)
    base_model = data.base_model_s3_uri or resolve_base_model(session, spec)
    data = data.with_base_model(base_model)
    image = training_image_uri(spec)
    try:
        if job.kind is JobKind.TUNING:
            gateway.create_tuning_job(
                sm, tuning_job_request(spec, policy, run_id, data, image_uri=image)
            )
        else:
            gateway.create_training_job(
                sm, training_job_request(spec, policy, run_id, data, image_uri=image)
            )
    except AlreadyExists:
        return Submission(job=job, created=False, base_model_s3_uri=base_model)
    return Submission(job=job, created=True, base_model_s3_uri=base_model)


def observe_training(session: AwsSession, job: JobRef) -> TrainingObservation:
    """Where the job is. For a completed tuning job, also describes its best training job
    (whose model and `FinalMetricDataList` feed the gate). Raises `NotFound` if the job
    does not exist (call `ensure_training` again)."""
    return _observe(session.sagemaker(), job)


def stop_training(session: AwsSession, job: JobRef) -> bool:
    """Stop an in-flight job (policy deleted or suspended). Idempotent: returns False when
    the job already ended, is already stopping, or does not exist."""
    sm = session.sagemaker()
    found = _existing(sm, job)
    if found is None or found.state is not JobState.IN_PROGRESS:
        return False
    if job.kind is JobKind.TUNING:
        return gateway.stop_tuning_job(sm, job.name)
    return gateway.stop_training_job(sm, job.name)
