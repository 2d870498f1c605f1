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
(d) Event-driven ingest (issue 19): loop completion -> counted in status.ingest.pendingSamples,
    p50/p95 over 100 loops, events vs polling at the default pollInterval; and AWS calls per
    policy per hour while idle, events vs polling. The stand-ins run in this process for (d)
    (the event relay that plays EventBridge lives with the A2I emulator); see bench/README.md.

    .venv/bin/python bench/ingest.py            # all three; prints the figures as JSON
    .venv/bin/python bench/ingest.py --only a --loops 500
    .venv/bin/python bench/ingest.py --only d
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
    from retraining_operator.aws.session import AwsSession, ClientSettings

    return AwsSession(REGION, settings=ClientSettings(pool=CONCURRENCY))


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
    from retraining_standins.faults import FaultRule
    from support.ingest import poll

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
    from support.ingest import poll

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
    from support.ingest import KEYRING

    # Sealed as the operator would (support.ingest's key: RTP_PROCESS_LEDGER_KEY, shared
    # with the child that assembles the run).
    s3.put(S3Location.parse(f"{output}/ledger/head.json"), ledger.to_json(KEYRING.for_policy("")))
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
    from support.ingest import assemble_run_dataset

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


# -- (d) events vs polling ----------------------------------------------------------------------


def bench_events(loops: int, idle_seconds: float) -> dict[str, Any]:
    """Latency and idle call rates of event-driven ingest vs polling (see bench/README.md)."""
    from retraining_standins.stack import AwsStandins, isolated_aws_env

    with AwsStandins() as aws:
        os.environ.update(isolated_aws_env(aws))
        aws.create_bucket("bench-events")
        url = aws.create_queue("a2i-events")
        flows = {}
        for name in ("fd-ev", "fd-poll", "fd-idle-poll", "fd-idle-ev"):  # one per policy
            flows[name] = aws.a2i.create_flow_definition(name, "s3://bench-events/a2i-results")
            if name in ("fd-ev", "fd-idle-ev"):
                assert aws.events is not None
                aws.events.route(flows[name].arn, url)
        events = _events_latency(aws, flows["fd-ev"].arn, url, loops)
        polling = _polling_latency(aws, flows["fd-poll"].arn, loops)
        idle = _idle_calls(
            aws, flows["fd-idle-poll"].arn, flows["fd-idle-ev"].arn, url, idle_seconds
        )
    return {"latency_events": events, "latency_polling": polling, "idle_calls_per_hour": idle}


def _policy(aws: Any, flow_arn: str, output: str, queue_url: str | None) -> dict[str, Any]:
    spec = _spec(flow_arn, output, minNewSamples=100000, maxWait="8760h").to_wire()
    if queue_url is not None:
        spec["humanLoops"]["events"] = {"sqsQueueUrl": queue_url, "backstopInterval": "1h"}
    return spec


class _Daemon:
    """The kopf daemon's loop for one policy: a pass, then sleep until due or woken."""

    def __init__(self, aws: Any, spec: dict[str, Any], hub: Any, uid: str) -> None:
        import threading
        from datetime import timedelta

        from retraining_operator.config import OperatorConfig
        from retraining_operator.policy_pass.context import PolicyMemo
        from retraining_operator.policy_pass.controller import Controller
        from retraining_operator.reconcile.naming import PolicyRef

        self.spec = spec
        self.ref = PolicyRef(namespace="bench", name=uid, uid=uid)
        self.status: dict[str, Any] = {}
        self.woken = threading.Event()
        self.memo = PolicyMemo(event_hub=hub, wake=self.woken.set)
        self.controller = Controller(
            OperatorConfig(tick_seconds=10, aws_calls_per_second=0),
            lambda ref, spec: _session(),
            clock=aws.clock.now,
            started_at=aws.clock.now() - timedelta(hours=1),
        )
        self.pending = 0
        self.counted: list[tuple[int, float]] = []  # (pending samples, monotonic time)
        self.changed = threading.Condition()

    def reconcile(self) -> float:
        from retraining_operator.policy_pass.controller import PolicyView

        view = PolicyView(self.ref, 1, {}, dict(self.spec), dict(self.status))
        result = self.controller.reconcile(view, self._checkpoint, self.memo)
        return result.requeue_after or 10.0

    def _checkpoint(self, status: Any) -> None:
        self.status = status.to_wire()
        pending = status.ingest.pending_samples
        if pending != self.pending:
            with self.changed:
                self.pending = pending
                self.counted.append((pending, time.monotonic()))
                self.changed.notify_all()


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_s": round(statistics.median(ordered), 3),
        "p95_s": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3),
        "max_s": round(ordered[-1], 3),
    }


def _events_latency(aws: Any, flow_arn: str, url: str, loops: int) -> dict[str, Any]:
    """Real time: the consumer thread long-polls moto's SQS and wakes the daemon thread."""
    import threading

    from retraining_operator.runtime.event_hub import EventHub

    hub = EventHub()
    daemon = _Daemon(aws, _policy(aws, flow_arn, "s3://bench-events/ev", url), hub, "ev")
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            daemon.woken.clear()
            delay = daemon.reconcile()
            daemon.woken.wait(min(delay, 10.0))

    names = [f"ev-{i:03d}" for i in range(loops)]
    for name in names:
        aws.a2i.add_loop("fd-ev", name, status="InProgress")
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    rng = random.Random(19)
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + 30
        while not daemon.memo.events_flowing and time.monotonic() < deadline:
            time.sleep(0.05)
        for index, name in enumerate(names):
            time.sleep(rng.uniform(0.0, 0.3))
            started = time.monotonic()
            aws.a2i.complete_loop(name)
            with daemon.changed:
                daemon.changed.wait_for(lambda i=index: daemon.pending > i, timeout=60)
                counted = next(t for p, t in daemon.counted if p > index)
            latencies.append(counted - started)
    finally:
        stop.set()
        daemon.woken.set()
        thread.join(30)
        hub.stop(timeout=25)
    return _percentiles(latencies)


