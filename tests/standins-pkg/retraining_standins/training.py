"""Training jobs and hyperparameter tuning jobs, on the emulator's clock.

A training job walks SageMaker's secondary statuses Starting -> Downloading -> Training ->
Uploading and ends Completed (model artifact written, `FinalMetricDataList` filled), Failed
(as planned by the test, or because an input channel has no data in S3), or Stopped
(StopTrainingJob: Stopping -> Stopped; or MaxRuntimeExceeded). Transitions happen at planned
times and are applied lazily whenever a job is observed, so the answer only depends on the
clock, never on when the test happened to look.
"""

from __future__ import annotations

import io
import json
import math
import random
import tarfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from botocore.exceptions import ClientError

from retraining_standins import errors
from retraining_standins.model import SAGEMAKER, shared_members
from retraining_standins.paging import (
    filter_common,
    name_key,
    paginate,
    sort_key,
    time_key,
    with_token,
)
from retraining_standins.state import EmulatorState

PHASES = ("Starting", "Downloading", "Training", "Uploading")
MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Training job stopped: it exceeded MaxRuntimeInSeconds",
}
DEFAULT_METRIC = "validation:mAP"
DEFAULT_MAX_RUNTIME = 86400


@dataclass
class TrainingPlan:
    """How a training job will end. Register one per job name with `plan_training()`, or a
    planner callback; the default completes normally."""

    outcome: Literal["Completed", "Failed"] = "Completed"
    failure_reason: str = "AlgorithmError: emulated training failure"
    fail_during: str = "Training"
    """The phase at whose end a planned failure happens."""
    phase_seconds: dict[str, float] = field(default_factory=dict)
    """Per-phase durations overriding `Durations` (keys from PHASES)."""
    metrics: dict[str, float] | None = None
    """Final metrics, overriding every other metric source."""


TrainingPlanner = Callable[[str, Mapping[str, Any]], "TrainingPlan | None"]
MetricsProvider = Callable[[str, Mapping[str, str]], "Mapping[str, float] | None"]


def default_metric_value(job_name: str) -> float:
    """A stable pseudo-random mAP in [0.6, 0.8) derived from the job name."""
    return 0.6 + (zlib.crc32(job_name.encode()) % 2000) / 10000


def model_tarball(manifest: Mapping[str, Any]) -> bytes:
    """A small, valid model.tar.gz (one JSON member describing the emulated model)."""
    payload = json.dumps(manifest, sort_keys=True, default=str).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("emulated-model.json")
        info.size = len(payload)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


