"""Operator benchmark (not a test): the real operator process on a real kube-apiserver.

Issue #8. Everything runs on this machine: etcd + kube-apiserver (envtest binaries), the AWS
stand-ins in their own process (`retraining-standins serve`, so their CPU is not the
operator's), and `retraining-operator run` as a subprocess, sampled from /proc every second.

(a) Idle at scale: the operator with 0 policies (the same-process baseline), then N
    RetrainingPolicies (each polling its own A2I flow definition, no loops pending) for
    `--seconds`: RSS (mean/peak), CPU seconds and CPU % of one core, threads and open fds,
    AWS calls per minute from the stand-ins' request log (vs the configured poll interval)
    and the API server's requests from the operator (apiserver /metrics).
(b) Threshold -> CreateTrainingJob latency: one policy (pollInterval 10s); at a random
    phase of its poll cycle, minNewSamples completed loops are added to the emulator at
    time T; measured: T -> the CreateTrainingJob request arriving at the emulator (request
    log, wall clock). Repeated `--runs` times, a fresh policy and flow definition each time.

    .venv/bin/python bench/operator.py                 # both parts, ~5-6 minutes
    .venv/bin/python bench/operator.py --policies 200 --seconds 120 --only a
    .venv/bin/python bench/operator.py --only b --latency-tick-seconds 2 --no-readme

Prints Markdown tables and rewrites the "Operator" section of bench/README.md (other sections,
and a hand-written "### Notes" subsection at the end of this one, are kept). Ctrl-C (or
SIGTERM) stops the operator, the stand-ins and the control plane. The logs (operator,
stand-ins, apiserver) are kept when a run fails, or always with BENCH_KEEP_WORKDIR=1.
"""

# ruff: noqa: E402 - the sys.path fix below must run before the other imports.

from __future__ import annotations

import os
import sys

# This script is named like the standard library's `operator` module, and Python puts the
# script's directory first on sys.path: without this, `import argparse` (-> enum -> operator)
# would import this file instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import contextlib
import itertools
import queue
import random
import re
import signal
import ssl
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # support.envtest: the checkout's envtest build cache
README = ROOT / "bench" / "README.md"
SECTION = "Operator"

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "bench-operator"
IDLE_NS = "bench-idle"
LATENCY_NS = "bench-latency"
FAILOVER_NS = "bench-failover"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _die_with_parent(sig: int) -> Callable[[], None]:
    """preexec_fn: the child gets `sig` if this process dies without its clean-up."""

    def set_pdeathsig() -> None:  # pragma: no cover - runs between fork and exec
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG

    return set_pdeathsig


def _stop_group(popen: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM the child's own process group, SIGKILL after `grace` seconds."""
    if popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGTERM)
    try:
        popen.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(5)


# -- processes ---------------------------------------------------------------------------------


class Standins:
    """`retraining-standins serve --speed 1` in its own process (real-time emulated clock)."""

    def __init__(self, workdir: Path) -> None:
        self.log_path = workdir / "standins.log"
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "retraining_standins", "serve", "--speed", "1"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
                preexec_fn=_die_with_parent(signal.SIGTERM),
            )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(stream: TextIO) -> None:  # keeps reading so the pipe never fills
            for line in stream:
                lines.put(line)
            lines.put(None)

        assert self.popen.stdout is not None
        threading.Thread(target=pump, args=(self.popen.stdout,), daemon=True).start()
        self.env: dict[str, str] = {}
        deadline = time.monotonic() + 90
        while "STANDINS_CONTROL_URL" not in self.env:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError("the stand-ins printed no endpoints within 90s") from None
            if line is None:
                raise RuntimeError(f"the stand-ins exited; see {self.log_path}")
            match = re.match(r"export (\w+)=(.*)", line.strip())
            if match:
                self.env[match[1]] = match[2].strip("'")
        self.env.update(
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
        )
        from retraining_standins.control import Control

        self.control = Control(self.env["STANDINS_CONTROL_URL"], timeout=60)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        _stop_group(self.popen, 20)


