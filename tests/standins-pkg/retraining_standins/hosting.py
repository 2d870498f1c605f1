"""Models, endpoint configs and endpoints, with SageMaker's deployment semantics.

Endpoint lifecycle on the emulator's clock:

* CreateEndpoint: Creating -> InService (or Failed when model data is missing in S3).
* UpdateEndpoint: Updating (new fleet provisioning for `Durations.endpoint_updating`), then the
  baking period from the `DeploymentConfig` (blue/green wait intervals + termination wait, or
  rolling batches x wait interval), then InService on the new config. If any alarm named in
  `AutoRollbackConfiguration.Alarms` is in state ALARM whenever the endpoint is observed after
  provisioning and before baking ends (an observation after the window samples once, as if
  within it), the endpoint goes RollingBack -> InService on the OLD config with a
  FailureReason naming the alarm. A failed provisioning (planned with `fail_next_update`, or
  missing model data) returns to InService on the old config with FailureReason, as AWS does.
* Only an InService endpoint may be updated ("Cannot update in-progress endpoint ...").
* RetainAllVariantProperties: same-named variants keep their live desired instance count and
  weight (minus `ExcludeRetainedVariantProperties`); without it the new config's
  `InitialInstanceCount`/`InitialVariantWeight` replace them (an autoscaled fleet shrinks).
* An UpdateEndpoint that changes the instance type of a variant registered with Application
  Auto Scaling (`autoscaling.py`) is refused, as AWS documents.
* UpdateEndpointWeightsAndCapacities: DesiredWeight changes at once, CurrentWeight after
  `Durations.endpoint_weights` (Updating meanwhile).
* Shadow variants (`ShadowProductionVariants` of a config, as AWS documents them): at most one,
  and then exactly one production variant; deployed with the config, shown by DescribeEndpoint
  as `ShadowProductionVariants`. Inference experiments (`experiments.py`) deploy them through
  `start_update`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from retraining_standins import errors
from retraining_standins.model import SAGEMAKER, shared_members
from retraining_standins.paging import name_key, paginate, time_key
from retraining_standins.state import EmulatorState

IN_PROGRESS = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")


@dataclass
class Model:
    name: str
    arn: str
    request: dict[str, Any]
    created: datetime

    @property
    def containers(self) -> list[dict[str, Any]]:
        if self.request.get("PrimaryContainer"):
            return [self.request["PrimaryContainer"]]
        return list(self.request.get("Containers") or [])

    def describe(self) -> dict[str, Any]:
        passthrough = shared_members(
            SAGEMAKER, ("CreateModel", "input"), ("DescribeModel", "output")
        )
        out = {k: v for k, v in self.request.items() if k in passthrough}
        out.update(
            ModelName=self.name,
            ModelArn=self.arn,
            CreationTime=self.created,
            EnableNetworkIsolation=bool(self.request.get("EnableNetworkIsolation", False)),
        )
        return out


@dataclass
class EndpointConfig:
    name: str
    arn: str
    request: dict[str, Any]
    created: datetime

    @property
    def variants(self) -> list[dict[str, Any]]:
        return list(self.request["ProductionVariants"])

    @property
    def shadow_variants(self) -> list[dict[str, Any]]:
        return list(self.request.get("ShadowProductionVariants") or [])

    def describe(self) -> dict[str, Any]:
        passthrough = shared_members(
            SAGEMAKER, ("CreateEndpointConfig", "input"), ("DescribeEndpointConfig", "output")
        )
        out = {k: v for k, v in self.request.items() if k in passthrough}
        out.update(
            EndpointConfigName=self.name, EndpointConfigArn=self.arn, CreationTime=self.created
        )
        return out


@dataclass
class Variant:
    name: str
    model_name: str
    image: str
    instance_type: str | None
    current_weight: float
    desired_weight: float
    current_count: int
    desired_count: int
    resolved_at: datetime

    def summary(self) -> dict[str, Any]:
        digest = hashlib.sha256(self.image.encode()).hexdigest()
        repo = self.image.rsplit(":", 1)[0] if ":" in self.image.rsplit("/", 1)[-1] else self.image
        return {
            "VariantName": self.name,
            "DeployedImages": [
                {
                    "SpecifiedImage": self.image,
                    "ResolvedImage": f"{repo}@sha256:{digest}",
                    "ResolutionTime": self.resolved_at,
                }
            ],
            "CurrentWeight": self.current_weight,
            "DesiredWeight": self.desired_weight,
            "CurrentInstanceCount": self.current_count,
            "DesiredInstanceCount": self.desired_count,
        }


@dataclass
class PendingOp:
    kind: str  # Create | Update | Weights | Delete
    started: datetime
    ready_at: datetime
    """Create/Weights/Delete: done. Update: new fleet provisioned (baking starts)."""
    config_name: str | None = None
    bake_until: datetime | None = None
    alarms: list[str] = field(default_factory=list)
    fail_reason: str | None = None
    rollback_until: datetime | None = None
    rollback_reason: str | None = None
    retain_variant_properties: bool = False
    excluded_properties: frozenset[str] = frozenset()
    """ExcludeRetainedVariantProperties: DesiredInstanceCount / DesiredWeight come from the
    new config even when variant properties are retained."""


@dataclass
class Endpoint:
    name: str
    arn: str
    created: datetime
    status: str
    last_modified: datetime
    config_name: str
    variants: list[Variant] = field(default_factory=list)
    shadow_variants: list[Variant] = field(default_factory=list)
    failure_reason: str | None = None
    deployment_config: dict[str, Any] | None = None
    pending: PendingOp | None = None


class HostingStore:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.models: dict[str, Model] = {}
        self.configs: dict[str, EndpointConfig] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.update_failures: dict[str, str] = {}
        self.check_model_data = True
        self.is_registered: Callable[[str, str], bool] = lambda endpoint, variant: False
        """Application Auto Scaling's answer: is this variant a scalable target?"""
        self.observed: Callable[[str], None] = lambda endpoint: None
        """Told whenever an endpoint is looked up (inference experiments catch up on it)."""
        self.held_by: Callable[[str], str | None] = lambda endpoint: None
        """The inference experiment in progress on an endpoint, if any."""

    def reset(self) -> None:
        self.models.clear()
        self.configs.clear()
        self.endpoints.clear()
        self.update_failures.clear()
        self.check_model_data = True

    def arns(self) -> set[str]:
        return (
            {m.arn for m in self.models.values()}
            | {c.arn for c in self.configs.values()}
            | {e.arn for e in self.endpoints.values()}
        )

    # -- lookups ---------------------------------------------------------------------------
    def get_model(self, name: str) -> Model:
        model = self.models.get(name.lower())
        if model is None:
            raise errors.validation(f'Could not find model "{self.state.arn("model", name)}".')
        return model

    def get_config(self, name: str) -> EndpointConfig:
        config = self.configs.get(name.lower())
        if config is None:
            arn = self.state.arn("endpoint-config", name)
            raise errors.validation(f'Could not find endpoint configuration "{arn}".')
        return config

    def get_endpoint(self, name: str) -> Endpoint:
        self.observed(name)
        self._refresh(name.lower())
        endpoint = self.endpoints.get(name.lower())
        if endpoint is None:
            raise errors.validation(
                f'Could not find endpoint "{self.state.arn("endpoint", name)}".'
            )
        return endpoint

    # -- models ----------------------------------------------------------------------------
    def create_model(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ModelName"]
        arn = self.state.arn("model", name)
        if name.lower() in self.models:
            raise errors.validation(f'Cannot create already existing model "{arn}".')
        if not params.get("PrimaryContainer") and not params.get("Containers"):
            raise errors.validation("Either PrimaryContainer or Containers must be specified.")
        model = Model(name, arn, dict(params), self.state.clock.now())
        self.models[name.lower()] = model
        self.state.add_tags(arn, params.get("Tags"))
        return {"ModelArn": arn}

    def describe_model(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.get_model(params["ModelName"]).describe()

    def delete_model(self, params: dict[str, Any]) -> dict[str, Any]:
        model = self.get_model(params["ModelName"])
        del self.models[model.name.lower()]
        self.state.tags.pop(model.arn, None)
        return {}

    def list_models(self, params: dict[str, Any]) -> dict[str, Any]:
        models = _filter(list(self.models.values()), params)
        page, token = self._page(models, params, "ListModels")
        summaries = [
            {"ModelName": m.name, "ModelArn": m.arn, "CreationTime": m.created} for m in page
        ]
        return _with_token({"Models": summaries}, token)

    # -- endpoint configs ------------------------------------------------------------------
    def create_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointConfigName"]
        arn = self.state.arn("endpoint-config", name)
        if name.lower() in self.configs:
            raise errors.validation(
                f'Cannot create already existing endpoint configuration "{arn}".'
            )
        seen: set[str] = set()
        shadows = list(params.get("ShadowProductionVariants") or [])
        if len(shadows) > 1:
            raise errors.validation(
                "An endpoint configuration supports at most one shadow variant."
            )
        if shadows and len(params["ProductionVariants"]) != 1:
            raise errors.validation(
                "An endpoint configuration with a shadow variant must have exactly one "
                "production variant."
            )
        for variant in [*params["ProductionVariants"], *shadows]:
            if variant["VariantName"].lower() in seen:
                raise errors.validation(f"Duplicate VariantName {variant['VariantName']!r}.")
            seen.add(variant["VariantName"].lower())
            self.get_model(variant["ModelName"])
            if not variant.get("ServerlessConfig") and not (
                variant.get("InstanceType") and variant.get("InitialInstanceCount")
            ):
                raise errors.validation(
                    f"Variant {variant['VariantName']}: InstanceType and InitialInstanceCount "
                    "are required for instance-based variants."
                )
        config = EndpointConfig(name, arn, dict(params), self.state.clock.now())
        self.configs[name.lower()] = config
        self.state.add_tags(arn, params.get("Tags"))
        return {"EndpointConfigArn": arn}

    def describe_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.get_config(params["EndpointConfigName"]).describe()

    def delete_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        config = self.get_config(params["EndpointConfigName"])
        del self.configs[config.name.lower()]
        self.state.tags.pop(config.arn, None)
        return {}

    def list_endpoint_configs(self, params: dict[str, Any]) -> dict[str, Any]:
        configs = _filter(list(self.configs.values()), params)
        page, token = self._page(configs, params, "ListEndpointConfigs")
        summaries = [
            {"EndpointConfigName": c.name, "EndpointConfigArn": c.arn, "CreationTime": c.created}
            for c in page
        ]
        return _with_token({"EndpointConfigs": summaries}, token)

    # -- endpoints -------------------------------------------------------------------------
    def fail_next_update(self, endpoint_name: str, reason: str) -> None:
        self.update_failures[endpoint_name.lower()] = reason

    def create_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        arn = self.state.arn("endpoint", name)
        self._refresh(name.lower())
        if name.lower() in self.endpoints:
            raise errors.validation(f'Cannot create already existing endpoint "{arn}".')
        config = self.get_config(params["EndpointConfigName"])
        now = self.state.clock.now()
        ready = now + timedelta(seconds=self.state.durations.endpoint_creating)
        endpoint = Endpoint(
            name=name,
            arn=arn,
            created=now,
            status="Creating",
            last_modified=now,
            config_name=config.name,
            deployment_config=params.get("DeploymentConfig"),
            pending=PendingOp("Create", now, ready, config_name=config.name),
        )
        self.endpoints[name.lower()] = endpoint
        self.state.add_tags(arn, params.get("Tags"))
        return {"EndpointArn": arn}

    def _require_in_service(self, endpoint: Endpoint) -> None:
        if endpoint.status in IN_PROGRESS:
            raise errors.validation(f'Cannot update in-progress endpoint "{endpoint.arn}".')
        if endpoint.status != "InService":
            raise errors.validation(
                f'Cannot update endpoint "{endpoint.arn}" in status {endpoint.status}.'
            )

    def start_update(self, endpoint: Endpoint, config_name: str, at: datetime) -> None:
        """SageMaker's own update of an InService endpoint to `config_name` from `at` (an
        inference experiment deploying or removing its shadow variant): Updating for
        `Durations.endpoint_updating`, no baking, the endpoint's deployment config kept. A
        planned `fail_next_update` applies, as to UpdateEndpoint."""
        self._require_in_service(endpoint)
        config = self.get_config(config_name)
        ready = at + timedelta(seconds=self.state.durations.endpoint_updating)
        endpoint.pending = PendingOp(
            "Update",
            at,
            ready,
            config_name=config.name,
            bake_until=ready,
            fail_reason=self.update_failures.pop(endpoint.name.lower(), None),
        )
        endpoint.status = "Updating"
        endpoint.last_modified = at

    def _require_no_experiment(self, endpoint: Endpoint) -> None:
        # Stand-in choice: AWS does not document it, but an update under a running shadow
        # test would be undone when the test reverts the endpoint.
        experiment = self.held_by(endpoint.name)
        if experiment is not None:
            raise errors.validation(
                f'Cannot update endpoint "{endpoint.arn}" while inference experiment '
                f"{experiment} is in progress on it; stop the experiment first."
            )

    def update_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        endpoint = self.get_endpoint(params["EndpointName"])
        self._require_in_service(endpoint)
        self._require_no_experiment(endpoint)
        config = self.get_config(params["EndpointConfigName"])
        deployment = params.get("DeploymentConfig")
        if deployment is None and params.get("RetainDeploymentConfig"):
            deployment = endpoint.deployment_config
        _check_deployment(deployment)
        if params.get("ExcludeRetainedVariantProperties") and not params.get(
            "RetainAllVariantProperties"
        ):
            raise errors.validation(
                "ExcludeRetainedVariantProperties requires RetainAllVariantProperties."
            )
        self._check_autoscaled_instance_types(endpoint, config)
        now = self.state.clock.now()
        ready = now + timedelta(seconds=self.state.durations.endpoint_updating)
        bake = _bake_seconds(deployment, sum(v.current_count for v in endpoint.variants))
        alarms = [
            a["AlarmName"]
            for a in ((deployment or {}).get("AutoRollbackConfiguration") or {}).get("Alarms") or []
        ]
        endpoint.pending = PendingOp(
            "Update",
            now,
            ready,
            config_name=config.name,
            bake_until=ready + timedelta(seconds=bake),
            alarms=alarms,
            fail_reason=self.update_failures.pop(endpoint.name.lower(), None),
            retain_variant_properties=bool(params.get("RetainAllVariantProperties")),
            excluded_properties=frozenset(
                p["VariantPropertyType"]
                for p in params.get("ExcludeRetainedVariantProperties") or []
            ),
        )
        endpoint.deployment_config = deployment
        endpoint.status = "Updating"
        endpoint.last_modified = now
        return {"EndpointArn": endpoint.arn}

    def _check_autoscaled_instance_types(self, endpoint: Endpoint, config: EndpointConfig) -> None:
        """AWS refuses an update that changes the instance type of a variant registered
        with Application Auto Scaling (it must be deregistered first)."""
        live = {v.name: v for v in endpoint.variants}
        for spec in config.variants:
            old = live.get(spec["VariantName"])
            if (
                old is not None
                and old.instance_type != spec.get("InstanceType")
                and self.is_registered(endpoint.name, old.name)
            ):
                raise errors.validation(
                    f"The variant {old.name} of endpoint {endpoint.name} is registered for "
                    "automatic scaling; deregister it from Application Auto Scaling before "
                    f"changing its instance type from {old.instance_type} to "
                    f"{spec.get('InstanceType')}."
                )

    def update_endpoint_weights_and_capacities(self, params: dict[str, Any]) -> dict[str, Any]:
        endpoint = self.get_endpoint(params["EndpointName"])
        self._require_in_service(endpoint)
        self._require_no_experiment(endpoint)
        by_name = {v.name: v for v in endpoint.variants}
        missing = [d["VariantName"] for d in params["DesiredWeightsAndCapacities"]]
        missing = [n for n in missing if n not in by_name]
        if missing:
            raise errors.validation(
                f"The variant name(s) {', '.join(missing)} is/are not present in the "
                f'endpoint "{endpoint.arn}".'
            )
        for desired in params["DesiredWeightsAndCapacities"]:
            if "DesiredWeight" not in desired and "DesiredInstanceCount" not in desired:
                raise errors.validation(
                    f"Variant {desired['VariantName']}: specify DesiredWeight or "
                    "DesiredInstanceCount."
                )
        for desired in params["DesiredWeightsAndCapacities"]:
            variant = by_name[desired["VariantName"]]
            if "DesiredWeight" in desired:
                variant.desired_weight = float(desired["DesiredWeight"])
            if "DesiredInstanceCount" in desired:
                variant.desired_count = int(desired["DesiredInstanceCount"])
        if sum(v.desired_weight for v in endpoint.variants) <= 0:
            raise errors.validation("The sum of the variant weights must be greater than 0.")
        now = self.state.clock.now()
        ready = now + timedelta(seconds=self.state.durations.endpoint_weights)
        endpoint.pending = PendingOp("Weights", now, ready)
        endpoint.status = "Updating"
        endpoint.last_modified = now
        return {"EndpointArn": endpoint.arn}

    def delete_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        endpoint = self.get_endpoint(params["EndpointName"])
        if endpoint.status in IN_PROGRESS:
            raise errors.validation(f'Cannot update in-progress endpoint "{endpoint.arn}".')
        now = self.state.clock.now()
        ready = now + timedelta(seconds=self.state.durations.endpoint_deleting)
        endpoint.pending = PendingOp("Delete", now, ready)
        endpoint.status = "Deleting"
        endpoint.last_modified = now
        return {}

    def describe_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        endpoint = self.get_endpoint(params["EndpointName"])
        out: dict[str, Any] = {
            "EndpointName": endpoint.name,
            "EndpointArn": endpoint.arn,
            "EndpointConfigName": endpoint.config_name,
            "EndpointStatus": endpoint.status,
            "CreationTime": endpoint.created,
            "LastModifiedTime": endpoint.last_modified,
        }
        if endpoint.variants:
            out["ProductionVariants"] = [v.summary() for v in endpoint.variants]
        if endpoint.shadow_variants:
            out["ShadowProductionVariants"] = [v.summary() for v in endpoint.shadow_variants]
        if endpoint.failure_reason:
            out["FailureReason"] = endpoint.failure_reason
        if endpoint.deployment_config:
            out["LastDeploymentConfig"] = endpoint.deployment_config
        pending = endpoint.pending
        if pending is not None and pending.kind == "Update" and pending.config_name:
            out["PendingDeploymentSummary"] = self._pending_summary(endpoint, pending)
        return out

    def _pending_summary(self, endpoint: Endpoint, pending: PendingOp) -> dict[str, Any]:
        assert pending.config_name is not None
        now = self.state.clock.now()
        if pending.rollback_until is not None:
            stage = "Deleting"
        elif now < pending.ready_at:
            stage = "Creating"
        else:
            stage = "Baking"
        summaries: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for shadow, variants in summaries.items():
            for variant in self._variants_for(
                pending.config_name, endpoint, pending, now, shadow=shadow
            ):
                summary = variant.summary()
                count = 0 if stage == "Creating" else variant.desired_count
                summary["CurrentInstanceCount"] = count
                summary["InstanceType"] = variant.instance_type
                summary["VariantStatus"] = [{"Status": stage, "StartTime": pending.started}]
                if summary["InstanceType"] is None:
                    del summary["InstanceType"]
                variants.append(summary)
        out: dict[str, Any] = {
            "EndpointConfigName": pending.config_name,
            "ProductionVariants": summaries[False],
            "StartTime": pending.started,
        }
        if summaries[True]:
            out["ShadowProductionVariants"] = summaries[True]
        return out

    def list_endpoints(self, params: dict[str, Any]) -> dict[str, Any]:
        for key in list(self.endpoints):
            self._refresh(key)
        endpoints = _filter(list(self.endpoints.values()), params)
        if "StatusEquals" in params:
            endpoints = [e for e in endpoints if e.status == params["StatusEquals"]]
        if "LastModifiedTimeAfter" in params:
            endpoints = [e for e in endpoints if e.last_modified > params["LastModifiedTimeAfter"]]
        if "LastModifiedTimeBefore" in params:
            endpoints = [e for e in endpoints if e.last_modified < params["LastModifiedTimeBefore"]]
        page, token = self._page(endpoints, params, "ListEndpoints")
        summaries = [
            {
                "EndpointName": e.name,
                "EndpointArn": e.arn,
                "CreationTime": e.created,
                "LastModifiedTime": e.last_modified,
                "EndpointStatus": e.status,
            }
            for e in page
        ]
        return _with_token({"Endpoints": summaries}, token)

    # -- lifecycle -------------------------------------------------------------------------
    def _variants_for(
        self,
        config_name: str,
        endpoint: Endpoint | None,
        pending: PendingOp | None,
        at: datetime,
        *,
        shadow: bool = False,
    ) -> list[Variant]:
        config = self.configs.get(config_name.lower())
        live = (endpoint.shadow_variants if shadow else endpoint.variants) if endpoint else []
        if config is None:  # deleted after the call: keep what is known
            return list(live)
        current = {v.name: v for v in live}
        retain = pending is not None and pending.retain_variant_properties
        excluded = pending.excluded_properties if pending is not None else frozenset()
        variants = []
        for spec in config.shadow_variants if shadow else config.variants:
            model = self.models.get(spec["ModelName"].lower())
            image = (
                model.containers[0].get("Image", "unknown") if model and model.containers else ""
            )
            weight = float(spec.get("InitialVariantWeight", 1.0))
            count = int(spec.get("InitialInstanceCount", 1))
            old = current.get(spec["VariantName"])
            if retain and old is not None:
                # The live desired values survive the update, as AWS documents for
                # autoscaled endpoints, unless excluded.
                if "DesiredWeight" not in excluded:
                    weight = old.desired_weight
                if "DesiredInstanceCount" not in excluded:
                    count = old.desired_count
            variants.append(
                Variant(
                    name=spec["VariantName"],
                    model_name=spec["ModelName"],
                    image=image or "unknown",
                    instance_type=spec.get("InstanceType"),
                    current_weight=weight,
                    desired_weight=weight,
                    current_count=count,
                    desired_count=count,
                    resolved_at=at,
                )
            )
        return variants

    def _missing_model_data(self, config_name: str) -> str | None:
        store = self.state.store
        config = self.configs.get(config_name.lower())
        if not self.check_model_data or store is None or config is None:
            return None
        for spec in [*config.variants, *config.shadow_variants]:
            model = self.models.get(spec["ModelName"].lower())
            for index, container in enumerate(model.containers if model else [], start=1):
                url = container.get("ModelDataUrl")
                if url and str(url).startswith("s3://") and not store.exists(str(url)):
                    return (
                        f'Failed to download model data for container "container_{index}" from '
                        f'URL: "{url}". Please ensure that there is an object located at the URL '
                        "and that the role passed to CreateModel has permissions to download the "
                        "object."
                    )
        return None

    def _refresh(self, key: str) -> None:
        endpoint = self.endpoints.get(key)
        if endpoint is None or endpoint.pending is None:
            return
        now = self.state.clock.now()
        pending = endpoint.pending
        if pending.kind == "Create":
            if now < pending.ready_at:
                return
            assert pending.config_name is not None
            problem = self._missing_model_data(pending.config_name)
            endpoint.pending = None
            endpoint.last_modified = pending.ready_at
            if problem:
                endpoint.status = "Failed"
                endpoint.failure_reason = problem
                return
            endpoint.status = "InService"
            endpoint.variants = self._variants_for(
                pending.config_name, None, None, pending.ready_at
            )
            endpoint.shadow_variants = self._variants_for(
                pending.config_name, None, None, pending.ready_at, shadow=True
            )
        elif pending.kind == "Weights":
            if now < pending.ready_at:
                return
            for variant in endpoint.variants:
                variant.current_weight = variant.desired_weight
                variant.current_count = variant.desired_count
            endpoint.pending = None
            endpoint.status = "InService"
            endpoint.last_modified = pending.ready_at
        elif pending.kind == "Delete":
            if now >= pending.ready_at:
                del self.endpoints[key]
                self.state.tags.pop(endpoint.arn, None)
        else:
            self._refresh_update(endpoint, pending, now)

    def _refresh_update(self, endpoint: Endpoint, pending: PendingOp, now: datetime) -> None:
        assert pending.config_name is not None
        assert pending.bake_until is not None
        if pending.rollback_until is None:
            if now < pending.ready_at:
                return
            problem = pending.fail_reason or self._missing_model_data(pending.config_name)
            if problem:
                self._end_update(endpoint, pending.ready_at, failure=problem)
                return
            alarming = self._alarming(pending.alarms)
            if alarming:
                start = min(now, pending.bake_until)
                pending.rollback_until = start + timedelta(
                    seconds=self.state.durations.endpoint_rolling_back
                )
                pending.rollback_reason = (
                    "Rolled back to the previous endpoint configuration: CloudWatch alarm(s) "
                    f"{', '.join(alarming)} in ALARM state during the deployment of endpoint "
                    f'configuration "{pending.config_name}".'
                )
                endpoint.status = "RollingBack"
                endpoint.last_modified = start
            elif now >= pending.bake_until:
                endpoint.variants = self._variants_for(
                    pending.config_name, endpoint, pending, pending.bake_until
                )
                endpoint.shadow_variants = self._variants_for(
                    pending.config_name, endpoint, pending, pending.bake_until, shadow=True
                )
                endpoint.config_name = pending.config_name
                endpoint.failure_reason = None
                endpoint.status = "InService"
                endpoint.pending = None
                endpoint.last_modified = pending.bake_until
                return
        if pending.rollback_until is not None and now >= pending.rollback_until:
            self._end_update(endpoint, pending.rollback_until, failure=pending.rollback_reason)

    def _end_update(self, endpoint: Endpoint, at: datetime, *, failure: str | None) -> None:
        endpoint.failure_reason = failure
        endpoint.status = "InService"
        endpoint.pending = None
        endpoint.last_modified = at

    def _alarming(self, names: list[str]) -> list[str]:
        if not names or self.state.alarms is None:
            return []
        states = self.state.alarms.states(names)
        return [n for n in names if states.get(n) == "ALARM"]

    def _page(
        self, items: list[Any], params: Mapping[str, Any], scope: str
    ) -> tuple[list[Any], str | None]:
        sort_by = params.get("SortBy", "CreationTime")
        if sort_by == "Name":
            key = lambda i: name_key(i.name)  # noqa: E731
        else:
            key = lambda i: time_key(i.created, i.name)  # noqa: E731
        return paginate(
            items,
            key,
            descending=params.get("SortOrder", "Descending") == "Descending",
            max_results=params.get("MaxResults", 10),
            next_token=params.get("NextToken"),
            scope=f"{scope}/{sort_by}",
        )


def _check_deployment(deployment: Mapping[str, Any] | None) -> None:
    if not deployment:
        return
    blue_green = deployment.get("BlueGreenUpdatePolicy")
    rolling = deployment.get("RollingUpdatePolicy")
    if blue_green and rolling:
        raise errors.validation(
            "Only one of BlueGreenUpdatePolicy and RollingUpdatePolicy may be specified."
        )
    if blue_green:
        routing = blue_green["TrafficRoutingConfiguration"]
        kind = routing["Type"]
        if kind == "CANARY" and not routing.get("CanarySize"):
            raise errors.validation("CanarySize is required for CANARY traffic routing.")
        if kind == "LINEAR" and not routing.get("LinearStepSize"):
            raise errors.validation("LinearStepSize is required for LINEAR traffic routing.")
        if kind == "ALL_AT_ONCE" and (routing.get("CanarySize") or routing.get("LinearStepSize")):
            raise errors.validation(
                "CanarySize and LinearStepSize are not allowed for ALL_AT_ONCE traffic routing."
            )
        for size_key in ("CanarySize", "LinearStepSize"):
            size = routing.get(size_key)
            if size and size["Type"] == "CAPACITY_PERCENT" and size["Value"] > 100:
                raise errors.validation(f"{size_key} percentage must not exceed 100.")


def _bake_seconds(deployment: Mapping[str, Any] | None, instances: int) -> float:
    if not deployment:
        return 0.0
    blue_green = deployment.get("BlueGreenUpdatePolicy")
    if blue_green:
        routing = blue_green["TrafficRoutingConfiguration"]
        wait = float(routing.get("WaitIntervalInSeconds", 0))
        steps = 0
        if routing["Type"] == "CANARY":
            steps = 1
        elif routing["Type"] == "LINEAR":
            size = routing["LinearStepSize"]
            if size["Type"] == "CAPACITY_PERCENT":
                steps = max(1, math.ceil(100 / size["Value"]) - 1)
            else:
                steps = max(1, math.ceil(max(instances, 1) / size["Value"]) - 1)
        return float(steps * wait + float(blue_green.get("TerminationWaitInSeconds", 0)))
    rolling = deployment.get("RollingUpdatePolicy")
    if rolling:
        size = rolling["MaximumBatchSize"]
        instances = max(instances, 1)
        if size["Type"] == "CAPACITY_PERCENT":
            batch = max(1, math.floor(instances * int(size["Value"]) / 100))
        else:
            batch = max(1, int(size["Value"]))
        return float(math.ceil(instances / batch) * float(rolling["WaitIntervalInSeconds"]))
    return 0.0


def _filter(items: list[Any], params: Mapping[str, Any]) -> list[Any]:
    if "NameContains" in params:
        needle = str(params["NameContains"]).lower()
        items = [i for i in items if needle in i.name.lower()]
    if "CreationTimeAfter" in params:
        items = [i for i in items if i.created > params["CreationTimeAfter"]]
    if "CreationTimeBefore" in params:
        items = [i for i in items if i.created < params["CreationTimeBefore"]]
    return items


def _with_token(result: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token:
        result["NextToken"] = token
    return result
