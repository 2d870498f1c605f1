"""A small, realistic world for the demo: a bucket, a flow definition with completed loops,
VOC-style training/validation manifests, and an endpoint serving a built-in object-detection
model (variant `AllTraffic`). Every image the loops and manifests name is in the bucket too,
carrying its true boxes (`images.py`), so Batch Transform can evaluate models on them."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retraining_standins.detector import ModelQuality, QualityProvider, quality_table
from retraining_standins.images import image_bytes, truth_of_manifest_line
from retraining_standins.seed import VOC_CLASSES, random_bounding_boxes
from retraining_standins.stack import AwsStandins
from retraining_standins.training import model_tarball

LABEL_ATTRIBUTE = "a2i-retraining"
IMAGE_CONFIG = Path("sagemaker", "core", "image_uri_config", "object-detection.json")


@dataclass(frozen=True)
class DemoWorld:
    bucket: str
    flow_definition_arn: str
    endpoint_name: str
    model_name: str
    endpoint_config_name: str
    model_data_url: str
    image: str
    train_manifest: str
    validation_manifest: str
    role_arn: str

    def exports(self) -> dict[str, str]:
        return {
            "DEMO_BUCKET": self.bucket,
            "DEMO_FLOW_DEFINITION_ARN": self.flow_definition_arn,
            "DEMO_ENDPOINT_NAME": self.endpoint_name,
            "DEMO_MODEL_DATA_URL": self.model_data_url,
            "DEMO_IMAGE": self.image,
            "DEMO_TRAIN_MANIFEST": self.train_manifest,
            "DEMO_VALIDATION_MANIFEST": self.validation_manifest,
            "DEMO_ROLE_ARN": self.role_arn,
        }


def object_detection_image(region: str) -> str:
    """The built-in algorithm's image, read from the SageMaker SDK's shipped config data (found
    on sys.path without importing the SDK); a recognisable placeholder if it is not installed."""
    for entry in sys.path:
        candidate = Path(entry) / IMAGE_CONFIG
        if candidate.is_file():
            config: dict[str, Any] = json.loads(candidate.read_text())
            version = config["versions"]["1"]
            account = version["registries"].get(region)
            if account:
                return f"{account}.dkr.ecr.{region}.amazonaws.com/{version['repository']}:1"
    return f"emulated.dkr.ecr.{region}.amazonaws.com/object-detection:1"


def manifest_lines(
    rng: random.Random,
    bucket: str,
    prefix: str,
    count: int,
    *,
    classes: Sequence[str] = VOC_CLASSES,
    attribute: str = LABEL_ATTRIBUTE,
) -> bytes:
    lines = []
    for index in range(count):
        width, height = rng.randint(300, 800), rng.randint(300, 800)
        boxes = random_bounding_boxes(rng, classes, width, height, rng.randint(1, 3))
        lines.append(
            json.dumps(
                {
                    "source-ref": f"s3://{bucket}/{prefix}/images/{index:06d}.jpg",
                    attribute: {
                        "annotations": [
                            {
                                "class_id": list(classes).index(b["label"]),
                                "left": b["left"],
                                "top": b["top"],
                                "width": b["width"],
                                "height": b["height"],
                            }
                            for b in boxes
                        ],
                        "image_size": [{"width": width, "height": height, "depth": 3}],
                    },
                    f"{attribute}-metadata": {
                        "class-map": dict(enumerate(classes)),
                        "human-annotated": "yes",
                        "type": "groundtruth/object-detection",
                    },
                }
            )
        )
    return ("\n".join(lines) + "\n").encode()


def demo_model_quality(world: DemoWorld) -> QualityProvider:
    """The serving base model finds 60 % of the objects; every retrained model 90 %, so the
    held-out gate promotes the candidate. The gap is wide on purpose: on the demo's 20
    held-out images a 0.7 vs 0.8 pair left the 90 % interval's lower bound below 0 in 15 of
    60 simulated runs; 0.6 vs 0.9 in none (lowest bound +0.10)."""
    return quality_table({world.model_data_url: ModelQuality(0.6)}, ModelQuality(0.9))


def put_manifest_images(
    standins: AwsStandins, lines: bytes, attribute: str = LABEL_ATTRIBUTE
) -> int:
    """Put each line's image at its `source-ref`, carrying the line's boxes as its truth
    (`images.image_bytes`); the number of images written."""
    written = 0
    for text in lines.decode().splitlines():
        line = json.loads(text)
        truth = truth_of_manifest_line(line, attribute)
        if truth is not None:
            standins.put_object(line["source-ref"], image_bytes(*truth))
            written += 1
    return written


@dataclass(frozen=True)
class ServedModel:
    endpoint: str
    model: str
    config: str
    model_data_url: str
    variant: str = "AllTraffic"
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = 1


def serve_model(standins: AwsStandins, served: ServedModel, *, image: str, role_arn: str) -> None:
    """An endpoint already InService on `served.model` (its model data must be in S3)."""
    sagemaker = standins.sagemaker
    sagemaker.call(
        "CreateModel",
        ModelName=served.model,
        PrimaryContainer={"Image": image, "ModelDataUrl": served.model_data_url},
        ExecutionRoleArn=role_arn,
    )
    sagemaker.call(
        "CreateEndpointConfig",
        EndpointConfigName=served.config,
        ProductionVariants=[
            {
                "VariantName": served.variant,
                "ModelName": served.model,
                "InitialInstanceCount": served.instance_count,
                "InstanceType": served.instance_type,
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    durations = sagemaker.durations
    # Created InService: the world exists before the story starts.
    with standins.emulator.lock:
        creating, durations.endpoint_creating = durations.endpoint_creating, 0.0
        try:
            sagemaker.call(
                "CreateEndpoint", EndpointName=served.endpoint, EndpointConfigName=served.config
            )
        finally:
            durations.endpoint_creating = creating
    status = sagemaker.describe_endpoint(served.endpoint)["EndpointStatus"]
    if status != "InService":
        raise RuntimeError(f"endpoint {served.endpoint} is {status}, expected InService")


def seed_demo(standins: AwsStandins, loops: int, *, bucket: str = "a2i-demo-bucket") -> DemoWorld:
    rng = random.Random(standins.seed)
    standins.create_bucket(bucket)
    flow = standins.a2i.create_flow_definition("fd-demo", f"s3://{bucket}/a2i-results")
    standins.a2i.add_loops(flow.name, loops, interval=60.0)
    train = f"s3://{bucket}/voc/train.manifest"
    validation = f"s3://{bucket}/voc/validation.manifest"
    for uri, lines in (
        (train, manifest_lines(rng, bucket, "voc/train", 60)),
        (validation, manifest_lines(rng, bucket, "voc/validation", 20)),
    ):
        standins.put_object(uri, lines)
        put_manifest_images(standins, lines)
    model_data_url = f"s3://{bucket}/model/model.tar.gz"
    standins.put_object(model_data_url, model_tarball({"model": "demo base model"}))
    image = object_detection_image(standins.region)
    role = f"arn:aws:iam::{standins.account_id}:role/SageMakerExecution"
    serve_model(
        standins,
        ServedModel("demo-endpoint", "demo-model-v0", "demo-endpoint-config-v0", model_data_url),
        image=image,
        role_arn=role,
    )
    return DemoWorld(
        bucket=bucket,
        flow_definition_arn=flow.arn,
        endpoint_name="demo-endpoint",
        model_name="demo-model-v0",
        endpoint_config_name="demo-endpoint-config-v0",
        model_data_url=model_data_url,
        image=image,
        train_manifest=train,
        validation_manifest=validation,
        role_arn=role,
    )
