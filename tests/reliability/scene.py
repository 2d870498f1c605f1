"""One reliability scene: a namespace on the real API server, the AWS stand-ins on a real-time
clock with short lifecycles (the demo's world, with a 4 s training job), and the real operator
process on demand.

The operator runs as `python -m retraining_operator run` with a ServiceAccount token bound to
exactly the Helm chart's RBAC (as in tests/e2e), so every status write, Event and finalizer
change goes through the permissions it ships with.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from kubernetes import client

from retraining_operator.api import API_GROUP, API_VERSION, PLURAL
from retraining_standins.demo import DemoWorld, seed_demo
from retraining_standins.demo_run import DEMO_DURATIONS, POLICY, demo_policy
from retraining_standins.stack import AwsStandins
from support.kube import KubeCluster
from support.operator import OperatorProcess, chart_rbac

FINALIZER = f"{API_GROUP}/finalizer"


def merged(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `patch` merged in (dicts recursively; None deletes a key)."""
    out = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus metric's samples with these labels (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


class InFlight:
    """Calls in flight per service, and the most seen at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def arrived(self, service: str, operation: str) -> None:
        with self._lock:
            self.now[service] = self.now.get(service, 0) + 1
            self.peak[service] = max(self.peak.get(service, 0), self.now[service])

    def answered(self, service: str) -> None:
        with self._lock:
            self.now[service] = max(0, self.now.get(service, 0) - 1)


def per_second(times: list[float]) -> tuple[int, float]:
    """(the most calls in any 1-second window, the mean rate over the whole span)."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    span = times[-1] - times[0] if len(times) > 1 else 1.0
    return most, len(times) / max(span, 1.0)


def manifest_loops(aws: AwsStandins, create: Any) -> list[str]:
    """The A2I loops whose samples are in the train manifest of a CreateTrainingJob call
    (replayed lines carry no loop name), one entry per line."""
    (train,) = [c for c in create.params["InputDataConfig"] if c["ChannelName"] == "train"]
    body = aws.get_object(train["DataSource"]["S3DataSource"]["S3Uri"])
    assert body is not None
    names = []
    for raw in body.splitlines():
        line = json.loads(raw)
        job = line.get("a2i-retraining-metadata", {}).get("job-name", "")
        if job.startswith("a2i/"):
            names.append(job.removeprefix("a2i/"))
    return names


