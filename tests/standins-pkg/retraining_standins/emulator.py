"""The SageMaker + A2I emulator: resource stores, the operation tables, and test controls.

`Emulator` owns the state. Servers call `sagemaker_operations` / `a2i_operations` handlers
while holding `emulator.lock`; tests use the `sagemaker` and `a2i` control facades, which
take the same lock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from retraining_standins import errors
from retraining_standins.a2i import FlowDefinition, HumanLoop, HumanLoopStore
from retraining_standins.autoscaling import AutoScalingStore
from retraining_standins.clock import Clock
from retraining_standins.detector import QualityProvider, default_quality
from retraining_standins.experiments import Experiment, ExperimentStore
from retraining_standins.hosting import HostingStore
from retraining_standins.paging import paginate
from retraining_standins.registry import ModelPackage, RegistryStore
from retraining_standins.seed import VOC_CLASSES
from retraining_standins.serving import MotoCloudWatch, ServingProvider, default_serving
from retraining_standins.state import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_REGION,
    AlarmSource,
    Durations,
    EmulatorState,
    MetricSink,
    ObjectStore,
)
from retraining_standins.training import (
    MetricsProvider,
    TrainingPlan,
    TrainingPlanner,
    TrainingStore,
)
from retraining_standins.transform import TransformStore

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class Emulator:
    def __init__(
        self,
        clock: Clock | None = None,
        *,
        account_id: str = DEFAULT_ACCOUNT_ID,
        region: str = DEFAULT_REGION,
        durations: Durations | None = None,
        store: ObjectStore | None = None,
        alarms: AlarmSource | None = None,
        metrics: MetricSink | None = None,
        seed: int = 0,
    ) -> None:
        self.state = EmulatorState(
            clock=clock or Clock(),
            account_id=account_id,
            region=region,
            durations=durations or Durations(),
            store=store,
            alarms=alarms,
            # By default into moto's in-process CloudWatch, which the stand-ins serve.
            metrics=metrics if metrics is not None else MotoCloudWatch(account_id, region),
        )
        self.training = TrainingStore(self.state)
        self.hosting = HostingStore(self.state)
        self.transform = TransformStore(self.state, self.hosting)
        self.experiments = ExperimentStore(
            self.state, self.hosting, lambda name, url: self.transform.quality(name, url)
        )
        self.hosting.observed = self.experiments.observe_endpoint
        self.hosting.held_by = self.experiments.holding
        self.registry = RegistryStore(self.state)
        self.human_loops = HumanLoopStore(self.state, seed)
        self.autoscaling = AutoScalingStore(self.state, self.hosting)
        self.hosting.is_registered = lambda endpoint, variant: (
            self.autoscaling.registered(endpoint, variant) is not None
        )
        self.sagemaker = SageMakerControl(self)
        self.a2i = A2IControl(self)
        t, h, a, r = self.training, self.hosting, self.human_loops, self.registry
        b, x = self.transform, self.experiments
        self.sagemaker_operations: dict[str, Handler] = {
            "CreateTrainingJob": t.create_training_job,
            "DescribeTrainingJob": t.describe_training_job,
            "StopTrainingJob": t.stop_training_job,
            "ListTrainingJobs": t.list_training_jobs,
            "CreateHyperParameterTuningJob": t.create_hyper_parameter_tuning_job,
            "DescribeHyperParameterTuningJob": t.describe_hyper_parameter_tuning_job,
            "StopHyperParameterTuningJob": t.stop_hyper_parameter_tuning_job,
            "ListTrainingJobsForHyperParameterTuningJob": (
                t.list_training_jobs_for_hyper_parameter_tuning_job
            ),
            "CreateTransformJob": b.create_transform_job,
            "DescribeTransformJob": b.describe_transform_job,
            "StopTransformJob": b.stop_transform_job,
            "ListTransformJobs": b.list_transform_jobs,
            "CreateInferenceExperiment": x.create_inference_experiment,
            "DescribeInferenceExperiment": x.describe_inference_experiment,
            "StopInferenceExperiment": x.stop_inference_experiment,
            "ListInferenceExperiments": x.list_inference_experiments,
            "DeleteInferenceExperiment": x.delete_inference_experiment,
            "CreateModel": h.create_model,
            "DescribeModel": h.describe_model,
            "DeleteModel": h.delete_model,
            "ListModels": h.list_models,
            "CreateEndpointConfig": h.create_endpoint_config,
            "DescribeEndpointConfig": h.describe_endpoint_config,
            "DeleteEndpointConfig": h.delete_endpoint_config,
            "ListEndpointConfigs": h.list_endpoint_configs,
            "CreateEndpoint": h.create_endpoint,
            "DescribeEndpoint": h.describe_endpoint,
            "UpdateEndpoint": h.update_endpoint,
            "UpdateEndpointWeightsAndCapacities": h.update_endpoint_weights_and_capacities,
            "DeleteEndpoint": h.delete_endpoint,
            "ListEndpoints": h.list_endpoints,
            "CreateModelPackageGroup": r.create_model_package_group,
            "DescribeModelPackageGroup": r.describe_model_package_group,
            "CreateModelPackage": r.create_model_package,
            "DescribeModelPackage": r.describe_model_package,
            "UpdateModelPackage": r.update_model_package,
            "ListModelPackages": r.list_model_packages,
            "CreateFlowDefinition": a.create_flow_definition,
            "DescribeFlowDefinition": a.describe_flow_definition,
            "DeleteFlowDefinition": a.delete_flow_definition,
            "AddTags": self._add_tags,
            "ListTags": self._list_tags,
            "DeleteTags": self._delete_tags,
        }
        s = self.autoscaling
        self.autoscaling_operations: dict[str, Handler] = {
            "RegisterScalableTarget": s.register_scalable_target,
            "DescribeScalableTargets": s.describe_scalable_targets,
            "DeregisterScalableTarget": s.deregister_scalable_target,
            "PutScalingPolicy": s.put_scaling_policy,
            "DescribeScalingPolicies": s.describe_scaling_policies,
            "DeleteScalingPolicy": s.delete_scaling_policy,
        }
        self.a2i_operations: dict[str, Handler] = {
            "StartHumanLoop": a.start_human_loop,
            "DescribeHumanLoop": a.describe_human_loop,
            "ListHumanLoops": a.list_human_loops,
            "StopHumanLoop": a.stop_human_loop,
            "DeleteHumanLoop": a.delete_human_loop,
        }

    @property
    def lock(self) -> Any:
        return self.state.lock

    @property
    def clock(self) -> Clock:
        return self.state.clock

    @property
    def durations(self) -> Durations:
        return self.state.durations

    def reset(self, seed: int = 0) -> None:
        """Forget every resource and knob (durations back to their defaults)."""
        with self.lock:
            self.training.reset()
            self.hosting.reset()
            self.transform.reset()
            self.experiments.reset()
            self.registry.reset()
            self.human_loops.reset(seed)
            self.autoscaling.reset()
            self.state.tags.clear()
            defaults = Durations()
            for f in dataclasses.fields(Durations):
                setattr(self.state.durations, f.name, getattr(defaults, f.name))

    # -- tags ------------------------------------------------------------------------------
    def _known_arn(self, arn: str) -> None:
        self.hosting.list_endpoints({})  # refresh: deleted endpoints lose their tags
        known = (
            self.training.arns()
            | self.transform.arns()
            | self.experiments.arns()
            | self.hosting.arns()
            | self.human_loops.arns()
            | self.registry.arns()
        )
        if arn not in known:
            raise errors.validation(f"Resource {arn} does not exist.")

    def _add_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        self._known_arn(params["ResourceArn"])
        self.state.add_tags(params["ResourceArn"], params["Tags"])
        tags = self.state.tags.get(params["ResourceArn"], {})
        return {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}

    def _list_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        self._known_arn(params["ResourceArn"])
        tags = sorted(self.state.tags.get(params["ResourceArn"], {}).items())
        page, token = paginate(
            tags,
            lambda kv: (kv[0], kv[0]),
            descending=False,
            max_results=params.get("MaxResults", 50),
            next_token=params.get("NextToken"),
            scope=f"ListTags/{params['ResourceArn']}",
        )
        result: dict[str, Any] = {"Tags": [{"Key": k, "Value": v} for k, v in page]}
        if token:
            result["NextToken"] = token
        return result

    def _delete_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        self._known_arn(params["ResourceArn"])
        tags = self.state.tags.get(params["ResourceArn"], {})
        for key in params["TagKeys"]:
            tags.pop(key, None)
        return {}


class SageMakerControl:
    """Test-side knobs for SageMaker resources (thread-safe)."""

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator

    @property
    def durations(self) -> Durations:
        """Mutable lifecycle durations (emulated seconds)."""
        return self._emulator.durations

    def plan_training(
        self, job_name: str, plan: TrainingPlan | None = None, **fields: Any
    ) -> TrainingPlan:
        """How the job named `job_name` (created later) will end, e.g.
        `plan_training("job-1", outcome="Failed", failure_reason="AlgorithmError: boom")`."""
        plan = dataclasses.replace(plan or TrainingPlan(), **fields)
        with self._emulator.lock:
            self._emulator.training.plans[job_name.lower()] = plan
        return plan

    def set_training_planner(self, planner: TrainingPlanner | None) -> None:
        """`planner(job_name, request) -> TrainingPlan | None` for jobs without a plan."""
        with self._emulator.lock:
            self._emulator.training.planner = planner

    def set_metrics(self, job_name: str, metrics: Mapping[str, float]) -> None:
        """Final metrics of one job (e.g. `{"validation:mAP": 0.71}`), even if it exists."""
        with self._emulator.lock:
            self._emulator.training.metric_overrides[job_name.lower()] = dict(metrics)

    def set_metrics_provider(self, provider: MetricsProvider | None) -> None:
        """`provider(job_name, hyperparameters) -> metrics | None` for all other jobs.
        Without one, jobs report a stable pseudo-random `validation:mAP` in [0.6, 0.8)."""
        with self._emulator.lock:
            self._emulator.training.metrics_provider = provider

    def set_model_quality(self, provider: QualityProvider | None) -> None:
        """`provider(model_name, model_data_url) -> ModelQuality`: how good each model is
        when a Batch Transform job runs it (read when the job completes). None: the default,
        every model `ModelQuality()` (finds 70 % of the objects)."""
        with self._emulator.lock:
            self._emulator.transform.quality = provider or default_quality

    def set_model_serving(self, provider: ServingProvider | None) -> None:
        """`provider(model_name, model_data_url) -> ModelServing`: each model's latency and
        error rates in the per-minute CloudWatch metrics of an inference experiment's variants,
        e.g. `serving_table({"candidate": ModelServing(p50_ms=60, p99_ms=180)})`. None: the
        default, every model `ModelServing()` (p50 20 ms, p99 60 ms, no errors)."""
        with self._emulator.lock:
            self._emulator.experiments.serving = provider or default_serving

    def set_traffic(self, endpoint_name: str, per_minute: int, images: Sequence[str] = ()) -> None:
        """What users send the endpoint while an inference experiment runs: `per_minute`
        requests (100 by default), cycling through `images` (S3 URIs) for data capture."""
        with self._emulator.lock:
            self._emulator.experiments.set_traffic(endpoint_name, per_minute, images)

    def inference_experiments(self) -> list[Experiment]:
        """Every inference experiment, up to date, oldest first."""
        with self._emulator.lock:
            store = self._emulator.experiments
            for experiment in store.experiments.values():
                store.refresh(experiment)
            return sorted(store.experiments.values(), key=lambda e: (e.created, e.name))

    def fail_next_update(self, endpoint_name: str, reason: str) -> None:
        """The next UpdateEndpoint of this endpoint fails while provisioning."""
        with self._emulator.lock:
            self._emulator.hosting.fail_next_update(endpoint_name, reason)

    def check_inputs(self, enabled: bool) -> None:
        """Fail training jobs whose input channels have no data in S3 (default on)."""
        with self._emulator.lock:
            self._emulator.training.check_inputs = enabled

    def check_model_data(self, enabled: bool) -> None:
        """Fail endpoint deployments whose ModelDataUrl is missing in S3 (default on)."""
        with self._emulator.lock:
            self._emulator.hosting.check_model_data = enabled

    def set_approval(self, arn: str, status: str, description: str | None = None) -> None:
        """Change a Model Package's approval as a person in Studio would (Approved,
        Rejected, PendingManualApproval)."""
        with self._emulator.lock:
            self._emulator.registry.set_approval(arn, status, description)

    def model_packages(self, group: str | None = None) -> list[ModelPackage]:
        """Every registered package (of one group), oldest first."""
        with self._emulator.lock:
            packages = list(self._emulator.registry.packages.values())
        if group is not None:
            packages = [p for p in packages if p.group.name.lower() == group.lower()]
        return sorted(packages, key=lambda p: (p.created, p.version))

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Invoke an operation in-process (no HTTP, no validation, no log); for setup."""
        with self._emulator.lock:
            return self._emulator.sagemaker_operations[operation](dict(params))

    def autoscaling_call(self, operation: str, **params: Any) -> dict[str, Any]:
        """An Application Auto Scaling operation in-process (no HTTP, no log); for setup."""
        with self._emulator.lock:
            return self._emulator.autoscaling_operations[operation](dict(params))

    def autoscale(self, endpoint_name: str, variant_name: str, desired: int) -> int:
        """The autoscaler acting: a registered variant (with a scaling policy) moves to
        `desired` instances, clamped to its target's min/max; answers the count set."""
        with self._emulator.lock:
            return self._emulator.autoscaling.scale(endpoint_name, variant_name, desired)

    def describe_training_job(self, name: str) -> dict[str, Any]:
        return self.call("DescribeTrainingJob", TrainingJobName=name)

    def describe_transform_job(self, name: str) -> dict[str, Any]:
        return self.call("DescribeTransformJob", TransformJobName=name)

    def describe_inference_experiment(self, name: str) -> dict[str, Any]:
        return self.call("DescribeInferenceExperiment", Name=name)

    def describe_endpoint(self, name: str) -> dict[str, Any]:
        return self.call("DescribeEndpoint", EndpointName=name)

    def training_job_names(self) -> list[str]:
        with self._emulator.lock:
            return [j.name for j in self._emulator.training.jobs.values()]


