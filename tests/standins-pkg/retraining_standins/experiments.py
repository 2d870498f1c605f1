"""Inference experiments (SageMaker shadow tests, issue 31) on the emulator's clock.

`CreateInferenceExperiment` (`Type: ShadowMode`) on an InService endpoint with one production
variant: the experiment is Creating for `Durations.experiment_creating`, Created until its
`Schedule.StartTime` (now by default), then Starting while SageMaker updates the endpoint to an
endpoint config of its own (`<name>-shadow-<digest>`: the source variant as the production
variant, the candidate in `ShadowProductionVariants` with weight `SamplingPercentage / 100`),
Running once the endpoint is InService on it. At `Schedule.EndTime` (start + 7 days by default,
at most 30 days, as AWS documents) or on `StopInferenceExperiment` it is Stopping while the
endpoint is updated again, then Completed or Cancelled:

* `ModelVariantActions` `{shadow: "Remove"}` (the default, and what the end of the schedule
  does): the endpoint returns to the config it had before the experiment ("After the test is
  complete, the endpoint reverts to the state it was in prior to starting the test");
* `{shadow: "Promote"}`: a new config (`<name>-promote-<digest>`) whose one production variant
  keeps the production variant's *name* and serves the shadow's model, on the shadow's
  infrastructure or the `DesiredModelVariants` entry's (stand-in choice: AWS does not document
  the name);
* `{shadow: "Retain"}`: the endpoint keeps the shadow variant.

`DesiredState` defaults to Cancelled for a stop before the end ("When you conclude your
experiment early using the StopInferenceExperiment API ... it shows as cancelled"). An endpoint
update that fails (`fail_next_update`) cancels a starting experiment with the endpoint's
FailureReason as `StatusReason`. While an experiment is in progress, UpdateEndpoint and
UpdateEndpointWeightsAndCapacities are refused (stand-in choice, undocumented by AWS: the revert
at the end would undo them).

While it runs, the experiment publishes per-minute CloudWatch metrics for both variants
(`serving.py`): the endpoint's traffic (`SageMakerControl.set_traffic`, 100 requests a minute by
default) goes to the production variant, `SamplingPercentage` of it is replicated to the shadow,
and each model serves as its `ModelServing` says (`set_model_serving`). With a
`DataStorageConfig` and traffic images (`set_traffic(..., images=[...])`) it also writes data
capture files for both variants (see `_capture`). Users' requests are never answered by the
shadow: the endpoint's production variant is unchanged by the experiment's start.

Transitions, metrics and capture files are produced lazily when the experiment or its endpoint
is observed (Describe*/List*/Stop), stamped with the emulated times they happened at.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from retraining_standins import errors
from retraining_standins.detector import ModelQuality, predict
from retraining_standins.errors import ApiError
from retraining_standins.hosting import Endpoint, HostingStore
from retraining_standins.images import truth_of
from retraining_standins.paging import filter_common, paginate, sort_key, with_token
from retraining_standins.serving import (
    DEFAULT_INVOCATIONS_PER_MINUTE,
    NAMESPACE,
    ServingProvider,
    VariantCounter,
    default_serving,
    minute_metrics,
)
from retraining_standins.state import EmulatorState

ACTIVE = ("Creating", "Created", "Starting", "Running", "Updating", "Stopping")
DEFAULT_DURATION = timedelta(days=7)
MAX_DURATION = timedelta(days=30)
BACKFILL = timedelta(days=1)
"""When the clock jumps further than this, only the last day of minutes is published."""
CAPTURED_PER_MINUTE = 2
"""Data capture writes at most this many replicated requests a minute (per variant)."""
QualityLookup = Callable[[str, str], ModelQuality]


@dataclass
class Traffic:
    """What users send an endpoint: requests a minute, and the images they send (capture)."""

    per_minute: int = DEFAULT_INVOCATIONS_PER_MINUTE
    images: tuple[str, ...] = ()


@dataclass
class Experiment:
    name: str
    arn: str
    request: dict[str, Any]
    created: datetime
    start_at: datetime
    end_at: datetime
    original_config: str
    original_request: dict[str, Any]
    status: str = "Creating"
    status_reason: str | None = None
    completion_time: datetime | None = None
    shadow_config: str | None = None
    final_config: str | None = None
    desired_state: str = "Completed"
    shadow_action: str = "Remove"
    running_since: datetime | None = None
    published_until: datetime | None = None
    counters: dict[str, VariantCounter] = field(default_factory=dict)
    captured: int = 0
    last_modified: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.last_modified = self.created

    @property
    def endpoint_name(self) -> str:
        return str(self.request["EndpointName"])

    @property
    def source(self) -> str:
        return str(self.request["ShadowModeConfig"]["SourceModelVariantName"])

    @property
    def shadow(self) -> str:
        return str(
            self.request["ShadowModeConfig"]["ShadowModelVariants"][0]["ShadowModelVariantName"]
        )

    @property
    def sampling(self) -> int:
        shadow = self.request["ShadowModeConfig"]["ShadowModelVariants"][0]
        return int(shadow["SamplingPercentage"])

    def variant(self, name: str) -> dict[str, Any]:
        return next(v for v in self.request["ModelVariants"] if v["VariantName"] == name)

    def move(self, status: str, at: datetime) -> None:
        self.status = status
        self.last_modified = at

    def finish(self, at: datetime) -> None:
        self.move(self.desired_state, at)
        self.completion_time = at

    def variant_status(self, name: str) -> str:
        if self.status in ("Creating", "Created", "Starting"):
            return "Creating"
        if name == self.source or self.status == "Running" or self.shadow_action == "Retain":
            return "InService"
        return "Deleting" if self.status == "Stopping" else "Deleted"


class ExperimentStore:
    """Inference experiments, plus the test's knobs for traffic and how models serve."""

    def __init__(self, state: EmulatorState, hosting: HostingStore, quality: QualityLookup) -> None:
        self.state = state
        self.hosting = hosting
        self.quality = quality
        self.experiments: dict[str, Experiment] = {}
        self.serving: ServingProvider = default_serving
        self.traffic: dict[str, Traffic] = {}
        self._observing = False

    def reset(self) -> None:
        self.experiments.clear()
        self.serving = default_serving
        self.traffic.clear()

    def arns(self) -> set[str]:
        return {e.arn for e in self.experiments.values()}

    def set_traffic(self, endpoint: str, per_minute: int, images: Sequence[str] = ()) -> None:
        if per_minute < 0:
            raise ValueError(f"requests a minute must be >= 0, not {per_minute}")
        self.traffic[endpoint.lower()] = Traffic(per_minute, tuple(images))

    def get(self, name: str) -> Experiment:
        experiment = self.experiments.get(name.lower())
        if experiment is None:
            arn = self.state.arn("inference-experiment", name)
            raise errors.resource_not_found(f'Could not find inference experiment "{arn}".')
        self.refresh(experiment)
        return experiment

    def holding(self, endpoint_name: str) -> str | None:
        """The experiment in progress on an endpoint (UpdateEndpoint waits for its end)."""
        for experiment in self.experiments.values():
            if (
                experiment.endpoint_name.lower() == endpoint_name.lower()
                and experiment.status in ACTIVE
            ):
                return experiment.name
        return None

    def observe_endpoint(self, endpoint_name: str) -> None:
        """Bring the experiments of an endpoint up to date (the endpoint is being observed)."""
        if self._observing:
            return
        for experiment in list(self.experiments.values()):
            if experiment.endpoint_name.lower() == endpoint_name.lower():
                self.refresh(experiment)

    # -- the API ---------------------------------------------------------------------------
    def create_inference_experiment(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["Name"]
        arn = self.state.arn("inference-experiment", name)
        if name.lower() in self.experiments:
            raise errors.resource_in_use(f'Inference experiment "{arn}" already exists.')
        endpoint = self.hosting.get_endpoint(params["EndpointName"])
        for other in self.experiments.values():
            if other.endpoint_name.lower() == endpoint.name.lower():
                self.refresh(other)
                if other.status in ACTIVE:
                    raise errors.resource_in_use(
                        f'Endpoint "{endpoint.arn}" already has an inference experiment in '
                        f"progress: {other.name} ({other.status})."
                    )
        if endpoint.status != "InService" or endpoint.pending is not None:
            raise errors.validation(
                f'Endpoint "{endpoint.arn}" must be InService to run an inference experiment '
                f"(it is {endpoint.status})."
            )
        self._check_variants(params, endpoint)
        now = self.state.clock.now()
        start, end = _schedule(params.get("Schedule") or {}, now)
        experiment = Experiment(
            name=name,
            arn=arn,
            request=dict(params),
            created=now,
            start_at=start,
            end_at=end,
            original_config=endpoint.config_name,
            original_request=self._serving_request(endpoint),
        )
        self.experiments[name.lower()] = experiment
        self.state.add_tags(arn, params.get("Tags"))
        return {"InferenceExperimentArn": arn}

    def _check_variants(self, params: dict[str, Any], endpoint: Endpoint) -> None:
        mode = params["ShadowModeConfig"]
        source = mode["SourceModelVariantName"]
        shadow = mode["ShadowModelVariants"][0]
        if len(endpoint.variants) != 1 or endpoint.shadow_variants:
            raise errors.validation(
                f'Endpoint "{endpoint.arn}" must have exactly one production variant and no '
                "shadow variant to run a shadow test."
            )
        if endpoint.variants[0].name != source:
            raise errors.validation(
                f"SourceModelVariantName {source} is not a production variant of endpoint "
                f'"{endpoint.arn}" (it has {endpoint.variants[0].name}).'
            )
        if shadow["ShadowModelVariantName"] == source:
            raise errors.validation("The shadow variant must not be named as the source variant.")
        if not 1 <= int(shadow["SamplingPercentage"]) <= 100:
            raise errors.validation("SamplingPercentage must be between 1 and 100.")
        names = sorted(v["VariantName"] for v in params["ModelVariants"])
        expected = sorted([source, shadow["ShadowModelVariantName"]])
        if names != expected:
            raise errors.validation(
                "ModelVariants must describe the source variant and the shadow variant, once "
                f"each ({', '.join(expected)}), not {', '.join(names)}."
            )
        for variant in params["ModelVariants"]:
            self.hosting.get_model(variant["ModelName"])  # "Could not find model ..."
            if int(variant["InfrastructureConfig"]["RealTimeInferenceConfig"]["InstanceCount"]) < 1:
                raise errors.validation(
                    f"Variant {variant['VariantName']}: InstanceCount must be at least 1."
                )

    def describe_inference_experiment(self, params: dict[str, Any]) -> dict[str, Any]:
        experiment = self.get(params["Name"])
        request = experiment.request
        out: dict[str, Any] = {
            "Arn": experiment.arn,
            "Name": experiment.name,
            "Type": request["Type"],
            "Schedule": {"StartTime": experiment.start_at, "EndTime": experiment.end_at},
            "Status": experiment.status,
            "CreationTime": experiment.created,
            "LastModifiedTime": experiment.last_modified,
            "RoleArn": request["RoleArn"],
            "EndpointMetadata": self._endpoint_metadata(experiment),
            "ModelVariants": [
                {**v, "Status": experiment.variant_status(v["VariantName"])}
                for v in request["ModelVariants"]
            ],
            "ShadowModeConfig": request["ShadowModeConfig"],
        }
        for key in ("Description", "DataStorageConfig", "KmsKey"):
            if key in request:
                out[key] = request[key]
        if experiment.status_reason:
            out["StatusReason"] = experiment.status_reason
        if experiment.completion_time is not None:
            out["CompletionTime"] = experiment.completion_time
        return out

    def _endpoint_metadata(self, experiment: Experiment) -> dict[str, Any]:
        endpoint = self._endpoint(experiment)
        if endpoint is None:
            return {"EndpointName": experiment.endpoint_name}
        out: dict[str, Any] = {
            "EndpointName": endpoint.name,
            "EndpointConfigName": endpoint.config_name,
            "EndpointStatus": endpoint.status,
        }
        if endpoint.failure_reason:
            out["FailureReason"] = endpoint.failure_reason
        return out

    def stop_inference_experiment(self, params: dict[str, Any]) -> dict[str, Any]:
        experiment = self.get(params["Name"])
        if experiment.status not in ("Created", "Running"):
            raise errors.conflict(
                f'Inference experiment "{experiment.arn}" is {experiment.status}; only a Created '
                "or Running experiment can be stopped."
            )
        actions = dict(params["ModelVariantActions"])
        names = {experiment.source, experiment.shadow}
        unknown = sorted(set(actions) - names)
        if unknown:
            raise errors.validation(
                f"ModelVariantActions names variants that are not in the experiment: "
                f"{', '.join(unknown)}."
            )
        shadow_action = actions.get(experiment.shadow, "Remove")
        source_action = actions.get(experiment.source, "Retain")
        if source_action == "Promote":
            raise errors.validation(f"Only the shadow variant {experiment.shadow} can be promoted.")
        if source_action == "Remove" and shadow_action != "Promote":
            raise errors.validation(
                f"The production variant {experiment.source} can only be removed when the shadow "
                "variant is promoted in its place."
            )
        desired = list(params.get("DesiredModelVariants") or [])
        for variant in desired:
            if variant["VariantName"] not in names:
                raise errors.validation(
                    f"DesiredModelVariants: {variant['VariantName']} is not in the experiment."
                )
            self.hosting.get_model(variant["ModelName"])
        now = self.state.clock.now()
        state = params.get("DesiredState") or (
            "Cancelled" if now < experiment.end_at else "Completed"
        )
        self._begin_stop(
            experiment, now, shadow_action, desired, state, params.get("Reason"), strict=True
        )
        self.refresh(experiment)
        return {"InferenceExperimentArn": experiment.arn}

    def list_inference_experiments(self, params: dict[str, Any]) -> dict[str, Any]:
        for experiment in self.experiments.values():
            self.refresh(experiment)
        found = filter_common(list(self.experiments.values()), params, lambda e: e.created)
        if "Type" in params:
            found = [e for e in found if e.request["Type"] == params["Type"]]
        if "StatusEquals" in params:
            found = [e for e in found if e.status == params["StatusEquals"]]
        if "LastModifiedTimeAfter" in params:
            found = [e for e in found if e.last_modified > params["LastModifiedTimeAfter"]]
        if "LastModifiedTimeBefore" in params:
            found = [e for e in found if e.last_modified < params["LastModifiedTimeBefore"]]
        sort_by = params.get("SortBy", "CreationTime")
        key = sort_key(sort_by, lambda e: e.name, lambda e: e.created, lambda e: e.status)
        page, token = paginate(
            found,
            key,
            descending=params.get("SortOrder", "Descending") == "Descending",
            max_results=params.get("MaxResults", 10),
            next_token=params.get("NextToken"),
            scope=f"ListInferenceExperiments/{sort_by}",
        )
        return with_token({"InferenceExperiments": [_summary(e) for e in page]}, token)

    def delete_inference_experiment(self, params: dict[str, Any]) -> dict[str, Any]:
        experiment = self.get(params["Name"])
        if experiment.status in ACTIVE:
            raise errors.conflict(
                f'Inference experiment "{experiment.arn}" is {experiment.status}; stop it before '
                "deleting it."
            )
        del self.experiments[experiment.name.lower()]
        self.state.tags.pop(experiment.arn, None)
        return {"InferenceExperimentArn": experiment.arn}

    # -- the lifecycle ---------------------------------------------------------------------
    def refresh(self, experiment: Experiment) -> None:
        now = self.state.clock.now()
        if experiment.status in ("Creating", "Created"):
            ready = experiment.created + timedelta(seconds=self.state.durations.experiment_creating)
            if now < ready:
                return
            begin = max(ready, experiment.start_at)
            if now < begin:
                if experiment.status == "Creating":
                    experiment.move("Created", ready)
                return
            self._deploy(experiment, begin)
        if experiment.status == "Starting":
            endpoint = self._endpoint(experiment)
            if endpoint is None:
                experiment.status_reason = "The endpoint was deleted while the experiment started."
                experiment.desired_state = "Cancelled"
                experiment.finish(now)
                return
            if endpoint.pending is not None:
                return
            if endpoint.config_name != experiment.shadow_config:
                experiment.status_reason = endpoint.failure_reason or (
                    "The shadow variant could not be deployed."
                )
                experiment.desired_state = "Cancelled"
                experiment.finish(endpoint.last_modified)
                return
            experiment.running_since = endpoint.last_modified
            experiment.move("Running", endpoint.last_modified)
        if experiment.status == "Running":
            if now < experiment.end_at:
                self._publish(experiment, now)
                return
            self._begin_stop(experiment, experiment.end_at, "Remove", [], "Completed", None)
        if experiment.status == "Stopping":
            endpoint = self._endpoint(experiment)
            if endpoint is None:
                experiment.finish(now)
            elif endpoint.pending is None:
                if endpoint.config_name != experiment.final_config and endpoint.failure_reason:
                    experiment.status_reason = endpoint.failure_reason
                experiment.finish(endpoint.last_modified)

    def _serving_request(self, endpoint: Endpoint) -> dict[str, Any]:
        """The CreateEndpointConfig request of what the endpoint serves (rebuilt from its
        variants when the config was deleted meanwhile)."""
        config = self.hosting.configs.get(endpoint.config_name.lower())
        if config is not None:
            return dict(config.request)
        variants = [
            {
                "VariantName": v.name,
                "ModelName": v.model_name,
                "InstanceType": v.instance_type,
                "InitialInstanceCount": v.desired_count,
                "InitialVariantWeight": v.desired_weight,
            }
            for v in endpoint.variants
        ]
        return {"EndpointConfigName": endpoint.config_name, "ProductionVariants": variants}

    def _endpoint(self, experiment: Experiment) -> Endpoint | None:
        self._observing = True
        try:
            return self.hosting.get_endpoint(experiment.endpoint_name)
        except ApiError:
            return None
        finally:
            self._observing = False

    def _deploy(self, experiment: Experiment, at: datetime) -> None:
        """Starting: SageMaker's endpoint config for the experiment, and the endpoint update."""
        endpoint = self._endpoint(experiment)
        if endpoint is None or endpoint.status != "InService" or endpoint.pending is not None:
            status = "deleted" if endpoint is None else endpoint.status
            experiment.status_reason = f"The endpoint was not InService at the start ({status})."
            experiment.desired_state = "Cancelled"
            experiment.finish(at)
            return
        experiment.original_config = endpoint.config_name  # what the endpoint reverts to
        experiment.original_request = self._serving_request(endpoint)
        source = experiment.variant(experiment.source)
        shadow = experiment.variant(experiment.shadow)
        name = self._config_name(experiment, "shadow")
        self._create_config(
            experiment,
            name,
            [_production_variant(source, weight=1.0)],
            [_production_variant(shadow, weight=experiment.sampling / 100)],
        )
        experiment.shadow_config = name
        self.hosting.start_update(endpoint, name, at)
        experiment.move("Starting", at)

    def _begin_stop(
        self,
        experiment: Experiment,
        at: datetime,
        shadow_action: str,
        desired: list[dict[str, Any]],
        desired_state: str,
        reason: str | None,
        *,
        strict: bool = False,
    ) -> None:
        """Stopping from `at`: the endpoint updated to what the actions leave (or nothing to do)."""
        endpoint = self._endpoint(experiment)
        deployed = experiment.status != "Created" and endpoint is not None
        if (
            deployed
            and endpoint is not None
            and shadow_action != "Retain"
            and (endpoint.status != "InService" or endpoint.pending is not None)
        ):
            if strict:
                raise errors.conflict(
                    f'Endpoint "{endpoint.arn}" is {endpoint.status}; stop the experiment when it '
                    "is InService."
                )
            return  # the end of the schedule: try again when the endpoint is InService
        self._publish(experiment, at)
        experiment.shadow_action = shadow_action
        experiment.desired_state = desired_state
        if reason:
            experiment.status_reason = reason
        if not deployed or endpoint is None or shadow_action == "Retain":
            experiment.finish(at)
            return
        final = self._final_config(experiment, shadow_action, desired)
        experiment.final_config = final
        experiment.move("Stopping", at)
        if endpoint.config_name == final:
            experiment.finish(at)
            return
        self.hosting.start_update(endpoint, final, at)

    def _final_config(
        self, experiment: Experiment, shadow_action: str, desired: list[dict[str, Any]]
    ) -> str:
        by_name = {v["VariantName"]: v for v in desired}
        if shadow_action == "Promote":
            chosen = by_name.get(experiment.shadow) or by_name.get(experiment.source)
            spec = dict(chosen or experiment.variant(experiment.shadow))
            spec["VariantName"] = experiment.source
            if chosen is None or chosen["VariantName"] == experiment.shadow:
                spec["ModelName"] = experiment.variant(experiment.shadow)["ModelName"]
            name = self._config_name(experiment, "promote")
            self._create_config(experiment, name, [_production_variant(spec, weight=1.0)], [])
            return name
        if experiment.source in by_name:
            name = self._config_name(experiment, "restore")
            spec = by_name[experiment.source]
            self._create_config(experiment, name, [_production_variant(spec, weight=1.0)], [])
            return name
        if experiment.original_config.lower() in self.hosting.configs:
            return experiment.original_config
        # Deleted meanwhile: the same configuration again, under SageMaker's name.
        name = self._config_name(experiment, "restore")
        request = {**experiment.original_request, "EndpointConfigName": name}
        request.pop("Tags", None)
        self.hosting.create_endpoint_config(request)
        return name

    def _config_name(self, experiment: Experiment, kind: str) -> str:
        digest = hashlib.sha256(f"{experiment.arn}/{kind}".encode()).hexdigest()[:8]
        return f"{experiment.name[:40].rstrip('-')}-{kind}-{digest}"

    def _create_config(
        self,
        experiment: Experiment,
        name: str,
        variants: list[dict[str, Any]],
        shadows: list[dict[str, Any]],
    ) -> None:
        if name.lower() in self.hosting.configs:
            return
        kept = ("KmsKeyId", "ExecutionRoleArn", "EnableNetworkIsolation", "VpcConfig")
        request: dict[str, Any] = {
            k: v for k, v in experiment.original_request.items() if k in kept
        }
        request.update(EndpointConfigName=name, ProductionVariants=variants)
        if shadows:
            request["ShadowProductionVariants"] = shadows
        self.hosting.create_endpoint_config(request)

    # -- what the experiment observes ------------------------------------------------------
    def _publish(self, experiment: Experiment, until: datetime) -> None:
        """CloudWatch metrics (and capture files) for every whole minute run before `until`."""
        if experiment.running_since is None:
            return
        first = experiment.published_until or _minute(experiment.running_since)
        last = _minute(until)
        if last - first > BACKFILL:
            first = last - BACKFILL
        traffic = self.traffic.get(experiment.endpoint_name.lower(), Traffic())
        variants = [experiment.variant(experiment.source), experiment.variant(experiment.shadow)]
        servings = [self.serving(v["ModelName"], self._data_url(v["ModelName"])) for v in variants]
        counters = [
            experiment.counters.setdefault(v["VariantName"], VariantCounter()) for v in variants
        ]
        data: list[dict[str, Any]] = []
        captures: list[tuple[datetime, int]] = []
        minute = first
        while minute < last:
            production, shadow = counters
            replicated = (
                math.floor((production.requests + traffic.per_minute) * experiment.sampling / 100)
                - shadow.requests
            )
            for variant, serving, counter, requests in zip(
                variants, servings, counters, (traffic.per_minute, replicated), strict=True
            ):
                errors_ = counter.take(requests, serving)
                data += minute_metrics(
                    experiment.endpoint_name,
                    variant["VariantName"],
                    minute,
                    requests,
                    errors_,
                    serving,
                )
            captures.append((minute, replicated))
            minute += timedelta(minutes=1)
        experiment.published_until = max(last, first)
        if data and self.state.metrics is not None:
            self.state.metrics.put(NAMESPACE, data)
        if "DataStorageConfig" in experiment.request and traffic.images:
            self._capture(experiment, traffic.images, captures)

    def _data_url(self, model_name: str) -> str:
        model = self.hosting.models.get(model_name.lower())
        containers = model.containers if model else []
        return str(containers[0].get("ModelDataUrl", "")) if containers else ""

    def _capture(
        self, experiment: Experiment, images: Sequence[str], minutes: list[tuple[datetime, int]]
    ) -> None:
        """Data capture of the replicated requests, for both variants, in SageMaker's data
        capture format: JSON Lines under `<Destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/`,
        one record per request (`captureData.endpointInput` / `endpointOutput`,
        `eventMetadata.eventId` / `inferenceTime`, `eventVersion`). Both variants' records of
        one request carry the same `eventId` (stand-in choice: it pairs the answers). Images
        are sent as `image/jpeg` and captured in BASE64; answers are `application/json`,
        captured as JSON when that type is in `ContentType.JsonContentTypes`, else BASE64."""
        store = self.state.store
        if store is None:
            return
        config = experiment.request["DataStorageConfig"]
        json_types = set((config.get("ContentType") or {}).get("JsonContentTypes") or [])
        destination = str(config["Destination"]).rstrip("/")
        files: dict[tuple[str, str], list[str]] = {}
        for minute, replicated in minutes:
            for offset in range(min(replicated, CAPTURED_PER_MINUTE)):
                index = experiment.captured
                experiment.captured += 1
                image = images[index % len(images)]
                data = store.get(image) or b""
                when = minute + timedelta(seconds=offset * 60 / CAPTURED_PER_MINUTE)
                event = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{experiment.arn}/{index}"))
                hour = when.astimezone(UTC).strftime("%Y/%m/%d/%H")
                for variant in (experiment.source, experiment.shadow):
                    model = experiment.variant(variant)["ModelName"]
                    url = self._data_url(model)
                    answer = {
                        "prediction": predict(
                            truth_of(data), self.quality(model, url), model=url, image=image
                        )
                    }
                    record = _capture_record(
                        data, answer, event, when, "application/json" in json_types
                    )
                    files.setdefault((variant, hour), []).append(record)
        for (variant, hour), records in files.items():
            key = hashlib.sha256("".join(records).encode()).hexdigest()[:12]
            uri = f"{destination}/{experiment.endpoint_name}/{variant}/{hour}/{key}.jsonl"
            store.put(uri, ("\n".join(records) + "\n").encode(), "application/jsonlines")


def _schedule(schedule: dict[str, Any], now: datetime) -> tuple[datetime, datetime]:
    start = schedule.get("StartTime") or now
    start = max(start, now)
    end = schedule.get("EndTime") or start + DEFAULT_DURATION
    if end <= start:
        raise errors.validation("Schedule.EndTime must be after Schedule.StartTime.")
    if end - start > MAX_DURATION:
        raise errors.validation(
            "The maximum duration of an inference experiment is 30 days (Schedule.EndTime - "
            "Schedule.StartTime)."
        )
    return start, end


def _production_variant(spec: dict[str, Any], *, weight: float) -> dict[str, Any]:
    infra = spec["InfrastructureConfig"]["RealTimeInferenceConfig"]
    return {
        "VariantName": spec["VariantName"],
        "ModelName": spec["ModelName"],
        "InstanceType": infra["InstanceType"],
        "InitialInstanceCount": int(infra["InstanceCount"]),
        "InitialVariantWeight": weight,
    }


def _summary(experiment: Experiment) -> dict[str, Any]:
    request = experiment.request
    out: dict[str, Any] = {
        "Name": experiment.name,
        "Type": request["Type"],
        "Schedule": {"StartTime": experiment.start_at, "EndTime": experiment.end_at},
        "Status": experiment.status,
        "CreationTime": experiment.created,
        "LastModifiedTime": experiment.last_modified,
        "RoleArn": request["RoleArn"],
    }
    if experiment.status_reason:
        out["StatusReason"] = experiment.status_reason
    if "Description" in request:
        out["Description"] = request["Description"]
    if experiment.completion_time is not None:
        out["CompletionTime"] = experiment.completion_time
    return out


def _minute(when: datetime) -> datetime:
    return when.replace(second=0, microsecond=0)


def _capture_record(
    image: bytes, answer: dict[str, Any], event: str, when: datetime, answer_as_json: bool
) -> str:
    text = json.dumps(answer, separators=(",", ":"))
    output = (
        {"data": text, "encoding": "JSON"}
        if answer_as_json
        else {"data": base64.b64encode(text.encode()).decode(), "encoding": "BASE64"}
    )
    stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = {
        "captureData": {
            "endpointInput": {
                "observedContentType": "image/jpeg",
                "mode": "INPUT",
                "data": base64.b64encode(image).decode(),
                "encoding": "BASE64",
            },
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                **output,
            },
        },
        "eventMetadata": {"eventId": event, "inferenceTime": stamp},
        "eventVersion": "0",
    }
    return json.dumps(record, separators=(",", ":"))
