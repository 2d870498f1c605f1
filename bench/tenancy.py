"""Fair-share benchmark (not a test): a quiet namespace beside 1, 3 and 10 busy ones.

Every namespace spends the operator's one AWS call budget (`--rate`, 20/s by default) through
its own share (`CallBudget.share(namespace)`, as the operator does). Each busy namespace reads
a backlog (a poll of up to `--busy-fetches` completed loops, 16 fetch threads); the quiet
namespace polls 10 new loops, as a policy of a quiet team would. Its poll is timed alone, then
beside N busy namespaces (after they have been backlogged for `--warmup` seconds). The target
(issue 28): the quiet poll takes at most 2x its solo time whatever N. The stand-ins run in
their own process; every call crosses a real socket, with `--latency` added to each.

    .venv/bin/python bench/tenancy.py            # prints the figures as JSON
"""

# ruff: noqa: E402 - the path fix below must run before the standard-library imports
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]

import argparse
import importlib.util
import json
import statistics
import threading
import time
from typing import Any

_spec_ingest = importlib.util.spec_from_file_location("bench_ingest", f"{_HERE}/ingest.py")
assert _spec_ingest is not None
assert _spec_ingest.loader is not None
bench_ingest = importlib.util.module_from_spec(_spec_ingest)
_spec_ingest.loader.exec_module(bench_ingest)

REGION = bench_ingest.REGION
QUIET_LOOPS = 10


def _session(budget: Any) -> Any:
    from retraining_operator.aws.session import AwsSession, ClientSettings

    session = AwsSession(REGION, settings=ClientSettings(pool=16, budget=budget))
    session.s3(), session.a2i(), session.sagemaker()
    return session


def _poll(budget: Any, spec: Any, max_fetches: int | None) -> float:
    from support.ingest import poll

    session = _session(budget)
    start = time.perf_counter()
    result = poll(session, spec, concurrency=16, max_fetches=max_fetches)
    assert result.new_samples + result.listed > 0, result
    return time.perf_counter() - start


def _quiet(budget: Any, quiet_arn: str, tag: str) -> float:
    spec = bench_ingest._spec(quiet_arn, f"s3://bench-quiet/{tag}")  # a fresh ledger each time
    return _poll(budget.share("quiet"), spec, None)


def _beside(
    rate: float, busy: int, arns: tuple[str, str], fetches: int, warmup: float, tag: str
) -> float:
    from retraining_operator.aws.session import CallBudget

    busy_arn, quiet_arn = arns
    budget = CallBudget(rate)
    threads = [
        threading.Thread(
            target=_poll,
            args=(
                budget.share(f"busy-{n}"),
                bench_ingest._spec(busy_arn, f"s3://bench-busy/{tag}-{n}"),
                fetches,
            ),
            daemon=True,
        )
        for n in range(busy)
    ]
    for thread in threads:
        thread.start()
    time.sleep(warmup)  # the busy ones are backlogged, their credit spent
    seconds = _quiet(budget, quiet_arn, f"{tag}-quiet")
    for thread in threads:
        thread.join()
    return seconds


def run(rate: float, busy_counts: list[int], fetches: int, warmup: float) -> dict[str, Any]:
    from retraining_operator.aws.session import CallBudget
    from retraining_standins.faults import FaultRule

    standins = bench_ingest.Standins()
    try:
        control = standins.control
        control.reset()
        busy_arn = bench_ingest._setup_flow("bench-busy", "fd-busy")
        quiet_arn = bench_ingest._setup_flow("bench-quiet", "fd-quiet")
        print(f"seeding {fetches} + {QUIET_LOOPS} loops ...", file=sys.stderr, flush=True)
        control.add_loops("fd-busy", fetches, interval=1)
        control.add_loops("fd-quiet", QUIET_LOOPS, interval=1)
        control.set_faults([FaultRule(service="*", operation="*", latency=bench_ingest.LATENCY)])
        figures: dict[str, Any] = {
            "budget_per_s": rate,
            "latency_ms": bench_ingest.LATENCY * 1000,
            "quiet_loops": QUIET_LOOPS,
            "busy_fetches_each": fetches,
        }
        solo = [_quiet(CallBudget(rate), quiet_arn, f"solo-{i}") for i in range(3)]
        figures["quiet_solo_s"] = round(statistics.median(solo), 3)
        for busy in busy_counts:
            loaded = _beside(rate, busy, (busy_arn, quiet_arn), fetches, warmup, f"b{busy}")
            figures[f"busy_{busy}"] = {
                "quiet_s": round(loaded, 3),
                "ratio": round(loaded / figures["quiet_solo_s"], 2),
            }
            print(busy, figures[f"busy_{busy}"], file=sys.stderr, flush=True)
        return figures
    finally:
        standins.stop()


def main() -> int:
    os.environ.setdefault("RTP_PROCESS_LEDGER_KEY", os.urandom(32).hex())
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--busy", default="1,3,10", help="busy namespace counts to try")
    parser.add_argument("--busy-fetches", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    counts = [int(n) for n in args.busy.split(",")]
    print(json.dumps(run(args.rate, counts, args.busy_fetches, args.warmup), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
