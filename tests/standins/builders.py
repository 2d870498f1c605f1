"""Request builders shared by the stand-in tests."""

from __future__ import annotations

from typing import Any

from retraining_standins.stack import AwsStandins

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"


def training_job(bucket: str, name: str = "job-1", **overrides: Any) -> dict[str, Any]:
    """A CreateTrainingJob request for built-in object detection (augmented manifests)."""

    def manifest_channel(channel: str) -> dict[str, Any]:
        return {
            "ChannelName": channel,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "AugmentedManifestFile",
                    "S3Uri": f"s3://{bucket}/manifests/{channel}.manifest",
                    "S3DataDistributionType": "FullyReplicated",
                    "AttributeNames": ["source-ref", "a2i-retraining"],
                }
            },
            "ContentType": "application/x-recordio",
            "RecordWrapperType": "RecordIO",
            "InputMode": "Pipe",
        }

    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "Pipe"},
        "HyperParameters": {"num_classes": "20", "learning_rate": "0.0001"},
        "InputDataConfig": [
            manifest_channel("train"),
            manifest_channel("validation"),
            {
                "ChannelName": "model",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{bucket}/model/model.tar.gz",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "application/x-sagemaker-model",
                "InputMode": "File",
            },
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/incremental-training"},
        "ResourceConfig": {
            "InstanceType": "ml.p3.2xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 50,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 360000},
    }
    request.update(overrides)
    return request


def upload_training_inputs(aws: AwsStandins, bucket: str) -> None:
    for channel in ("train", "validation"):
        aws.put_object(f"s3://{bucket}/manifests/{channel}.manifest", '{"source-ref": "x"}\n')
    aws.put_object(f"s3://{bucket}/model/model.tar.gz", b"model")


def model_and_config(
    sm: Any, bucket: str, suffix: str, *, variant: str = "AllTraffic", upload: AwsStandins | None
) -> str:
    """CreateModel + CreateEndpointConfig (one variant); returns the config name."""
    data = f"s3://{bucket}/models/{suffix}/model.tar.gz"
    if upload is not None:
        upload.put_object(data, b"model")
    sm.create_model(
        ModelName=f"model-{suffix}",
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": data},
        ExecutionRoleArn=ROLE,
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"config-{suffix}",
        ProductionVariants=[
            {
                "VariantName": variant,
                "ModelName": f"model-{suffix}",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.xlarge",
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    return f"config-{suffix}"
