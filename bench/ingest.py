"""Ingest benchmark (not a test): the operator's ingest against the AWS stand-ins.

The stand-ins run in their own process (`python -m retraining_standins serve`), driven
over their HTTP control endpoint (faults, clock, request log, seeding), so their CPU is
not ours and every call crosses a real socket.

(a) N completed loops, 20 ms latency injected on every AWS and S3 call:
    - the notebook's sequential loop (list, describe each, get each, convert), paginated so
      it sees all N loops, vs our `workflow.ingest.poll` (bounded thread pool, predicted keys);
    - our object rate vs the raw GET rate the S3 stand-in sustains at the same concurrency
      (a tight loop of GetObject over the same keys, same client settings).
(b) AWS calls made by an idle poll when 10,000 historical loops lie before the window.
(c) Peak RSS of dataset assembly at 1,000 vs 100,000 samples, each in a fresh subprocess.

    .venv/bin/python bench/ingest.py            # all three; prints the figures as JSON
    .venv/bin/python bench/ingest.py --only a --loops 500
"""

# ruff: noqa: E402 - the path fix below must run before the standard-library imports
from __future__ import annotations

import os
import sys

# Run as `python bench/ingest.py`, this directory is sys.path[0], and bench/operator.py (the
# operator benchmark) would shadow the standard library's `operator` module.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]

import argparse
import json
import random
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the notebook's converter, kept verbatim there

ACCOUNT = "123456789012"
REGION = "us-east-1"
VOC = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]  # fmt: skip
CONCURRENCY = 16
LATENCY = 0.020


# -- the stand-ins in their own process --------------------------------------------------------


class Standins:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "retraining_standins", "serve", "--speed", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.env: dict[str, str] = {}
        assert self.process.stdout is not None
        while "STANDINS_CONTROL_URL" not in self.env:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the stand-ins exited before printing their endpoints")
            match = re.match(r"export (\w+)=(.*)", line.strip())
            if match:
                self.env[match[1]] = match[2].strip("'")
        self.env.update(
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
        )
        os.environ.update(self.env)
        from retraining_standins.control import Control

        self.control = Control(self.env["STANDINS_CONTROL_URL"], timeout=600)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _session() -> Any:
    from retraining_operator.aws.session import AwsSession

    return AwsSession(REGION, pool=CONCURRENCY)


def _setup_flow(bucket: str, flow: str) -> str:
    """A bucket and a flow definition writing to s3://<bucket>/a2i-results; returns its ARN."""
    session = _session()
    session.s3().create_bucket(Bucket=bucket)
    response = session.sagemaker().create_flow_definition(
        FlowDefinitionName=flow,
        OutputConfig={"S3OutputPath": f"s3://{bucket}/a2i-results"},
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/a2i",
        HumanLoopConfig={
            "WorkteamArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/bench",
            "HumanTaskUiArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-task-ui/bench",
            "TaskTitle": "Draw boxes",
            "TaskDescription": "Label every object",
            "TaskCount": 1,
        },
    )
    return str(response["FlowDefinitionArn"])


def _spec(flow_arn: str, output: str, **dataset: Any) -> Any:
    from retraining_operator.api import RetrainingPolicySpec

    return RetrainingPolicySpec.model_validate(
        {
            "aws": {"region": REGION},
            "humanLoops": {"flowDefinitionArn": flow_arn, "lookback": "24h"},
            "labels": {"classes": VOC},
            "dataset": {"outputS3Uri": output, **dataset},
            "training": {
                "roleArn": f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecution",
                "algorithm": "object-detection",
                "baseModel": {"s3Uri": "s3://bench/model.tar.gz"},
                "outputS3Uri": "s3://bench/training",
            },
            "deployment": {"strategy": "None"},
        }
    )


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


# -- (a) throughput -----------------------------------------------------------------------------