@dataclass
class TrainingJob:
    name: str
    arn: str
    request: dict[str, Any]
    created: datetime
    plan: TrainingPlan
    phases: list[tuple[str, float]]
    stopping_seconds: float
    billable_fraction: float
    tuning_job_arn: str | None = None
    tuning_job_name: str | None = None
    tuned: dict[str, str] = field(default_factory=dict)
    status: str = "InProgress"
    secondary: str = "Starting"
    phase_index: int = 0
    transitions: list[dict[str, Any]] = field(default_factory=list)
    training_start: datetime | None = None
    end_time: datetime | None = None
    failure_reason: str | None = None
    final_metrics: list[dict[str, Any]] | None = None
    stop_requested: datetime | None = None
    stop_kind: str = "Stopped"
    last_modified: datetime | None = None

    def __post_init__(self) -> None:
        self.phase_start = self.created
        self.last_modified = self.created
        self._begin("Starting", self.created)

    @property
    def finished(self) -> bool:
        return self.status in ("Completed", "Failed", "Stopped")

    @property
    def output_path(self) -> str:
        base = str(self.request["OutputDataConfig"]["S3OutputPath"]).rstrip("/")
        return f"{base}/{self.name}/output/model.tar.gz"

    @property
    def max_runtime(self) -> int:
        stopping = self.request.get("StoppingCondition") or {}
        return int(stopping.get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME))

    def _begin(self, status: str, at: datetime, message: str | None = None) -> None:
        if self.transitions and "EndTime" not in self.transitions[-1]:
            self.transitions[-1]["EndTime"] = at
        entry: dict[str, Any] = {
            "Status": status,
            "StartTime": at,
            "StatusMessage": message or MESSAGES.get(status, status),
        }
        if status in ("Completed", "Failed", "Stopped", "MaxRuntimeExceeded"):
            entry["EndTime"] = at
        self.transitions.append(entry)
        self.secondary = status
        self.last_modified = at

    def stop(self, now: datetime) -> None:
        self.stop_requested = now
        self.stop_kind = "Stopped"
        self.status = "Stopping"
        self._begin("Stopping", now)

    def refresh(self, now: datetime, store: TrainingStore) -> None:
        while True:
            if self.status == "Stopping":
                assert self.stop_requested is not None
                done = self.stop_requested + timedelta(seconds=self.stopping_seconds)
                if done > now:
                    return
                self.status = "Stopped"
                self.end_time = done
                self._begin(self.stop_kind, done)
                return
            if self.status != "InProgress":
                return
            phase, seconds = self.phases[self.phase_index]
            phase_end = self.phase_start + timedelta(seconds=seconds)
            deadline = (
                self.training_start + timedelta(seconds=self.max_runtime)
                if self.training_start is not None
                else None
            )
            if deadline is not None and deadline < phase_end:
                if deadline > now:
                    return
                self.stop_requested = deadline
                self.stop_kind = "MaxRuntimeExceeded"
                self.status = "Stopping"
                self._begin("Stopping", deadline)
                self.stopping_seconds = 0.0
                continue
            if phase_end > now:
                return
            if self.plan.outcome == "Failed" and phase == self.plan.fail_during:
                self._fail(phase_end, self.plan.failure_reason)
                return
            if phase == "Downloading":
                problem = store.missing_input(self)
                if problem:
                    self._fail(phase_end, problem)
                    return
            if self.phase_index == len(self.phases) - 1:
                self._complete(phase_end, store)
                return
            self.phase_index += 1
            self.phase_start = phase_end
            next_phase = self.phases[self.phase_index][0]
            if next_phase == "Downloading":
                self.training_start = phase_end
            self._begin(next_phase, phase_end)

    def _fail(self, at: datetime, reason: str) -> None:
        self.status = "Failed"
        self.failure_reason = reason
        self.end_time = at
        self._begin("Failed", at, reason)

    def _complete(self, at: datetime, store: TrainingStore) -> None:
        metrics = store.metrics_for(self)
        problem = store.write_artifact(self, metrics)
        if problem:
            self._fail(at, problem)
            return
        self.status = "Completed"
        self.end_time = at
        self._begin("Completed", at)
        self.final_metrics = [
            {"MetricName": k, "Value": float(v), "Timestamp": at}
            for k, v in sorted(metrics.items())
        ]

    def objective(self, metric_name: str) -> float | None:
        for metric in self.final_metrics or []:
            if metric["MetricName"] == metric_name:
                return float(metric["Value"])
        return None

    def times(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.training_start is not None:
            out["TrainingStartTime"] = self.training_start
        if self.end_time is not None:
            out["TrainingEndTime"] = self.end_time
            if self.training_start is not None:
                seconds = max(0, int((self.end_time - self.training_start).total_seconds()))
                out["TrainingTimeInSeconds"] = seconds
                fraction = self.billable_fraction if self.spot else 1.0
                out["BillableTimeInSeconds"] = math.ceil(seconds * fraction)
        return out

    @property
    def spot(self) -> bool:
        return bool(self.request.get("EnableManagedSpotTraining"))

    def describe(self) -> dict[str, Any]:
        passthrough = shared_members(
            SAGEMAKER, ("CreateTrainingJob", "input"), ("DescribeTrainingJob", "output")
        )
        out: dict[str, Any] = {k: v for k, v in self.request.items() if k in passthrough}
        out.update(
            TrainingJobName=self.name,
            TrainingJobArn=self.arn,
            TrainingJobStatus=self.status,
            SecondaryStatus=self.secondary,
            CreationTime=self.created,
            LastModifiedTime=self.last_modified,
            SecondaryStatusTransitions=[dict(t) for t in self.transitions],
            StoppingCondition=self.request.get("StoppingCondition")
            or {"MaxRuntimeInSeconds": DEFAULT_MAX_RUNTIME},
            EnableNetworkIsolation=bool(self.request.get("EnableNetworkIsolation", False)),
            EnableInterContainerTrafficEncryption=bool(
                self.request.get("EnableInterContainerTrafficEncryption", False)
            ),
            EnableManagedSpotTraining=self.spot,
            **self.times(),
        )
        if self.tuning_job_arn:
            out["TuningJobArn"] = self.tuning_job_arn
        if self.status in ("Completed", "Stopped"):
            out["ModelArtifacts"] = {"S3ModelArtifacts": self.output_path}
        if self.failure_reason:
            out["FailureReason"] = self.failure_reason
        if self.final_metrics is not None:
            out["FinalMetricDataList"] = [dict(m) for m in self.final_metrics]
        return out

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "TrainingJobName": self.name,
            "TrainingJobArn": self.arn,
            "CreationTime": self.created,
            "LastModifiedTime": self.last_modified,
            "TrainingJobStatus": self.status,
            "SecondaryStatus": self.secondary,
        }
        if self.end_time is not None:
            out["TrainingEndTime"] = self.end_time
        return out

    def tuning_summary(self, objective: Mapping[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "TrainingJobName": self.name,
            "TrainingJobArn": self.arn,
            "CreationTime": self.created,
            "TrainingJobStatus": self.status,
            "TunedHyperParameters": dict(self.tuned),
        }
        if self.tuning_job_name:
            out["TuningJobName"] = self.tuning_job_name
        out.update({k: v for k, v in self.times().items() if k.endswith("Time")})
        if self.failure_reason:
            out["FailureReason"] = self.failure_reason
        if objective:
            value = self.objective(objective["MetricName"])
            if value is not None:
                out["FinalHyperParameterTuningJobObjectiveMetric"] = {
                    "Type": objective["Type"],
                    "MetricName": objective["MetricName"],
                    "Value": value,
                }
                out["ObjectiveStatus"] = "Succeeded"
            else:
                out["ObjectiveStatus"] = "Failed" if self.finished else "Pending"
        return out


@dataclass
class TuningJob:
    name: str
    arn: str
    request: dict[str, Any]
    created: datetime
    rng: random.Random
    children: list[str] = field(default_factory=list)
    released: set[str] = field(default_factory=set)
    status: str = "InProgress"
    end_time: datetime | None = None
    last_modified: datetime | None = None
    stop_requested: datetime | None = None
    failure_reason: str | None = None

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.request["HyperParameterTuningJobConfig"]
        return config

    @property
    def objective(self) -> dict[str, Any]:
        objective: dict[str, Any] = self.config["HyperParameterTuningJobObjective"]
        return objective

    @property
    def max_jobs(self) -> int:
        return int(self.config["ResourceLimits"].get("MaxNumberOfTrainingJobs", 1))

    @property
    def max_parallel(self) -> int:
        return int(self.config["ResourceLimits"]["MaxParallelTrainingJobs"])


class TrainingStore:
    """Training and tuning jobs plus the test's knobs for how they end."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.jobs: dict[str, TrainingJob] = {}
        self.tuning: dict[str, TuningJob] = {}
        self.plans: dict[str, TrainingPlan] = {}
        self.planner: TrainingPlanner | None = None
        self.metric_overrides: dict[str, dict[str, float]] = {}
        self.metrics_provider: MetricsProvider | None = None
        self.check_inputs = True
        self.write_artifacts = True

    def reset(self) -> None:
        self.jobs.clear()
        self.tuning.clear()
        self.plans.clear()
        self.planner = None
        self.metric_overrides.clear()
        self.metrics_provider = None
        self.check_inputs = True
        self.write_artifacts = True

    # -- knobs -----------------------------------------------------------------------------
    def plan_for(self, name: str, request: Mapping[str, Any]) -> TrainingPlan:
        plan = self.plans.get(name.lower())
        if plan is None and self.planner is not None:
            plan = self.planner(name, request)
        return plan or TrainingPlan()

    def metrics_for(self, job: TrainingJob) -> dict[str, float]:
        if job.plan.metrics is not None:
            return dict(job.plan.metrics)
        override = self.metric_overrides.get(job.name.lower())
        if override is not None:
            return dict(override)
        hyper = dict(job.request.get("HyperParameters") or {})
        if self.metrics_provider is not None:
            provided = self.metrics_provider(job.name, hyper)
            if provided is not None:
                return dict(provided)
        metrics = {DEFAULT_METRIC: default_metric_value(job.name)}
        objective = hyper.get("_tuning_objective_metric")
        if objective and objective not in metrics:
            metrics[objective] = default_metric_value(job.name)
        return metrics

    def missing_input(self, job: TrainingJob) -> str | None:
        store = self.state.store
        if not self.check_inputs or store is None:
            return None
        for channel in job.request.get("InputDataConfig") or []:
            source = (channel.get("DataSource") or {}).get("S3DataSource")
            if not source:
                continue
            uri = str(source["S3Uri"])
            if not uri.startswith("s3://"):
                continue
            kind = source.get("S3DataType", "S3Prefix")
            found = store.exists_prefix(uri) if kind == "S3Prefix" else store.exists(uri)
            if not found:
                return (
                    f"ClientError: Data download failed: channel '{channel['ChannelName']}': "
                    f"no object found at {uri} ({kind})"
                )
        return None

    def write_artifact(self, job: TrainingJob, metrics: Mapping[str, float]) -> str | None:
        """Upload the job's model.tar.gz; a failure reason if that is impossible."""
        store = self.state.store
        if not self.write_artifacts or store is None or not job.output_path.startswith("s3://"):
            return None
        manifest = {
            "trainingJobName": job.name,
            "hyperParameters": job.request.get("HyperParameters") or {},
            "finalMetrics": dict(metrics),
        }
        try:
            store.put(job.output_path, model_tarball(manifest), "application/x-tar")
        except ClientError as exc:  # e.g. the output bucket does not exist, as on AWS
            code = exc.response.get("Error", {}).get("Code", "Error")
            return f"ClientError: Failed to upload model artifacts to {job.output_path}: {code}"
        return None

    # -- lookups ---------------------------------------------------------------------------
    def arns(self) -> set[str]:
        return {j.arn for j in self.jobs.values()} | {t.arn for t in self.tuning.values()}

    def get_job(self, name: str) -> TrainingJob:
        job = self.jobs.get(name.lower())
        if job is None:
            raise errors.validation("Requested resource not found.")
        job.refresh(self.state.clock.now(), self)
        return job

    def get_tuning(self, name: str) -> TuningJob:
        tuning = self.tuning.get(name.lower())
        if tuning is None:
            raise errors.resource_not_found(
                f"Amazon SageMaker can't find a tuning job with name {name}"
            )
        self._refresh_tuning(tuning, self.state.clock.now())
        return tuning

    def refresh_all(self) -> None:
        now = self.state.clock.now()
        for tuning in list(self.tuning.values()):
            self._refresh_tuning(tuning, now)
        for job in self.jobs.values():
            job.refresh(now, self)

    # -- training jobs ---------------------------------------------------------------------
    def _check_job_request(self, params: Mapping[str, Any]) -> None:
        algorithm = params.get("AlgorithmSpecification") or {}
        if not (algorithm.get("TrainingImage") or algorithm.get("AlgorithmName")):
            raise errors.validation(
                "AlgorithmSpecification must specify either TrainingImage or AlgorithmName."
            )
        if not params.get("ResourceConfig"):
            raise errors.validation("ResourceConfig is required.")
        stopping = params.get("StoppingCondition") or {}
        max_runtime = int(stopping.get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME))
        max_wait = stopping.get("MaxWaitTimeInSeconds")
        if params.get("EnableManagedSpotTraining"):
            if max_wait is None or int(max_wait) < max_runtime:
                raise errors.validation(
                    "Invalid MaxWaitTimeInSeconds. It must be present and be greater than or "
                    "equal to MaxRuntimeInSeconds"
                )
        elif max_wait is not None:
            raise errors.validation(
                "MaxWaitTimeInSeconds is only supported for managed spot training."
            )
        names = [c["ChannelName"] for c in params.get("InputDataConfig") or []]
        if len(names) != len(set(names)):
            raise errors.validation(f"Channel names must be unique: {names}")

    def _new_job(
        self,
        name: str,
        request: dict[str, Any],
        created: datetime,
        *,
        tuning: TuningJob | None = None,
        tuned: dict[str, str] | None = None,
    ) -> TrainingJob:
        durations = self.state.durations
        plan = self.plan_for(name, request)
        defaults = {
            "Starting": durations.training_starting,
            "Downloading": durations.training_downloading,
            "Training": durations.training_training,
            "Uploading": durations.training_uploading,
        }
        phases = [(p, float(plan.phase_seconds.get(p, defaults[p]))) for p in PHASES]
        job = TrainingJob(
            name=name,
            arn=self.state.arn("training-job", name),
            request=request,
            created=created,
            plan=plan,
            phases=phases,
            stopping_seconds=durations.training_stopping,
            billable_fraction=durations.spot_billable_fraction,
            tuning_job_arn=tuning.arn if tuning else None,
            tuning_job_name=tuning.name if tuning else None,
            tuned=dict(tuned or {}),
        )
        self.jobs[name.lower()] = job
        return job

    def create_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrainingJobName"]
        if name.lower() in self.jobs:
            raise errors.resource_in_use(
                "Training job names must be unique within an AWS account and region, and a "
                "training job with this name already exists "
                f"({self.state.arn('training-job', name)})"
            )
        self._check_job_request(params)
        job = self._new_job(name, dict(params), self.state.clock.now())
        self.state.add_tags(job.arn, params.get("Tags"))
        return {"TrainingJobArn": job.arn}

    def describe_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.get_job(params["TrainingJobName"]).describe()

    def stop_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self.get_job(params["TrainingJobName"])
        if job.status != "InProgress":
            raise errors.validation(
                f"The request was rejected because the training job is in status {job.status}."
            )
        job.stop(self.state.clock.now())
        return {}

    def list_training_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        self.refresh_all()
        jobs = filter_common(list(self.jobs.values()), params, lambda j: j.created)
        if "LastModifiedTimeAfter" in params:
            jobs = [j for j in jobs if _mod(j) > params["LastModifiedTimeAfter"]]
        if "LastModifiedTimeBefore" in params:
            jobs = [j for j in jobs if _mod(j) < params["LastModifiedTimeBefore"]]
        if "StatusEquals" in params:
            jobs = [j for j in jobs if j.status == params["StatusEquals"]]
        sort_by = params.get("SortBy", "CreationTime")
        key = sort_key(sort_by, lambda j: j.name, lambda j: j.created, lambda j: j.status)
        page, token = paginate(
            jobs,
            key,
            descending=params.get("SortOrder", "Ascending") == "Descending",
            max_results=params.get("MaxResults", 10),
            next_token=params.get("NextToken"),
            scope=f"ListTrainingJobs/{sort_by}",
        )
        return with_token({"TrainingJobSummaries": [j.summary() for j in page]}, token)

    # -- tuning jobs -----------------------------------------------------------------------
    def create_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["HyperParameterTuningJobName"]
        if name.lower() in self.tuning:
            raise errors.resource_in_use(f"Tuning job {name} already exists.")
        definition = params.get("TrainingJobDefinition")
        if not definition:
            raise errors.validation(
                "TrainingJobDefinition is required (TrainingJobDefinitions is not emulated)."
            )
        config = params["HyperParameterTuningJobConfig"]
        if not config.get("HyperParameterTuningJobObjective"):
            raise errors.validation("HyperParameterTuningJobObjective is required.")
        if "MaxNumberOfTrainingJobs" not in config["ResourceLimits"]:
            raise errors.validation("ResourceLimits.MaxNumberOfTrainingJobs is required.")
        _check_ranges(config.get("ParameterRanges") or {})
        self._check_job_request(_child_request(definition, {}, "objective"))
        tuning = TuningJob(
            name=name,
            arn=self.state.arn("hyper-parameter-tuning-job", name),
            request=dict(params),
            created=self.state.clock.now(),
            rng=random.Random(name),
        )
        tuning.last_modified = tuning.created
        self.tuning[name.lower()] = tuning
        self.state.add_tags(tuning.arn, params.get("Tags"))
        self._refresh_tuning(tuning, tuning.created)
        return {"HyperParameterTuningJobArn": tuning.arn}

    def _spawn_child(self, tuning: TuningJob, at: datetime) -> None:
        index = len(tuning.children) + 1
        child_name = f"{tuning.name}-{index:03d}-{tuning.rng.getrandbits(32):08x}"
        tuned = _sample(tuning.config.get("ParameterRanges") or {}, tuning.rng)
        request = _child_request(
            tuning.request["TrainingJobDefinition"], tuned, tuning.objective["MetricName"]
        )
        request["TrainingJobName"] = child_name
        self._new_job(child_name, request, at, tuning=tuning, tuned=tuned)
        tuning.children.append(child_name)
        tuning.last_modified = at

    def _refresh_tuning(self, tuning: TuningJob, now: datetime) -> None:
        if tuning.status in ("Completed", "Failed", "Stopped"):
            return
        if not tuning.children:
            for _ in range(min(tuning.max_parallel, tuning.max_jobs)):
                self._spawn_child(tuning, tuning.created)
        while True:
            children = [self.jobs[c.lower()] for c in tuning.children]
            for child in children:
                child.refresh(now, self)
            ended = sorted(
                (c.end_time, c.name)
                for c in children
                if c.end_time is not None and c.end_time <= now and c.name not in tuning.released
            )
            if not ended:
                break
            at, child_name = ended[0]
            tuning.released.add(child_name)
            if len(tuning.children) < tuning.max_jobs and tuning.stop_requested is None:
                self._spawn_child(tuning, at)
        children = [self.jobs[c.lower()] for c in tuning.children]
        if not all(c.finished for c in children):
            return
        if tuning.stop_requested is None and len(children) < tuning.max_jobs:
            return
        end = max((c.end_time for c in children if c.end_time), default=now)
        tuning.end_time = end
        tuning.last_modified = end
        if tuning.stop_requested is not None:
            tuning.status = "Stopped"
        elif any(c.status == "Completed" for c in children):
            tuning.status = "Completed"
        else:
            tuning.status = "Failed"
            tuning.failure_reason = "All training jobs failed."

    def describe_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        tuning = self.get_tuning(params["HyperParameterTuningJobName"])
        children = [self.jobs[c.lower()] for c in tuning.children]
        counters = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0}
        counters["Stopped"] = 0
        objective_counters = {"Succeeded": 0, "Pending": 0, "Failed": 0}
        metric = tuning.objective["MetricName"]
        for child in children:
            if child.status in ("InProgress", "Stopping"):
                counters["InProgress"] += 1
            elif child.status == "Failed":
                counters["NonRetryableError"] += 1
            else:
                counters[child.status] += 1
            if child.objective(metric) is not None:
                objective_counters["Succeeded"] += 1
            elif child.finished:
                objective_counters["Failed"] += 1
            else:
                objective_counters["Pending"] += 1
        out: dict[str, Any] = {
            "HyperParameterTuningJobName": tuning.name,
            "HyperParameterTuningJobArn": tuning.arn,
            "HyperParameterTuningJobConfig": tuning.config,
            "TrainingJobDefinition": tuning.request["TrainingJobDefinition"],
            "HyperParameterTuningJobStatus": tuning.status,
            "CreationTime": tuning.created,
            "LastModifiedTime": tuning.last_modified,
            "TrainingJobStatusCounters": counters,
            "ObjectiveStatusCounters": objective_counters,
        }
        if tuning.end_time is not None:
            out["HyperParameterTuningEndTime"] = tuning.end_time
        if tuning.failure_reason:
            out["FailureReason"] = tuning.failure_reason
        if "WarmStartConfig" in tuning.request:
            out["WarmStartConfig"] = tuning.request["WarmStartConfig"]
        best = self._best(tuning, children)
        if best is not None:
            out["BestTrainingJob"] = best.tuning_summary(tuning.objective)
        return out

    def _best(self, tuning: TuningJob, children: list[TrainingJob]) -> TrainingJob | None:
        metric = tuning.objective["MetricName"]
        scored = [(c.objective(metric), c) for c in children if c.status == "Completed"]
        valid = [(v, c) for v, c in scored if v is not None]
        if not valid:
            return None
        maximize = tuning.objective["Type"] == "Maximize"
        pick = max if maximize else min
        return pick(valid, key=lambda vc: (vc[0], vc[1].name))[1]

    def stop_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        tuning = self.get_tuning(params["HyperParameterTuningJobName"])
        if tuning.status != "InProgress":
            raise errors.validation(
                f"The request was rejected because the tuning job is in status {tuning.status}."
            )
        now = self.state.clock.now()
        tuning.stop_requested = now
        tuning.status = "Stopping"
        tuning.last_modified = now
        for name in tuning.children:
            child = self.jobs[name.lower()]
            if child.status == "InProgress":
                child.stop(now)
        self._refresh_tuning(tuning, now)
        return {}

    def list_training_jobs_for_hyper_parameter_tuning_job(
        self, params: dict[str, Any]
    ) -> dict[str, Any]:
        tuning = self.get_tuning(params["HyperParameterTuningJobName"])
        children = [self.jobs[c.lower()] for c in tuning.children]
        if "StatusEquals" in params:
            children = [c for c in children if c.status == params["StatusEquals"]]
        sort_by = params.get("SortBy", "CreationTime")
        metric = tuning.objective["MetricName"]

        def key(job: TrainingJob) -> tuple[float | str, str]:
            if sort_by == "Name":
                return name_key(job.name)
            if sort_by == "Status":
                return (job.status, job.name)
            if sort_by == "FinalObjectiveMetricValue":
                value = job.objective(metric)
                return (value if value is not None else float("-inf"), job.name)
            return time_key(job.created, job.name)

        page, token = paginate(
            children,
            key,
            descending=params.get("SortOrder", "Descending") == "Descending",
            max_results=params.get("MaxResults", 10),
            next_token=params.get("NextToken"),
            scope=f"ListTrainingJobsForHyperParameterTuningJob/{tuning.name}/{sort_by}",
        )
        summaries = [c.tuning_summary(tuning.objective) for c in page]
        return with_token({"TrainingJobSummaries": summaries}, token)