class Operator:
    """`retraining-operator run` against the control plane and the stand-ins."""

    def __init__(
        self, kubeconfig: Path, aws_env: dict[str, str], log_path: Path, argv: list[str]
    ) -> None:
        from retraining_standins.kubeapi import free_port

        self.metrics_port = free_port()
        self.log_path = log_path
        argv = [
            sys.executable,
            "-m",
            "retraining_operator",
            "run",
            "--liveness=",
            f"--metrics-port={self.metrics_port}",
            *argv,
        ]
        env = {**os.environ, **aws_env, "KUBECONFIG": str(kubeconfig)}
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(signal.SIGTERM),
            )
        self.started = time.time()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_ready(self, timeout: float = 60) -> float:
        """Seconds until /metrics answers (kopf's startup handler has run)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"the operator exited; see {self.log_path}")
            with contextlib.suppress(OSError):
                self.metrics()
                return time.time() - self.started
            time.sleep(0.2)
        raise RuntimeError(f"the operator did not start within {timeout:.0f}s")

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def aws_calls(self) -> Counter[str]:
        """rtp_aws_calls_total by service:operation (the operator's own count)."""
        counts: Counter[str] = Counter()
        for line in self.metrics().splitlines():
            match = re.match(
                r'rtp_aws_calls_total\{operation="([^"]+)",service="([^"]+)"\} (\S+)', line
            )
            if match:
                counts[f"{match[2]}:{match[1]}"] += int(float(match[3]))
        return counts

    def stop(self) -> None:
        _stop_group(self.popen, 20)


# -- /proc sampling ----------------------------------------------------------------------------


def _proc_cpu_ticks(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def _proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "Threads"):
            out[key] = int(value.split()[0])
    return out


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest (already in user)
    return total - idle, total


@dataclass
class Sample:
    t: float
    cpu: dict[str, int]  # clock ticks per watched process
    rss_kb: int
    anon_kb: int
    threads: int
    fds: int
    busy: int
    total: int
    load1: float


@dataclass
class Window:
    name: str
    seconds: float
    rss_mean_mb: float
    rss_peak_mb: float
    rss_start_mb: float
    rss_end_mb: float
    anon_mean_mb: float
    cpu_seconds: float
    cpu_percent: float
    threads_max: int
    fds_max: int
    machine_busy_percent: float
    ours_percent: dict[str, float]
    others_percent: float
    load1_mean: float


class Sampler:
    """Every second: the operator's /proc/<pid>/stat and status, our other processes' CPU,
    and the machine's CPU (/proc/stat) and load average."""

    def __init__(self, watched: dict[str, int], interval: float = 1.0) -> None:
        self.watched = watched
        self.operator_pid: int | None = None
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def watch_operator(self, pid: int | None) -> None:
        with self._lock:
            self.operator_pid = pid

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._take()
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _take(self) -> None:
        with self._lock:
            pid = self.operator_pid
        cpu = {name: _proc_cpu_ticks(p) or 0 for name, p in self.watched.items()}
        status: dict[str, int] = {}
        fds = 0
        if pid is not None:
            cpu["operator"] = _proc_cpu_ticks(pid) or 0
            status = _proc_status(pid)
            with contextlib.suppress(OSError):
                fds = len(os.listdir(f"/proc/{pid}/fd"))
        busy, total = _machine_jiffies()
        load1 = float(Path("/proc/loadavg").read_text().split()[0])
        self.samples.append(
            Sample(
                time.time(),
                cpu,
                status.get("VmRSS", 0),
                status.get("RssAnon", 0),
                status.get("Threads", 0),
                fds,
                busy,
                total,
                load1,
            )
        )

    def window(self, name: str, start: float, end: float) -> Window:
        chosen = [s for s in list(self.samples) if start <= s.t <= end]
        if len(chosen) < 2:
            raise RuntimeError(f"fewer than two samples in the window {name}")
        first, last = chosen[0], chosen[-1]
        seconds = last.t - first.t
        ops = last.cpu.get("operator", 0) - first.cpu.get("operator", 0)
        cores = os.cpu_count() or 1
        total = max(1, last.total - first.total)
        machine = 100.0 * (last.busy - first.busy) / total * cores  # % of one core
        ours = {
            n: 100.0 * (last.cpu.get(n, 0) - first.cpu.get(n, 0)) / CLK_TCK / seconds
            for n in last.cpu
        }
        rss = [s.rss_kb / 1024 for s in chosen]
        return Window(
            name=name,
            seconds=seconds,
            rss_mean_mb=statistics.fmean(rss),
            rss_peak_mb=max(rss),
            rss_start_mb=rss[0],
            rss_end_mb=rss[-1],
            anon_mean_mb=statistics.fmean(s.anon_kb / 1024 for s in chosen),
            cpu_seconds=ops / CLK_TCK,
            cpu_percent=100.0 * ops / CLK_TCK / seconds,
            threads_max=max(s.threads for s in chosen),
            fds_max=max(s.fds for s in chosen),
            machine_busy_percent=machine,
            ours_percent=ours,
            others_percent=max(0.0, machine - sum(ours.values())),
            load1_mean=statistics.fmean(s.load1 for s in chosen),
        )


# -- Kubernetes and AWS setup -----------------------------------------------------------------


VOC = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]  # fmt: skip


@dataclass
class World:
    kube: dict[str, Any]
    plane: Any
    standins: Standins
    workdir: Path
    sagemaker: Any = None
    validation_manifest: str = ""
    model_data_url: str = ""
    role_arn: str = f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecution"
    apiserver_ctx: ssl.SSLContext | None = None

    def flow(self, name: str) -> str:
        response = self.sagemaker.create_flow_definition(
            FlowDefinitionName=name,
            OutputConfig={"S3OutputPath": f"s3://{BUCKET}/a2i-results"},
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/a2i",
            HumanLoopConfig={
                "WorkteamArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/b",
                "HumanTaskUiArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-task-ui/bench",
                "TaskTitle": "Draw boxes",
                "TaskDescription": "Label every object",
                "TaskCount": 1,
            },
        )
        return str(response["FlowDefinitionArn"])

    def policy(
        self, namespace: str, name: str, flow_arn: str, poll_interval: str, min_new: int
    ) -> dict[str, Any]:
        from retraining_operator.api import API_GROUP, API_VERSION

        return {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "RetrainingPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "aws": {"region": REGION},
                "humanLoops": {"flowDefinitionArn": flow_arn, "pollInterval": poll_interval},
                "labels": {"classes": VOC},
                "dataset": {
                    "outputS3Uri": f"s3://{BUCKET}/{namespace}/{name}",
                    "minNewSamples": min_new,
                    "validation": {"manifestS3Uri": self.validation_manifest},
                },
                "training": {
                    "roleArn": self.role_arn,
                    "algorithm": "object-detection",
                    "baseModel": {"s3Uri": self.model_data_url},
                    "outputS3Uri": f"s3://{BUCKET}/{namespace}/{name}/training",
                    "hyperParameters": {"num_classes": "20", "epochs": "1"},
                },
                "deployment": {"strategy": "None"},
            },
        }

    def create(self, body: dict[str, Any]) -> None:
        from retraining_operator.api import API_GROUP, API_VERSION, PLURAL

        self.kube["custom"].create_namespaced_custom_object(
            API_GROUP, API_VERSION, body["metadata"]["namespace"], PLURAL, body
        )

    def list_policies(self, namespace: str) -> list[dict[str, Any]]:
        from retraining_operator.api import API_GROUP, API_VERSION, PLURAL

        items = self.kube["custom"].list_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, PLURAL
        )["items"]
        return list(items)

    def get_policy(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        from retraining_operator.api import API_GROUP, API_VERSION, PLURAL

        try:
            obj: dict[str, Any] = self.kube["custom"].get_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return obj

    def delete_policy(self, namespace: str, name: str) -> None:
        from retraining_operator.api import API_GROUP, API_VERSION, PLURAL

        self.kube["custom"].delete_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, PLURAL, name
        )

    def apiserver_requests(self) -> Counter[str]:
        """apiserver_request_total for our resources and Events, by verb/resource/subresource."""
        request = urllib.request.Request(
            f"{self.plane.server}/metrics", headers={"Authorization": f"Bearer {self.plane.token}"}
        )
        with urllib.request.urlopen(request, timeout=10, context=self.apiserver_ctx) as response:
            text = response.read().decode()
        counts: Counter[str] = Counter()
        for line in text.splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.rindex("}")]))
            if labels.get("resource") not in ("retrainingpolicies", "events"):
                continue
            key = labels["verb"] + " " + labels["resource"]
            if labels.get("subresource"):
                key += "/" + labels["subresource"]
            counts[key] += int(float(line.rsplit(" ", 1)[1]))
        return counts


