"""Fair-share benchmark (not a test): two tenants share one operator's AWS call budget.

Tenant "big" has a backlog of 5,000 completed loops, tenant "small" has 10. The small
tenant's poll is timed alone, then while the big tenant's poll runs, with the operator's
budget shared as the operator shares it in Scoped mode (a bucket per namespace at half the
budget, under the operator-wide one; at most `--max-fetches` reads per poll) and, for
comparison, with one shared bucket only (the behaviour before; the same fetch cap, so only
the buckets differ). The stand-ins run in their
own process, every call crosses a real socket.

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


def _session(budget: Any) -> Any:
    from retraining_operator.aws.session import AwsSession

    session = AwsSession(REGION, pool=16, budget=budget)
    session.s3(), session.a2i(), session.sagemaker()
    return session


def small_poll(budget: Any, spec: Any, max_fetches: int | None) -> float:
    from support.ingest import poll

    session = _session(budget)
    start = time.perf_counter()
    result = poll(session, spec, concurrency=16, max_fetches=max_fetches)
    assert result.new_samples + result.listed >= 10, result
    return time.perf_counter() - start


def run(rate: float, big_loops: int, max_fetches: int, rounds: int) -> dict[str, Any]:
    from retraining_operator.aws.session import CallBudget
    from support.ingest import poll

    standins = bench_ingest.Standins()
    try:
        control = standins.control
        control.reset()
        big_arn = bench_ingest._setup_flow("bench-big", "fd-big")
        small_arn = bench_ingest._setup_flow("bench-small", "fd-small")
        print(f"seeding {big_loops} + 10 loops ...", file=sys.stderr, flush=True)
        control.add_loops("fd-big", big_loops, interval=1)
        control.add_loops("fd-small", 10, interval=1)
        figures: dict[str, Any] = {"budget_per_s": rate, "big_loops": big_loops,
                                   "max_fetches_per_poll": max_fetches}  # fmt: skip
        for mode in ("shared-only", "per-namespace"):
            solo: list[float] = []
            loaded: list[float] = []
            for round_ in range(rounds):
                budget = CallBudget(rate)
                share = mode == "per-namespace"
                big_budget = budget.share("big", rate / 2) if share else budget
                small_budget = budget.share("small", rate / 2) if share else budget
                small_spec = bench_ingest._spec(small_arn, f"s3://bench-small/{mode}-{round_}-solo")
                solo.append(small_poll(small_budget, small_spec, max_fetches))
                big_spec = bench_ingest._spec(big_arn, f"s3://bench-big/{mode}-{round_}")
                big = threading.Thread(
                    target=poll,
                    args=(_session(big_budget), big_spec),
                    kwargs={"concurrency": 16, "max_fetches": max_fetches},
                )
                big.start()
                time.sleep(2.0)  # the big backlog is being read
                small_spec = bench_ingest._spec(small_arn, f"s3://bench-small/{mode}-{round_}")
                loaded.append(small_poll(small_budget, small_spec, max_fetches))
                big.join()
            figures[mode] = {
                "small_solo_s": round(statistics.median(solo), 2),
                "small_with_big_s": round(statistics.median(loaded), 2),
                "ratio": round(statistics.median(loaded) / statistics.median(solo), 2),
            }
            print(mode, figures[mode], file=sys.stderr, flush=True)
        return figures
    finally:
        standins.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--big-loops", type=int, default=5000)
    parser.add_argument("--max-fetches", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(run(args.rate, args.big_loops, args.max_fetches, args.rounds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