def seed_notebook_ingest(flow_arn: str, bucket: str, out: Path) -> int:
    """The notebook's cells: list, describe each loop, get each output, convert, write.

    Only change: the listing is paginated (the notebook's single call would see 100 loops).
    """
    from unit.seed_oracle import make_seed_converter

    convert_a2i_to_augmented_manifest = make_seed_converter(VOC)
    session = _session()
    a2i, s3 = session.a2i(), session.s3()
    summaries: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"FlowDefinitionArn": flow_arn, "MaxResults": 100}
    while True:
        human_loops = a2i.list_human_loops(**kwargs)
        summaries += human_loops["HumanLoopSummaries"]
        if "NextToken" not in human_loops:
            break
        kwargs["NextToken"] = human_loops["NextToken"]
    completed_human_loops = []
    for loop in summaries:
        resp = a2i.describe_human_loop(HumanLoopName=loop["HumanLoopName"])
        if resp["HumanLoopStatus"] == "Completed":
            completed_human_loops.append(resp)
    with out.open("w") as outfile:
        for resp in completed_human_loops:
            splitted_string = re.split(
                "s3://" + bucket + "/", resp["HumanLoopOutput"]["OutputS3Uri"]
            )
            output_bucket_key = splitted_string[1]
            response = s3.get_object(Bucket=bucket, Key=output_bucket_key)
            content = response["Body"].read()
            json_output = json.loads(content)
            augmented_manifest = convert_a2i_to_augmented_manifest(json_output)
            json.dump(augmented_manifest, outfile)
            outfile.write("\n")
    return len(completed_human_loops)


def raw_get_rate(bucket: str, keys: list[str]) -> float:
    """Objects per second of a tight GetObject loop at CONCURRENCY."""
    s3 = _session().s3()
    s3.head_bucket(Bucket=bucket)  # client built and connected before the clock starts

    def get(key: str) -> int:
        return len(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    seconds, _ = _timed(lambda: list(ThreadPoolExecutor(CONCURRENCY).map(get, keys)))
    return len(keys) / seconds


def bench_throughput(standins: Standins, loops: int, rounds: int) -> dict[str, Any]:
    from retraining_operator.workflow.ingest import poll
    from retraining_standins.faults import FaultRule

    control = standins.control
    control.reset()
    bucket, flow = "bench-a", "fd-bench-a"
    flow_arn = _setup_flow(bucket, flow)
    print(f"(a) seeding {loops} completed loops ...", file=sys.stderr, flush=True)
    names = control.add_loops(flow, loops, interval=1)
    s3 = _session().s3()
    keys = sorted(
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"a2i-results/{flow}/"
        )
        for item in page.get("Contents", [])
    )
    assert len(keys) == len(names) == loops
    control.set_faults([FaultRule(service="*", operation="*", latency=LATENCY)])

    # Interleaved rounds (raw, ours, raw, ours, ...): the machine's load drifts, medians
    # of neighbouring rounds compare like with like.
    raw_rates: list[float] = []
    ours_times: list[float] = []
    for round_ in range(rounds):
        raw_rates.append(raw_get_rate(bucket, keys))
        spec = _spec(flow_arn, f"s3://{bucket}/ours-{round_}")  # a fresh ledger each round
        # The operator builds its clients once per policy, not per poll (as raw_get_rate does).
        session = _session()
        session.s3(), session.a2i()
        start = time.perf_counter()
        result = poll(session, spec, concurrency=CONCURRENCY)
        seconds = time.perf_counter() - start
        assert result.new_samples == loops, result
        ours_times.append(seconds)
    print("(a) the notebook's sequential loop ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        seed_seconds, seed_count = _timed(
            lambda: seed_notebook_ingest(flow_arn, bucket, Path(tmp) / "augmented.manifest")
        )
    assert seed_count == loops
    control.clear_faults()
    raw = statistics.median(raw_rates)
    ours_seconds = statistics.median(ours_times)
    ours_rate = loops / ours_seconds
    return {
        "loops": loops,
        "latency_ms": LATENCY * 1000,
        "concurrency": CONCURRENCY,
        "seed_seconds": round(seed_seconds, 2),
        "ours_seconds": round(ours_seconds, 2),
        "speedup": round(seed_seconds / ours_seconds, 1),
        "ours_objects_per_s": round(ours_rate, 1),
        "raw_get_objects_per_s": round(raw, 1),
        "ours_vs_raw": round(ours_rate / raw, 3),
        "rounds": {
            "raw_objects_per_s": [round(rate, 1) for rate in raw_rates],
            "ours_objects_per_s": [round(loops / t, 1) for t in ours_times],
        },
    }