@contextlib.contextmanager
def world(workdir: Path) -> Iterator[World]:
    """Stand-ins (own process), control plane, CRD, namespaces, bucket, model, manifests."""
    from retraining_standins.demo import manifest_lines
    from retraining_standins.demo_run import _clients, _install_crd
    from retraining_standins.kubeapi import ControlPlane
    from retraining_standins.training import model_tarball
    from support.envtest import find_assets

    assets = find_assets()
    say("starting the AWS stand-ins (own process) ...")
    standins = Standins(workdir)
    try:
        os.environ.update(standins.env)  # this process's boto3 talks to the stand-ins too
        say("starting etcd + kube-apiserver ...")
        with ControlPlane(assets, workdir=workdir / "kube") as plane:
            say(f"kube-apiserver up in {plane.startup_seconds:.1f}s")
            kube = _clients(plane.kubeconfig)
            _install_crd(kube)
            for ns in (IDLE_NS, LATENCY_NS, FAILOVER_NS):
                kube["core"].create_namespace({"metadata": {"name": ns}})
            import boto3

            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket=BUCKET)
            validation = f"s3://{BUCKET}/voc/validation.manifest"
            s3.put_object(
                Bucket=BUCKET,
                Key="voc/validation.manifest",
                Body=manifest_lines(random.Random(0), BUCKET, "voc/validation", 20),
            )
            s3.put_object(
                Bucket=BUCKET, Key="model/model.tar.gz", Body=model_tarball({"model": "base"})
            )
            yield World(
                kube=kube,
                plane=plane,
                standins=standins,
                workdir=workdir,
                sagemaker=boto3.client("sagemaker", region_name=REGION),
                validation_manifest=validation,
                model_data_url=f"s3://{BUCKET}/model/model.tar.gz",
                apiserver_ctx=ssl.create_default_context(cafile=str(plane.ca_file)),
            )
            say("stopping the control plane ...")
    finally:
        say("stopping the stand-ins ...")
        standins.stop()


def control_plane_pids(plane: Any) -> dict[str, int]:
    return {proc.name: proc.popen.pid for proc in getattr(plane, "_procs", [])}


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def _operator(w: World, name: str, namespace: str, tick: float) -> Operator:
    return Operator(
        w.plane.kubeconfig,
        w.standins.env,
        w.workdir / f"{name}.log",
        ["--namespace", namespace, f"--tick-seconds={tick}", f"--observe-seconds={tick}"],
    )


# -- (a) idle at scale -------------------------------------------------------------------------


@dataclass
class IdleResult:
    policies: int
    poll_interval_s: float
    tick_s: float
    baseline: Window
    loaded: Window
    create_seconds: float
    warmup_seconds: float
    calls_by_op: dict[str, int]
    calls_per_minute: float
    polls_per_minute: float
    expected_polls_per_minute: float
    poll_period_median_s: float
    poll_period_p90_s: float
    operator_calls: dict[str, int]
    apiserver: dict[str, int]
    log_lines_per_minute: float
    halves: list[Window] = field(default_factory=list)
    info_lines_per_minute: float = 0.0
    lateness_p99: float = float("nan")  # p99 of (poll period / pollInterval)
    late_polls: int = 0  # periods longer than pollInterval x 1.1
    periods: int = 0


