"""The world the example RetrainingPolicies name, seeded into the stand-ins from the files.

`kubectl apply -f examples/pascal-voc-detector.yaml` against the sandbox should reach Serving,
but the examples name a flow definition, buckets, manifests, an endpoint and alarms of an AWS
account the stand-ins have never heard of. This reads each example and creates what it refers
to: the buckets of every S3 URI, the flow definition (its output under `dataset.outputS3Uri`)
with enough reviewed loops for `minNewSamples`, the validation and replay manifests with their
images, the endpoint serving a base model (or the `baseModel.s3Uri` object), the rollback
alarms and the event queue.

The stand-ins emulate one account in one region: the examples of the account and region most
of them name are seeded, the others are listed as skipped with the reason.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from retraining_operator.api import RetrainingPolicySpec
from retraining_standins.demo import (
    ServedModel,
    manifest_lines,
    object_detection_image,
    put_manifest_images,
    serve_model,
)
from retraining_standins.stack import AwsStandins
from retraining_standins.training import model_tarball


@dataclass(frozen=True)
class Example:
    path: Path
    name: str
    namespace: str
    spec: RetrainingPolicySpec

    @property
    def account_and_region(self) -> tuple[str, str]:
        """From the flow definition's ARN: arn:aws:sagemaker:<region>:<account>:flow-definition/…"""
        parts = self.spec.human_loops.flow_definition_arn.split(":")
        return parts[4], parts[3]


@dataclass
class ExamplesWorld:
    account_id: str
    region: str
    seeded: list[Example] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    flows: dict[str, int] = field(default_factory=dict)  # flow definition name -> loops
    endpoints: list[str] = field(default_factory=list)

    @property
    def namespaces(self) -> list[str]:
        return sorted({example.namespace for example in self.seeded})


def read_examples(directory: Path) -> tuple[list[Example], list[tuple[Path, str]]]:
    """Every RetrainingPolicy in `directory/*.yaml` that the operator's model accepts; the files
    it refuses, with the reason."""
    examples: list[Example] = []
    refused: list[tuple[Path, str]] = []
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if not isinstance(document, dict) or document.get("kind") != "RetrainingPolicy":
                continue
            metadata = document.get("metadata") or {}
            try:
                spec = RetrainingPolicySpec.model_validate(document.get("spec") or {})
            except ValidationError as error:
                refused.append((path, f"not a valid spec ({error.error_count()} errors)"))
                continue
            examples.append(
                Example(path, metadata["name"], metadata.get("namespace", "default"), spec)
            )
    return examples, refused


def emulated_account(examples: Iterable[Example]) -> tuple[str, str]:
    """The (account, region) most examples name; ties go to the first file."""
    counts = Counter(example.account_and_region for example in examples)
    if not counts:
        raise ValueError("no RetrainingPolicy examples")
    return counts.most_common(1)[0][0]


def seed_examples(
    standins: AwsStandins, examples: list[Example], refused: list[tuple[Path, str]]
) -> ExamplesWorld:
    """Create what the examples of the stand-ins' account and region refer to."""
    world = ExamplesWorld(standins.account_id, standins.region, skipped=list(refused))
    for example in examples:
        account, region = example.account_and_region
        if (account, region) != (standins.account_id, standins.region):
            world.skipped.append(
                (
                    example.path,
                    f"names account {account} in {region}; the sandbox emulates "
                    f"{standins.account_id} in {standins.region}",
                )
            )
            continue
        world.seeded.append(example)
    rng = random.Random(standins.seed)
    _buckets(standins, world.seeded)
    _flows(standins, world)
    written: set[str] = set()
    for example in world.seeded:
        _manifests(standins, example, rng, written)
        _models(standins, example, world, written)
        _alarms(standins, example)
        _queue(standins, example)
    return world


def _s3_uris(value: Any) -> Iterator[str]:
    if isinstance(value, str) and value.startswith("s3://"):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _s3_uris(item)
    elif isinstance(value, list):
        for item in value:
            yield from _s3_uris(item)


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _buckets(standins: AwsStandins, examples: list[Example]) -> None:
    buckets = {
        _split(uri)[0]
        for example in examples
        for uri in _s3_uris(example.spec.model_dump(mode="json", by_alias=True))
    }
    for bucket in sorted(buckets):
        standins.create_bucket(bucket)