# -- (b) idle poll --------------------------------------------------------------------------


def bench_idle(standins: Standins, historical: int) -> dict[str, Any]:
    from retraining_operator.workflow.ingest import poll

    control = standins.control
    control.reset()
    bucket, flow = "bench-b", "fd-bench-b"
    flow_arn = _setup_flow(bucket, flow)
    print(f"(b) seeding {historical} historical loops ...", file=sys.stderr, flush=True)
    control.add_loops(flow, historical, interval=5)
    control.advance(2 * 86400)  # they are all older than the 24h lookback now
    spec = _spec(flow_arn, f"s3://{bucket}/out")

    def emulated_now() -> datetime:
        return datetime.fromisoformat(control.now()).astimezone(UTC)

    first_now = emulated_now()
    control.clear_log()
    first = poll(_session(), spec, clock=lambda: first_now)
    first_calls = len(control.calls())
    assert first.new_samples == historical
    control.advance(300)  # the next poll, 5 minutes later, nothing new
    idle_now = emulated_now()
    control.clear_log()
    idle = poll(_session(), spec, clock=lambda: idle_now)
    calls = control.calls()
    assert idle.new_samples == 0
    return {
        "historical_loops": historical,
        "first_poll_calls": first_calls,
        "idle_poll_calls": len(calls),
        "idle_poll_operations": [f"{c['service']}:{c['operation']}" for c in calls],
    }


# -- (c) memory of dataset assembly -----------------------------------------------------------


def _prepare_assembly(samples: int, bucket: str, prefix: str) -> tuple[str, str]:
    """Pending segments + ledger for `samples` loops, and a replay manifest, written to S3."""
    from retraining_operator.api import LabelsSpec
    from retraining_operator.aws.s3 import S3, S3Location
    from retraining_operator.manifest.convert import Converted, Converter
    from retraining_operator.reconcile.ledger import Ledger, LoopOutcome, PendingSegment
    from retraining_standins.seed import random_a2i_output

    s3 = S3(_session().s3())
    converter = Converter(LabelsSpec(classes=VOC))
    output = f"s3://{bucket}/{prefix}"
    ledger = Ledger()
    rng = random.Random(samples)
    created = datetime(2026, 1, 1, tzinfo=UTC)
    batch: list[str] = []
    names: list[str] = []

    def flush() -> None:
        body = "".join(f"{line}\n" for line in batch).encode()
        import hashlib

        digest = hashlib.sha256(body).hexdigest()
        s3.put(S3Location.parse(f"{output}/pending/{digest}.jsonl"), body)
        segment = PendingSegment(digest, len(batch), len(batch), created)
        ledger.record([LoopOutcome(n, created, segment.id) for n in names], segment=segment)
        batch.clear()
        names.clear()

    for i in range(samples):
        name = f"loop-{i:07d}"
        document = random_a2i_output(
            flow_definition_arn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/fd",
            human_loop_name=name,
            task_object=f"s3://{bucket}/images/{i:07d}.jpg",
            classes=VOC,
            rng=rng,
        )
        converted = converter.convert(document)
        assert isinstance(converted, Converted)
        batch.append(converted.line)
        names.append(name)
        if len(batch) == 5000:
            flush()
    if batch:
        flush()
    s3.put(S3Location.parse(f"{output}/ledger/head.json"), ledger.to_json())
    replay_uri = f"s3://{bucket}/{prefix}-voc/train.manifest"
    lines = []
    for i in range(20_000):
        document = random_a2i_output(
            flow_definition_arn="arn:aws:sagemaker:us-east-1:123456789012:flow-definition/voc",
            human_loop_name=f"voc-{i}",
            task_object=f"s3://{bucket}/voc/{i:06d}.jpg",
            classes=VOC,
            rng=rng,
        )
        converted = converter.convert(document)
        assert isinstance(converted, Converted)
        lines.append(converted.line)
    s3.put(S3Location.parse(replay_uri), ("\n".join(lines) + "\n").encode())
    return output, replay_uri