def _info_lines(path: Path, skip: int) -> int:
    """Lines at INFO or above (text format: `<date> <time> LEVEL logger: ...`) after `skip`."""
    with path.open("rb") as handle:
        lines = itertools.islice(handle, skip, None)
        return sum(
            1 for line in lines if re.match(rb"\S+ \S+ (INFO|WARNING|ERROR|CRITICAL) ", line)
        )


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def bench_idle(
    w: World, sampler: Sampler, policies: int, seconds: float, poll: float, tick: float
) -> IdleResult:
    control = w.standins.control
    say(f"(a) creating {policies} flow definitions ...")
    flows = [w.flow(f"fd-idle-{i:04d}") for i in range(policies)]
    op = _operator(w, "operator-idle", IDLE_NS, tick)
    sampler.watch_operator(op.pid)
    try:
        ready = op.wait_ready()
        say(f"(a) operator up in {ready:.1f}s (pid {op.pid}); settling 5s, baseline ...")
        time.sleep(5)
        base_start = time.time()
        time.sleep(max(10.0, min(20.0, seconds / 6)))
        baseline = sampler.window("0 policies", base_start, time.time())

        say(f"(a) creating {policies} RetrainingPolicies (pollInterval {poll:g}s) ...")
        began = time.time()
        for i, arn in enumerate(flows):
            w.create(w.policy(IDLE_NS, f"idle-{i:04d}", arn, f"{poll:g}s", 100))
        create_seconds = time.time() - began

        def all_polled() -> bool:
            items = w.list_policies(IDLE_NS)
            done = sum(
                1 for p in items if (p.get("status") or {}).get("ingest", {}).get("lastPollTime")
            )
            say(f"(a)   {done}/{policies} policies have polled once")
            return done >= policies

        wait_until(all_polled, 180 + policies * 0.4, "every policy's first poll", every=3)
        warmup = time.time() - began
        say(f"(a) all polled after {warmup:.0f}s; measuring {seconds:g}s ...")
        control.clear_log()
        api_before = w.apiserver_requests()
        ops_before = op.aws_calls()
        lines_before = _count_lines(op.log_path)
        start = time.time()
        time.sleep(seconds)
        end = time.time()
        api_after = w.apiserver_requests()
        ops_after = op.aws_calls()
        lines_after = _count_lines(op.log_path)
        info_lines = _info_lines(op.log_path, lines_before)
        calls = [c for c in control.calls() if start <= c["wall_time"] <= end]
        loaded = sampler.window(f"{policies} policies", start, end)
        mid = (start + end) / 2
        halves = [sampler.window("half", start, mid), sampler.window("half", mid, end)]
    finally:
        sampler.watch_operator(None)
        say("(a) stopping the operator ...")
        op.stop()

    minutes = (end - start) / 60
    by_op = Counter(f"{c['service']}:{c['operation']}" for c in calls)
    lists = [c for c in calls if c["operation"] == "ListHumanLoops"]
    per_flow: dict[str, list[float]] = defaultdict(list)
    for c in lists:
        per_flow[c["params"].get("FlowDefinitionArn", "?")].append(c["wall_time"])
    periods = sorted(b - a for times in per_flow.values() for a, b in itertools.pairwise(times))
    ratios = [period / poll for period in periods]
    return IdleResult(
        info_lines_per_minute=info_lines / minutes,
        lateness_p99=ratios[int(0.99 * (len(ratios) - 1))] if ratios else float("nan"),
        late_polls=sum(ratio > 1.1 for ratio in ratios),
        periods=len(ratios),
        policies=policies,
        poll_interval_s=poll,
        tick_s=tick,
        baseline=baseline,
        loaded=loaded,
        create_seconds=create_seconds,
        warmup_seconds=warmup,
        calls_by_op=dict(by_op.most_common()),
        calls_per_minute=len(calls) / minutes,
        polls_per_minute=len(lists) / minutes,
        expected_polls_per_minute=policies * 60 / poll,
        poll_period_median_s=statistics.median(periods) if periods else float("nan"),
        poll_period_p90_s=periods[int(0.9 * (len(periods) - 1))] if periods else float("nan"),
        operator_calls=dict((ops_after - ops_before).most_common()),
        apiserver=dict((api_after - api_before).most_common()),
        log_lines_per_minute=(lines_after - lines_before) / minutes,
        halves=halves,
    )


# -- (c) failover ------------------------------------------------------------------------------


@dataclass
class FailoverResult:
    policies: int
    poll_interval_s: float
    lease: str
    takeover_s: float  # SIGKILL of the leader -> the standby's first AWS call
    all_polled_s: float  # SIGKILL -> every policy polled by the standby
    worst_gap_ratio: float  # max over policies: (first poll after - last poll before) / interval
    leader_calls_after_kill: int
    standby_calls_before_kill: int


