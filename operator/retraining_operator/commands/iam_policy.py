"""`retraining-operator iam-policy --policy FILE.yaml [--operator | --execution-role]`: the
least-privilege IAM policy document for one RetrainingPolicy (reconcile/iam.py), as JSON on
stdout.

Without a flag: the role that makes the policy's AWS calls (the tenant role in
spec.aws.roleArn, or the operator's own role when the policy sets none). With `--operator`:
the operator's own role (IRSA / EKS Pod Identity), which only assumes spec.aws.roleArn when
the policy sets one. With `--execution-role`: training.roleArn, the role SageMaker assumes
for the policy's training and transform jobs and its models (S3 reads of manifests, images
and models, writes of models and predictions, the image pull, CloudWatch Logs and metrics).
Nothing here calls AWS.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from retraining_operator.commands import Subparsers

if TYPE_CHECKING:
    from retraining_operator.api import RetrainingPolicySpec


def register(sub: Subparsers) -> None:
    command = sub.add_parser(
        "iam-policy",
        help="print the least-privilege IAM policy a RetrainingPolicy needs (no AWS calls)",
        description="Print an IAM policy document (JSON) with exactly the AWS actions the "
        "operator calls for a RetrainingPolicy, each scoped to that policy's resources: the "
        "flow definition's human loops, the A2I output and dataset S3 prefixes (read vs "
        "write), training jobs, models and endpoint configs by the operator's name prefix, "
        "the endpoint, iam:PassRole on training.roleArn for SageMaker only, and the "
        "rollback alarms.",
    )
    command.add_argument("--policy", required=True, metavar="FILE.yaml", help="policy file")
    role = command.add_mutually_exclusive_group()
    role.add_argument(
        "--operator",
        action="store_true",
        help="the operator's own role (IRSA): only sts:AssumeRole on spec.aws.roleArn when "
        "the policy sets one, else the policy's calls themselves",
    )
    role.add_argument(
        "--execution-role",
        action="store_true",
        help="training.roleArn, the role SageMaker assumes for the training and transform "
        "jobs and the endpoint's model: S3 reads of the manifests, images (--images) and "
        "models, writes of model artifacts and predictions, the image pull, CloudWatch Logs "
        "and metrics, the KMS keys and VPC interfaces the spec names",
    )
    command.add_argument(
        "--a2i-output",
        metavar="S3_URI",
        help="the flow definition's S3OutputPath, to scope reads of the reviews to it "
        "(default: any bucket, under the flow definition's name, output.json only)",
    )
    command.add_argument(
        "--images",
        action="append",
        default=[],
        metavar="S3_URI",
        help="--execution-role: a bucket or folder holding the images the manifests name "
        "(repeatable; default labels.imageS3Prefixes)",
    )
    command.add_argument(
        "--model-data",
        action="append",
        default=[],
        metavar="S3_URI",
        help="--execution-role: a model artifact not under training.outputS3Uri, e.g. the "
        "endpoint's current ModelDataUrl, the first run's base model (repeatable)",
    )
    command.add_argument(
        "--image",
        metavar="URI",
        help="--execution-role: the training/inference image (default: the policy's "
        "training image; its ECR repository is what the role pulls)",
    )
    command.add_argument(
        "-f",
        "--output",
        metavar="FILE",
        help="write the document to FILE (.json, or .yaml/.yml) instead of stdout",
    )
    command.set_defaults(handler=_iam_policy)


def _iam_policy(args: argparse.Namespace) -> int:
    from retraining_operator.commands.plan import PlanError, load_policy
    from retraining_operator.reconcile import iam

    try:
        policy, spec = load_policy(args.policy)
        if args.execution_role:
            document = _execution_role(args, policy.name, spec)
        else:
            build = iam.for_operator if args.operator else iam.for_policy
            document = build(policy.name, spec, a2i_output_s3_uri=args.a2i_output)
    except (PlanError, iam.IamPolicyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _write(document, args.output)
    return 0


def _execution_role(
    args: argparse.Namespace, policy_name: str, spec: RetrainingPolicySpec
) -> dict[str, Any]:
    from retraining_operator.aws.images import ImageLookupError
    from retraining_operator.flows.training import training_image_uri
    from retraining_operator.reconcile import execution_role, iam

    image = args.image
    if image is None:
        try:
            image = training_image_uri(spec)
        except ImageLookupError as error:
            raise iam.IamPolicyError(f"{error}; or pass --image") from error
    if spec.training.base_model.from_endpoint and not args.model_data:
        print(
            "note: training.baseModel.fromEndpoint: the first run trains from the endpoint's "
            "current model; unless its ModelDataUrl is under training.outputS3Uri, pass it "
            "with --model-data (aws sagemaker describe-model --model-name <the endpoint's "
            "model> --query PrimaryContainer.ModelDataUrl)",
            file=sys.stderr,
        )
    return execution_role.for_execution_role(
        policy_name,
        spec,
        image_uri=image,
        image_s3_prefixes=args.images,
        model_data_s3_uris=args.model_data,
    )


def _write(document: dict[str, Any], output: str | None) -> None:
    if output is None:
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    path = Path(output)
    if path.suffix in {".yaml", ".yml"}:
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    else:
        path.write_text(json.dumps(document, indent=2) + "\n")
