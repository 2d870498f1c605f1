"""The RetrainingPolicy status: what the operator reports (read back from the API server:
lenient about unknown fields, never frozen)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from retraining_operator.api.scalars import Timestamp

HISTORY_LIMIT = 20


class _Status(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Phase(StrEnum):
    COLLECTING = "Collecting"
    TRAINING = "Training"
    EVALUATING = "Evaluating"
    DEPLOYING = "Deploying"
    SERVING = "Serving"
    SUSPENDED = "Suspended"
    FAILED = "Failed"


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    # The endpoint no longer serves what status.serving says (changed out of band).
    DRIFTED = "Drifted"
    # True while the policy's polls come later than pollInterval x 1.1 (the AWS call budget or
    # the worker threads are too small for the configured polls); absent until it first is.
    POLLS_STARVED = "PollsStarved"
    # Event-driven ingest (spec.humanLoops.events): True while the queue is consumed.
    EVENTS_FLOWING = "EventsFlowing"
    # Scoped mode: True while a run waits for its tenant's quota; absent until it first does.
    QUOTA_EXCEEDED = "QuotaExceeded"


class Condition(_Status):
    type: ConditionType
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, Field(max_length=1024)]
    message: Annotated[str, Field(max_length=32768)] = ""
    last_transition_time: Timestamp
    observed_generation: int | None = None


class ReviewerAgreement(_Status):
    worker: str  # a stable hash of the workerId, never the id
    images: int = 0
    agreement: float = 0.0


class ReviewerSummary(_Status):
    workers: int = 0
    mean_agreement: float | None = None
    lowest: Annotated[list[ReviewerAgreement], Field(max_length=5)] = Field(default_factory=list)


class ValidationWait(_Status):
    pending_samples: int = 0
    holdout_images: int = 0
    min_samples: int = 0


class IngestStatus(_Status):
    last_poll_time: Timestamp | None = None
    watermark: Timestamp | None = None
    pending_samples: int = 0
    oldest_pending_time: Timestamp | None = None
    ingested_loops: int = 0
    quarantined_samples: int = 0
    in_progress_loops: int = 0
    failed_loops: int = 0
    ledger_s3_uri: str | None = Field(default=None, alias="ledgerS3Uri")
    # The ledger's revision when this block was made: a ledger older than it was rolled back.
    ledger_revision: int | None = None
    reviewers: ReviewerSummary | None = None


class RunStage(StrEnum):
    PREPARING = "Preparing"
    TRAINING = "Training"
    EVALUATING = "Evaluating"
    AWAITING_APPROVAL = "AwaitingApproval"
    SHADOW_TESTING = "ShadowTesting"
    DEPLOYING = "Deploying"
    DONE = "Done"


class RunSamples(_Status):
    new: int = 0
    replay: int = 0
    validation: int = 0
    train: int = 0
    superseded: int = 0
    overlap_dropped: int = 0


class ClassComparison(_Status):
    """One class's AP on the held-out images, candidate against serving."""

    class_id: int
    candidate: float
    serving: float | None = None


class Comparison(_Status):
    """What the gate measured on the held-out images (gate.evaluation; docs/gate.md)."""

    passed: bool
    reason: str
    images: int
    held_out_version: int | None = None
    candidate_map: float = Field(alias="candidateMAP")
    serving_map: float | None = Field(default=None, alias="servingMAP")
    difference: float | None = None
    low: float | None = None
    high: float | None = None
    confidence: float | None = None
    anchor_images: int | None = None
    anchor_candidate_map: float | None = Field(default=None, alias="anchorCandidateMAP")
    anchor_serving_map: float | None = Field(default=None, alias="anchorServingMAP")
    worst_classes: list[ClassComparison] = Field(default_factory=list, max_length=5)


class EvaluationRun(_Status):
    """The evaluation under way in the current run (resumable: names are the run's own)."""

    held_out_manifest_s3_uri: str = Field(alias="heldOutManifestS3Uri")
    held_out_version: int
    images: int
    anchor_images: int = 0
    serving_model: str | None = None
    candidate_model: str | None = None
    candidate_job: str | None = None
    serving_job: str | None = None
    started_at: Timestamp | None = None