def bench_failover(w: World, policies: int, poll: float, tick: float) -> FailoverResult:
    """Two operators with leader election (production Lease timings 15/10/2 s), `policies`
    idle policies; SIGKILL the leader; each process signs with its own access key id, so
    the request log says who called."""
    control = w.standins.control
    keys = {"op-a": "AKIABENCHLEADER00001", "op-b": "AKIABENCHSTANDBY0002"}
    say(f"(c) creating {policies} flow definitions and policies ...")
    flows = [w.flow(f"fd-failover-{i:04d}") for i in range(policies)]
    for i, arn in enumerate(flows):
        w.create(w.policy(FAILOVER_NS, f"failover-{i:04d}", arn, f"{poll:g}s", 100))

    def start(identity: str) -> Operator:
        return Operator(
            w.plane.kubeconfig,
            {**w.standins.env, "AWS_ACCESS_KEY_ID": keys[identity]},
            w.workdir / f"operator-{identity}.log",
            [
                "--namespace", FAILOVER_NS, f"--tick-seconds={tick}", f"--observe-seconds={tick}",
                "--leader-election", f"--lease-namespace={FAILOVER_NS}", f"--identity={identity}",
            ],
        )  # fmt: skip

    def polled_by(key: str, after: float) -> set[str]:
        return {
            c["params"].get("FlowDefinitionArn", "?")
            for c in control.calls()
            if c["operation"] == "ListHumanLoops"
            and c.get("access_key") == key
            and c["wall_time"] > after
        }

    leader = start("op-a")
    standby: Operator | None = None
    try:
        leader.wait_ready()
        wait_until(
            lambda: len(polled_by(keys["op-a"], 0)) >= policies,
            180 + policies * 0.4,
            "the leader's first poll of every policy",
            every=2,
        )
        standby = start("op-b")
        standby.wait_ready()
        time.sleep(max(10.0, poll / 2))  # steady state: the leader polls, the standby waits
        before = control.calls()
        os.killpg(leader.pid, signal.SIGKILL)
        killed = time.time()
        say("(c) leader SIGKILLed; waiting for the standby ...")
        wait_until(lambda: polled_by(keys["op-b"], killed), 90, "the standby's first poll", 0.2)
        first = min(
            c["wall_time"]
            for c in control.calls()
            if c.get("access_key") == keys["op-b"] and c["wall_time"] > killed
        )
        wait_until(
            lambda: len(polled_by(keys["op-b"], killed)) >= policies,
            120 + poll * 2,
            "every policy polled by the standby",
            every=1,
        )
        all_polled = time.time() - killed
        calls = control.calls()
    finally:
        with contextlib.suppress(Exception):
            _stop_group(leader.popen, 1)
        if standby is not None:
            standby.stop()
    last_before: dict[str, float] = {}
    first_after: dict[str, float] = {}
    for c in calls:
        if c["operation"] != "ListHumanLoops":
            continue
        arn = c["params"].get("FlowDefinitionArn", "?")
        if c.get("access_key") == keys["op-a"] and c["wall_time"] <= killed:
            last_before[arn] = max(last_before.get(arn, 0.0), c["wall_time"])
        elif c.get("access_key") == keys["op-b"] and c["wall_time"] > killed:
            first_after[arn] = min(first_after.get(arn, float("inf")), c["wall_time"])
    gaps = [(first_after[a] - last_before[a]) / poll for a in first_after if a in last_before]
    return FailoverResult(
        policies=policies,
        poll_interval_s=poll,
        lease="15/10/2 s",
        takeover_s=first - killed,
        all_polled_s=all_polled,
        worst_gap_ratio=max(gaps) if gaps else float("nan"),
        leader_calls_after_kill=sum(
            1 for c in calls if c.get("access_key") == keys["op-a"] and c["wall_time"] > killed
        ),
        standby_calls_before_kill=sum(1 for c in before if c.get("access_key") == keys["op-b"]),
    )


def report_failover(r: FailoverResult) -> str:
    rows = [
        ["SIGKILL of the leader -> the standby's first AWS call (s)", f"{r.takeover_s:.1f}"],
        ["SIGKILL -> every policy polled again by the standby (s)", f"{r.all_polled_s:.1f}"],
        [
            "worst poll gap across the failover / pollInterval",
            f"{r.worst_gap_ratio:.2f}",
        ],
        ["AWS calls by the killed leader after the kill", r.leader_calls_after_kill],
        ["AWS calls by the standby before the kill", r.standby_calls_before_kill],
    ]
    return (
        f"### (c) failover: 2 operators, leader election (Lease {r.lease}), {r.policies} idle "
        f"policies, pollInterval {r.poll_interval_s:g}s\n\n{_table(['', 'value'], rows)}\n"
    )


# -- (b) threshold -> CreateTrainingJob ---------------------------------------------------------


@dataclass
class LatencyRun:
    run: int
    phase_s: float  # delay after the policy's first poll before T
    latency_s: float  # T -> CreateTrainingJob arrives
    to_poll_s: float  # T -> the poll that saw the loops
    poll_to_create_s: float  # that poll -> CreateTrainingJob
    poll_gap_s: float  # the poll before T -> the poll that saw the loops
    add_call_s: float  # how long the control call adding the loops took
    deleted_s: float  # policy delete -> gone (finalizer done); NaN if not within 30s
    first_poll_s: float  # policy created -> its first poll seen in status
    job_stopped: bool  # the finalizer called StopTrainingJob for the submitted job


@dataclass
class LatencyResult:
    poll_interval_s: float
    tick_s: float
    min_new_samples: int
    runs: list[LatencyRun]
    window: Window | None = None


def bench_latency(
    w: World, sampler: Sampler, runs: int, poll: float, tick: float, min_new: int, seed: int
) -> LatencyResult:
    rng = random.Random(seed)
    op = _operator(w, "operator-latency", LATENCY_NS, tick)
    sampler.watch_operator(op.pid)
    results: list[LatencyRun] = []
    window = None
    try:
        ready = op.wait_ready()
        say(f"(b) operator up in {ready:.1f}s (pid {op.pid})")
        began = time.time()
        for i in range(runs):
            results.append(_latency_run(w, rng, i + 1, poll, min_new))
            run = results[-1]
            say(
                f"(b) run {run.run}: T -> CreateTrainingJob {run.latency_s:.2f}s "
                f"(T -> poll {run.to_poll_s:.2f}s, poll -> create {run.poll_to_create_s:.2f}s, "
                f"poll gap {run.poll_gap_s:.1f}s, first poll {run.first_poll_s:.1f}s after create)"
            )
        window = sampler.window("latency runs", began, time.time())
    finally:
        sampler.watch_operator(None)
        say("(b) stopping the operator ...")
        op.stop()
    return LatencyResult(poll, tick, min_new, results, window)


