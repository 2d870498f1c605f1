"""`retraining-operator iam-policy --execution-role`: the permissions of training.roleArn,
the role SageMaker assumes for the policy's training and transform jobs and its models.

Each test asks whether the document allows one IAM request SageMaker makes in the role's
name (support/iamcheck.py evaluates it as IAM does), and that it allows nothing beside."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from retraining_operator.api import RetrainingPolicySpec
from retraining_operator.flows.dataset import MANIFEST_PREFIX
from retraining_operator.reconcile import execution_role, iam
from support.iam_cases import REPO, example
from support.iamcheck import Request, allows

IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"
IMAGES = "s3://my-bucket/images"
SERVING_MODEL = "s3://models-before/od/model.tar.gz"
ACCOUNT_REGION = "us-east-1:111122223333"
JOB = "pascal-detector-r20261201-090000-tj-0a1b2c3d"


def spec_of(name: str, **changes: Any) -> tuple[str, RetrainingPolicySpec]:
    policy, raw = example(name)
    raw = copy.deepcopy(raw)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return policy, RetrainingPolicySpec.model_validate(raw)


def role(name: str = "pascal-voc-detector", **changes: Any) -> dict[str, Any]:
    policy, spec = spec_of(name, **changes)
    return execution_role.for_execution_role(
        policy,
        spec,
        image_uri=IMAGE,
        image_s3_prefixes=[IMAGES],
        model_data_s3_uris=[SERVING_MODEL],
    )


def s3(action: str, path: str, **context: str) -> Request:
    resource = f"arn:aws:s3:::{path}"
    return Request(f"s3:{action}", resource, context)


def logs(group: str) -> Request:
    stream = f"arn:aws:logs:{ACCOUNT_REGION}:log-group:/aws/sagemaker/{group}:log-stream:x/1"
    return Request("logs:PutLogEvents", stream)


# What the pascal example's jobs and model do in the role's name.
TRAINING_AND_SERVING = [
    s3("GetObject", "my-bucket/a2i-results/manifests/3f2a.jsonl"),  # train channel
    s3("GetObject", "my-bucket/images/2008_000123.jpg"),  # the images it names
    s3("GetObject", f"my-bucket/a2i-results/incremental-training/{JOB}/output/model.tar.gz"),
    s3("ListBucket", "my-bucket", **{"s3:prefix": "a2i-results/incremental-training/x/"}),
    s3("GetObject", "models-before/od/model.tar.gz"),  # the first run's base model
    s3("ListBucket", "models-before", **{"s3:prefix": "od/model.tar.gz"}),
    s3("PutObject", f"my-bucket/a2i-results/incremental-training/{JOB}/output/model.tar.gz"),
    Request("ecr:BatchGetImage", "arn:aws:ecr:us-east-1:811284229777:repository/object-detection"),
    Request("ecr:GetAuthorizationToken", "*"),
    logs("TrainingJobs"),
    logs("Endpoints/od-endpoint"),
    Request("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}),
]
NOT_THESE = [
    s3("GetObject", "my-bucket/a2i-results/fd/2026/12/01/09/00/00/loop/output.json"),  # reviews
    s3("GetObject", "my-bucket/a2i-results/ledger/head.json"),  # the operator's ledger
    s3("PutObject", "my-bucket/a2i-results/manifests/3f2a.jsonl"),  # the operator writes those
    s3("PutObject", "my-bucket/images/2008_000123.jpg"),
    s3("GetObject", "other-bucket/images/1.jpg"),
    s3("ListBucket", "my-bucket"),  # no listing of the whole bucket
    s3("ListBucket", "my-bucket", **{"s3:prefix": "images/"}),
    s3("PutObject", "my-bucket/a2i-results/evaluation/predictions/m/x.jpg.out"),  # no gate here
    Request("ecr:BatchGetImage", "arn:aws:ecr:us-east-1:811284229777:repository/other"),
    logs("Endpoints/another-endpoint"),
    logs("TransformJobs"),
    Request("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "Custom/Namespace"}),
    Request("sagemaker:CreateTrainingJob", f"arn:aws:sagemaker:{ACCOUNT_REGION}:training-job/x"),
    Request("iam:PassRole", "arn:aws:iam::111122223333:role/SageMakerExecution"),
    Request("kms:Decrypt", f"arn:aws:kms:{ACCOUNT_REGION}:key/any"),
    Request("ec2:CreateNetworkInterface", "*"),
]


@pytest.mark.parametrize("request_", TRAINING_AND_SERVING, ids=str)
def test_the_role_allows_what_sagemaker_does_for_the_policy(request_: Request) -> None:
    assert allows([role()], request_)


@pytest.mark.parametrize("request_", NOT_THESE, ids=str)
def test_the_role_allows_nothing_else(request_: Request) -> None:
    assert not allows([role()], request_)


def test_the_manifest_folder_is_the_one_the_dataset_flow_writes() -> None:
    assert execution_role.DATASET_MANIFESTS == MANIFEST_PREFIX


def test_the_held_out_gate_adds_its_transform_inputs_outputs_and_logs() -> None:
    document = role(gate__evaluation={"minImages": 20})
    inputs = "my-bucket/a2i-results/evaluation/inputs/r20261201-090000/candidate.manifest"
    predictions = "my-bucket/a2i-results/evaluation/predictions/m/images/1.jpg.out"
    for request_ in (s3("GetObject", inputs), s3("PutObject", predictions), logs("TransformJobs")):
        assert allows([document], request_), request_
    assert not allows([document], s3("PutObject", inputs))


def test_a_shadow_test_lets_sagemaker_deploy_and_remove_the_shadow_variant() -> None:
    endpoint = f"arn:aws:sagemaker:{ACCOUNT_REGION}:endpoint/parcel-detector"
    update = Request("sagemaker:UpdateEndpoint", endpoint)
    shadowed = role("shadow-then-canary")
    assert allows([shadowed], update)
    assert not allows([shadowed], Request("sagemaker:UpdateEndpoint", endpoint + "-other"))
    assert not allows([role()], Request("sagemaker:UpdateEndpoint", endpoint))  # no shadow
    own_role = "arn:aws:iam::111122223333:role/ShadowTests"
    separate = role("shadow-then-canary", deployment__shadow={"roleArn": own_role})
    assert not allows([separate], update)  # the experiment's own role needs it, not this one


def test_spot_checkpoints_are_read_listed_and_written_where_the_spec_says() -> None:
    document = role("spot-canary-tuning")
    checkpoint = "retail-ml-eu/checkpoints/shelf-job/checkpoint-1.params"
    listing = {"s3:prefix": "checkpoints/shelf-job/"}
    for request_ in (
        s3("GetObject", checkpoint),
        s3("PutObject", checkpoint),
        s3("ListBucket", "retail-ml-eu", **listing),
    ):
        assert allows([document], request_), request_


def test_kms_keys_and_vpc_interfaces_only_when_the_spec_names_them() -> None:
    plain = role()
    hardened = role(
        training__outputKmsKeyId="1234abcd-12ab-34cd-56ef-1234567890ab",
        training__volumeKmsKeyId="alias/training-volumes",
        training__vpcConfig={"securityGroupIds": ["sg-0123"], "subnets": ["subnet-0123"]},
    )
    key = Request(
        "kms:GenerateDataKey",
        f"arn:aws:kms:{ACCOUNT_REGION}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    )
    alias = Request("kms:CreateGrant", f"arn:aws:kms:{ACCOUNT_REGION}:alias/training-volumes")
    eni = Request("ec2:CreateNetworkInterface", "*")
    assert [allows([hardened], r) for r in (key, alias, eni)] == [True, True, True]
    assert [allows([plain], r) for r in (key, alias, eni)] == [False, False, False]


def test_the_images_come_from_the_spec_or_must_be_given() -> None:
    policy, spec = spec_of("pascal-voc-detector", labels__imageS3Prefixes=["s3://voc/images"])
    document = execution_role.for_execution_role(policy, spec, image_uri=IMAGE)
    assert allows([document], s3("GetObject", "voc/images/1.jpg"))
    policy, spec = spec_of("pascal-voc-detector")
    with pytest.raises(iam.IamPolicyError, match="--images"):
        execution_role.for_execution_role(policy, spec, image_uri=IMAGE)


@pytest.mark.parametrize(
    ("image", "arn"),
    [
        (IMAGE, "arn:aws:ecr:us-east-1:811284229777:repository/object-detection"),
        (
            "111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/detector@sha256:" + "ab" * 32,
            "arn:aws:ecr:eu-west-1:111122223333:repository/team/detector",
        ),
        (
            "390948362332.dkr.ecr.cn-north-1.amazonaws.com.cn/object-detection:1",
            "arn:aws-cn:ecr:cn-north-1:390948362332:repository/object-detection",
        ),
        ("ghcr.io/team/detector:1", None),
    ],
)
def test_the_image_repository_arn(image: str, arn: str | None) -> None:
    partition = "aws-cn" if ".cn/" in image else "aws"
    assert execution_role.ecr_repository_arn(image, partition) == arn


def test_no_ecr_statement_for_an_image_outside_ecr() -> None:
    policy, spec = spec_of("pascal-voc-detector")
    document = execution_role.for_execution_role(
        policy, spec, image_uri="ghcr.io/team/detector:1", image_s3_prefixes=[IMAGES]
    )
    assert not any(a.startswith("ecr:") for s in document["Statement"] for a in s["Action"])


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retraining_operator", "iam-policy", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_command_writes_the_document_to_a_yaml_or_json_file(tmp_path: Path) -> None:
    policy = str(REPO / "examples" / "pascal-voc-detector.yaml")
    args = ["--policy", policy, "--execution-role", "--images", IMAGES, "--image", IMAGE]
    as_yaml = cli(*args, "-f", str(tmp_path / "policy.yaml"))
    assert as_yaml.returncode == 0, as_yaml.stderr
    assert as_yaml.stdout == ""
    assert "--model-data" in as_yaml.stderr  # the note: fromEndpoint's first base model
    name, spec = spec_of("pascal-voc-detector")
    expected = execution_role.for_execution_role(
        name, spec, image_uri=IMAGE, image_s3_prefixes=[IMAGES]
    )
    assert yaml.safe_load((tmp_path / "policy.yaml").read_text()) == expected
    as_json = cli(*args, "--model-data", SERVING_MODEL, "--output", str(tmp_path / "p.json"))
    assert as_json.returncode == 0
    assert as_json.stderr == ""
    assert json.loads((tmp_path / "p.json").read_text()) == role()


def test_the_command_refuses_without_images_and_with_two_roles() -> None:
    policy = str(REPO / "examples" / "pascal-voc-detector.yaml")
    missing = cli("--policy", policy, "--execution-role", "--image", IMAGE)
    assert missing.returncode == 2
    assert "imageS3Prefixes" in missing.stderr
    both = cli("--policy", policy, "--execution-role", "--operator")
    assert both.returncode == 2
    assert "not allowed with" in both.stderr


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("*.yaml")), ids=lambda p: p.stem)
def test_parliament_finds_nothing_above_low_in_any_example(path: Path) -> None:
    import parliament

    name, spec = spec_of(path.stem)
    document = execution_role.for_execution_role(
        name, spec, image_uri=IMAGE, image_s3_prefixes=[IMAGES], model_data_s3_uris=[SERVING_MODEL]
    )
    policy = parliament.analyze_policy_string(json.dumps(document))
    serious = [
        (f.issue, f.detail)
        for f in map(parliament.enhance_finding, policy.findings)
        if f.severity not in ("LOW", "INFO")
    ]
    assert serious == []
