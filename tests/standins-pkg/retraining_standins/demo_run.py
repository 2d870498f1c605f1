"""The demo: the whole retraining loop on local stand-ins, narrated as it happens.

Starts a real kube-apiserver + etcd (envtest binaries), the AWS stand-ins (S3/STS/CloudWatch
on moto, the SageMaker + A2I emulator on a real-time clock with short lifecycles), installs
the CRD, seeds an A2I flow definition with reviewed images and an endpoint serving a model,
applies a RetrainingPolicy, runs the real operator (`retraining-operator run`, a subprocess)
and prints each step: polled -> manifest -> training job -> held-out comparison (both models
predict the same images through Batch Transform; the operator scores them) -> canary -> serving.
Exit 0 when the loop closes (the endpoint serves the new model), 1 otherwise.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, TextIO

from retraining_operator.api import API_GROUP, API_VERSION, PLURAL
from retraining_standins.clock import Clock
from retraining_standins.cluster import (
    BackgroundStart,
    OperatorChild,
    clients,
    install_crd,
    operator_argv,
)
from retraining_standins.demo import (
    DemoWorld,
    demo_model_quality,
    manifest_lines,
    put_manifest_images,
    seed_demo,
)
from retraining_standins.kubeapi import ControlPlane, find_assets, tail
from retraining_standins.seed import VOC_CLASSES
from retraining_standins.stack import AwsStandins, isolated_aws_env
from retraining_standins.state import Durations

# bench/operator.py still imports these under their old names (now in `cluster`).
_clients = clients
_install_crd = install_crd

NAMESPACE = "demo"
POLICY = "pascal-detector"

# Short lifecycles (seconds) so the whole loop fits in well under two minutes.
DEMO_DURATIONS = Durations(
    training_starting=2.0,
    training_downloading=2.0,
    training_training=4.0,
    training_uploading=2.0,
    training_stopping=2.0,
    endpoint_creating=3.0,
    endpoint_updating=3.0,
    endpoint_rolling_back=3.0,
    endpoint_weights=2.0,
    endpoint_deleting=2.0,
    tuning_stopping=2.0,
    transform=2.0,
    transform_stopping=1.0,
)
# The narrated demo's own, shorter still (the reliability scenes build on DEMO_DURATIONS): each
# stage stays visible for at least one of the narrator's half-second looks.
NARRATED_DURATIONS = dataclasses.replace(
    DEMO_DURATIONS,
    training_starting=1.0,
    training_downloading=1.0,
    training_training=2.0,
    training_uploading=1.0,
    endpoint_updating=2.0,
)


def demo_policy(world: DemoWorld, *, min_new_samples: int) -> dict[str, Any]:
    """The seed notebook's PASCAL VOC detector, pointed at the stand-ins' world."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "RetrainingPolicy",
        "metadata": {"name": POLICY, "namespace": NAMESPACE},
        "spec": {
            "aws": {"region": "us-east-1"},
            "humanLoops": {"flowDefinitionArn": world.flow_definition_arn, "pollInterval": "10s"},
            "labels": {"classes": list(VOC_CLASSES), "attributeName": "a2i-retraining"},
            "dataset": {
                "outputS3Uri": f"s3://{world.bucket}/a2i-results",
                "minNewSamples": min_new_samples,
                "validation": {"manifestS3Uri": world.validation_manifest},
                "replay": {"manifestS3Uri": world.train_manifest, "samplesPerNewSample": 1},
            },
            "training": {
                "roleArn": world.role_arn,
                "algorithm": "object-detection",
                "baseModel": {"fromEndpoint": True},
                "resources": {"instanceType": "ml.p3.2xlarge", "volumeSizeInGB": 50},
                "maxRuntime": "100h",
                "outputS3Uri": f"s3://{world.bucket}/a2i-results/incremental-training",
                "hyperParameters": {
                    "base_network": "resnet-50",
                    "num_classes": "20",
                    "learning_rate": "0.0001",
                    "mini_batch_size": "1",
                    "epochs": "1",
                    "image_shape": "300",
                },
            },
            "gate": {"metric": "validation:mAP", "minimum": 0.5, "maxRegression": 0.01},
            "deployment": {
                "endpointName": world.endpoint_name,
                "variantName": "AllTraffic",
                "strategy": "BlueGreen",
                "blueGreen": {
                    "trafficRouting": "Canary",
                    "canarySize": "10%",
                    "waitInterval": "5s",
                    "terminationWait": "0s",
                    "maximumExecutionTimeout": "10m",
                },
                "retainPreviousModels": 2,
            },
        },
    }