def _polling_latency(aws: Any, flow_arn: str, loops: int) -> dict[str, Any]:
    """On the emulated clock: the daemon sleeps exactly as the pass asks (requeue_after)
    and loops complete at random times in between; the passes run the real code."""
    from datetime import timedelta

    daemon = _Daemon(aws, _policy(aws, flow_arn, "s3://bench-events/poll", None), None, "poll")
    rng = random.Random(5)
    names = [f"poll-{i:03d}" for i in range(loops)]
    for name in names:
        aws.a2i.add_loop("fd-poll", name, status="InProgress")
    daemon.reconcile()
    completions: list[tuple[Any, str]] = []
    at = aws.clock.now()
    for name in names:  # one completion every 30 s on average, over 50 minutes
        at += timedelta(seconds=rng.expovariate(1 / 30))
        completions.append((at, name))
    due = aws.clock.now() + timedelta(seconds=daemon.reconcile())
    completed_at: dict[int, Any] = {}
    latencies: list[float] = []
    done = 0
    while len(latencies) < loops:
        if done < loops and completions[done][0] < due:
            when, name = completions[done]
            aws.clock.advance((when - aws.clock.now()).total_seconds())
            aws.a2i.complete_loop(name)
            completed_at[done] = when
            done += 1
            continue
        aws.clock.advance(max(0.0, (due - aws.clock.now()).total_seconds()))
        before = daemon.pending
        delay = daemon.reconcile()
        now = aws.clock.now()
        for index in range(before, daemon.pending):
            latencies.append((now - completed_at[index]).total_seconds())
        due = now + timedelta(seconds=delay)
    return _percentiles(latencies)


def _idle_calls(
    aws: Any, poll_flow: str, events_flow: str, url: str, seconds: float
) -> dict[str, Any]:
    """A2I+S3 calls per hour over 24 emulated hours of passes (the listing schedule, and
    the watermark persisted every 6 hours), and SQS ReceiveMessage calls starting in
    `seconds` of real long polling, per hour."""
    from datetime import timedelta

    from retraining_operator.runtime.event_hub import EventHub

    hours = 24

    def hour_of_passes(daemon: _Daemon) -> float:
        daemon.reconcile()
        aws.log.clear()
        end = aws.clock.now() + timedelta(hours=hours)
        while aws.clock.now() < end:
            delay = daemon.reconcile()
            aws.clock.advance(min(delay, (end - aws.clock.now()).total_seconds() + 0.001))
        return len([c for c in aws.log.calls() if c.service != "sqs"]) / hours

    polling = hour_of_passes(
        _Daemon(aws, _policy(aws, poll_flow, "s3://bench-events/idle-poll", None), None, "ip")
    )
    hub = EventHub()
    try:
        spec = _policy(aws, events_flow, "s3://bench-events/idle-ev", url)
        daemon = _Daemon(aws, spec, hub, "ie")
        daemon.reconcile()
        deadline = time.monotonic() + 30
        while hub.health(url).reachable is not True and time.monotonic() < deadline:
            time.sleep(0.05)
        events_listing = hour_of_passes(daemon)
        aws.log.clear()  # a receive in flight now is not recorded: count those that start
        began = time.time()
        time.sleep(seconds + 21)  # ... in the window, once the last one's 20 s wait is over
        receives = len(
            [c for c in aws.log.calls("sqs", "ReceiveMessage") if c.wall_time < began + seconds]
        )
    finally:
        hub.stop(timeout=25)
    per_queue = receives * 3600 / seconds
    return {
        "polling_5m": round(polling, 1),
        "events_a2i_and_s3": round(events_listing, 1),
        "events_sqs_receives_per_queue": round(per_queue, 1),
        "events_total_one_policy_per_queue": round(events_listing + per_queue, 1),
        "events_total_20_policies_per_queue": round(events_listing + per_queue / 20, 1),
    }


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    # One ledger key for this benchmark and the children it starts (support/ingest.py).
    os.environ.setdefault("RTP_PROCESS_LEDGER_KEY", os.urandom(32).hex())
    if len(sys.argv) > 1 and sys.argv[1] == "_assemble":
        assemble_child(*sys.argv[2:5])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="a,b,c,d", help="which parts to run (a,b,c,d)")
    parser.add_argument("--event-loops", type=int, default=100, help="(d): loops per mode")
    parser.add_argument("--idle-seconds", type=float, default=120, help="(d): SQS idle window")
    parser.add_argument("--loops", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="(a): interleaved raw/ours rounds")
    parser.add_argument("--historical", type=int, default=10_000)
    parser.add_argument("--samples", default="1000,100000")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    standins = Standins() if parts & {"a", "b", "c"} else None
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
        if "d" in parts:
            figures["d"] = bench_events(args.event_loops, args.idle_seconds)
            print(json.dumps(figures["d"]), file=sys.stderr, flush=True)
    finally:
        if standins is not None:
            standins.stop()
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
