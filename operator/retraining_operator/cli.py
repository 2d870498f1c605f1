"""Command line: `retraining-operator run|...`.

Subcommands import their heavy dependencies lazily so `--help` stays fast. The local
stand-ins and the demo are another distribution (`retraining-standins`, tests/standins-pkg/).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from retraining_operator import __version__

# Subcommand modules, each with `register(subparsers)`; see commands/__init__.py.
COMMAND_MODULES = (
    "retraining_operator.commands.run",
    "retraining_operator.commands.plan",
    "retraining_operator.commands.manifest",
    "retraining_operator.commands.evaluate",
    "retraining_operator.commands.status",
    "retraining_operator.commands.iam_policy",
    "retraining_operator.commands.tenant",
)


@dataclass(frozen=True)
class FromEnvironment:
    """A flag's default: `parse(os.environ.get(variable, fallback))`, worked out only when its
    command is parsed without the flag. A bad value then fails that command alone, with the
    variable's name; `--help`, `--version` and the other commands never read it."""

    variable: str
    fallback: str = ""
    # Raises ValueError with what was expected ("not a number"); the parser adds the rest.
    parse: Callable[[str], Any] = str


class Repeated(argparse.Action):
    """`action="append"` for a flag whose default is `FromEnvironment`: the values given
    replace the variable's list (a flag given overrides its variable, as every flag does)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        given = getattr(namespace, self.dest)
        earlier = [] if isinstance(given, FromEnvironment) else list(given)
        setattr(namespace, self.dest, [*earlier, values])


class CommandParser(argparse.ArgumentParser):
    """A sub-command's parser: fills in the `FromEnvironment` defaults of the flags left out."""

    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        for action in self._actions:
            default = action.default
            if isinstance(default, FromEnvironment) and getattr(parsed, action.dest) is default:
                setattr(parsed, action.dest, self._environment_value(action, default))
        return parsed, extras

    def _environment_value(self, action: argparse.Action, default: FromEnvironment) -> Any:
        raw = os.environ.get(default.variable, default.fallback)
        try:
            value = default.parse(raw)
            if action.choices is not None and value not in action.choices:
                raise ValueError(f"not one of {', '.join(map(str, action.choices))}")
        except ValueError as error:
            flag = "/".join(action.option_strings)
            self.error(f"environment variable {default.variable}={raw!r} ({flag}): {error}")
        return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retraining-operator",
        description="Kubernetes operator that turns Amazon A2I human reviews into incremental "
        "SageMaker training runs and gated, zero-downtime endpoint rollouts.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
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
    try:
        return handler(args)
    except BrokenPipeError:
        # The reader left (`... | head -1`): what it read is what it wanted. Point stdout
        # at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