class ShadowTest(_Status):
    """The run's shadow test (deployment.shadow): the inference experiment and what it
    measured, the shadow against production on the same requests."""

    experiment_name: str
    shadow_variant: str
    source_variant: str
    status: str | None = None
    started_at: Timestamp | None = None
    stopping: str | None = None  # "Remove" or "Promote" once the verdict is known
    passed: bool | None = None
    reason: str | None = None
    invocations: float | None = None  # requests the shadow answered
    production_p99_ms: float | None = Field(default=None, alias="productionP99Ms")
    shadow_p99_ms: float | None = Field(default=None, alias="shadowP99Ms")
    latency_ratio: float | None = None
    error_5xx_rate: float | None = Field(default=None, alias="error5xxRate")
    error_4xx_rate: float | None = Field(default=None, alias="error4xxRate")
    agreement: float | None = None  # answers agreeing with production's (data capture)
    agreement_requests: int | None = None  # captured requests both variants answered


class HeldOutSet(_Status):
    """Every human-reviewed image the policy's runs held out of training so far: what the
    gate judges on. `version` moves when a run adds images."""

    manifest_s3_uri: str = Field(alias="manifestS3Uri")
    images: int
    version: int
    updated_at: Timestamp | None = None


class CurrentRun(_Status):
    id: str
    stage: RunStage
    trigger: str | None = None
    started_at: Timestamp
    # Instance-hours counted against the tenant's quota (reconcile/quota.py).
    instance_hours: float | None = None
    manifest_s3_uri: str | None = Field(default=None, alias="manifestS3Uri")
    validation_manifest_s3_uri: str | None = Field(default=None, alias="validationManifestS3Uri")
    base_model_data_url: str | None = None
    samples: RunSamples | None = None
    training_job_name: str | None = None
    tuning_job_name: str | None = None
    training_job_status: str | None = None
    secondary_status: str | None = None
    model_data_url: str | None = None
    metric_value: float | None = None
    model_package_arn: str | None = None
    approval_requested_at: Timestamp | None = None
    model_name: str | None = None
    endpoint_config_name: str | None = None
    deploy_step: int | None = None
    deploy_step_started_at: Timestamp | None = None
    message: str | None = None
    evaluation: EvaluationRun | None = None
    comparison: Comparison | None = None
    shadow: ShadowTest | None = None


class Outcome(StrEnum):
    DEPLOYED = "Deployed"
    TRAINED = "Trained"  # strategy None: gated, not deployed
    GATE_REJECTED = "GateRejected"
    TRAINING_FAILED = "TrainingFailed"
    ROLLED_BACK = "RolledBack"
    STOPPED = "Stopped"
    FAILED = "Failed"
    REJECTED = "Rejected"  # a person rejected the registered Model Package
    APPROVAL_TIMED_OUT = "ApprovalTimedOut"  # registry.approvalTimeout passed unapproved
    SHADOW_FAILED = "ShadowFailed"  # the shadow test judged it worse than production


class HistoryEntry(_Status):
    run_id: str
    outcome: Outcome
    training_job_name: str | None = None
    metric_value: float | None = None
    model_name: str | None = None
    model_data_url: str | None = None
    model_package_arn: str | None = None
    endpoint_config_name: str | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    reason: str | None = None
    train_as_validation: bool | None = None
    instance_hours: float | None = None
    comparison: Comparison | None = None
    shadow: ShadowTest | None = None


class ServingStatus(_Status):
    model_name: str | None = None
    endpoint_config_name: str | None = None
    model_data_url: str | None = None
    model_package_arn: str | None = None
    run_id: str | None = None
    metric_value: float | None = None
    since: Timestamp | None = None


class RetrainingPolicyStatus(_Status):
    observed_generation: int | None = None
    phase: Phase | None = None
    conditions: list[Condition] = Field(default_factory=list)
    ingest: IngestStatus = Field(default_factory=IngestStatus)
    current_run: CurrentRun | None = None
    history: Annotated[list[HistoryEntry], Field(max_length=HISTORY_LIMIT)] = Field(
        default_factory=list
    )
    serving: ServingStatus | None = None
    # What the endpoint served when the operator first took it (`rollback-to: pre-operator`).
    pre_operator: ServingStatus | None = None
    # The images gate.evaluation judges on (every run's holdout so far).
    held_out: HeldOutSet | None = None
    validation_wait: ValidationWait | None = None
    last_training_job_name: str | None = None