def _latency_run(w: World, rng: random.Random, run: int, poll: float, min_new: int) -> LatencyRun:
    control = w.standins.control
    name, flow_name = f"lat-{run}", f"fd-lat-{run}"
    flow_arn = w.flow(flow_name)
    control.clear_log()  # from here on the log holds only this policy's calls
    created_at = time.time()
    w.create(w.policy(LATENCY_NS, name, flow_arn, f"{poll:g}s", min_new))

    def polled() -> bool:
        obj = w.get_policy(LATENCY_NS, name) or {}
        return bool((obj.get("status") or {}).get("ingest", {}).get("lastPollTime"))

    wait_until(polled, 60, f"{name}'s first poll", every=0.2)
    first_poll = time.time() - created_at
    # A random phase of the poll cycle: T is uniform over one interval after a poll.
    phase = rng.uniform(0, poll)
    time.sleep(phase)
    t0 = time.time()
    control.add_loops(flow_name, min_new, status="Completed", interval=1)
    t1 = time.time()

    def created() -> dict[str, Any] | None:
        for call in control.calls("sagemaker"):
            if call["operation"] == "CreateTrainingJob" and call["wall_time"] >= t0:
                return call
        return None

    create = wait_until(created, 4 * poll + 30, "CreateTrainingJob", every=0.2)
    lists = [
        c["wall_time"]
        for c in control.calls("sagemaker-a2i-runtime")
        if c["operation"] == "ListHumanLoops"
        and c["params"].get("FlowDefinitionArn") == flow_arn
        and c["wall_time"] <= create["wall_time"]
    ]
    # A pass polls at most once and submits the job in the same pass, so the last listing
    # before CreateTrainingJob is the poll that crossed the threshold.
    saw = lists[-1] if lists else float("nan")
    gap = lists[-1] - lists[-2] if len(lists) >= 2 else float("nan")
    # Clean up before the next run: deleting runs the finalizer (stop the training job).
    deleting = time.time()
    w.delete_policy(LATENCY_NS, name)
    try:
        wait_until(lambda: w.get_policy(LATENCY_NS, name) is None, 30, f"{name} gone", every=0.3)
        deleted = time.time() - deleting
    except TimeoutError:
        say(f"(b) {name} still exists 30s after its deletion; going on (logs kept)")
        os.environ["BENCH_KEEP_WORKDIR"] = "1"
        deleted = float("nan")
    stopped = any(
        c["operation"] == "StopTrainingJob"
        and c["params"].get("TrainingJobName") == create["params"].get("TrainingJobName")
        for c in control.calls("sagemaker")
    )
    return LatencyRun(
        run=run,
        phase_s=phase,
        latency_s=create["wall_time"] - t0,
        to_poll_s=saw - t0,
        poll_to_create_s=create["wall_time"] - saw,
        poll_gap_s=gap,
        add_call_s=t1 - t0,
        deleted_s=deleted,
        first_poll_s=first_poll,
        job_stopped=stopped,
    )


# -- report ------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _load_rows(windows: list[Window]) -> list[list[Any]]:
    rows = []
    for win in windows:
        ours = ", ".join(f"{n} {p:.0f}%" for n, p in sorted(win.ours_percent.items()) if p >= 0.5)
        rows.append(
            [
                win.name,
                f"{win.seconds:.0f}",
                f"{win.machine_busy_percent:.0f}% of {100 * (os.cpu_count() or 1)}%",
                ours or "-",
                f"{win.others_percent:.0f}%",
                f"{win.load1_mean:.2f}",
            ]
        )
    return rows


def report_idle(r: IdleResult) -> str:
    b, n = r.baseline, r.loaded
    per_policy_kb = (n.rss_mean_mb - b.rss_mean_mb) * 1024 / r.policies

    def grow(before: float, after: float) -> str:
        return f"{after - before:+.1f}"

    resources = _table(
        ["operator process", "0 policies (baseline)", f"{r.policies} policies", "growth"],
        [
            ["window (s)", f"{b.seconds:.0f}", f"{n.seconds:.0f}", ""],
            ["RSS mean (MiB)", b.rss_mean_mb, n.rss_mean_mb, grow(b.rss_mean_mb, n.rss_mean_mb)],
            ["RSS peak (MiB)", b.rss_peak_mb, n.rss_peak_mb, grow(b.rss_peak_mb, n.rss_peak_mb)],
            [
                "RSS start -> end of window (MiB)",
                f"{b.rss_start_mb:.1f} -> {b.rss_end_mb:.1f}",
                f"{n.rss_start_mb:.1f} -> {n.rss_end_mb:.1f}",
                "",
            ],
            [
                "anon RSS mean (MiB)",
                b.anon_mean_mb,
                n.anon_mean_mb,
                grow(b.anon_mean_mb, n.anon_mean_mb),
            ],
            ["RSS per policy (KiB)", "", "", f"{per_policy_kb:.0f}"],
            ["CPU seconds in window", b.cpu_seconds, n.cpu_seconds, ""],
            ["CPU % of one core", b.cpu_percent, n.cpu_percent, grow(b.cpu_percent, n.cpu_percent)],
            [
                "CPU % of one core, 1st / 2nd half of the window",
                "",
                " / ".join(f"{h.cpu_percent:.1f}" for h in r.halves),
                "",
            ],
            ["threads (max)", b.threads_max, n.threads_max, f"{n.threads_max - b.threads_max:+d}"],
            ["open fds (max)", b.fds_max, n.fds_max, f"{n.fds_max - b.fds_max:+d}"],
        ],
    )
    minutes = n.seconds / 60
    ideal = r.expected_polls_per_minute
    per_poll = r.calls_per_minute / max(r.polls_per_minute, 1e-9)
    steady = r.policies * per_poll * 60 / r.poll_period_median_s
    calls = _table(
        ["AWS calls (stand-ins' request log)", "value"],
        [
            ["all calls per minute", f"{r.calls_per_minute:.0f}"],
            ["ListHumanLoops (polls) per minute", f"{r.polls_per_minute:.0f}"],
            [
                f"expected polls per minute: {r.policies} x 60 / {r.poll_interval_s:g}s "
                "(+0-10% per-policy stretch)",
                f"{ideal:.0f} ({ideal / 1.1:.0f}-{ideal:.0f})",
            ],
            ["calls per poll", f"{per_poll:.2f}"],
            [
                "per-policy poll period, median / p90 (s)",
                f"{r.poll_period_median_s:.1f} / {r.poll_period_p90_s:.1f} "
                f"(configured {r.poll_interval_s:g}, tick {r.tick_s:g})",
            ],
            *[[f"  {op}", f"{count / minutes:.0f}/min"] for op, count in r.calls_by_op.items()],
            [
                "steady state from the median period: policies x calls per poll x 60 / period",
                f"{steady:.0f}/min (vs {r.policies * per_poll * 60 / r.poll_interval_s:.0f}/min "
                "at exactly pollInterval)",
            ],
            [
                "operator's own count (rtp_aws_calls_total)",
                f"{sum(r.operator_calls.values()) / minutes:.0f}/min",
            ],
        ],
    )
    api = _table(
        ["API server requests during the window", "per minute"],
        [[k, f"{v / minutes:.0f}"] for k, v in r.apiserver.items()]
        or [["(none for retrainingpolicies/events)", "0"]],
    )
    load = _table(
        ["window", "s", "machine CPU busy", "ours (per process)", "others", "load1"],
        _load_rows([b, n]),
    )
    notes = []
    if per_policy_kb > 4096:
        notes.append(
            f"RSS grows by {per_policy_kb / 1024:.1f} MiB per idle policy. The operator keeps "
            "one AwsSession per policy UID (`handlers._session`), each with its own "
            "`boto3.Session`, whose botocore loader loads and keeps its own copy of the S3 and "
            "A2I service models and endpoint rules."
        )
    stretched = r.poll_interval_s * 1.05
    if r.poll_period_median_s > stretched + 0.5 * r.tick_s:
        notes.append(
            f"The median poll period is {r.poll_period_median_s:.0f}s for a pollInterval of "
            f"{r.poll_interval_s:g}s: a poll is only due at a tick ({r.tick_s:g}s) at or after "
            "lastPoll + interval x (1 + up to 10 % per-UID stretch), so the period rounds up "
            "to whole ticks."
        )
    observations = "".join(f"- {note}\n" for note in notes)
    return (
        f"### (a) {r.policies} idle policies, pollInterval {r.poll_interval_s:g}s, "
        f"tick {r.tick_s:g}s\n\n"
        f"Policies created in {r.create_seconds:.1f}s; every policy had polled once "
        f"{r.warmup_seconds:.0f}s after the first was created; then measured "
        f"{n.seconds:.0f}s.\n\n{resources}\n\n{calls}\n\n{api}\n\n"
        f"Operator log: {r.log_lines_per_minute:.0f} lines/min, "
        f"{r.info_lines_per_minute:.1f} at INFO or above.\n\n"
        f"Status PATCHes: {r.apiserver.get('PATCH retrainingpolicies/status', 0) / minutes:.1f}"
        f"/min. Poll period / pollInterval: p99 {r.lateness_p99:.3f}; {r.late_polls} of "
        f"{r.periods} periods longer than pollInterval x 1.1.\n\n"
        f"Machine load (2 cores; `others` = processes that are not this benchmark's):\n\n{load}\n"
        + (f"\nObservations:\n\n{observations}" if observations else "")
    )