def _mod(job: TrainingJob) -> datetime:
    return job.last_modified or job.created


def _child_request(
    definition: Mapping[str, Any], tuned: Mapping[str, str], objective_metric: str
) -> dict[str, Any]:
    shared = shared_members(
        SAGEMAKER, ("HyperParameterTrainingJobDefinition", "shape"), ("CreateTrainingJob", "input")
    )
    request = {k: v for k, v in definition.items() if k in shared}
    algorithm = dict(definition.get("AlgorithmSpecification") or {})
    request["AlgorithmSpecification"] = {
        k: v
        for k, v in algorithm.items()
        if k in ("TrainingImage", "AlgorithmName", "TrainingInputMode", "MetricDefinitions")
    }
    hyper = dict(definition.get("StaticHyperParameters") or {})
    hyper.update(tuned)
    hyper["_tuning_objective_metric"] = objective_metric
    request["HyperParameters"] = hyper
    return request


def _check_ranges(ranges: Mapping[str, Any]) -> None:
    for kind in ("ContinuousParameterRanges", "IntegerParameterRanges"):
        for item in ranges.get(kind) or []:
            try:
                low, high = float(item["MinValue"]), float(item["MaxValue"])
            except ValueError as exc:
                raise errors.validation(f"{kind} {item['Name']}: bounds must be numbers") from exc
            if low > high:
                raise errors.validation(
                    f"{kind} {item['Name']}: MinValue must be less than or equal to MaxValue"
                )
            if item.get("ScalingType") == "Logarithmic" and low <= 0:
                raise errors.validation(
                    f"{kind} {item['Name']}: Logarithmic scaling requires MinValue > 0"
                )


def _sample(ranges: Mapping[str, Any], rng: random.Random) -> dict[str, str]:
    tuned: dict[str, str] = {}
    for item in ranges.get("ContinuousParameterRanges") or []:
        low, high = float(item["MinValue"]), float(item["MaxValue"])
        if item.get("ScalingType") == "Logarithmic":
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        else:
            value = rng.uniform(low, high)
        tuned[item["Name"]] = f"{value:.8g}"
    for item in ranges.get("IntegerParameterRanges") or []:
        tuned[item["Name"]] = str(rng.randint(int(item["MinValue"]), int(item["MaxValue"])))
    for item in ranges.get("CategoricalParameterRanges") or []:
        tuned[item["Name"]] = str(rng.choice(list(item["Values"])))
    return tuned