def _vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def assemble_child(output: str, replay: str, run_id: str) -> None:
    """Child process: assemble one run, print its RSS before and its peak during, as JSON.

    `ru_maxrss` would carry the parent's peak over fork/exec; VmHWM is per process image,
    and writing 5 to /proc/self/clear_refs resets it to the current RSS, so the peak is
    measured from the moment imports are done and the S3 client exists (the operator has
    both long before a run).
    """
    from retraining_operator.workflow.dataset import assemble_run_dataset

    spec = _spec(
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/fd",
        output,
        validation={"holdoutPercent": 10},
        replay={"manifestS3Uri": replay, "samplesPerNewSample": 3},
    )
    session = _session()
    session.s3().list_buckets()
    Path("/proc/self/clear_refs").write_text("5")
    baseline = _vm_kb("VmRSS")
    seconds, result = _timed(lambda: assemble_run_dataset(session, spec, run_id))
    peak = _vm_kb("VmHWM")
    print(
        json.dumps(
            {
                "rss_before_mb": round(baseline / 1024, 1),
                "peak_mb": round(peak / 1024, 1),
                "growth_mb": round((peak - baseline) / 1024, 1),
                "seconds": round(seconds, 1),
                "samples": result.samples.to_wire(),
            }
        )
    )


def bench_memory(standins: Standins, sizes: list[int]) -> dict[str, Any]:
    control = standins.control
    control.reset()
    control.clear_faults()
    bucket = "bench-c"
    _session().s3().create_bucket(Bucket=bucket)
    results: dict[str, Any] = {}
    for samples in sizes:
        print(f"(c) preparing {samples} pending samples ...", file=sys.stderr, flush=True)
        output, replay = _prepare_assembly(samples, bucket, f"c{samples}")
        child = subprocess.run(
            [sys.executable, __file__, "_assemble", output, replay, "r1"],
            capture_output=True,
            text=True,
            env={**os.environ, **standins.env},
            check=False,
        )
        if child.returncode != 0:
            raise RuntimeError(f"assembly child failed:\n{child.stderr}")
        results[str(samples)] = json.loads(child.stdout.strip().splitlines()[-1])
    small, large = (results[str(size)] for size in (min(sizes), max(sizes)))
    results["peak_growth_mb"] = round(large["peak_mb"] - small["peak_mb"], 1)
    return results


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_assemble":
        assemble_child(*sys.argv[2:5])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="a,b,c", help="which parts to run (a,b,c)")
    parser.add_argument("--loops", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="(a): interleaved raw/ours rounds")
    parser.add_argument("--historical", type=int, default=10_000)
    parser.add_argument("--samples", default="1000,100000")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    standins = Standins()
    figures: dict[str, Any] = {}
    try:
        if "a" in parts:
            figures["a"] = bench_throughput(standins, args.loops, args.rounds)
            print(json.dumps(figures["a"]), file=sys.stderr, flush=True)
        if "b" in parts:
            figures["b"] = bench_idle(standins, args.historical)
            print(json.dumps(figures["b"]), file=sys.stderr, flush=True)
        if "c" in parts:
            sizes = [int(size) for size in args.samples.split(",")]
            figures["c"] = bench_memory(standins, sizes)
            print(json.dumps(figures["c"]), file=sys.stderr, flush=True)
    finally:
        standins.stop()
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