def _span(values: list[float]) -> str:
    if not values:
        return "?"
    low, high = f"{min(values):.0f}", f"{max(values):.0f}"
    return low if low == high else f"{low}-{high}"


def report_latency(r: LatencyResult) -> str:
    target = r.poll_interval_s + 2
    rows: list[list[Any]] = [
        [
            run.run,
            f"{run.phase_s:.2f}",
            f"{run.to_poll_s:.2f}",
            f"{run.poll_to_create_s:.2f}",
            f"**{run.latency_s:.2f}**",
            f"{run.poll_gap_s:.1f}",
            "yes" if run.latency_s <= target else "**no**",
            f"{run.deleted_s:.1f}",
            "yes" if run.job_stopped else "**no**",
        ]
        for run in r.runs
    ]
    latencies = [run.latency_s for run in r.runs]
    summary = _table(
        ["T -> CreateTrainingJob (s)", "min", "median", "max", "target"],
        [
            [
                f"{len(latencies)} runs",
                f"{min(latencies):.2f}",
                f"{statistics.median(latencies):.2f}",
                f"{max(latencies):.2f}",
                f"<= {target:g} (pollInterval + 2 s)",
            ]
        ],
    )
    detail = _table(
        [
            "run",
            "T after a poll (s)",
            "T -> poll that saw them (s)",
            "poll -> CreateTrainingJob (s)",
            "T -> CreateTrainingJob (s)",
            "gap between the last two polls (s)",
            "within target",
            "delete -> gone (s)",
            "finalizer stopped the job",
        ],
        rows,
    )
    load = _table(
        ["window", "s", "machine CPU busy", "ours (per process)", "others", "load1"],
        _load_rows([r.window]) if r.window else [],
    )
    gaps = [run.poll_gap_s for run in r.runs if run.poll_gap_s == run.poll_gap_s]
    notes = []
    missed = sum(x > target for x in latencies)
    if missed:
        notes.append(
            f"{missed} of {len(latencies)} runs missed the target. Polls came {_span(gaps)}s "
            f"apart (pollInterval {r.poll_interval_s:g}s, tick {r.tick_s:g}s): a poll is due "
            "at lastPoll + interval x (1 + 0-10 % per-UID stretch) but only checked on a "
            "tick, so the period rounds up to whole ticks, and T -> poll can take that whole "
            "gap. After the poll, the job was submitted within "
            f"{max(x.poll_to_create_s for x in r.runs):.2f}s."
        )
    unstopped = [run for run in r.runs if not run.job_stopped]
    if unstopped:
        notes.append(
            f"In {len(unstopped)} of {len(r.runs)} runs the policy, deleted right after its "
            "CreateTrainingJob, was finalized without a StopTrainingJob for that job: the job "
            "is left running."
        )
    observations = "".join(f"- {note}\n" for note in notes)
    if observations:
        observations = f"\nObservations:\n\n{observations}"
    return (
        f"### (b) threshold reached -> CreateTrainingJob, pollInterval {r.poll_interval_s:g}s, "
        f"tick {r.tick_s:g}s, minNewSamples {r.min_new_samples}\n\n"
        f"{summary}\n\n{detail}\n\nMachine load:\n\n{load}\n{observations}"
    )