class Scene:
    def __init__(
        self,
        kube: KubeCluster,
        aws: AwsStandins,
        namespace: str,
        operator_factory: Callable[..., OperatorProcess],
    ) -> None:
        self.kube = kube
        self.aws = aws
        self.namespace = namespace
        self._factory = operator_factory
        self.operators: list[OperatorProcess] = []
        self.world: DemoWorld | None = None
        self._listeners: list[Callable[[str, str], None]] = []
        self._gauges: list[InFlight] = []
        self._api = kube.api_client()
        self.custom = client.CustomObjectsApi(self._api)
        self.core = client.CoreV1Api(self._api)
        aws.clock.reset(speed=1.0)
        for name in vars(DEMO_DURATIONS):
            setattr(aws.sagemaker.durations, name, getattr(DEMO_DURATIONS, name))
        durations = aws.sagemaker.durations  # a 4 s training job (cases lengthen it as needed)
        durations.training_starting = durations.training_downloading = 1.0
        durations.training_training = durations.training_uploading = 1.0

    def close(self) -> None:
        for op in self.operators:
            if op.alive():
                op.kill()  # what it did is checked; a graceful stop would only cost time
        self.aws.faults.__dict__.pop("decide", None)
        self.aws.log.__dict__.pop("record", None)
        self._api.close()
        self.aws.faults.clear()
        self.aws.clock.reset()  # manual again, as the `aws` fixture promises the next test

    # -- the world --------------------------------------------------------------------------

    def seed(self, loops: int = 12) -> DemoWorld:
        """The demo world: bucket, flow definition `fd-demo` with `loops` completed loops,
        VOC manifests, an InService endpoint serving a built-in object-detection model."""
        self.world = seed_demo(self.aws, loops)
        return self.world

    def policy(
        self, name: str = POLICY, *, min_new_samples: int = 10, **spec: Any
    ) -> dict[str, Any]:
        """The demo policy in this namespace; `spec` is merged into its spec."""
        assert self.world is not None, "seed() the world first"
        body = demo_policy(self.world, min_new_samples=min_new_samples)
        body["metadata"] = {"name": name, "namespace": self.namespace}
        body["spec"] = merged(body["spec"], spec)
        return body

    def idle_policies(self, prefix: str, count: int, **spec: Any) -> list[dict[str, Any]]:
        """`count` policies named `<prefix><n:03d>` that never train (minNewSamples 1000), each
        with its own dataset prefix (two policies must not share a ledger)."""
        assert self.world is not None, "seed() the world first"
        bucket = self.world.bucket
        return [
            self.policy(
                name,
                min_new_samples=1000,
                dataset={"outputS3Uri": f"s3://{bucket}/{prefix}/{name}"},
                **spec,
            )
            for name in (f"{prefix}{index:03d}" for index in range(count))
        ]

    def _listen(self, on_arrival: Callable[[str, str], None]) -> None:
        """Call `on_arrival(service, operation)` the moment any call arrives at a stand-in."""
        faults = self.aws.faults
        if "decide" not in faults.__dict__:
            original = faults.decide

            def decide(service: str, operation: str) -> Any:
                for listener in list(self._listeners):
                    listener(service, operation)
                return original(service, operation)

            faults.decide = decide  # type: ignore[method-assign]
        self._listeners.append(on_arrival)

    def tripwire(self, service: str, operation: str) -> threading.Event:
        """An Event set the moment a matching call ARRIVES at a stand-in (before any injected
        latency and before it is answered): the call is in flight while the Event is set."""
        event = threading.Event()

        def arrived(s: str, o: str) -> None:
            if (s, o) == (service, operation):
                event.set()

        self._listen(arrived)
        return event

    def in_flight_gauge(self) -> InFlight:
        """Counts the calls each stand-in service is answering at once (arrival to answer)."""
        gauge = InFlight()
        self._listen(gauge.arrived)
        log = self.aws.log
        if "record" not in log.__dict__:
            original = log.record

            def record(call: Any) -> None:
                original(call)
                for g in self._gauges:
                    g.answered(call.service)

            log.record = record  # type: ignore[method-assign]
        self._gauges.append(gauge)
        return gauge

    # -- Kubernetes -------------------------------------------------------------------------

    def apply(self, body: Mapping[str, Any]) -> None:
        self.kube.apply(dict(body), check=True)

    def get(self, name: str = POLICY) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, PLURAL, name
            )
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return obj

    def status(self, name: str = POLICY) -> dict[str, Any]:
        obj = self.get(name)
        return (obj or {}).get("status") or {}

    def run(self, name: str = POLICY) -> dict[str, Any]:
        return self.status(name).get("currentRun") or {}

    def condition(self, type_: str, name: str = POLICY) -> dict[str, Any]:
        for cond in self.status(name).get("conditions") or []:
            if cond["type"] == type_:
                return dict(cond)
        return {}

    def events(self, name: str | None = POLICY) -> list[Any]:
        items = self.core.list_namespaced_event(self.namespace).items
        return [e for e in items if name is None or e.involved_object.name == name]

    def reasons(self, name: str | None = POLICY) -> list[str]:
        return [e.reason for e in self.events(name)]

    # -- the operator -----------------------------------------------------------------------

    def operator(
        self,
        *extra_args: str,
        tick: float = 1.0,
        namespaces: tuple[str, ...] | None = None,
    ) -> OperatorProcess:
        """The real operator as the chart's ServiceAccount, watching this namespace (not
        started)."""
        sa_namespace, sa = chart_rbac(self.kube)
        kubeconfig = self.kube.service_account_kubeconfig(sa_namespace, sa, create=False)
        op = self._factory(
            kubeconfig,
            namespaces=namespaces or (self.namespace,),
            extra_args=extra_args,
            tick=tick,
        )
        self.operators.append(op)
        return op

    def logs(self) -> str:
        """Every operator log written in this scene."""
        return "\n".join(op.log_path.read_text(errors="replace") for op in self.operators)

    def wait(
        self, probe: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.3
    ) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = probe()
            if last:
                return last
            time.sleep(interval)
        tails = "\n".join(f"--- {op.log_path.name} ---\n{op.log(40)}" for op in self.operators)
        pytest.fail(
            f"timed out after {timeout:.0f}s waiting for {what}; last={last!r}\n"
            f"status={self.status()}\n{tails}"
        )
