"""`retraining-operator demo`: the full loop on local stand-ins (needs the `standins` extra)."""

from __future__ import annotations

import argparse

from retraining_operator.commands import Subparsers


def register(sub: Subparsers) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the whole loop on local stand-ins (real kube-apiserver, emulated AWS)",
        description="Start a real kube-apiserver + etcd (envtest binaries: KUBEBUILDER_ASSETS "
        "or the cache `bash tests/envtest/build.sh` fills), the AWS stand-ins, install the CRD, "
        "apply a policy, seed reviewed images, run the operator and narrate the loop: "
        "polled -> manifest -> training job -> gate -> canary -> serving. Exits 0 when the "
        "endpoint serves the new model, 1 otherwise.",
    )
    demo.add_argument("--loops", type=int, default=24, help="reviewed images to seed")
    demo.add_argument(
        "--timeout", type=float, default=110.0, help="seconds to wait for the loop to close"
    )
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    try:
        from retraining_operator.standins.demo_run import DemoRun
        from retraining_operator.standins.kubeapi import EnvtestError
    except ImportError as error:  # pragma: no cover - depends on the install
        print(
            "the demo needs the stand-ins: "
            f"pip install 'a2i-retraining-operator[standins]' ({error})"
        )
        return 2
    try:
        return DemoRun(loops=args.loops, timeout=args.timeout).run()
    except EnvtestError as error:
        print(f"demo: {error}")
        return 2
