"""Subcommands of the `retraining-operator` CLI.

Each module has `register(subparsers)`, which adds its parser and sets
`handler=` to a function taking the parsed args and returning an exit code.
Modules import only argparse at import time; heavy work is imported lazily
inside the handler, so `--help` stays fast.
"""

import argparse
from typing import TypeAlias

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