def with_held_out_gate(policy: dict[str, Any], anchor_manifest: str) -> dict[str, Any]:
    """The demo policy judging the candidate against the serving model on the same images
    (its validation manifest), and on an anchor set for forgetting (docs/gate.md)."""
    policy["spec"]["gate"]["evaluation"] = {
        "minImages": 20,
        "minImprovement": 0,
        "confidence": 0.9,
        "bootstrapSamples": 500,
        "anchorManifestS3Uri": anchor_manifest,
        "maxForgetting": 0.05,
        "instanceType": "ml.m5.xlarge",
    }
    return policy


def narrated_policy(world: DemoWorld, anchor: str, *, min_new_samples: int) -> dict[str, Any]:
    """The demo policy with the held-out gate and a 2-second canary (the other users of
    `demo_policy` keep its 5 s)."""
    policy = with_held_out_gate(demo_policy(world, min_new_samples=min_new_samples), anchor)
    policy["spec"]["deployment"]["blueGreen"]["waitInterval"] = "2s"
    return policy


def seed_anchor(aws: AwsStandins, world: DemoWorld, images: int = 40) -> str:
    """An anchor set: images like the ones the base model was validated on."""
    uri = f"s3://{world.bucket}/voc/anchor.manifest"
    lines = manifest_lines(random.Random(aws.seed + 1), world.bucket, "voc/anchor", images)
    aws.put_object(uri, lines)
    put_manifest_images(aws, lines)
    return uri


def comparison_line(comparison: dict[str, Any]) -> str:
    """One line of the held-out comparison recorded in the run's history."""
    if comparison.get("servingMAP") is None:
        return f"held-out mAP {comparison['candidateMAP']:.3f} (first deployment)"
    line = (
        f"held-out mAP {comparison['candidateMAP']:.3f} vs serving "
        f"{comparison['servingMAP']:.3f} on {comparison['images']} images, difference "
        f"{comparison['difference']:+.3f}, {comparison['confidence'] * 100:g} % interval "
        f"[{comparison['low']:+.3f}, {comparison['high']:+.3f}]"
    )
    if comparison.get("anchorCandidateMAP") is not None:
        line += (
            f"; anchor mAP {comparison['anchorCandidateMAP']:.3f} vs "
            f"{comparison.get('anchorServingMAP', 0):.3f}"
        )
    return line


class Narrator:
    """Prints what changed: phase, run stage, and every new Kubernetes Event."""

    def __init__(self, out: TextIO, began: float) -> None:
        self.out = out
        self.began = began
        self.seen_events: set[str] = set()
        self.last_line = ""

    def say(self, text: str) -> None:
        self.out.write(f"[{time.monotonic() - self.began:5.1f}s] {text}\n")
        self.out.flush()

    def status(self, status: dict[str, Any]) -> None:
        run = status.get("currentRun") or {}
        ingest = status.get("ingest") or {}
        line = (
            f"phase={status.get('phase', '-')} pending={ingest.get('pendingSamples', 0)}"
            f" stage={run.get('stage', '-')}"
            + (f" job={run['trainingJobName']}" if run.get("trainingJobName") else "")
            + "".join(
                f" transform={job}"
                for key in ("candidateJob", "servingJob")
                if (job := (run.get("evaluation") or {}).get(key))
            )
        )
        if line != self.last_line:
            self.say(line)
            self.last_line = line

    def events(self, events: list[Any]) -> None:
        for event in sorted(events, key=lambda e: e.metadata.creation_timestamp or 0):
            if event.metadata.uid in self.seen_events:
                continue
            self.seen_events.add(event.metadata.uid)
            self.say(f"  event {event.type:7} {event.reason}: {event.message}")


