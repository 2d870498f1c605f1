"""All the AWS stand-ins in one object: start, point boto3 at them, control, reset, stop.

Usage: ``with AwsStandins() as aws: os.environ.update(aws.env())`` and boto3 talks to the
stand-ins; ``aws.create_bucket(...)``, ``aws.a2i.create_flow_definition(...)``,
``aws.a2i.add_loops(...)``, ``aws.clock.advance(...)`` set the scene.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config

from retraining_standins.backends import CloudWatchAlarms, S3ObjectStore
from retraining_standins.clock import Clock
from retraining_standins.emulator import A2IControl, Emulator, SageMakerControl
from retraining_standins.events import EventRelay
from retraining_standins.faults import Faults
from retraining_standins.moto_server import MotoStandin
from retraining_standins.requestlog import RequestLog
from retraining_standins.server import ControlApi, EmulatorApp, ServerThread
from retraining_standins.state import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, Durations

ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"  # noqa: S105 - a dummy credential for local stand-ins
MOTO_SERVICES = ("s3", "sts", "cloudwatch", "sqs")


@dataclass(frozen=True)
class Endpoints:
    s3: str
    sts: str
    cloudwatch: str
    sagemaker: str
    a2i_runtime: str
    control: str
    application_autoscaling: str
    moto_direct: str
    sqs: str = ""

    def for_service(self, service: str) -> str:
        return {
            "s3": self.s3,
            "sts": self.sts,
            "cloudwatch": self.cloudwatch,
            "sagemaker": self.sagemaker,
            "sagemaker-a2i-runtime": self.a2i_runtime,
            "application-autoscaling": self.application_autoscaling,
            "sqs": self.sqs,
        }[service]


class AwsStandins:
    def __init__(
        self,
        *,
        clock: Clock | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        moto_port: int = 0,
        account_id: str = DEFAULT_ACCOUNT_ID,
        region: str = DEFAULT_REGION,
        durations: Durations | None = None,
        single_account: bool = True,
    ) -> None:
        self.clock = clock or Clock()
        self.seed = seed
        self.region = region
        self.account_id = account_id
        self.faults = Faults(seed=seed)
        self.log = RequestLog()
        self.moto = MotoStandin(
            self.faults, self.log, self.clock, host=host, port=moto_port,
            single_account=single_account,
        )  # fmt: skip
        self.emulator = Emulator(
            self.clock, account_id=account_id, region=region, durations=durations, seed=seed
        )
        control = ControlApi(self.emulator, self.faults, self.log, reset=self.reset)
        self._app = EmulatorApp(self.emulator, self.faults, self.log, control)
        self.server = ServerThread(self._app, host=host, port=port, name="sagemaker-a2i")
        self._admin: dict[str, Any] = {}
        # A2I status-change events to SQS (EventBridge's part): `events.route(flow, queue)`.
        self.events: EventRelay | None = None
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> AwsStandins:
        self.moto.start()
        self.server.start()
        self._started = True
        self.emulator.state.store = S3ObjectStore(self.admin_client("s3"))
        self.emulator.state.alarms = CloudWatchAlarms(self.admin_client("cloudwatch"))
        self.events = EventRelay(
            self.admin_client("sqs"),
            self.clock,
            account=self.account_id,
            region=self.region,
            seed=self.seed,
        )
        self.emulator.state.events = self.events
        return self

    def stop(self) -> None:
        if self._started:
            # Each listener takes up to half a second to notice the shutdown: stop in parallel.
            servers = (self.server, self.moto.public, self.moto.direct)
            threads = [threading.Thread(target=server.stop) for server in servers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            self._started = False

    def __enter__(self) -> AwsStandins:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self, seed: int | None = None) -> None:
        """A clean slate: no AWS resources, no faults, empty log, the clock restarted now."""
        seed = self.seed if seed is None else seed
        self.moto.reset()
        self.emulator.reset(seed)
        self.faults.reset(seed)
        self.log.clear()
        self.clock.reset(speed=self.clock.speed)
        if self.events is not None:
            self.events.reset(seed)

    # -- the knobs -------------------------------------------------------------------------
    @property
    def sagemaker(self) -> SageMakerControl:
        return self.emulator.sagemaker

    @property
    def a2i(self) -> A2IControl:
        return self.emulator.a2i

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(
            s3=self.moto.url,
            sts=self.moto.url,
            cloudwatch=self.moto.url,
            sagemaker=self.server.url,
            a2i_runtime=self.server.url,
            control=f"{self.server.url}/_standins",
            moto_direct=self.moto.direct_url,
            application_autoscaling=self.server.url,
            sqs=self.moto.url,
        )

    def env(self) -> dict[str, str]:
        """Environment that points unmodified boto3 at the stand-ins."""
        e = self.endpoints
        return {
            "AWS_ENDPOINT_URL_S3": e.s3,
            "AWS_ENDPOINT_URL_STS": e.sts,
            "AWS_ENDPOINT_URL_CLOUDWATCH": e.cloudwatch,
            "AWS_ENDPOINT_URL_SAGEMAKER": e.sagemaker,
            "AWS_ENDPOINT_URL_SAGEMAKER_A2I_RUNTIME": e.a2i_runtime,
            "AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING": e.application_autoscaling,
            "AWS_ENDPOINT_URL_SQS": e.sqs,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "STANDINS_CONTROL_URL": e.control,
        }

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client on the public endpoints (faults apply, calls are logged).
        `config` goes to botocore's `Config` (e.g. `retries={"total_max_attempts": 1}`)."""
        return boto3.session.Session(
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name=self.region,
        ).client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoints.for_service(service),
            config=Config(**config) if config else None,
        )

    def admin_client(self, service: str) -> Any:
        """A boto3 client on moto's direct listener (s3, sts, cloudwatch): no faults, no log."""
        if service not in MOTO_SERVICES:
            raise ValueError(f"admin clients exist for {MOTO_SERVICES}, not {service!r}")
        if service not in self._admin:
            self._admin[service] = boto3.session.Session(
                aws_access_key_id=ACCESS_KEY_ID,
                aws_secret_access_key=SECRET_ACCESS_KEY,
                region_name=self.region,
            ).client(
                service,  # type: ignore[call-overload]
                endpoint_url=self.moto.direct_url,
                config=Config(retries={"mode": "standard"}),
            )
        return self._admin[service]

    def create_queue(self, name: str, **attributes: str) -> str:
        """An SQS queue on moto (attributes as SQS takes them, e.g. RedrivePolicy); its URL."""
        response = self.admin_client("sqs").create_queue(QueueName=name, Attributes=attributes)
        return str(response["QueueUrl"]).replace(self.moto.direct_url, self.moto.url)

    def create_bucket(self, name: str) -> str:
        self.admin_client("s3").create_bucket(Bucket=name)
        return name

    def put_object(self, uri: str, body: bytes | str) -> None:
        data = body.encode() if isinstance(body, str) else body
        store = self.emulator.state.store
        if store is None:
            raise RuntimeError("the stand-ins are not started")
        store.put(uri, data)

    def get_object(self, uri: str) -> bytes | None:
        store = self.emulator.state.store
        if store is None:
            raise RuntimeError("the stand-ins are not started")
        return store.get(uri)


def isolated_aws_env(standins: AwsStandins) -> dict[str, str]:
    """`standins.env()` plus settings that keep a developer's own AWS config out of tests."""
    env = standins.env()
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env
