"""`retraining-operator tenant NAME --namespace NS --role-arn ARN --from-policy FILE.yaml`: a
first RetrainingTenant (YAML on stdout) whose allow-lists admit exactly what the policy names,
for a cluster admin to review and `kubectl apply` (Scoped mode is the chart's default)."""

from __future__ import annotations

import argparse
import sys

from retraining_operator.commands import Subparsers


def register(sub: Subparsers) -> None:
    command = sub.add_parser(
        "tenant",
        help="print a RetrainingTenant that admits a policy file (for an admin to apply)",
        description="Print a RetrainingTenant (YAML) for namespaces whose policies look like "
        "FILE.yaml: its allow-lists name exactly the AWS resources the policy names, its limits "
        "cover what it asks for, its quota is the default. Review it, then `kubectl apply -f -`. "
        "The operator assumes --role-arn for these namespaces (its trust policy must allow the "
        "operator's own role; `retraining-operator iam-policy --policy FILE.yaml` prints what "
        "the role needs). Nothing here calls AWS or the cluster.",
    )
    command.add_argument("name", help="the tenant's name (cluster-scoped)")
    command.add_argument(
        "--namespace", "-n", action="append", required=True, help="a namespace it covers"
    )
    command.add_argument(
        "--role-arn",
        help="the IAM role the operator assumes for these namespaces (default: the policy's "
        "spec.aws.roleArn)",
    )
    command.add_argument("--from-policy", required=True, metavar="FILE.yaml", help="policy file")
    command.add_argument(
        "--a2i-output",
        metavar="S3_URI",
        help="the flow definition's S3OutputPath (readable: where the reviews are)",
    )
    command.set_defaults(handler=_tenant)


def _tenant(args: argparse.Namespace) -> int:
    import yaml

    from retraining_operator.commands.plan import PlanError, load_policy
    from retraining_operator.reconcile.governance import tenant_for_policy

    try:
        _, spec = load_policy(args.from_policy)
    except PlanError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    role = args.role_arn or spec.aws.role_arn
    if role is None:
        print(
            "error: --role-arn is required (the policy sets no spec.aws.roleArn)", file=sys.stderr
        )
        return 2
    tenant = tenant_for_policy(
        spec,
        name=args.name,
        namespaces=args.namespace,
        role_arn=role,
        a2i_output_s3_uri=args.a2i_output,
    )
    sys.stdout.write(yaml.safe_dump(tenant, sort_keys=False))
    return 0