class A2IControl:
    """Test-side seeding of flow definitions and human loops (thread-safe)."""

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator

    @property
    def _store(self) -> HumanLoopStore:
        return self._emulator.human_loops

    def create_flow_definition(
        self,
        name: str,
        s3_output_path: str,
        *,
        role_arn: str | None = None,
        created: datetime | None = None,
        task_count: int = 1,
    ) -> FlowDefinition:
        """A flow definition whose outputs land under `s3_output_path` (bucket must exist).

        `task_count` (HumanLoopConfig.TaskCount, 1-3) is how many workers answer each loop;
        with 2-3 they label the same objects with realistic jitter and occasional
        disagreement (seed.jittered_answer)."""
        with self._emulator.lock:
            return self._store.seed_flow_definition(
                name, s3_output_path, role_arn=role_arn, created=created, task_count=task_count
            )

    def add_loop(
        self,
        flow: str | FlowDefinition,
        name: str | None = None,
        *,
        status: str = "Completed",
        created: datetime | None = None,
        completed_at: datetime | None = None,
        output: Mapping[str, Any] | bytes | str | None = None,
        task_object: str | None = None,
        classes: Sequence[str] = VOC_CLASSES,
        workers: int | None = None,
        failure_reason: str | None = None,
    ) -> HumanLoop:
        """One loop (`flow` by name or ARN). A Completed loop gets an output.json: random but
        valid for `classes` unless `output` is given (a dict, or raw bytes/str: malformed
        bodies are welcome)."""
        with self._emulator.lock:
            return self._store.seed_loop(
                flow,
                name,
                status=status,
                created=created,
                completed_at=completed_at,
                output=output,
                task_object=task_object,
                classes=classes,
                workers=workers,
                failure_reason=failure_reason,
            )

    def add_loops(
        self,
        flow: str | FlowDefinition,
        count: int,
        *,
        status: str = "Completed",
        start: datetime | None = None,
        interval: float = 60.0,
        classes: Sequence[str] = VOC_CLASSES,
    ) -> list[HumanLoop]:
        """`count` loops created `interval` seconds apart, the last at `start + (count-1) *
        interval` (default: ending now)."""
        now = self._emulator.clock.now()
        first = start or now - timedelta(seconds=interval * max(count - 1, 0))
        return [
            self.add_loop(
                flow,
                status=status,
                created=first + timedelta(seconds=i * interval),
                classes=classes,
            )
            for i in range(count)
        ]

    def complete_loop(
        self,
        name: str,
        output: Mapping[str, Any] | bytes | str | None = None,
        *,
        at: datetime | None = None,
        classes: Sequence[str] = VOC_CLASSES,
        workers: int | None = None,
    ) -> str:
        """Complete an InProgress loop (writing its output.json now); returns the output URI."""
        with self._emulator.lock:
            return self._store.complete_loop(name, output, at=at, classes=classes, workers=workers)

    def fail_loop(self, name: str, reason: str = "The human loop failed (emulated).") -> None:
        with self._emulator.lock:
            self._store.fail_loop(name, reason)

    def loop(self, name: str) -> HumanLoop:
        with self._emulator.lock:
            return self._store.loop(name)

    def loops(self, flow: str | None = None) -> list[HumanLoop]:
        """All loops (of one flow definition), in creation order."""
        with self._emulator.lock:
            loops = list(self._store.loops.values())
            if flow is not None:
                flow_def = self._store.flow(flow)
                loops = [loop for loop in loops if loop.flow is flow_def]
        return sorted(loops, key=lambda loop: (loop.created, loop.name))
