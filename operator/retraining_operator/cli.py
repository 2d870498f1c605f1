"""Command line: `retraining-operator run|...`.

Subcommands import their heavy dependencies lazily so `--help` stays fast. The local
stand-ins and the demo are another distribution (`retraining-standins`, tests/standins-pkg/).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from retraining_operator import __version__

# Subcommand modules, each with `register(subparsers)`; see commands/__init__.py.
COMMAND_MODULES = (
    "retraining_operator.commands.run",
    "retraining_operator.commands.plan",
    "retraining_operator.commands.manifest",
    "retraining_operator.commands.status",
    "retraining_operator.commands.iam_policy",
    "retraining_operator.commands.tenant",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retraining-operator",
        description="Kubernetes operator that turns Amazon A2I human reviews into incremental "
        "SageMaker training runs and gated, zero-downtime endpoint rollouts.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