class DemoRun:
    def __init__(
        self,
        out: TextIO = sys.stdout,
        *,
        loops: int = 24,
        timeout: float = 110.0,
        keep: bool = False,
        assets: Path | None = None,
    ) -> None:
        self.out = out
        self.assets = assets
        self.loops = loops
        self.timeout = timeout
        self.keep = keep
        self.began = time.monotonic()
        self.narrator = Narrator(out, self.began)

    def run(self) -> int:
        """The demo in a new directory (kube-apiserver and etcd files, the operator's log),
        removed at the end unless `keep`."""
        assets = find_assets(self.assets)
        workdir = Path(tempfile.mkdtemp(prefix="rtp-demo-"))
        try:
            return self._run(assets, workdir)
        finally:
            if self.keep:
                self.narrator.say(f"kept {workdir} (operator.log, kube/: logs and etcd data)")
            else:
                shutil.rmtree(workdir, ignore_errors=True)

    def _run(self, assets: Path, workdir: Path) -> int:
        say = self.narrator.say
        plane = ControlPlane(assets, workdir=workdir / "kube")
        # The control plane starts while the AWS world is seeded: both take seconds.
        cluster = BackgroundStart(plane, [NAMESPACE])
        try:
            with AwsStandins(clock=Clock(speed=1.0), durations=NARRATED_DURATIONS) as aws:
                world = seed_demo(aws, self.loops)
                aws.sagemaker.set_metrics_provider(lambda job, hp: {"validation:mAP": 0.74})
                aws.sagemaker.set_model_quality(demo_model_quality(world))
                anchor = seed_anchor(aws, world)
                say(
                    f"AWS stand-ins up: {self.loops} reviewed images in A2I flow "
                    f"{world.flow_definition_arn.rsplit('/', 1)[-1]}, endpoint "
                    f"{world.endpoint_name} serving {world.model_name}"
                )
                api = cluster.result()
                say(
                    f"kube-apiserver up in {plane.startup_seconds:.1f}s ({assets.name}), "
                    "CRD installed"
                )
                env = {**os.environ, **isolated_aws_env(aws), "KUBECONFIG": str(plane.kubeconfig)}
                # Started before the policy is applied: its start-up overlaps the apply.
                # No AWS call budget: at the default 20/s, reading the 120 Batch Transform
                # outputs alone takes 6 s of the demo.
                argv = operator_argv([NAMESPACE], "--aws-calls-per-second=0")
                operator = OperatorChild.start(argv, env, workdir / "operator.log")
                try:
                    api["custom"].create_namespaced_custom_object(
                        API_GROUP,
                        API_VERSION,
                        NAMESPACE,
                        PLURAL,
                        narrated_policy(world, anchor, min_new_samples=min(20, self.loops)),
                    )
                    say(f"applied RetrainingPolicy {NAMESPACE}/{POLICY}")
                    say(f"operator started (pid {operator.pid}, log {operator.log})")
                    closed = self._watch(api, world, aws)
                finally:
                    operator.stop()
                if not closed:
                    say("operator log (last lines):")
                    self.out.write(textwrap.indent(tail(operator.log, 30), "    ") + "\n")
        finally:
            cluster.stop()
        say("cleaned up: operator, kube-apiserver, etcd and stand-ins stopped")
        return 0 if closed else 1

    def _watch(self, api: dict[str, Any], world: DemoWorld, aws: AwsStandins) -> bool:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            obj = api["custom"].get_namespaced_custom_object(
                API_GROUP, API_VERSION, NAMESPACE, PLURAL, POLICY
            )
            status = obj.get("status") or {}
            self.narrator.status(status)
            events = (
                api["core"]
                .list_namespaced_event(NAMESPACE, field_selector=f"involvedObject.name={POLICY}")
                .items
            )
            self.narrator.events(events)
            history = status.get("history") or []
            if history and history[0].get("outcome") != "Deployed":
                self.narrator.say(f"loop did not close: {history[0]}")
                return False
            serving = (status.get("serving") or {}).get("modelName")
            if status.get("phase") == "Serving" and serving and history:
                endpoint = aws.sagemaker.describe_endpoint(world.endpoint_name)
                self.narrator.say(
                    f"loop closed: endpoint {world.endpoint_name} is {endpoint['EndpointStatus']} "
                    f"on {endpoint['EndpointConfigName']}, serving {serving} "
                    f"(was {world.model_name}); validation:mAP {history[0].get('metricValue')}"
                )
                comparison = history[0].get("comparison")
                if not comparison:
                    self.narrator.say("no held-out comparison in the run's history")
                    return False
                self.narrator.say(f"gate judged like with like: {comparison_line(comparison)}")
                return True
            time.sleep(0.5)
        self.narrator.say(f"timed out after {self.timeout:.0f}s")
        return False