def _flows(standins: AwsStandins, world: ExamplesWorld) -> None:
    """One flow definition per ARN, writing under the first example's outputS3Uri, with 10 %
    more reviewed loops than the largest minNewSamples (some answers may be quarantined)."""
    by_arn: dict[str, list[Example]] = {}
    for example in world.seeded:
        by_arn.setdefault(example.spec.human_loops.flow_definition_arn, []).append(example)
    for arn, users in by_arn.items():
        name = arn.rsplit("/", 1)[-1]
        first = users[0].spec
        flow = standins.a2i.create_flow_definition(name, first.dataset.output_s3_uri)
        loops = math.ceil(max(u.spec.dataset.min_new_samples for u in users) * 1.1)
        standins.a2i.add_loops(flow.name, loops, interval=60.0, classes=first.labels.classes)
        world.flows[name] = loops


def _manifests(
    standins: AwsStandins, example: Example, rng: random.Random, written: set[str]
) -> None:
    dataset, labels = example.spec.dataset, example.spec.labels
    manifests = [
        (dataset.validation.manifest_s3_uri, 20),
        (dataset.replay.manifest_s3_uri if dataset.replay else None, 60),
    ]
    for uri, count in manifests:
        if uri is None or uri in written:
            continue
        written.add(uri)
        bucket, key = _split(uri)
        lines = manifest_lines(
            rng,
            bucket,
            key.rsplit(".", 1)[0],
            count,
            classes=labels.classes,
            attribute=labels.attribute_name,
        )
        standins.put_object(uri, lines)
        put_manifest_images(standins, lines, labels.attribute_name)


def _models(
    standins: AwsStandins, example: Example, world: ExamplesWorld, written: set[str]
) -> None:
    spec = example.spec
    base = spec.training.base_model.s3_uri
    if base is not None and base not in written:
        written.add(base)
        standins.put_object(base, model_tarball({"model": f"base model of {example.name}"}))
    deployment = spec.deployment
    endpoint = deployment.endpoint_name
    if endpoint is None or endpoint in world.endpoints:
        return
    world.endpoints.append(endpoint)
    bucket, _ = _split(spec.training.output_s3_uri)
    model_data_url = base or f"s3://{bucket}/sandbox/base-models/{endpoint}/model.tar.gz"
    if model_data_url not in written:
        written.add(model_data_url)
        standins.put_object(model_data_url, model_tarball({"model": f"{endpoint} base model"}))
    serve_model(
        standins,
        ServedModel(
            endpoint,
            f"{endpoint}-base",
            f"{endpoint}-base-config",
            model_data_url,
            variant=deployment.variant_name,
            instance_type=deployment.instance_type,
            instance_count=deployment.initial_instance_count,
        ),
        image=object_detection_image(standins.region),
        role_arn=spec.training.role_arn,
    )


def _alarms(standins: AwsStandins, example: Example) -> None:
    """The rollback alarms, in state OK; `aws cloudwatch set-alarm-state --state-value ALARM`
    during a canary then makes the endpoint roll back, as on AWS."""
    deployment = example.spec.deployment
    cloudwatch = standins.admin_client("cloudwatch")
    for name in deployment.auto_rollback_alarms:
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/SageMaker",
            MetricName="Invocation5XXErrors",
            Dimensions=[
                {"Name": "EndpointName", "Value": deployment.endpoint_name or ""},
                {"Name": "VariantName", "Value": deployment.variant_name},
            ],
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="sandbox")


def _queue(standins: AwsStandins, example: Example) -> None:
    """The event-driven examples' queue, with A2I's status-change events routed to it."""
    events = example.spec.human_loops.events
    if events is None or standins.events is None:
        return
    url = standins.create_queue(events.sqs_queue_url.rstrip("/").rsplit("/", 1)[-1])
    standins.events.route(example.spec.human_loops.flow_definition_arn, url)
