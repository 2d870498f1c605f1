"""`retraining-operator iam-policy --policy FILE.yaml [--operator]`: the least-privilege IAM
policy document for one RetrainingPolicy (reconcile/iam.py), as JSON on stdout.

Without `--operator`: the role that makes the policy's AWS calls (the tenant role in
spec.aws.roleArn, or the operator's own role when the policy sets none). With `--operator`:
the operator's own role (IRSA / EKS Pod Identity), which only assumes spec.aws.roleArn when
the policy sets one. Nothing here calls AWS.
"""

from __future__ import annotations

import argparse
import json
import sys

from retraining_operator.commands import Subparsers


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
    command.add_argument(
        "--operator",
        action="store_true",
        help="the operator's own role (IRSA): only sts:AssumeRole on spec.aws.roleArn when "
        "the policy sets one, else the policy's calls themselves",
    )
    command.add_argument(
        "--a2i-output",
        metavar="S3_URI",
        help="the flow definition's S3OutputPath, to scope reads of the reviews to it "
        "(default: any bucket, under the flow definition's name, output.json only)",
    )
    command.set_defaults(handler=_iam_policy)


def _iam_policy(args: argparse.Namespace) -> int:
    from retraining_operator.commands.plan import PlanError, load_policy
    from retraining_operator.reconcile import iam

    try:
        policy, spec = load_policy(args.policy)
        build = iam.for_operator if args.operator else iam.for_policy
        document = build(policy.name, spec, a2i_output_s3_uri=args.a2i_output)
    except (PlanError, iam.IamPolicyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