NOTES = "### Notes"


def write_readme(body: str) -> None:
    """Replace (or add) the `## Operator` section; every other section stays as it is, and so
    does a hand-written `### Notes` subsection at the end of this one."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {SECTION}\s*\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    found = pattern.search(text)
    notes = ""
    if found and f"\n{NOTES}\n" in found.group(0):
        notes = found.group(0)[found.group(0).index(f"\n{NOTES}\n") + 1 :].strip()
    section = f"## {SECTION}\n\n{body.strip()}\n" + (f"\n{notes}\n" if notes else "")
    if found:
        text = text[: found.start()] + section + "\n" + text[found.end() :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    README.write_text(text.rstrip("\n") + "\n")


# -- main --------------------------------------------------------------------------------------


def _newest_source() -> float:
    return max(f.stat().st_mtime for f in (ROOT / "operator").rglob("*.py"))


def code_state() -> str:
    """The commit, and whether the operator's sources had uncommitted changes (read-only git)."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(ROOT), *argv],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown commit"
    dirty = git("status", "--porcelain", "--", "operator").splitlines()
    if not dirty:
        return f"commit {head}"
    newest = datetime.fromtimestamp(_newest_source(), UTC).strftime("%H:%M:%S UTC")
    return (
        f"commit {head} + uncommitted changes to {len(dirty)} files under operator/ "
        f"(newest {newest})"
    )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=120, help="(a) measured window")
    parser.add_argument("--poll-interval", type=float, default=60, help="(a) pollInterval, s")
    parser.add_argument(
        "--tick-seconds", type=float, default=30, help="operator --tick-seconds (its default: 30)"
    )
    parser.add_argument("--runs", type=int, default=5, help="(b) repetitions")
    parser.add_argument("--latency-poll-interval", type=float, default=10)
    parser.add_argument(
        "--latency-tick-seconds", type=float, help="(b) operator --tick-seconds (default: same)"
    )
    parser.add_argument("--min-new-samples", type=int, default=5)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--only", choices=["a", "b", "c"])
    parser.add_argument("--no-readme", action="store_true", help="do not touch bench/README.md")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)

    began = time.time()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    code = code_state()
    say(f"measuring {code}")
    sections: list[str] = []
    idle: IdleResult | None = None
    latency: LatencyResult | None = None
    workdir = Path(tempfile.mkdtemp(prefix="rtp-bench-operator-"))
    try:
        with world(workdir) as w:
            watched = {"standins": w.standins.pid, "bench": os.getpid()}
            watched.update(control_plane_pids(w.plane))
            with Sampler(watched) as sampler:
                if args.only in (None, "a"):
                    idle = bench_idle(
                        w, sampler, args.policies, args.seconds, args.poll_interval,
                        args.tick_seconds,
                    )  # fmt: skip
                    sections.append(report_idle(idle))
                    print(sections[-1], flush=True)
                if args.only == "c":  # not part of the default run (takes a few minutes)
                    failover = bench_failover(
                        w, args.policies, args.poll_interval, args.tick_seconds
                    )
                    sections.append(report_failover(failover))
                    print(sections[-1], flush=True)
                if args.only in (None, "b"):
                    latency = bench_latency(
                        w, sampler, args.runs, args.latency_poll_interval,
                        args.latency_tick_seconds or args.tick_seconds,
                        args.min_new_samples, args.seed,
                    )  # fmt: skip
                    sections.append(report_latency(latency))
                    print(sections[-1], flush=True)
    except KeyboardInterrupt:
        say("interrupted: everything this benchmark started has been stopped")
        return 130
    except BaseException:
        say(f"failed; logs kept in {workdir}")
        os.environ["BENCH_KEEP_WORKDIR"] = "1"
        raise
    finally:
        if not os.environ.get("BENCH_KEEP_WORKDIR"):
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    total = time.time() - began
    say(f"done in {total:.0f}s")
    if _newest_source() > began:
        code += "; **the operator's sources changed during this run**"
        say("warning: the operator's sources changed while the benchmark ran")
    if not args.no_readme and sections:
        header = (
            f"`.venv/bin/python bench/operator.py --policies {args.policies} "
            f"--seconds {args.seconds:g}` ({started_at}, {total:.0f}s, "
            f"{os.cpu_count()} cores shared with other jobs), on {code}.\n"
        )
        write_readme(header + "\n" + METHOD + "\n" + "\n".join(sections))
        say(f"wrote the {SECTION} section of {README.relative_to(ROOT)}")
    return 0


METHOD = """\
How: etcd + kube-apiserver (envtest binaries), the AWS stand-ins in their own process
(`retraining-standins serve --speed 1`), and `retraining-operator run --namespace <ns>` as
a subprocess with its /metrics on. /proc/<pid>/stat (utime+stime) and /proc/<pid>/status
(VmRSS, RssAnon, Threads) plus the fd count are sampled every second. The baseline is the same
operator process before any policy exists. AWS calls come from the stand-ins' request log
(arrival wall time); API server requests from the apiserver's own `apiserver_request_total`.
In (b), T is when the control call adding `minNewSamples` Completed loops to the emulator
starts; the end is the CreateTrainingJob's arrival in the emulator's request log.
"""


if __name__ == "__main__":
    sys.exit(main())
