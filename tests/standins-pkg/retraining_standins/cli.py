"""`retraining-standins serve|sandbox|demo`: the stand-ins' command line.

`serve` runs the AWS stand-ins in the foreground. The first lines on stdout are
`export NAME=value` lines (eval-able by a shell), flushed before anything else; then the command
serves until SIGINT or SIGTERM.

`sandbox` adds a real kube-apiserver, the CRD, a seeded world and optionally the operator: a
cluster to `kubectl apply` the examples against (see `sandbox`).

`demo` runs the whole retraining loop on the stand-ins and a real kube-apiserver (see
`demo_run`).

They import their heavy dependencies inside the handler, so `--help` stays fast.
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
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from retraining_standins.stack import AwsStandins

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retraining-standins",
        description="Local stand-ins for the a2i-retraining-operator: emulated SageMaker + A2I, "
        "moto S3/STS/CloudWatch, a real kube-apiserver + etcd, and the demo.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_serve_parser(sub).set_defaults(handler=serve)
    add_sandbox_parser(sub).set_defaults(handler=sandbox)
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
    add_assets_argument(parser)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the working directory (operator log, kube-apiserver and etcd logs and data)",
    )
    return parser


def add_assets_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--assets",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory holding kube-apiserver and etcd (default: $KUBEBUILDER_ASSETS)",
    )


def demo(args: argparse.Namespace) -> int:
    from retraining_standins.demo_run import DemoRun
    from retraining_standins.kubeapi import EnvtestError

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # SIGTERM, and SIGINT also in the background (a shell starts `cmd &` with SIGINT ignored),
    # unwind through the demo's `finally` blocks: children stopped, directory removed.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)
    try:
        return DemoRun(
            loops=args.loops, timeout=args.timeout, keep=args.keep, assets=args.assets
        ).run()
    except EnvtestError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("demo: interrupted; everything it started is stopped", file=sys.stderr)
        return 130


def add_sandbox_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "sandbox",
        help="a kube-apiserver + AWS stand-ins (+ the operator) to kubectl apply policies to",
        description="Start a real kube-apiserver + etcd, the AWS stand-ins seeded with a world, "
        "install the CRD and create the namespaces the world's policies use; with --operator "
        "also run the operator. Prints the kubeconfig, `export` lines for kubectl, the AWS CLI "
        "and the operator (everything else is a `#` comment: the output can be sourced) and the "
        "next commands, then runs until Ctrl-C or SIGTERM (also in the background), stops every "
        "child process and removes its directory unless --keep.",
    )
    parser.add_argument(
        "--world",
        choices=("demo", "examples"),
        default="demo",
        help="demo: the demo's bucket, flow definition fd-demo with --loops reviewed loops and "
        "endpoint demo-endpoint, plus a policy file for them; examples: what the policies in "
        "--examples name (flow definitions with enough reviewed loops, buckets, manifests, "
        "endpoints, alarms, queues), so `kubectl apply -f examples/pascal-voc-detector.yaml` "
        "reaches Serving",
    )
    parser.add_argument(
        "--examples",
        type=Path,
        default=Path("examples"),
        metavar="DIR",
        help="the example policies for --world examples (default: ./examples)",
    )
    parser.add_argument(
        "--operator", action="store_true", help="also run the operator, its log in the directory"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the kubeconfig, logs and etcd data go (default: a new temporary directory)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the directory (logs, etcd data) when stopped"
    )
    parser.add_argument("--loops", type=int, default=24, help="reviewed loops (--world demo)")
    parser.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="emulated seconds per real second for AWS lifecycles; default 60 (a 10-minute "
        "canary bakes in 10 s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (seeded data)")
    add_assets_argument(parser)
    return parser


def sandbox(args: argparse.Namespace) -> int:
    from retraining_standins.kubeapi import EnvtestError, stop_signals
    from retraining_standins.sandbox import Sandbox, SandboxOptions

    if args.speed <= 0:
        print("--speed must be positive", file=sys.stderr)
        return 2
    options = SandboxOptions(
        world=args.world,
        examples=args.examples,
        operator=args.operator,
        keep=args.keep,
        directory=args.dir,
        assets=args.assets,
        loops=args.loops,
        speed=args.speed,
        seed=args.seed,
    )
    # The handlers come first: a signal during start-up still stops what has started.
    with stop_signals() as stop:
        try:
            return Sandbox(options).run(stop)
        except (EnvtestError, FileNotFoundError, ValueError) as error:
            print(f"sandbox: {error}", file=sys.stderr)
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
    from retraining_standins.kubeapi import stop_signals
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
    with stop_signals() as stop:
        try:
            return _serve(args, standins, stop)
        finally:
            standins.stop()


def _serve(args: argparse.Namespace, standins: AwsStandins, stop: threading.Event) -> int:
    from retraining_standins.demo import seed_demo

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
