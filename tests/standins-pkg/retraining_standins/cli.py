"""`retraining-standins serve|demo`: the stand-ins' command line.

`serve` runs the AWS stand-ins in the foreground. The first lines on stdout are
`export NAME=value` lines (eval-able by a shell), flushed before anything else; then the command
serves until SIGINT or SIGTERM.

`demo` runs the whole retraining loop on the stand-ins and a real kube-apiserver (see
`demo_run`).

Both import their heavy dependencies inside the handler, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeAlias

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retraining-standins",
        description="Local stand-ins for the a2i-retraining-operator: emulated SageMaker + A2I, "
        "moto S3/STS/CloudWatch, a real kube-apiserver + etcd, and the demo.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_serve_parser(sub).set_defaults(handler=serve)
    add_demo_parser(sub).set_defaults(handler=demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


def add_demo_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole loop on local stand-ins (real kube-apiserver, emulated AWS)",
        description="Start a real kube-apiserver + etcd (envtest binaries from --assets or "
        "KUBEBUILDER_ASSETS; a checkout of the project builds them with "
        "`bash tests/envtest/build.sh`), the AWS stand-ins, install the CRD, apply a policy, "
        "seed reviewed images, run the operator and narrate the loop: polled -> manifest -> "
        "training job -> gate -> canary -> serving. Exits 0 when the endpoint serves the new "
        "model, 1 otherwise, 2 when the envtest binaries are missing.",
    )
    parser.add_argument("--loops", type=int, default=24, help="reviewed images to seed")
    parser.add_argument(
        "--timeout", type=float, default=110.0, help="seconds to wait for the loop to close"
    )
    parser.add_argument(
        "--assets",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory holding kube-apiserver and etcd (default: $KUBEBUILDER_ASSETS)",
    )
    return parser


def demo(args: argparse.Namespace) -> int:
    from retraining_standins.demo_run import DemoRun
    from retraining_standins.kubeapi import EnvtestError

    try:
        return DemoRun(loops=args.loops, timeout=args.timeout, assets=args.assets).run()
    except EnvtestError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 2


def add_serve_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "serve",
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


def serve(args: argparse.Namespace) -> int:
    from retraining_standins.clock import Clock
    from retraining_standins.demo import seed_demo
    from retraining_standins.stack import AwsStandins

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
