"""`retraining-operator standins`: run the AWS stand-ins in the foreground.

The first lines on stdout are `export NAME=value` lines (eval-able by a shell), flushed before
anything else; then the command serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from types import FrameType
from typing import Any


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The CLI's command-registry hook: the parser, with `main` as its handler."""
    add_parser(subparsers).set_defaults(handler=main)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "standins",
        help="run local stand-ins for S3/STS/CloudWatch (moto) and SageMaker + A2I",
        description="Run the AWS stand-ins on loopback ports. Prints `export ...` lines first "
        "(eval them to point boto3 at the stand-ins), then serves until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument(
        "--port", type=int, default=0, help="SageMaker + A2I emulator port (0: a free port)"
    )
    parser.add_argument(
        "--moto-port", type=int, default=0, help="S3/STS/CloudWatch port (0: a free port)"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=10.0,
        help="emulated seconds per real second for lifecycles (training, endpoints); default 10",
    )
    parser.add_argument(
        "--seed-loops",
        type=int,
        default=0,
        metavar="N",
        help="seed a bucket, flow definition `fd-demo` with N completed loops, and an "
        "InService endpoint `demo-endpoint`",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (faults, seeded data)")
    parser.add_argument("--region", default="us-east-1")
    return parser


def main(args: argparse.Namespace) -> int:
    from retraining_operator.standins.clock import Clock
    from retraining_operator.standins.demo import seed_demo
    from retraining_operator.standins.stack import AwsStandins

    if args.speed <= 0:
        print("--speed must be positive", file=sys.stderr)
        return 2
    standins = AwsStandins(
        clock=Clock(speed=args.speed),
        seed=args.seed,
        host=args.host,
        port=args.port,
        moto_port=args.moto_port,
        region=args.region,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {
        sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        standins.start()
        exports = standins.env()
        if args.seed_loops > 0:
            exports.update(seed_demo(standins, args.seed_loops).exports())
        for name, value in exports.items():
            sys.stdout.write(f"export {name}={shlex.quote(value)}\n")
        sys.stdout.flush()
        print(
            f"# stand-ins ready (clock x{args.speed:g}); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
        return 0
    finally:
        standins.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
